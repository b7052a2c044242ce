//! The serving process as an attacker and an overloaded cluster meet it: `recsys serve` runs as
//! a child process with TLS (a CA-signed certificate, rotated while it runs), bearer tokens for
//! Feedback (rotated too), a TLS Redis with a password, a bounded queue and a deadline, and a
//! SIGTERM that turns health NOT_SERVING before the listeners close.

use crate::support::serve::{serve, trained_demo as trained, Process};
use crate::support::tls::{pki, Trust};
use crate::support::{free_port, wait_for_port};
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::{FeedbackEvent, FeedbackRequest, RecommendRequest};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn tls_channel(port: u16, ca: &str) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost"),
        )?
        .connect()
        .await
}

/// Whether a client trusting only `ca` gets a Recommend answered.
async fn answered_trusting(port: u16, ca: &str) -> bool {
    match tls_channel(port, ca).await {
        Err(_) => false,
        Ok(ch) => RecommenderClient::new(ch)
            .recommend(request("1"))
            .await
            .is_ok(),
    }
}

fn request(user: &str) -> RecommendRequest {
    RecommendRequest {
        user_id: user.into(),
        num_items: 10,
        ..Default::default()
    }
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn click(user: &str, item: &str) -> FeedbackRequest {
    FeedbackRequest {
        events: vec![FeedbackEvent {
            user_id: user.into(),
            item_id: item.into(),
            event_type: "click".into(),
            ..Default::default()
        }],
    }
}

/// GET `path` over HTTPS from loopback, verifying the server against `ca` as `localhost`.
async fn https_get(port: u16, ca: &str, path: &str) -> (u16, String) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    crate::support::tls::https_get(
        addr,
        Trust::Ca {
            pem: ca,
            domain: "localhost",
        },
        path,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_tokens_bounds_and_a_graceful_stop() {
    recsys_serving::serving::tls::install_default_provider();
    let work = tempfile::tempdir().unwrap();
    let version = trained().await;
    let dir = work.path();
    let first = pki("first");
    let (cert, key, tokens) = (dir.join("tls.crt"), dir.join("tls.key"), dir.join("tokens"));
    std::fs::write(&cert, &first.cert).unwrap();
    std::fs::write(&key, &first.key).unwrap();
    std::fs::write(&tokens, "# feedback writers\nwriter-one\n").unwrap();

    // A TLS Redis that wants a password, with its own CA.
    let redis_pki = pki("redis");
    for (name, pem) in [
        ("redis.crt", &redis_pki.cert),
        ("redis.key", &redis_pki.key),
        ("redis-ca.crt", &redis_pki.ca),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    let redis_port = free_port();
    let redis_password = "s3cret-redis-password";
    let _redis = Process(
        Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &redis_port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(dir.join("redis.crt"))
            .arg("--tls-key-file")
            .arg(dir.join("redis.key"))
            .arg("--tls-ca-cert-file")
            .arg(dir.join("redis-ca.crt"))
            .args(["--tls-auth-clients", "no", "--requirepass", redis_password])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server with TLS (scripts/setup.sh)"),
    );
    wait_for_port(redis_port);

    let log = dir.join("serve.log");
    let args: Vec<String> = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--auth-tokens-file",
        tokens.to_str().unwrap(),
        "--drain-secs",
        "3",
        "--redis-url",
        &format!("rediss://localhost:{redis_port}/"),
        "--redis-ca-file",
        dir.join("redis-ca.crt").to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recsys"));
    let (grpc, http) = (free_port(), free_port());
    child
        .args(["serve", "--model-dir"])
        .arg(version)
        .args(["--addr", &format!("127.0.0.1:{grpc}")])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(&args)
        .env("RECSYS_REDIS_PASSWORD", redis_password)
        .env("RUST_LOG", "info");
    // Logs (stdout) and messages (stderr) both land in the file searched for credentials.
    let log_file = std::fs::File::create(&log).unwrap();
    child.stdout(log_file.try_clone().unwrap()).stderr(log_file);
    let mut server = Process(child.spawn().unwrap());
    wait_for_port(grpc);

    // Plain text is not spoken, and a client that trusts another CA refuses the server.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{grpc}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let r = RecommenderClient::new(channel)
            .recommend(request("416"))
            .await;
        assert!(r.is_err(), "a plain-text call was answered");
    }
    let stranger = pki("stranger");
    assert!(
        !answered_trusting(grpc, &stranger.ca).await,
        "a client trusting another CA got an answer"
    );

    // A verifying client: Recommend is open, Feedback needs a token.
    let mut client = RecommenderClient::new(tls_channel(grpc, &first.ca).await.unwrap());
    let shown = client.recommend(request("416")).await.unwrap().into_inner();
    assert_eq!(shown.items.len(), 10);
    let item = shown.items[0].item_id.clone();
    let e = client.feedback(click("416", &item)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{}", e.message());
    let e = client
        .feedback(with_token(click("416", &item), "guess"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let ok = client
        .feedback(with_token(click("416", &item), "writer-one"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.accepted, 1);

    // HTTPS with the same certificate.
    let (status, body) = https_get(http, &first.ca, "/recommend?user_id=416&num_items=3").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"items\""), "{body}");

    // The answers go through the TLS Redis (user embeddings cached there). A slow first
    // connection only sends requests to the in-process copy for a second, so ask for more
    // users until a key lands or the deadline says the TLS Redis is never used.
    let redis_keys = || {
        let out = Command::new("redis-cli")
            .args(["--tls", "--cacert"])
            .arg(dir.join("redis-ca.crt"))
            .args(["-h", "localhost", "-p", &redis_port.to_string()])
            .args(["--no-auth-warning", "-a", redis_password, "DBSIZE"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut asked = 0;
    while redis_keys() == 0 && Instant::now() < deadline {
        asked += 1;
        client
            .recommend(request(&(100 + asked).to_string()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        redis_keys() > 0,
        "nothing reached the TLS Redis after {asked} more requests; the server said:\n{}",
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.to_lowercase().contains("redis"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Rotations without a restart: a certificate from another CA, and a new token.
    let second = pki("second");
    std::fs::write(&key, &second.key).unwrap();
    std::fs::write(&cert, &second.cert).unwrap();
    std::fs::write(&tokens, "writer-two\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut rotated = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rotated.is_none() && Instant::now() < deadline {
        if let Ok(ch) = tls_channel(grpc, &second.ca).await {
            if RecommenderClient::new(ch.clone())
                .recommend(request("1"))
                .await
                .is_ok()
            {
                rotated = Some(ch);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut client = RecommenderClient::new(rotated.expect("the rotated certificate is served"));
    assert!(
        !answered_trusting(grpc, &first.ca).await,
        "the old certificate is still served"
    );
    let e = client
        .feedback(with_token(click("416", &item), "writer-one"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        client
            .feedback(with_token(click("416", &item), "writer-two"))
            .await
            .unwrap()
            .into_inner()
            .accepted,
        1
    );

    // SIGTERM: health turns NOT_SERVING while the listener still answers (the drain
    // window), then the process exits cleanly.
    let channel = tls_channel(grpc, &second.ca).await.unwrap();
    let mut health = HealthClient::new(channel);
    let serving = health
        .check(HealthCheckRequest {
            service: "recsys.v1.Recommender".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, ServingStatus::Serving as i32);
    unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    let mut saw_not_serving = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(r) = health
            .check(HealthCheckRequest {
                service: "recsys.v1.Recommender".into(),
            })
            .await
        {
            if r.into_inner().status == ServingStatus::NotServing as i32 {
                saw_not_serving = true;
                break;
            }
        }
    }
    assert!(saw_not_serving, "health never turned NOT_SERVING");
    let during_drain = client.recommend(request("2")).await;
    assert!(during_drain.is_ok(), "a request in the drain window failed");
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("TLS certificate reloaded"), "{logs}");
    assert!(logs.contains("token file reloaded"), "{logs}");
    assert!(
        !logs.contains(redis_password) && !logs.contains("writer-"),
        "a credential reached the log"
    );
}

/// Codes of `n` concurrent Recommends for distinct users (no answer cache can help).
async fn burst(port: u16, n: usize) -> Vec<tonic::Code> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let calls = (0..n).map(|i| {
        let mut client = RecommenderClient::new(channel.clone());
        async move {
            let mut r = request(&(1 + i % 900).to_string());
            r.explain = true;
            match client.recommend(r).await {
                Ok(_) => tonic::Code::Ok,
                Err(s) => s.code(),
            }
        }
    });
    futures_util::future::join_all(calls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_sheds_and_a_passed_deadline_answers_at_once() {
    let work = tempfile::tempdir().unwrap();
    let version = trained().await;
    let common = ["--max-in-flight", "1", "--prediction-ttl-secs", "0"];

    // No room to wait: whatever arrives while one request computes is shed.
    let mut args: Vec<String> = common.map(str::to_owned).to_vec();
    args.extend(["--max-queue", "0"].map(str::to_owned));
    let (server, grpc, http) = serve(version, &args, &work.path().join("shed.log"));
    let codes = burst(grpc, 64).await;
    let shed = codes
        .iter()
        .filter(|&&c| c == tonic::Code::ResourceExhausted)
        .count();
    assert!(
        codes
            .iter()
            .all(|&c| c == tonic::Code::Ok || c == tonic::Code::ResourceExhausted),
        "{codes:?}"
    );
    assert!(shed > 0 && shed < 64, "{shed} of 64 shed");
    let metrics = reqwest_free_get(http, "/metrics");
    assert!(
        metrics.contains(&format!("recsys_requests_shed_total {shed}")),
        "{metrics}"
    );
    drop(server);

    // A one-millisecond deadline with one request computed at once: those still waiting
    // when it passes are answered DEADLINE_EXCEEDED, none waits on.
    let mut args: Vec<String> = common.map(str::to_owned).to_vec();
    args.extend(["--request-timeout-ms", "1", "--max-queue", "1000"].map(str::to_owned));
    let (_server, grpc, _) = serve(version, &args, &work.path().join("deadline.log"));
    let codes = burst(grpc, 64).await;
    assert!(
        codes
            .iter()
            .all(|&c| c == tonic::Code::Ok || c == tonic::Code::DeadlineExceeded),
        "{codes:?}"
    );
    assert!(codes.contains(&tonic::Code::DeadlineExceeded), "{codes:?}");

    // The request bounds are flags: smaller ones are enforced and named in the refusal.
    let args: Vec<String> = ["--max-excluded-items", "5", "--max-id-bytes", "8"]
        .map(str::to_owned)
        .to_vec();
    let (_server, grpc, _) = serve(version, &args, &work.path().join("bounds.log"));
    let mut client = RecommenderClient::new(
        Channel::from_shared(format!("http://127.0.0.1:{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let excluding = |n: u32| {
        let mut r = request("1");
        r.exclude_item_ids = (1..=n).map(|i| i.to_string()).collect();
        r
    };
    assert!(client.recommend(excluding(5)).await.is_ok());
    let refused = client.recommend(excluding(6)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("at most 5"),
        "{}",
        refused.message()
    );
    let refused = client.recommend(request("123456789")).await.unwrap_err();
    assert!(
        refused.message().contains("at most 8"),
        "{}",
        refused.message()
    );
    // A bound of zero would refuse everything: the process does not start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(["serve", "--model-dir"])
        .arg(version)
        .args([
            "--max-categories",
            "0",
            "--addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A plain HTTP GET of `path`'s body.
fn reqwest_free_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}
