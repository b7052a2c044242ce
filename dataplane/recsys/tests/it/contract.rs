//! The operator ↔ data-plane contract, run for real. No API server can run here, so the test
//! stands in for the kubelet (tests/it/support/cluster.rs): every Pod template the operator's
//! builders produce for the example manifests — the ItemIndex build Job, the RecModel's own
//! index build for its canary, both serving arms, the router — runs as a local `recsys`
//! process with exactly its args, env (Secrets from fixtures) and volumes, against a real S3
//! endpoint on loopback (moto) holding real artifacts at the manifests' `s3://` URIs. A flag a
//! builder adds that the binary does not accept, or a URI it cannot read, fails here.
//!
//! Also here: feedback durability — a serving process SIGKILLed in the middle of a stream of
//! Feedback calls loses none of the events it acknowledged, and `recsys validate` leaves each
//! exactly once.

use crate::support::cluster::{example, probe_passes, run_pod, wait_ready, Pod, Secrets};
use crate::support::moto::{moto, s3_env};
use crate::support::tls::{https_get, pki_for, Trust};
use crate::support::{version_named, RedisServer};
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::{FeedbackEvent, FeedbackRequest, RecommendRequest};
use recsys_data::remote;
use recsys_operator::builders::router::{self, Routed};
use recsys_operator::builders::serving::{self, Arm};
use recsys_operator::builders::{derived_index, index_job, version_of};
use recsys_operator::controllers::item_index::{status_for, BuildState};
use recsys_operator::crd::v1alpha1::{ItemIndex, RecModel};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// The token in the example RecModel's tokens Secret (a fixture, as the other Secrets).
const FEEDBACK_TOKEN: &str = "contract-feedback-writer";

/// The tests here start many processes; one at a time keeps them from competing for the two
/// cores (and their probes from timing out).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn trained() -> &'static Path {
    crate::support::serve::trained_demo().await
}

/// Runs a build Job's pod to completion and returns the status the ItemIndex controller
/// writes from its termination message (parsed by the controller's own code).
fn run_build(ii: &mut ItemIndex, secrets: &Secrets, work: &Path) {
    let job = index_job::job(ii, "ghcr.io/recsys/dataplane:0.1.0");
    let spec = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let name = job.metadata.name.unwrap();
    let mut pod = run_pod(&name, &spec, secrets, &BTreeMap::new(), work);
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = pod.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not finish:\n{}",
            pod.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "{name} failed with {status}:\n{}",
        pod.logs()
    );
    let message = std::fs::read_to_string(&pod.termination_log).unwrap();
    let result = index_job::parse_result(&message)
        .unwrap_or_else(|e| panic!("{name}: the controller cannot read {message:?}: {e}"));
    ii.status = Some(status_for(ii, &BuildState::Succeeded(result)));
}

