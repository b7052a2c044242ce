//! `recsys serve` as a child process on loopback ports, and a small version to serve (the
//! demo's, trained once per test process: enough to answer, shared by the serving tests).

use super::{free_port, wait_for_port};
use recsys::demo::{self, DemoOptions, DemoSummary};
use recsys_version::bundle::{Catalog, CATALOG_FILE};
use recsys_version::{Manifest, MANIFEST};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tokio::sync::OnceCell;

/// A child process killed (and reaped) on drop.
pub struct Process(pub Child);

impl Process {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `recsys serve` for `version` with `extra` flags, stderr to `log`: the process and
/// its gRPC and HTTP ports, once both accept connections.
pub fn serve(version: &Path, extra: &[String], log: &Path) -> (Process, u16, u16) {
    serve_with(
        Path::new(env!("CARGO_BIN_EXE_recsys")),
        &["serve"],
        version,
        extra,
        log,
    )
}

/// As [`serve`], with another server: `binary` and the words before its flags (`["serve"]`
/// for `recsys`, none for `recsys-serve`).
pub fn serve_with(
    binary: &Path,
    leading: &[&str],
    version: &Path,
    extra: &[String],
    log: &Path,
) -> (Process, u16, u16) {
    let (grpc, http) = (free_port(), free_port());
    let child = Command::new(binary)
        .args(leading)
        .arg("--model-dir")
        .arg(version)
        .args(["--addr", &format!("127.0.0.1:{grpc}")])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    wait_for_port(grpc);
    wait_for_port(http);
    (Process(child), grpc, http)
}

/// Training settings of [`trained_demo`]; `train_pipeline` gives the binary the same ones.
pub const DEMO_EPOCHS: usize = 2;
pub const DEMO_RANKER_TRIALS: usize = 2;

/// The demo's run on MovieLens 100K, on the global 80/10/10 split and published as of the test
/// window's start (nothing it learned is in the test window), two epochs and two ranker
/// settings. Trained once per test process and shared read-only by every test whose subject
/// is not training itself: the serving tests, `end_to_end` (the demo's own test), the better
/// arm of `experiment_e2e`, the live version `training_contract`'s Job is compared with, and
/// the in-process side of `train_pipeline`'s equality. Tests that change it copy it first
/// (`support::copy_dir`). (`make demo` runs the demo's defaults, the seed split.)
pub async fn trained_demo() -> &'static Path {
    &trained_demo_summary().await.artifact_dir
}

/// What that one demo run measured and printed (the demo's own test reads it).
pub async fn trained_demo_summary() -> &'static DemoSummary {
    static TRAINED: OnceCell<DemoSummary> = OnceCell::const_new();
    TRAINED
        .get_or_init(|| async {
            let _turn = crate::support::training_turn().await;
            demo::run(DemoOptions {
                data_dir: None,
                artifacts_dir: shared_dir("trained-demo"),
                user: Some("416".into()),
                max_epochs: DEMO_EPOCHS,
                split: demo::SplitKind::Global,
                ranker_trials: DEMO_RANKER_TRIALS,
                publish_state: demo::PublishState::TestStart,
                seed: 7,
            })
            .await
            .unwrap()
        })
        .await
}

/// A copy of `version` whose catalog names a fixed random permutation of its items: the same
/// model pointing at the wrong items, a genuinely worse arm that costs no training.
pub fn permuted_items(version: &Path, into: &Path, name: &str) -> PathBuf {
    let dir = crate::support::copy_dir(version, into, name);
    let path = dir.join(CATALOG_FILE);
    let mut catalog: Catalog = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut ids: Vec<String> = catalog
        .items
        .iter()
        .map(|i| i.external_id.clone())
        .collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..ids.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ids.swap(i, (state % (i as u64 + 1)) as usize);
    }
    for (item, id) in catalog.items.iter_mut().zip(ids) {
        item.external_id = id;
    }
    std::fs::write(&path, serde_json::to_vec(&catalog).unwrap()).unwrap();
    let mut manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
    manifest.model_version = name.into();
    recsys_version::seal(&dir, manifest).unwrap();
    dir
}

/// An empty directory under cargo's per-target scratch space for what one test process
/// shares between tests; emptied when the process first asks for it.
pub fn shared_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("it-shared")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Resident memory of process `pid`, bytes (Linux `/proc`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}
