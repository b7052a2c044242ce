//! A real S3 endpoint on loopback (moto, installed into .venv by scripts/setup.sh), and the
//! environment a pod's object-storage Secret would give it.

use super::{free_port, wait_for_port};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The moto process and its port; killed on drop.
pub struct Moto(Child, pub u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto with `buckets` created.
pub fn moto(buckets: &[&str]) -> Moto {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    let port = free_port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup.sh", bin.display()));
    let server = Moto(child, port);
    wait_for_port(port);
    for bucket in buckets {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    server
}

/// The `AWS_*` variables of an object-storage Secret pointing at moto on `port`.
pub fn s3_env(port: u16) -> BTreeMap<String, String> {
    [
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Held by a test for as long as it points this process's `AWS_*` variables at its own moto:
/// the tests share one process, and the variables are process-wide.
static S3_ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn exclusive_s3_env() -> tokio::sync::MutexGuard<'static, ()> {
    S3_ENV.lock().await
}

/// [`exclusive_s3_env`] for a test without a runtime.
pub fn exclusive_s3_env_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    S3_ENV.blocking_lock()
}