async fn serving_pod(
    rm: &RecModel,
    arm: Arm,
    model_uri: &str,
    index_uri: &str,
    secrets: &Secrets,
    work: &Path,
) -> Pod {
    let d = serving::deployment(rm, arm, model_uri, index_uri);
    let spec = d.spec.template.spec.clone().unwrap();
    let container = &spec.containers[0];
    let mut pod = run_pod(
        &serving::name(rm, arm),
        &spec,
        secrets,
        &BTreeMap::new(),
        work,
    );
    wait_ready(
        &mut pod,
        container.startup_probe.as_ref().unwrap(),
        Duration::from_secs(120),
    )
    .await;
    wait_ready(
        &mut pod,
        container.readiness_probe.as_ref().unwrap(),
        Duration::from_secs(10),
    )
    .await;
    pod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pod_the_operator_builds_for_the_examples_runs_against_object_storage() {
    let trained = trained().await;
    let _turn = ONE_AT_A_TIME.lock().await;
    let _s3_env = crate::support::moto::exclusive_s3_env().await;
    let s3 = moto(&["recsys-artifacts", "recsys-events"]);
    let env = s3_env(s3.1);
    for (k, v) in &env {
        // The test's own uploads and listings use the same endpoint (held under
        // `exclusive_s3_env`).
        std::env::set_var(k, v);
    }
    let redis = RedisServer::start();
    // The manifests as a platform team applies them, with the uids the API server assigns.
    let mut rm: RecModel = example("recmodel.yaml");
    rm.metadata.uid = Some("uid-recmodel".into());
    let mut ii: ItemIndex = example("itemindex.yaml");
    ii.metadata.uid = Some("uid-itemindex".into());
    // The certificate cert-manager would issue for the RecModel's Services (and `localhost`,
    // where the stand-in cluster's DNS sends them).
    let tls_secret = &rm
        .spec
        .tls
        .as_ref()
        .expect("the example turns TLS on")
        .secret_name;
    let name = rm.metadata.name.clone().unwrap();
    let (stable_name, canary_name) = (
        serving::name(&rm, Arm::Stable),
        serving::name(&rm, Arm::Canary),
    );
    let pki = pki_for("cluster", &[&name, &stable_name, &canary_name, "localhost"]);
    let secrets: Secrets = BTreeMap::from([
        (
            tls_secret.clone(),
            BTreeMap::from([
                ("tls.crt".to_owned(), pki.cert.clone()),
                ("tls.key".to_owned(), pki.key.clone()),
                ("ca.crt".to_owned(), pki.ca.clone()),
            ]),
        ),
        ("recsys-object-store".to_owned(), env.clone()),
        (
            "recsys-feedback-tokens".to_owned(),
            BTreeMap::from([("tokens".to_owned(), format!("{FEEDBACK_TOKEN}\n"))]),
        ),
        (
            "recsys-redis".to_owned(),
            BTreeMap::from([
                ("url".to_owned(), redis.url()),
                ("password".to_owned(), String::new()),
            ]),
        ),
    ]);
    let work = tempfile::tempdir().unwrap();

    let stable_uri = rm.spec.model_uri.clone();
    let canary_uri = rm.spec.canary.as_ref().unwrap().model_uri.clone();
    assert_eq!(
        ii.spec.model_uri, stable_uri,
        "the example index is the stable version's"
    );
    for uri in [&stable_uri, &canary_uri] {
        let local = version_named(trained, work.path(), &version_of(uri));
        remote::upload_dir(&local, uri).unwrap();
    }

    // The referenced index builds from the stable version; the RecModel's own index for the
    // canary builds from the canary's vectors.
    run_build(&mut ii, &secrets, work.path());
    let stable_index = derived_index::servable(&ii, &stable_uri).expect("published");
    assert!(stable_index.starts_with("s3://"), "{stable_index}");
    let mut canary_ii = derived_index::item_index(&rm, &ii, &canary_uri);
    canary_ii.metadata.uid = Some("uid-canary-index".into());
    run_build(&mut canary_ii, &secrets, work.path());
    let canary_index = derived_index::servable(&canary_ii, &canary_uri).expect("published");
    assert_ne!(canary_index, stable_index);

    // A canary started on the stable version's index is refused before it turns ready.
    {
        let d = serving::deployment(&rm, Arm::Canary, &canary_uri, &stable_index);
        let spec = d.spec.template.spec.unwrap();
        let mut pod = run_pod(
            "mismatched-canary",
            &spec,
            &secrets,
            &BTreeMap::new(),
            work.path(),
        );
        let status = pod.child.wait().unwrap();
        assert!(!status.success());
        let logs = pod.logs();
        assert!(logs.contains("built from model version"), "{logs}");
    }

    // Both arms from object storage, each with its own index; then the router.
    let mut stable = serving_pod(
        &rm,
        Arm::Stable,
        &stable_uri,
        &stable_index,
        &secrets,
        work.path(),
    )
    .await;
    let mut canary = serving_pod(
        &rm,
        Arm::Canary,
        &canary_uri,
        &canary_index,
        &secrets,
        work.path(),
    )
    .await;
    let routed = Routed {
        stable_uri: &stable_uri,
        canary: Some((&canary_uri, rm.spec.canary.as_ref().unwrap().weight)),
        salt: None,
    };
    let configmap = router::configmap(&rm, &routed).unwrap();
    // Cluster DNS: the arms' Services resolve to the stand-in pods (over TLS, verified).
    let mut table = configmap.data.unwrap()[router::TABLE_KEY].clone();
    for (arm, pod) in [(Arm::Stable, &stable), (Arm::Canary, &canary)] {
        let dialled = format!("https://{}:50051", serving::name(&rm, arm));
        assert!(table.contains(&dialled), "{table}");
        table = table.replace(
            &dialled,
            &format!("https://localhost:{}", pod.addr(50051).port()),
        );
    }
    let router_deployment = router::deployment(&rm);
    let spec = router_deployment.spec.template.spec.clone().unwrap();
    let files = BTreeMap::from([(
        "routing".to_owned(),
        vec![(router::TABLE_KEY.to_owned(), table)],
    )]);
    let mut router_pod = run_pod(&router::name(&rm), &spec, &secrets, &files, work.path());
    wait_ready(
        &mut router_pod,
        spec.containers[0].readiness_probe.as_ref().unwrap(),
        Duration::from_secs(30),
    )
    .await;

    // The router speaks TLS only: a plain-text client gets nothing.
    let plain = RecommenderClient::connect(format!("http://{}", router_pod.addr(50051))).await;
    if let Ok(mut plain) = plain {
        assert!(plain.recommend(RecommendRequest::default()).await.is_err());
    }
    // Recommend through the router, verifying its certificate by the Service name: every
    // user answered, by the arm the table assigns.
    let mut client =
        RecommenderClient::new(verified_channel(router_pod.addr(50051), &pki.ca, &name).await);
    let mut by_variant: BTreeMap<String, usize> = BTreeMap::new();
    let mut feedback = Vec::new();
    for user in 1..=200 {
        let r = client
            .recommend(RecommendRequest {
                user_id: user.to_string(),
                num_items: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.items.len(), 10, "user {user}");
        let expected = if r.variant == "canary" {
            &canary_uri
        } else {
            &stable_uri
        };
        assert_eq!(r.model_version, version_of(expected), "user {user}");
        *by_variant.entry(r.variant.clone()).or_default() += 1;
        feedback.push(FeedbackEvent {
            user_id: user.to_string(),
            item_id: r.items[0].item_id.clone(),
            event_type: "click".into(),
            request_id: r.request_id,
            ..Default::default()
        });
    }
    assert!(
        by_variant.get("canary").copied().unwrap_or(0) >= 5,
        "{by_variant:?}"
    );
    assert!(
        by_variant.get("stable").copied().unwrap_or(0) >= 150,
        "{by_variant:?}"
    );
    // Feedback needs the RecModel's token; the router presents its own to the arms, which
    // refuse anyone else (the Recommends above reached them the same way).
    let unauthenticated = client
        .feedback(FeedbackRequest {
            events: feedback.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);
    let direct =
        RecommenderClient::new(verified_channel(stable.addr(50051), &pki.ca, &stable_name).await)
            .recommend(RecommendRequest {
                user_id: "1".into(),
                num_items: 10,
                ..Default::default()
            })
            .await
            .unwrap_err();
    assert_eq!(
        direct.code(),
        tonic::Code::Unauthenticated,
        "an arm answered a stranger"
    );
    let mut call = tonic::Request::new(FeedbackRequest { events: feedback });
    call.metadata_mut().insert(
        "authorization",
        format!("Bearer {FEEDBACK_TOKEN}").parse().unwrap(),
    );
    let accepted = client.feedback(call).await.unwrap().into_inner().accepted;
    assert_eq!(accepted, 200);

    // The router kept each arm's exposures and clicks by the table's assignment (in the
    // RecModel's Redis) and exports them with arm labels only.
    let metrics_port = router_pod.addr(8080);
    let scrape = || async {
        let trust = Trust::Ca {
            pem: &pki.ca,
            domain: &name,
        };
        https_get(metrics_port, trust, "/metrics").await.unwrap().1
    };
    // A series by its name and label fragments (the salt label is the RecModel's uid here).
    let value = |text: &str, name_and_labels: &str| -> f64 {
        let (name, labels) = name_and_labels.split_once('{').unwrap();
        let labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
        text.lines()
            .find(|l| {
                l.starts_with(&format!("{name}{{"))
                    && labels.iter().all(|f| l.contains(f))
                    && l.contains("salt=\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let text = scrape().await;
        let clicks = value(&text, "recsys_experiment_sum{arm=\"stable\",sum=\"sy\"}")
            + value(&text, "recsys_experiment_sum{arm=\"canary\",sum=\"sy\"}");
        if clicks == 200.0 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for arm in ["stable", "canary"] {
        let users = value(
            &metrics,
            &format!("recsys_experiment_users{{arm=\"{arm}\"}}"),
        );
        assert_eq!(users, by_variant[arm] as f64, "{arm} users:\n{metrics}");
        let clicks = value(
            &metrics,
            &format!("recsys_experiment_sum{{arm=\"{arm}\",sum=\"sy\"}}"),
        );
        assert_eq!(clicks, by_variant[arm] as f64, "{arm} clicks");
    }

    // Stopped as the kubelet stops them: the router's HTTPS readiness fails at once (the
    // drain window), while it still lives; each arm flushes its feedback to the training data.
    let spec_container = &spec.containers[0];
    let (readiness, liveness) = (
        spec_container.readiness_probe.as_ref().unwrap(),
        spec_container.liveness_probe.as_ref().unwrap(),
    );
    assert!(
        readiness.http_get.is_some(),
        "TLS pods are probed over HTTPS"
    );
    assert!(probe_passes(&router_pod, readiness).await);
    router_pod.sigterm();
    let deadline = Instant::now() + Duration::from_secs(4);
    while probe_passes(&router_pod, readiness).await {
        assert!(
            Instant::now() < deadline,
            "readiness still passes after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        probe_passes(&router_pod, liveness).await,
        "alive while draining"
    );
    for pod in [&mut stable, &mut canary, &mut router_pod] {
        let status = pod.terminate();
        assert!(
            status.success(),
            "{} exited {status}:\n{}",
            pod.name,
            pod.logs()
        );
    }
    let uri = &rm.spec.feedback.as_ref().unwrap().uri;
    let landed = work.path().join("landed");
    remote::download_prefix(uri, &landed).unwrap();
    let files = recsys_data::events_io::event_files(&landed).unwrap();
    assert!(
        files
            .iter()
            .all(|f| f.to_string_lossy().contains("/date=")
                && f.to_string_lossy().contains("/hour=")),
        "{files:?}"
    );
    let mut users = BTreeSet::new();
    let rows = recsys_data::events_io::for_each_row(&landed, |_, row| {
        let row = row.expect("a readable row");
        assert_eq!(row.event_type, Some("click"));
        assert!(row.event_id.is_some_and(|id| id.len() == 36));
        users.insert(row.user_id.unwrap().to_owned());
        Ok(())
    })
    .unwrap();
    assert_eq!((rows, users.len()), (200, 200));

    // A model root in object storage: CURRENT is polled remotely, a new version is copied,
    // verified and swapped in, a corrupt one refused while the live one keeps serving.
    let root = "s3://recsys-artifacts/movies/root";
    for name in ["r1", "r2", "r3"] {
        let local = version_named(trained, work.path(), name);
        if name == "r3" {
            std::fs::write(local.join("ranker.txt"), "tampered").unwrap();
        }
        remote::upload_dir(&local, &format!("{root}/{name}")).unwrap();
    }
    remote::put_bytes(&format!("{root}/CURRENT"), b"r1\n".to_vec()).unwrap();
    let cache = work.path().join("root-cache");
    let mut served = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(["serve", "--model-dir", root, "--reload-secs", "1"])
        .args(["--addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .arg("--cache-dir")
        .arg(&cache)
        .envs(&env)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(work.path().join("root.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let log = work.path().join("root.log");
    // The address it bound, from its start-up line.
    let deadline = Instant::now() + Duration::from_secs(120);
    let grpc = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split(" on grpc ").nth(1) {
            break rest.split(',').next().unwrap().trim().to_owned();
        }
        assert!(
            served.try_wait().unwrap().is_none() && Instant::now() < deadline,
            "the root server did not start:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut client = RecommenderClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let ask = || RecommendRequest {
        user_id: "1".into(),
        num_items: 5,
        ..Default::default()
    };
    let version = |r: recsys_api::v1::RecommendResponse| r.model_version;
    assert_eq!(
        version(client.recommend(ask()).await.unwrap().into_inner()),
        "r1"
    );
    let until = |want: &'static str| {
        let (log, grpc) = (log.clone(), grpc.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            let mut client = RecommenderClient::connect(format!("http://{grpc}"))
                .await
                .unwrap();
            loop {
                let got = client.recommend(RecommendRequest {
                    user_id: "1".into(),
                    num_items: 5,
                    ..Default::default()
                });
                if got.await.unwrap().into_inner().model_version == want {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "never swapped to {want}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    remote::put_bytes(&format!("{root}/CURRENT"), b"r2\n".to_vec()).unwrap();
    until("r2").await;
    remote::put_bytes(&format!("{root}/CURRENT"), b"r3\n".to_vec()).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        version(client.recommend(ask()).await.unwrap().into_inner()),
        "r2",
        "the corrupt r3 is refused"
    );
    let copies = std::fs::read_dir(cache.join("models")).unwrap().count();
    assert_eq!(copies, 1, "only the live version's copy is kept");
    let _ = served.kill();
    let _ = served.wait();
}

/// A gRPC channel to `addr` that trusts only `ca` and expects the certificate of `name`.
async fn verified_channel(addr: std::net::SocketAddr, ca: &str, name: &str) -> Channel {
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name(name),
        )
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn feedback_batch(round: u32, per_round: u32, now: i64) -> Vec<FeedbackEvent> {
    (0..per_round)
        .map(|k| FeedbackEvent {
            user_id: format!("u{round}-{k}"),
            item_id: "50".into(),
            event_type: "click".into(),
            timestamp_unix: now,
            ..Default::default()
        })
        .collect()
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `recsys serve` on port 0 and reads the address it bound from its own start-up line
/// (a port picked beforehand could be taken by another process in between).
fn serve(version: &Path, wal: &Path, sink: &Path) -> (Served, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(["serve", "--model-dir"])
        .arg(version)
        .args(["--addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .arg("--feedback-wal-dir")
        .arg(wal)
        .arg("--feedback-sink")
        .arg(sink)
        .args(["--feedback-flush-secs", "1", "--instance", "pod-a"])
        // Durability is the point here; tokens are tests/it/hardening.rs's.
        .args(["--feedback-auth", "open"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve exited before it was serving")
            .unwrap();
        if let Some(rest) = line.split(" on grpc ").nth(1) {
            break rest.split(',').next().unwrap().trim().to_owned();
        }
    };
    // Keep draining its stderr so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Served(child), format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_feedback_survives_sigkill_and_validates_to_exactly_once() {
    let version = trained().await;
    let _turn = ONE_AT_A_TIME.lock().await;
    let work = tempfile::tempdir().unwrap();
    let (wal, sink) = (work.path().join("wal"), work.path().join("feedback"));
    let now = chrono::Utc::now().timestamp();

    // A stream of Feedback calls; the process is SIGKILLed in the middle of it.
    let (mut server, endpoint) = serve(version, &wal, &sink);
    let mut client = RecommenderClient::connect(endpoint).await.unwrap();
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    let pid = server.0.id();
    let mut killer = None;
    for round in 0.. {
        // Once the stream is well under way, SIGKILL lands while calls are in flight.
        if round == 100 {
            killer = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .unwrap();
            }));
        }
        let batch = feedback_batch(round, 5, now);
        match client
            .feedback(FeedbackRequest {
                events: batch.clone(),
            })
            .await
        {
            Ok(r) => {
                assert_eq!(r.into_inner().accepted, 5);
                acknowledged.extend(batch.into_iter().map(|e| e.user_id));
            }
            Err(status) => {
                eprintln!("stream ended after {round} calls: {status}");
                break;
            }
        }
    }
    killer
        .expect("the stream outlived 100 calls")
        .join()
        .unwrap();
    let _ = server.0.wait();
    assert!(
        acknowledged.len() >= 500,
        "{} acknowledged",
        acknowledged.len()
    );

    // Restarted on the same volume: it flushes what the dead process buffered; SIGTERM
    // flushes the rest.
    let (mut server, _) = serve(version, &wal, &sink);
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(server.0.wait().unwrap().success());

    let mut landed: BTreeMap<String, usize> = BTreeMap::new();
    recsys_data::events_io::for_each_row(&sink, |_, row| {
        *landed
            .entry(row.unwrap().user_id.unwrap().to_owned())
            .or_default() += 1;
        Ok(())
    })
    .unwrap();
    for user in &acknowledged {
        assert!(landed.contains_key(user), "acknowledged {user} was lost");
    }

    // At-least-once: a segment uploaded twice (a crash between upload and delete) shows up
    // as a second file with the same events; validation keeps each once.
    let files = recsys_data::events_io::event_files(&sink).unwrap();
    let copy = files[0].with_file_name("part-redelivered.parquet");
    std::fs::copy(&files[0], &copy).unwrap();
    let out = work.path().join("validated");
    let status = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(["validate", "--input"])
        .arg(&sink)
        .arg("--out-dir")
        .arg(&out)
        .args(["--now", &(now + 60).to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.code().is_some(), "validate ran");
    let mut clean: BTreeMap<String, usize> = BTreeMap::new();
    recsys_data::events_io::for_each_row(&out.join("clean.csv"), |_, row| {
        *clean
            .entry(row.unwrap().user_id.unwrap().to_owned())
            .or_default() += 1;
        Ok(())
    })
    .unwrap();
    for user in &acknowledged {
        assert_eq!(clean.get(user), Some(&1), "{user} after validation");
    }
    assert!(clean.values().all(|&n| n == 1));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("validation_report.json")).unwrap())
            .unwrap();
    let redelivered = {
        let mut n = 0;
        recsys_data::events_io::for_each_row(&copy, |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        n
    };
    assert_eq!(report["by_reason"]["duplicate"], redelivered, "{report}");
}
