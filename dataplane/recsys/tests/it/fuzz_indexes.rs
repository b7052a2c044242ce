//! Bounded fuzzing of the ItemIndex path (proptest, fixed seed and case count as in
//! fuzz_inputs.rs): what `recsys build-index` reads — a model version's files, each damaged
//! and resealed — is refused or built into an index, never a panic; and every file an index
//! holds (`ann.faiss`, `ann.json`), damaged and resealed in its `index-manifest.json`, is
//! refused by the server's loader or served, never a panic, an out-of-bounds read or an
//! allocation the file's size cannot justify, for each index kind recsys builds.

use crate::support::corrupt::{ask, copy_dir, damage, mutated, version};
use proptest::prelude::*;
use recsys::pipeline::index_build::{self, IndexBuildOptions};
use recsys_models::IndexKind;
use recsys_serving::serving::engine::{Engine, EngineOptions};
use recsys_version::index_manifest::{self, IndexManifest, INDEX_MANIFEST};
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `n` cases from this file's fixed seed.
fn cases(n: u32) -> ProptestConfig {
    crate::support::corrupt::cases(n, 0x1dec_f022)
}

/// Every index kind, sized for the fixture's 1,000 items.
const KINDS: [IndexKind; 5] = [
    IndexKind::Flat,
    IndexKind::Hnsw {
        m: 8,
        ef_search: 64,
    },
    IndexKind::Ivf {
        nlist: 16,
        nprobe: 4,
    },
    IndexKind::IvfPq {
        nlist: 16,
        nprobe: 4,
        m: 4,
        nbits: 8,
    },
    IndexKind::IvfSq8 {
        nlist: 16,
        nprobe: 4,
    },
];

fn build(model_dir: &Path, kind: IndexKind, output: &Path) -> anyhow::Result<bool> {
    let result = index_build::run(&IndexBuildOptions {
        model_dir: model_dir.display().to_string(),
        output: output.display().to_string(),
        kind,
        tune_probes: false,
        recall_k: 50,
        // Published whatever the recall: the loader is what is under test.
        recall_target: 0.0,
        sample_queries: 20,
        result_file: None,
    })?;
    Ok(result.published)
}

/// One index of each kind built from the undamaged version.
fn indexes() -> &'static [PathBuf] {
    static DIRS: OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = OnceLock::new();
    &DIRS
        .get_or_init(|| {
            let root = tempfile::tempdir().unwrap();
            let dirs = KINDS
                .iter()
                .enumerate()
                .map(|(k, &kind)| {
                    let dir = root.path().join(format!("index-{k}"));
                    assert!(build(version(), kind, &dir).unwrap(), "{kind:?}");
                    dir
                })
                .collect();
            (root, dirs)
        })
        .1
}

/// Asks `engine` for a known, an unknown and a fresh user, excluding odd ids.
fn ask_all(engine: &Engine) {
    let exclude: HashSet<u32> = [0, 1, u32::MAX].into_iter().collect();
    for user in ["u1", "u7", "someone-new"] {
        let _ = ask(engine, user, &exclude);
    }
}

fn serve_with(index_dir: &Path) -> Result<Engine, recsys_serving::serving::EngineError> {
    Engine::load_with(
        version(),
        EngineOptions {
            index_dir: Some(index_dir.to_path_buf()),
            ..Default::default()
        },
    )
}

/// What `build-index` parses of a version (the manifest has properties of its own).
const BUILD_INPUTS: [&str; 3] = ["snapshot.json", "two_tower.safetensors", "two_tower.json"];

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn a_damaged_index_build_input_is_refused_or_built_never_a_panic(pick in any::<usize>(), kind in 0usize..KINDS.len(), seed in any::<u64>(), how in any::<u8>()) {
        let file = BUILD_INPUTS[pick % BUILD_INPUTS.len()];
        let work = tempfile::tempdir().unwrap();
        let model = mutated(file, seed, how, work.path());
        let out = work.path().join("index");
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| build(&model, KINDS[kind], &out)));
        prop_assert!(outcome.is_ok(), "{file} damaged (seed {seed}, how {how}) panicked the build");
    }
}

proptest! {
    #![proptest_config(cases(160))]

    #[test]
    fn a_damaged_index_file_is_refused_or_served_never_a_panic(kind in 0usize..KINDS.len(), faiss in any::<bool>(), seed in any::<u64>(), how in any::<u8>()) {
        let file = if faiss { "ann.faiss" } else { "ann.json" };
        let work = tempfile::tempdir().unwrap();
        let dir = copy_dir(&indexes()[kind], work.path(), "index");
        let path = dir.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        damage(&mut bytes, !faiss, seed, how);
        std::fs::write(&path, bytes).unwrap();
        let manifest: IndexManifest =
            serde_json::from_slice(&std::fs::read(dir.join(INDEX_MANIFEST)).unwrap()).unwrap();
        index_manifest::seal(&dir, manifest).unwrap();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if let Ok(engine) = serve_with(&dir) {
                ask_all(&engine);
            }
        }));
        prop_assert!(outcome.is_ok(), "{:?}'s {file} damaged (seed {seed}, how {how}) panicked", KINDS[kind]);
    }
}

#[test]
fn every_undamaged_kind_builds_loads_and_answers() {
    // The properties only mean something if the untouched inputs work.
    for (dir, kind) in indexes().iter().zip(KINDS) {
        let engine = serve_with(dir).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let exclude = HashSet::new();
        let rec = ask(&engine, "u1", &exclude).unwrap();
        assert_eq!(rec.items.len(), 10, "{kind:?}");
    }
    for file in BUILD_INPUTS {
        assert!(
            version().join(file).is_file(),
            "{file} is not in the version"
        );
    }
}

#[test]
fn an_index_whose_size_field_claims_terabytes_is_refused_before_faiss_allocates() {
    // Found by the property above before the check existed: FAISS resized to the claim.
    let work = tempfile::tempdir().unwrap();
    let dir = copy_dir(&indexes()[2], work.path(), "index");
    let path = dir.join("ann.faiss");
    let mut bytes = std::fs::read(&path).unwrap();
    // The flat quantizer's code length: after the IVF's fourcc and header (4 + 33 bytes),
    // nlist and nprobe, the quantizer's fourcc and header.
    let at = 4 + 33 + 16 + 4 + 33;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 39).to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let manifest: IndexManifest =
        serde_json::from_slice(&std::fs::read(dir.join(INDEX_MANIFEST)).unwrap()).unwrap();
    index_manifest::seal(&dir, manifest).unwrap();
    let refused = match serve_with(&dir) {
        Ok(_) => panic!("a terabyte claim was served"),
        Err(e) => format!("{e:#}"),
    };
    assert!(refused.contains("claims 549755813888 entries"), "{refused}");
}
