//! The whole loop with real processes and no cluster: serve → users react → their feedback
//! lands in object storage → drift starts a retraining run → the run's version passes the
//! offline gates → an Experiment opens → it promotes the new version.
//!
//! A version (v1) is trained with `recsys train` on the first three weeks of generated events
//! and served from object storage (moto) through `recsys route`. Then the world shifts: a
//! second generated world (a different taste mix over 13 clusters instead of 20, a third more
//! users, a thousand new items). Its users ask the router and send feedback, which the arm's
//! sink writes to object storage; the arm's PSI gauges, scraped by a real Prometheus, pass the
//! threshold; the RetrainSchedule controller (strict fake API) starts a training Job, which the
//! stand-in kubelet runs as the real binary with the Job's own args and Secret; the controller
//! judges its termination message and opens an Experiment; the canary arm serves the version
//! the Job wrote, the router loads the routing table the RecModel controller wrote, and the
//! shifted users' clicks (their held-out interactions of the last four days) decide it.
//! `kubectl get`-style lines of each resource are printed at each step.

use crate::operator_support::fake_api::FakeApi;
use crate::operator_support::prometheus::Prometheus;
use crate::operator_support::world::*;
use crate::support::cluster::{run_pod, Secrets};
use crate::support::moto::{moto, s3_env};
use crate::support::{free_port, wait_for_port, RedisServer};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::{FeedbackEvent, FeedbackRequest, RecommendRequest};
use recsys_data::remote;
use recsys_data::synthetic::{generate, write_catalog, GeneratorConfig};
use recsys_operator::controllers::{experiment, retrain};
use recsys_operator::crd::v1alpha1::{Experiment, RetrainSchedule};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RTS: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys/retrainschedules/movies-nightly";
const EXPERIMENTS: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys/experiments";
const PODS: &str = "/api/v1/namespaces/recsys/pods";
const TOKEN: &str = "loop-feedback-writer";
const LABELS: &str = "click,add_to_cart,purchase";
const HISTORY: &str = "s3://events/movies/history";
const FEEDBACK: &str = "s3://events/movies/feedback";
const DAY: i64 = 86_400;

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `recsys <args>`, which must succeed; its stdout.
fn recsys(args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "recsys {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One generated world: its events, profiles and catalog.
struct World {
    events: PathBuf,
    users: PathBuf,
    items: PathBuf,
}

fn world(dir: &Path, config: &GeneratorConfig) -> World {
    std::fs::create_dir_all(dir).unwrap();
    let w = World {
        events: dir.join("events.csv"),
        users: dir.join("users.csv"),
        items: dir.join("items.csv"),
    };
    generate(&w.events, config).unwrap();
    write_catalog(config, &w.users, &w.items).unwrap();
    w
}

/// Items by user of an event file's rows, of the given types only when `types` is set.
fn items_by_user(events: &Path, types: Option<&[&str]>) -> HashMap<String, HashSet<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(events)
        .unwrap();
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        if types.is_none_or(|t| t.contains(&&row[2])) {
            out.entry(row[0].to_owned())
                .or_default()
                .insert(row[1].to_owned());
        }
    }
    out
}

/// Splits an event file at `cut`: the rows before it go to `before` (the app's event log as
/// it stands now), the rows from it on to `after` (held out: what the simulated users will
/// do).
fn split_at(events: &Path, cut: i64, before: &Path, after: &Path) {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(events)
        .unwrap();
    let open = |p: &Path| {
        csv::WriterBuilder::new()
            .flexible(true)
            .from_path(p)
            .unwrap()
    };
    let (mut early, mut late) = (open(before), open(after));
    early.write_record(reader.headers().unwrap()).unwrap();
    late.write_record(reader.headers().unwrap()).unwrap();
    for row in reader.records() {
        let row = row.unwrap();
        let ts: i64 = row[3].parse().unwrap();
        if ts < cut {
            early.write_record(&row).unwrap();
        } else {
            late.write_record(&row).unwrap();
        }
    }
    early.flush().unwrap();
    late.flush().unwrap();
}

/// What a simulated user clicks: the held-out interactions of the label's types on items
/// they had not interacted with before (the protocol's relevance: candidates exclude what a
/// user already has, so re-interactions are never a hit).
fn relevant(
    later: &Path,
    seen: &[&HashMap<String, HashSet<String>>],
) -> HashMap<String, HashSet<String>> {
    let labels: Vec<&str> = LABELS.split(',').collect();
    let mut out = items_by_user(later, Some(&labels));
    for (user, items) in &mut out {
        for history in seen {
            if let Some(had) = history.get(user) {
                items.retain(|i| !had.contains(i));
            }
        }
    }
    out.retain(|_, items| !items.is_empty());
    out
}

