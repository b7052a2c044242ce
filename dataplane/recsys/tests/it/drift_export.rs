//! Serving's drift gauges, measured from outside: a version trained on MovieLens carries its
//! training request distribution; `recsys serve` asked by the users who made the last week's
//! events reports a small PSI on `/metrics`, and one asked by a crowd of newcomers (whose
//! declared values are the defaults) reports a PSI far past the retraining threshold — the
//! number the RetrainSchedule controller reads from Prometheus.

use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::RecommendRequest;
use recsys_version::bundle::{DriftReference, DRIFT_REFERENCE_FILE};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The PSI `/metrics` reports for `feature`, once a rotation has published one above or below
/// `bound` as `above` says (waits for the window to catch up).
fn psi_when(http: SocketAddr, feature: &str, above: bool, bound: f64) -> f64 {
    let prefix = format!("recsys_feature_psi{{feature=\"{feature}\"");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = http_get(http, "/metrics").unwrap();
        let value = body
            .lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value.filter(|v| (*v > bound) == above) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{feature}: PSI {value:?} never {} {bound}",
            if above { "above" } else { "at or below" }
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reports_small_psi_for_its_training_users_and_large_for_newcomers() {
    let version = crate::support::serve::trained_demo().await;
    let reference: DriftReference =
        serde_json::from_slice(&std::fs::read(version.join(DRIFT_REFERENCE_FILE)).unwrap())
            .unwrap();
    assert!(reference.events > 500, "{}", reference.events);
    assert!(reference
        .features
        .iter()
        .any(|f| f.name == "user_events_all"));

    let (grpc, http) = (free_port(), free_port());
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_recsys"))
            .args(["serve", "--model-dir"])
            .arg(version)
            .args([
                "--addr",
                &grpc.to_string(),
                "--http-addr",
                &http.to_string(),
            ])
            .args(["--prediction-ttl-secs", "0", "--drift-window-secs", "24"])
            .args(["--feedback-auth", "open"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(http, "/readyz").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut client = RecommenderClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let mut ask = async |user: String| {
        client
            .recommend(RecommendRequest {
                user_id: user,
                num_items: 10,
                ..Default::default()
            })
            .await
            .unwrap();
    };

    // The users behind the last week's events before the version's cutoff (what its reference
    // holds), one request per event, as in training.
    let manifest = recsys_version::verify(version, None).unwrap();
    let cutoff = manifest.data_window.cutoff;
    let data =
        recsys_data::movielens::load(&recsys_data::locate::find_movielens(None).unwrap()).unwrap();
    let askers: Vec<String> = data
        .interactions
        .iter()
        .filter(|r| r.timestamp < cutoff && r.timestamp >= cutoff - DriftReference::DAYS * 86_400)
        .map(|r| data.users[r.user as usize].external_id.clone())
        .collect();
    for user in &askers {
        ask(user.clone()).await;
    }
    let calm = psi_when(http, "user_events_all", false, 0.1);

    // As many newcomers again: their rows hold the defaults, which training never saw.
    for i in 0..askers.len() {
        ask(format!("newcomer-{i}")).await;
    }
    let drifted = psi_when(http, "user_events_all", true, 0.2);
    println!("PSI of user_events_all: {calm:.3} for the training users, {drifted:.3} with as many newcomers");
    assert!(drifted > calm + 0.2, "calm {calm}, drifted {drifted}");
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("recsys_feature_psi{"))
        .count();
    assert_eq!(series, reference.features.len(), "one series per feature");
}
