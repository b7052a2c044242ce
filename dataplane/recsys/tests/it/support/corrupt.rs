//! Damaged inputs for the fuzz properties: a small version trained once per test binary by
//! the real `recsys train`, and copies of it with one file damaged (a JSON leaf replaced by a
//! hostile value, a size field inflated, a bit flipped, a truncation), resealed so that only
//! the parsers can object.

use recsys_data::synthetic::{generate, write_catalog, GeneratorConfig};
use recsys_serving::serving::engine::{Engine, Query};
use recsys_version::{self, Manifest, MANIFEST};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Replaces one leaf of `v` (chosen by `seed`) with a hostile value of another shape: ids far
/// out of range, negative or fractional counts, empty or huge strings, a shortened or
/// lengthened array.
pub fn mutate_json(v: &mut Value, seed: u64) {
    let mut leaves = 0u64;
    count_leaves(v, &mut leaves);
    let target = seed % leaves.max(1);
    let mut n = 0u64;
    replace_leaf(v, target, &mut n, seed);
}

fn count_leaves(v: &Value, n: &mut u64) {
    match v {
        Value::Array(a) => {
            *n += 1;
            a.iter().for_each(|x| count_leaves(x, n));
        }
        Value::Object(o) => o.values().for_each(|x| count_leaves(x, n)),
        _ => *n += 1,
    }
}

fn replace_leaf(v: &mut Value, target: u64, n: &mut u64, seed: u64) -> bool {
    let hostile = |seed: u64, was: &Value| -> Value {
        match (seed / 7) % 6 {
            0 => serde_json::json!(u32::MAX),
            1 => serde_json::json!(-1),
            2 => serde_json::json!(1e30),
            3 => serde_json::json!(2.5),
            4 if was.is_string() => Value::String("x".repeat(5000)),
            4 => Value::String(String::new()),
            _ => Value::Null,
        }
    };
    match v {
        Value::Array(a) => {
            if *n == target {
                if (seed / 3).is_multiple_of(2) {
                    a.pop();
                } else if let Some(first) = a.first().cloned() {
                    a.push(first);
                }
                return true;
            }
            *n += 1;
            a.iter_mut().any(|x| replace_leaf(x, target, n, seed))
        }
        Value::Object(o) => o.values_mut().any(|x| replace_leaf(x, target, n, seed)),
        leaf => {
            if *n == target {
                *leaf = hostile(seed, leaf);
                return true;
            }
            *n += 1;
            false
        }
    }
}

/// A small version trained once for this binary by the real `recsys train`.
pub fn version() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let start = 1_790_000_000 - 1_790_000_000 % 86_400;
        let config = GeneratorConfig {
            users: 200,
            items: 1_000,
            bots: 0,
            bad_fraction: 0.0,
            ..GeneratorConfig::new(20_000, start)
        };
        let p = |name: &str| dir.path().join(name);
        generate(&p("events.csv"), &config).unwrap();
        write_catalog(&config, &p("users.csv"), &p("items.csv")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_recsys"))
            .args(["train", "--events"])
            .arg(p("events.csv"))
            .arg("--users")
            .arg(p("users.csv"))
            .arg("--items")
            .arg(p("items.csv"))
            .args(["--labels", "click,purchase", "--out"])
            .arg(p("models"))
            .args([
                "--version",
                "v1",
                "--max-epochs",
                "1",
                "--ranker-trials",
                "1",
            ])
            .args(["--ranker-windows", "2", "--no-mf"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let v = p("models/v1");
        (dir, v)
    })
    .1
}

/// The version's files a loader parses (everything but the manifest and the reports).
pub fn loaded_files() -> Vec<String> {
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(version().join(MANIFEST)).unwrap()).unwrap();
    let mut files: Vec<String> = manifest
        .files
        .keys()
        // ann.faiss included: its size fields are checked before FAISS allocates by them.
        .filter(|f| !f.ends_with(".html") && *f != "evaluation.json")
        .cloned()
        .collect();
    files.sort();
    files
}

/// `bytes` damaged one way, chosen by `how` and placed by `seed`: a JSON leaf replaced (JSON
/// files), a size field claiming far more than the file holds (binary files), a bit flipped,
/// or the file truncated.
pub fn damage(bytes: &mut Vec<u8>, json: bool, seed: u64, how: u8) {
    match (how % 4, json) {
        (0, true) => {
            let mut v: Value = serde_json::from_slice(bytes).unwrap();
            mutate_json(&mut v, seed);
            *bytes = serde_json::to_vec(&v).unwrap();
        }
        // A length or count field claiming billions to hundreds of billions of entries,
        // where binary formats keep them: 8 bytes anywhere.
        (3, false) if bytes.len() >= 8 => {
            let at = (seed as usize) % (bytes.len() - 7);
            let claim = (1u64 << 32) + (seed >> 8) % (1u64 << 38);
            bytes[at..at + 8].copy_from_slice(&claim.to_le_bytes());
        }
        (1, _) | (0, false) | (3, false) if !bytes.is_empty() => {
            let at = (seed as usize) % bytes.len();
            bytes[at] ^= 1 << (seed % 8);
        }
        _ => bytes.truncate((seed as usize) % bytes.len().max(1)),
    }
}

pub use super::copy_dir;

/// The fuzz properties' configuration: `n` cases from a fixed seed, so every CI run checks the
/// same ones; `PROPTEST_CASES` and `PROPTEST_RNG_SEED` explore others.
pub fn cases(n: u32, seed: u64) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(n),
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            std::env::var("PROPTEST_RNG_SEED")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(seed),
        ),
        ..proptest::test_runner::Config::default()
    }
}

/// Ten items for `user` from `engine`, without `exclude`, no filters.
pub fn ask(
    engine: &Engine,
    user: &str,
    exclude: &HashSet<u32>,
) -> Result<recsys_serving::serving::Recommendation, recsys_serving::serving::EngineError> {
    engine.recommend(&Query::new(user, 10, exclude))
}

/// A copy of the version with `file` damaged, resealed so only the parsers can object.
pub fn mutated(file: &str, seed: u64, how: u8, into: &Path) -> PathBuf {
    let dir = copy_dir(version(), into, "v1");
    let path = dir.join(file);
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes, file.ends_with(".json"), seed, how);
    std::fs::write(&path, bytes).unwrap();
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
    recsys_version::seal(&dir, manifest).unwrap();
    dir
}