/// Uploads `file` as the object `<prefix>/<name>`.
fn upload(file: &Path, prefix: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(file, dir.path().join(name)).unwrap();
    remote::upload_dir(dir.path(), prefix).unwrap();
}

/// A serving arm from object storage, its feedback buffered and flushed to the sink every
/// second. Returns (process, gRPC address, HTTP address).
fn serve(model_uri: &str, pod: &str, http: u16, tokens: &Path, work: &Path) -> (Process, String) {
    let grpc = free_port();
    let p = Process(
        Command::new(env!("CARGO_BIN_EXE_recsys"))
            .args(["serve", "--model-dir", model_uri])
            .args(["--cache-dir", &path(&work.join(pod).join("cache"))])
            .args(["--addr", &format!("127.0.0.1:{grpc}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args([
                "--auth-tokens-file",
                &path(tokens),
                "--recommend-auth",
                "token",
            ])
            .args(["--feedback-wal-dir", &path(&work.join(pod).join("wal"))])
            .args(["--feedback-sink", FEEDBACK, "--feedback-flush-secs", "1"])
            .args(["--instance", pod, "--drift-window-secs", "120"])
            .args(["--prediction-ttl-secs", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(work.join(format!("{pod}.log"))).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{pod} did not start: {}",
            std::fs::read_to_string(work.join(format!("{pod}.log"))).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (p, format!("127.0.0.1:{grpc}"))
}

/// What `kubectl get <plural>` prints for the stored object, from the CRD's printer columns.
fn kubectl_get(fake: &FakeApi, plural: &str, object_path: &str) -> String {
    let crd = recsys_operator::crd::all()
        .into_iter()
        .find(|(f, _)| f.starts_with(plural))
        .unwrap()
        .1;
    let object = fake.get(object_path).unwrap();
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap();
    let mut header = vec!["NAME".to_owned()];
    let mut row = vec![object["metadata"]["name"].as_str().unwrap().to_owned()];
    for c in columns
        .iter()
        .filter(|c| c.type_ != "date" || c.name != "Age")
    {
        header.push(c.name.to_uppercase());
        row.push(json_path(&object, &c.json_path));
    }
    let widths: Vec<usize> = header
        .iter()
        .zip(&row)
        .map(|(h, r)| h.len().max(r.len()))
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("   ")
            .trim_end()
            .to_owned()
    };
    format!("$ kubectl get {plural}\n{}\n{}", line(&header), line(&row))
}

/// The printer columns' JSONPath subset: dotted keys, and a condition filter by type
/// (`.status.conditions[?(@.type=="Ready")].status`).
fn json_path(object: &Value, expr: &str) -> String {
    let mut v = object;
    let mut rest = expr;
    while let Some(tail) = rest.strip_prefix('.') {
        let end = tail.find(['.', '[']).unwrap_or(tail.len());
        v = &v[&tail[..end]];
        rest = &tail[end..];
        if let Some(filter) = rest.strip_prefix("[?(@.type==\"") {
            let (wanted, after) = filter.split_once("\")]").unwrap();
            match v
                .as_array()
                .and_then(|a| a.iter().find(|c| c["type"] == wanted))
            {
                Some(c) => v = c,
                None => return "<none>".into(),
            }
            rest = after;
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".into(),
        other => other.to_string(),
    }
}

/// The resources' lines at one step of the timeline.
fn print_step(fake: &FakeApi, step: &str, experiment: Option<&str>) {
    println!("\n── {step}");
    println!("{}", kubectl_get(fake, "recmodels", RM));
    if fake.get(RTS).is_some() {
        println!("{}", kubectl_get(fake, "retrainschedules", RTS));
    }
    if let Some(e) = experiment {
        println!("{}", kubectl_get(fake, "experiments", e));
    }
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// Feedback events in the sink, read back from object storage as training will read them.
fn feedback_rows() -> u64 {
    let scratch = tempfile::tempdir().unwrap();
    match remote::fetch_prefix(FEEDBACK, scratch.path()).unwrap() {
        None => 0,
        Some(dir) => recsys_data::events_io::for_each_row(&dir, |_, _| Ok(())).unwrap(),
    }
}

/// One user's visit through the router: a Recommend, then an impression of each item shown
/// and a click on those among `relevant`. Returns (variant, clicks).
async fn visit(
    client: &mut RecommenderClient<tonic::transport::Channel>,
    user: &str,
    relevant: &HashSet<String>,
) -> (String, usize) {
    let r = client
        .recommend(RecommendRequest {
            user_id: user.into(),
            num_items: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    let mut clicks = 0;
    for item in &r.items {
        events.push(FeedbackEvent {
            user_id: user.into(),
            item_id: item.item_id.clone(),
            event_type: "impression".into(),
            request_id: r.request_id.clone(),
            ..Default::default()
        });
        if relevant.contains(&item.item_id) {
            clicks += 1;
            events.push(FeedbackEvent {
                user_id: user.into(),
                item_id: item.item_id.clone(),
                event_type: "click".into(),
                request_id: r.request_id.clone(),
                ..Default::default()
            });
        }
    }
    let n = events.len() as u32;
    let mut call = tonic::Request::new(FeedbackRequest { events });
    call.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let accepted = client.feedback(call).await.unwrap().into_inner().accepted;
    assert_eq!(accepted, n);
    (r.variant, clicks)
}

fn stored_rts(fake: &FakeApi) -> Arc<RetrainSchedule> {
    Arc::new(serde_json::from_value(fake.get(RTS).unwrap()).unwrap())
}

fn train_flags() -> Vec<String> {
    [
        "--max-epochs",
        "2",
        "--ranker-trials",
        "1",
        "--ranker-windows",
        "2",
        "--ranker-window-days",
        "2",
        "--validation-days",
        "6",
        "--test-days",
        "3",
        "--no-mf",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_retrains_on_drift_gates_experiments_and_promotes_for_shifted_users() {
    crate::support::libtorch();
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let _s3_env = crate::support::moto::exclusive_s3_env().await;
    let s3 = moto(&["artifacts", "events"]);
    let env = s3_env(s3.1);
    for (k, v) in &env {
        // This process and the arms it starts use the endpoint; the Job's pod gets it from
        // its Secret only.
        std::env::set_var(k, v);
    }
    let secrets: Secrets = BTreeMap::from([("object-storage".to_owned(), env.clone())]);
    let now = chrono::Utc::now().timestamp();
    let today = now - now % DAY;

    // ── Before: three weeks of a world with 20 taste clusters, ending eleven days ago.
    let a = world(
        &work.join("world-a"),
        &GeneratorConfig {
            events: 60_000,
            users: 600,
            items: 2_000,
            days: 21,
            start: today - 32 * DAY,
            seed: 7,
            bots: 0,
            bad_fraction: 0.0,
            clusters: 20,
            newcomer_fraction: 0.0,
        },
    );
    let mut train_v1: Vec<String> = [
        "train",
        "--events",
        &path(&a.events),
        "--users",
        &path(&a.users),
        "--items",
        &path(&a.items),
        "--labels",
        LABELS,
        "--out",
        &path(&work.join("models")),
        "--version",
        "v1",
    ]
    .map(str::to_owned)
    .to_vec();
    train_v1.extend(train_flags());
    recsys(&train_v1);
    remote::upload_dir(&work.join("models/v1"), &uri("v1")).unwrap();
    upload(&a.events, HISTORY, "2-weeks-a.csv");

    // ── After: the last eleven days (and three to come) of a shifted world — 13 clusters,
    // 900 users (300 new), 3,000 items (1,000 new). The event log holds it up to yesterday;
    // what the users do from then on is held out as what they will click.
    let b = world(
        &work.join("world-b"),
        &GeneratorConfig {
            events: 90_000,
            users: 900,
            items: 3_000,
            days: 14,
            start: today - 11 * DAY,
            seed: 99,
            bots: 0,
            bad_fraction: 0.0,
            clusters: 13,
            newcomer_fraction: 0.0,
        },
    );
    let (b_log, b_later) = (work.join("world-b/log.csv"), work.join("world-b/later.csv"));
    split_at(&b.events, today - DAY, &b_log, &b_later);
    let seen_a = items_by_user(&a.events, None);
    let seen_b = items_by_user(&b_log, None);
    let held_out = relevant(&b_later, &[&seen_a, &seen_b]);
    upload(&b_log, HISTORY, "1-days-b.csv");
    upload(&b.users, "s3://events/movies-entities", "users.csv");
    upload(&b.items, "s3://events/movies-entities", "items.csv");
    println!(
        "[{:>4}s] v1 trained on world A; world B logged, {} users held out",
        started.elapsed().as_secs(),
        held_out.len()
    );

    // ── The control plane: the RecModel serving v1, its router, its arms.
    let fake = FakeApi::default();
    let ctx = context(&fake);
    ready_index(&fake, "v1");
    apply_spec(&fake, "v1", None);
    reconcile_model(&fake, &ctx).await;
    roll_out(&fake, "movies-stable");
    roll_out(&fake, "movies-router");
    reconcile_model(&fake, &ctx).await;
    print_step(&fake, "v1 serves", None);

    let tokens = work.join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let (stable_http, canary_http, router_http) = (free_port(), free_port(), free_port());
    let (_stable, stable_grpc) = serve(&uri("v1"), "movies-stable-0", stable_http, &tokens, work);
    let prometheus = Prometheus::start(&[
        (&format!("127.0.0.1:{router_http}"), "movies-router-0"),
        (&format!("127.0.0.1:{stable_http}"), "movies-stable-0"),
        (&format!("127.0.0.1:{canary_http}"), "movies-canary-0"),
    ]);
    let redis = RedisServer::start();
    let table_path = work.join("routing.json");
    let write_table = |canary_grpc: Option<&str>| {
        let mut table = fake.get(ROUTING).unwrap()["data"]["routing.json"]
            .as_str()
            .unwrap()
            .replace(
                "http://movies-stable:50051",
                &format!("http://{stable_grpc}"),
            );
        if let Some(c) = canary_grpc {
            table = table.replace("http://movies-canary:50051", &format!("http://{c}"));
        }
        // Written whole, then renamed, as the kubelet swaps a ConfigMap volume.
        let tmp = work.join(".routing.json");
        std::fs::write(&tmp, &table).unwrap();
        std::fs::rename(&tmp, &table_path).unwrap();
    };
    write_table(None);
    let router_grpc = free_port();
    let _router = Process(
        Command::new(env!("CARGO_BIN_EXE_recsys"))
            .args(["route", "--table", &path(&table_path)])
            .args(["--addr", &format!("127.0.0.1:{router_grpc}")])
            .args(["--http-addr", &format!("127.0.0.1:{router_http}")])
            .args(["--redis-url", &redis.url()])
            .args(["--auth-tokens-file", &path(&tokens)])
            .args(["--arm-token-file", &path(&tokens)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(router_grpc);
    let mut client = RecommenderClient::connect(format!("http://127.0.0.1:{router_grpc}"))
        .await
        .unwrap();

    // ── The shifted users visit v1 (each once, their clicks from what they did before
    // yesterday) and their feedback lands in object storage.
    let mut b_users: Vec<String> = (0..900).map(|u| format!("u{u}")).collect();
    b_users.sort_by_key(|u| recsys_core::routing::bucket("arrival", u));
    // What they did in the last days of the log, on items new to them then.
    let (log_early, log_recent) = (
        work.join("world-b/early.csv"),
        work.join("world-b/recent.csv"),
    );
    split_at(&b_log, today - 4 * DAY, &log_early, &log_recent);
    let before = relevant(&log_recent, &[&seen_a, &items_by_user(&log_early, None)]);
    let mut sent = 0u64;
    let mut v1_clicks = 0;
    for user in &b_users {
        let empty = HashSet::new();
        let relevant = before.get(user).unwrap_or(&empty);
        let (_, clicks) = visit(&mut client, user, relevant).await;
        v1_clicks += clicks;
        sent += 10 + clicks as u64;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while feedback_rows() < sent {
        assert!(Instant::now() < deadline, "feedback never reached the sink");
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "[{:>4}s] {} shifted users visited v1: {v1_clicks} clicks; {sent} feedback events in {FEEDBACK}",
        started.elapsed().as_secs(),
        b_users.len()
    );

    // ── The schedule: nightly on the 1st of the month (so only drift starts this run).
    fake.put(
        RTS,
        json!({"apiVersion": "recsys.dev/v1alpha1", "kind": "RetrainSchedule",
               "metadata": {"name": "movies-nightly", "namespace": "recsys",
                            "creationTimestamp": Timestamp::now().to_string()},
               "spec": {
                   "schedule": "0 3 1 * *",
                   "recModelRef": "movies",
                   "job": {"dataUri": format!("{HISTORY}/"), "outputUri": "s3://artifacts/movies",
                           "labels": LABELS, "dataWindowDays": 12,
                           "usersUri": "s3://events/movies-entities/users.csv",
                           "itemsUri": "s3://events/movies-entities/items.csv",
                           "feedbackUri": FEEDBACK,
                           "credentialsSecret": "object-storage",
                           "hyperParameters": {"max-epochs": "2", "ranker-trials": "1",
                               "ranker-windows": "2", "ranker-window-days": "2",
                               "validation-days": "6", "test-days": "3", "no-mf": "true"}},
                   "gates": {"minAuc": 0.6, "maxNdcgRegression": 0.05},
                   "experiment": {"trafficPercent": 50, "successMetric": "ctr",
                       "design": {"alpha": 0.05, "power": 0.8, "baseline": 0.05,
                                  "minimumDetectableEffect": 1.0, "minDuration": "2d",
                                  "maxDuration": "14d", "intervalSeconds": 3600},
                       "analysis": {"tau": 0.05},
                       "prometheusUrl": prometheus.url},
                   "drift": {"psiThreshold": 0.2, "minInterval": "24h",
                             "prometheusUrl": prometheus.url}}}),
    );
    let jobs = |fake: &FakeApi| -> Vec<String> {
        fake.applied()
            .into_iter()
            .filter(|p| p.starts_with(&format!("{JOBS}/movies-nightly-")))
            .filter(|p| fake.get(p).is_some())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while jobs(&fake).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no drift run: {}",
            status(&fake, RTS)
        );
        retrain::reconcile_at(stored_rts(&fake), Arc::clone(&ctx), Timestamp::now())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let s = status(&fake, RTS);
    let drift_reason = s["lastDriftReason"].as_str().unwrap().to_owned();
    assert!(drift_reason.contains("drifted: PSI"), "{s}");
    print_step(&fake, &format!("drift: {drift_reason}"), None);

    // ── The training Job, run by the stand-in kubelet with exactly its spec.
    let job_path = jobs(&fake).remove(0);
    let job: Job = serde_json::from_value(fake.get(&job_path).unwrap()).unwrap();
    let name = job.metadata.name.clone().unwrap();
    let spec = job.spec.unwrap().template.spec.unwrap();
    let mut pod = run_pod(&name, &spec, &secrets, &BTreeMap::new(), work);
    let deadline = Instant::now() + Duration::from_secs(900);
    let exit = loop {
        if let Some(s) = pod.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{name}:\n{}", pod.logs());
        std::thread::sleep(Duration::from_millis(500));
    };
    let logs = pod.logs();
    assert!(exit.success(), "{name} failed:\n{logs}");
    assert!(
        logs.contains("validated"),
        "the feedback was validated:\n{logs}"
    );
    let message = std::fs::read_to_string(&pod.termination_log).unwrap();
    // What the kubelet reports: the pod's termination message, then the Job's completion.
    fake.put(
        &format!("{PODS}/{name}-pod"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": format!("{name}-pod"), "namespace": "recsys",
                            "labels": {"batch.kubernetes.io/job-name": name}},
               "status": {"containerStatuses": [{"name": "train", "image": "x", "imageID": "",
                 "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "message": message}}}]}}),
    );
    fake.set_status(&job_path, json!({"succeeded": 1}));
    retrain::reconcile_at(stored_rts(&fake), Arc::clone(&ctx), Timestamp::now())
        .await
        .unwrap();
    let s = status(&fake, RTS);
    assert_eq!(s["lastResult"], "Passed", "{s}\n{logs}");
    let version = s["lastVersion"].as_str().unwrap().to_owned();
    let exp_name = s["lastExperiment"].as_str().unwrap().to_owned();
    let exp_path = format!("{EXPERIMENTS}/{exp_name}");
    let result: Value = serde_json::from_str(message.lines().last().unwrap()).unwrap();
    assert_eq!(result["liveVersion"], "v1");
    assert!(
        result["versusLive"]["low"].as_f64().unwrap() > 0.0,
        "better than v1 offline: {result}"
    );
    // It read the whole history and every feedback event, in one validation pass.
    let fetched =
        recsys_version::fetch::fetch_version(&uri(&version), &work.join("fetched")).unwrap();
    let report: Value = serde_json::from_slice(
        &std::fs::read(fetched.join(recsys::pipeline::validate::REPORT_FILE)).unwrap(),
    )
    .unwrap();
    let log_rows = recsys_data::events_io::for_each_row(&b_log, |_, _| Ok(())).unwrap();
    assert_eq!(
        report["rows_in"].as_u64().unwrap(),
        60_000 + log_rows + sent,
        "{report}"
    );
    println!(
        "[{:>4}s] {name}: {}",
        started.elapsed().as_secs(),
        s["lastReason"]
    );
    println!("    result: {result}");
    print_step(
        &fake,
        "the gates passed; an Experiment opens",
        Some(&exp_path),
    );

    // ── The Experiment: the canary arm serves what the Job wrote.
    let treatment_uri = fake.get(&exp_path).unwrap()["spec"]["treatment"]["modelUri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(treatment_uri, uri(&version));
    let t0 = Timestamp::now();
    let look = |day: i64| {
        let exp: Arc<Experiment> =
            Arc::new(serde_json::from_value(fake.get(&exp_path).unwrap()).unwrap());
        let ctx = Arc::clone(&ctx);
        async move {
            experiment::reconcile_at(exp, ctx, t0 + SignedDuration::from_hours(24 * day))
                .await
                .unwrap();
        }
    };
    look(0).await;
    reconcile_model(&fake, &ctx).await;
    // The canary's index build (its own contract test) stands in as published.
    publish(&fake, &derived_path(&fake, &version), &version);
    reconcile_model(&fake, &ctx).await;
    roll_out(&fake, "movies-canary");
    reconcile_model(&fake, &ctx).await;
    let (_canary, canary_grpc) = serve(
        &treatment_uri,
        "movies-canary-0",
        canary_http,
        &tokens,
        work,
    );
    write_table(Some(&canary_grpc));
    let salt = recsys_operator::builders::experiment::salt(
        &serde_json::from_value(fake.get(&exp_path).unwrap()).unwrap(),
    );
    // The router reloads the table within a second or two.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_get(router_http, "/metrics")
        .contains("recsys_model_reloads_total{result=\"loaded\"} 1")
    {
        assert!(
            Instant::now() < deadline,
            "the router never loaded the new table"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    look(0).await;
    assert_eq!(fake.get(&exp_path).unwrap()["status"]["phase"], "Running");
    print_step(&fake, "the canary serves the new version", Some(&exp_path));

    // ── The shifted users over simulated days: each visits once and clicks what they did in
    // the held-out last days.
    let mut users: Vec<(&String, &HashSet<String>)> = held_out.iter().collect();
    users.sort_by_key(|(u, _)| recsys_core::routing::bucket("arrival-2", u));
    let per_day = users.len().div_ceil(7);
    let mut clicks_by_arm: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut seen = 0usize;
    let mut day = 0;
    let decision = loop {
        day += 1;
        for (user, relevant) in users.iter().skip(seen).take(per_day) {
            let (variant, clicks) = visit(&mut client, user, relevant).await;
            let e = clicks_by_arm.entry(variant).or_default();
            e.0 += 1;
            e.1 += clicks;
            seen += 1;
        }
        // Every exposure scraped before the look.
        let q = experiment::sums_query(&salt);
        let want = 10.0 * seen as f64;
        let mut scraped = 0.0;
        for _ in 0..150 {
            if let Ok(samples) = experiment::prometheus::query(&prometheus.url, &q).await {
                scraped = samples
                    .iter()
                    .filter(|s| s.labels.get("sum").map(String::as_str) == Some("sx"))
                    .map(|s| s.value)
                    .sum();
                if scraped == want {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(scraped, want, "impressions in Prometheus");
        look(day).await;
        let st = status(&fake, &exp_path);
        println!(
            "day {day}: {} users {} lift {} p {} — {}",
            st["decision"], st["users"], st["lift"], st["pValue"], st["reason"]
        );
        if st["phase"] == "Concluded" || day >= 20 {
            break st;
        }
    };
    println!("clicks by arm (users, clicks): {clicks_by_arm:?}");
    print_step(&fake, "the experiment concluded", Some(&exp_path));
    assert_eq!(decision["decision"], "Promote", "{decision}");

    // ── Promotion: the RecModel's stable arm becomes the new version.
    reconcile_model(&fake, &ctx).await;
    assert!(args(&fake, "movies-stable").contains(&uri(&version)));
    roll_out(&fake, "movies-stable");
    reconcile_model(&fake, &ctx).await;
    assert_eq!(status(&fake, RM)["stableVersion"], json!(version));
    print_step(&fake, "promoted", Some(&exp_path));
    println!("[{:>4}s] the loop closed", started.elapsed().as_secs());
    drop(redis);
    drop(prometheus);
    drop(s3);
}
