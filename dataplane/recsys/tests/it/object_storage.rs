//! Pipeline jobs reading and writing object storage through a real S3 endpoint on loopback
//! (moto's server, installed by scripts/setup.sh): validate → features → materialize with
//! every input and output an s3:// URI.

use crate::support::{free_port, wait_for_port, RedisServer};
use recsys_data::remote;
use recsys_data::synthetic::{generate, GeneratorConfig};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

const START: i64 = 1_790_000_000 - 1_790_000_000 % 86_400;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> (Server, u16) {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    let port = free_port();
    let child = Command::new(&venv)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup.sh", venv.display()));
    let server = Server(child);
    wait_for_port(port);
    (server, port)
}

fn create_bucket(port: u16, bucket: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

fn s3_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

fn recsys(env: &[(&str, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn validate_features_and_materialize_run_on_s3_uris() {
    let _s3_env = crate::support::moto::exclusive_s3_env_blocking();
    let (_moto, port) = moto();
    create_bucket(port, "lake");
    let env = s3_env(port);
    for (k, v) in &env {
        // Held under `exclusive_s3_env`: no other test points these variables elsewhere meanwhile.
        std::env::set_var(k, v);
    }

    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let config = GeneratorConfig {
        days: 14,
        bots: 0,
        ..GeneratorConfig::new(40_000, START)
    };
    let generated = generate(&raw.join("events.csv"), &config).unwrap();
    assert_eq!(remote::upload_dir(&raw, "s3://lake/raw").unwrap(), 1);

    let now = (START + 14 * 86_400).to_string();
    ok(&recsys(
        &env,
        &[
            "validate",
            "--input",
            "s3://lake/raw/events.csv",
            "--out-dir",
            "s3://lake/validated",
            "--now",
            &now,
        ],
    ));
    // The same file validated locally gives the same clean output, byte for byte.
    let local = dir.path().join("local");
    ok(&recsys(
        &env,
        &[
            "validate",
            "--input",
            raw.join("events.csv").to_str().unwrap(),
            "--out-dir",
            local.to_str().unwrap(),
            "--now",
            &now,
        ],
    ));
    let fetched =
        remote::fetch("s3://lake/validated/clean.csv", &dir.path().join("fetched")).unwrap();
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        std::fs::read(local.join("clean.csv")).unwrap()
    );
    let report = remote::fetch(
        "s3://lake/validated/validation_report.json",
        &dir.path().join("fetched"),
    )
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    assert_eq!(report["rows_in"], generated.rows);

    let date = chrono::DateTime::from_timestamp(START + 10 * 86_400, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    ok(&recsys(
        &env,
        &[
            "features",
            "--input",
            "s3://lake/validated/clean.csv",
            "--as-of",
            &date,
            "--store",
            "s3://lake/features",
        ],
    ));
    assert_eq!(
        remote::complete_partitions("s3://lake/features").unwrap(),
        vec![format!("date={date}")]
    );

    let redis = RedisServer::start();
    let url = redis.url();
    let said = ok(&recsys(
        &env,
        &[
            "materialize",
            "--store",
            "s3://lake/features",
            "--redis-url",
            &url,
        ],
    ));
    let keys: u64 = said
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(keys > 1000, "{said}");

    // Missing objects and unsupported schemes fail with the location named.
    let out = recsys(
        &env,
        &[
            "validate",
            "--input",
            "s3://lake/raw/nope.csv",
            "--out-dir",
            "s3://lake/x",
            "--now",
            &now,
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading s3://lake/raw/nope.csv"));
    let out = recsys(
        &env,
        &[
            "drift",
            "--reference",
            "gs://b/a.csv",
            "--current",
            "gs://b/b.csv",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("scheme `gs` is not supported"));
}
