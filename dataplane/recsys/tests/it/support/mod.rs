//! Helpers the integration tests share: free loopback ports and a real Redis (Debian's
//! redis-server, installed by scripts/setup.sh) that goes away with the test.
#![allow(dead_code)] // each test binary uses a subset

pub mod cluster;
pub mod corrupt;
pub mod moto;
pub mod serve;
pub mod tls;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 10 s) until something accepts connections on `port`.
pub fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

/// A redis-server on a free loopback port, without persistence; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/setup.sh)");
        let server = Self {
            child: Some(child),
            port,
        };
        wait_for_port(port);
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server now (tests of Redis going away mid-flight).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A copy of the files of `from` (a directory) under `into/<name>`.
pub fn copy_dir(from: &std::path::Path, into: &std::path::Path, name: &str) -> std::path::PathBuf {
    let dir = into.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// A copy of the trained version sealed under another version name (a distinct version:
/// its manifest, and so its digest, differ).
pub fn version_named(
    from: &std::path::Path,
    into: &std::path::Path,
    name: &str,
) -> std::path::PathBuf {
    let dir = copy_dir(from, into, name);
    let mut manifest: recsys_version::Manifest =
        serde_json::from_slice(&std::fs::read(dir.join(recsys_version::MANIFEST)).unwrap())
            .unwrap();
    manifest.model_version = name.into();
    recsys_version::seal(&dir, manifest).unwrap();
    dir
}

/// libtorch as the `recsys` binary sets it up: kernels pinned to AVX2 (before libtorch first
/// runs) and two intra-op threads. Every in-process training calls this first; the tests share
/// one process, and a thread count or kernel width changed by one test would change another's
/// model (`train_pipeline` compares an in-process run with the binary's, bit for bit).
pub fn libtorch() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        recsys_two_tower::pin_cpu_kernels();
        recsys_two_tower::set_torch_threads(2);
    });
}

/// libtorch's random generator is process-wide: two trainings in one process at once would
/// interleave their draws and neither would be the model its seed makes. Every in-process
/// training holds this turn (trainings by the `recsys` binary run in their own process).
static TRAINING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn training_turn() -> tokio::sync::MutexGuard<'static, ()> {
    libtorch();
    TRAINING.lock().await
}

/// [`training_turn`] for a test without a runtime.
pub fn training_turn_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    libtorch();
    TRAINING.blocking_lock()
}
