//! `recsys serve` as a child process on loopback ports, and a small version to serve (the
//! demo's, trained once per test process: enough to answer, shared by the serving tests).

use super::{free_port, wait_for_port};
use recsys::demo::{self, DemoOptions, DemoSummary};
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

/// The demo's version of MovieLens 100K (seed split, two epochs, one ranker setting, refit on
/// every event), trained once for the whole test process and shared read-only by every test
/// whose subject is serving rather than training. Tests that change a version copy it first
/// (`support::copy_dir`).
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
                max_epochs: 2,
                split: demo::SplitKind::Seed,
                ranker_trials: 1,
                publish_state: demo::PublishState::Latest,
                seed: 7,
            })
            .await
            .unwrap()
        })
        .await
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
