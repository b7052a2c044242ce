//! The lean `recsys-serve` binary against `recsys serve`, started the way the operator starts
//! a serving pod (the same version directory, the same flags): it links no libtorch, and it
//! answers every request exactly as the full binary does.

use crate::support::serve::{serve, serve_with};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn lean_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_recsys-serve"))
}

/// The shared libraries `binary` names (ELF DT_NEEDED), as `readelf` lists them.
fn needed_libraries(binary: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(binary)
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success(), "readelf -d {}", binary.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .collect()
}

fn http_get(port: u16, path: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// What a caller sees of an answer, without the parts that differ per request.
fn answer(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(o) = body.as_object_mut() {
        o.remove("request_id");
        o.remove("timings_ms");
    }
    body
}

#[test]
fn the_lean_server_links_no_libtorch() {
    let lean = needed_libraries(&lean_binary());
    let full = needed_libraries(Path::new(env!("CARGO_BIN_EXE_recsys")));
    // The check can fail: the full binary names libtorch.
    assert!(
        full.iter().any(|l| l.starts_with("libtorch")),
        "recsys links {full:?}"
    );
    for lib in &lean {
        assert!(
            !["libtorch", "libc10", "libcudart", "libcupti"]
                .iter()
                .any(|t| lib.starts_with(t)),
            "recsys-serve links {lib} ({lean:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lean_server_answers_exactly_as_recsys_serve() {
    let work = tempfile::tempdir().unwrap();
    let version = crate::support::serve::trained_demo().await;
    let catalog: serde_json::Value =
        serde_json::from_slice(&std::fs::read(version.join("catalog.json")).unwrap()).unwrap();
    let users: Vec<String> = catalog["user_ids"]
        .as_array()
        .unwrap()
        .iter()
        .step_by(37)
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    assert!(users.len() > 20);

    let (full, _, full_http) = serve(version, &[], &work.path().join("full.log"));
    let (lean, _, lean_http) = serve_with(
        &lean_binary(),
        &[],
        version,
        &[],
        &work.path().join("lean.log"),
    );

    let mut asked = 0;
    for user in users
        .iter()
        .map(String::as_str)
        .chain(["nobody-new", "416"])
    {
        for query in [
            format!("/recommend?user_id={user}&num_items=10"),
            format!("/recommend?user_id={user}&num_items=5&category=Drama"),
        ] {
            let (full_status, full_body) = http_get(full_http, &query);
            let (lean_status, lean_body) = http_get(lean_http, &query);
            assert_eq!(full_status, 200, "{query}: {full_body}");
            assert_eq!(lean_status, full_status, "{query}");
            let (full_body, lean_body) = (answer(full_body), answer(lean_body));
            assert!(
                !full_body["items"].as_array().unwrap().is_empty(),
                "{query}"
            );
            assert_eq!(lean_body, full_body, "{query}");
            asked += 1;
        }
    }
    assert!(asked > 40);
    // A malformed request is refused by both alike.
    let bad = "/recommend?user_id=416&num_items=0";
    assert_eq!(http_get(lean_http, bad), http_get(full_http, bad));
    eprintln!(
        "resident memory after {asked} answers: recsys serve {:?} B, recsys-serve {:?} B",
        crate::support::serve::rss_bytes(full.pid()),
        crate::support::serve::rss_bytes(lean.pid())
    );
}
