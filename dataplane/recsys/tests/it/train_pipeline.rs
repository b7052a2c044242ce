//! `recsys train`, the one training pipeline, run as a retraining Job would run it: the real
//! binary on exported files. On MovieLens it gives exactly what the demo's path gives (same
//! code, same seed, so also the same `evaluation.json` twice); its claim is checked from
//! outside by serving the version and asking for every test user over gRPC; on generated
//! click/purchase events it produces an evaluated version whose ranker had positive labels.

use crate::support::serve::{trained_demo_summary, DEMO_EPOCHS, DEMO_RANKER_TRIALS};
use recsys::pipeline::compare;
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::{RecommendRequest, RequestContext};
use recsys_core::metrics;
use recsys_data::synthetic::{generate, write_catalog, GeneratorConfig};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Each test trains with every core (libtorch and LightGBM both start a thread per core);
/// run side by side on a 2-core runner they thrash instead of sharing, so they take turns.
static ONE_TRAINING_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    // The binary pins libtorch's and MKL's kernels before it trains; the in-process runs below
    // must too, or an AVX-512 machine trains them a different two-tower.
    crate::support::libtorch();
    // A failed test poisons the lock; the next one should still run and report its own result.
    ONE_TRAINING_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn recsys(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "recsys {args:?} failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn evaluation(version_dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(version_dir.join(compare::EVALUATION_FILE)).unwrap())
        .unwrap()
}

/// Everything but the version's own name.
fn comparable(mut e: serde_json::Value) -> serde_json::Value {
    e["record"]["model_version"] = serde_json::Value::Null;
    e
}

fn ndcg_claim(e: &serde_json::Value, subset: &str) -> (f64, u64) {
    let row = e["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["system"] == "two-tower+ranker" && r["subset"] == subset)
        .unwrap();
    (
        row["ndcg_at_10"]["mean"].as_f64().unwrap(),
        row["users"].as_u64().unwrap(),
    )
}

/// Per test user (external id): relevant items and the time they came back, read from the
/// split's test file as any outside tool would.
fn test_users(test_csv: &Path) -> BTreeMap<String, (HashSet<String>, i64)> {
    let mut out: BTreeMap<String, (HashSet<String>, i64)> = BTreeMap::new();
    let mut first: HashMap<String, i64> = HashMap::new();
    let mut reader = csv::Reader::from_path(test_csv).unwrap();
    for row in reader.records() {
        let row = row.unwrap();
        let (user, item, ts, value) = (&row[0], &row[1], row[3].parse::<i64>().unwrap(), &row[4]);
        let t = first.entry(user.to_owned()).or_insert(ts);
        *t = (*t).min(ts);
        if value.parse::<f64>().unwrap() >= 4.0 {
            out.entry(user.to_owned())
                .or_default()
                .0
                .insert(item.to_owned());
        }
    }
    for (user, entry) in out.iter_mut() {
        entry.1 = first[user];
    }
    out
}

/// Users with an event in any of `files` (a split's files, read as an outside tool would).
fn users_in(files: &[PathBuf]) -> HashSet<String> {
    let mut users = HashSet::new();
    for file in files {
        let mut reader = csv::Reader::from_path(file).unwrap();
        for row in reader.records() {
            users.insert(row.unwrap()[0].to_owned());
        }
    }
    users
}

// The turn is held for the whole test; no other task on this test's runtime takes the lock.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_on_movielens_files_equals_the_demo_and_the_server_confirms_it() {
    // The in-process side first, so the binary's training below does not share the cores.
    let summary = trained_demo_summary().await;
    let _turn = take_turn();
    let (epochs, trials) = (DEMO_EPOCHS.to_string(), DEMO_RANKER_TRIALS.to_string());
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("ml-100k");
    recsys(&["export-movielens", "--out", path(&files)]);
    let (events, users, items) = (
        files.join("events.csv"),
        files.join("users.csv"),
        files.join("items.csv"),
    );
    let common = [
        "--events",
        path(&events),
        "--users",
        path(&users),
        "--items",
        path(&items),
        "--category-column",
        "genres",
        "--split",
        "global",
    ];
    let split_dir = dir.path().join("split");
    let mut split_args = vec!["split"];
    split_args.extend(common);
    split_args.extend(["--out", path(&split_dir)]);
    recsys(&split_args);

    // The Job's way: the binary on the exported files.
    let models = dir.path().join("models");
    let mut train_args = vec!["train"];
    train_args.extend(common);
    train_args.extend([
        "--labels",
        "rating>=4",
        "--out",
        path(&models),
        "--version",
        "job",
        "--max-epochs",
        &epochs,
        "--ranker-trials",
        &trials,
        "--publish-state",
        "test-start",
    ]);
    let printed = recsys(&train_args);
    assert!(printed.contains("two-tower+ranker"), "{printed}");

    // The demo's way (MovieLens read natively, the demo's settings, in process) is the shared
    // demo version above, trained with these same settings.
    let job = evaluation(&models.join("job"));
    let native = evaluation(&summary.artifact_dir);
    assert!(job["ranker_positives"].as_u64().unwrap() > 0);
    assert_eq!(
        comparable(job.clone()),
        comparable(native),
        "the same events through `train` give the demo's evaluation (and two runs agree)"
    );
    let (claimed, claimed_users) = ndcg_claim(&job, "all");
    assert_eq!(
        claimed_users, 153,
        "the 80/10/10 split has 153 evaluated users"
    );
    for subset in ["warm", "cold"] {
        assert!(ndcg_claim(&job, subset).1 > 0, "{subset} users reported");
    }
    assert!(job["gates"]["ranker_auc"].as_f64().unwrap() > 0.6);

    // From outside: serve the version and ask for every test user at the time they came back.
    let port = crate::support::free_port();
    let http = crate::support::free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(["serve", "--model-dir", path(&models.join("job"))])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut client = loop {
        match RecommenderClient::connect(format!("http://127.0.0.1:{port}")).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    // MovieLens's cold users are judged on lists per profile segment (chosen on validation's
    // 116 newcomers; popularity lists do not depend on the seed), so the server's answers to
    // them go through the segment lookup too.
    let cold = &job["cold_start"];
    assert!(cold["profile"].is_object(), "{cold}");
    // The cold list's track record re-scores the windows the choice was judged on exactly as
    // the choice scored them, and goes on to older ones it never saw.
    let track = &job["cold_track_record"];
    let windows = track["windows"].as_array().unwrap();
    let seen_by_choice: Vec<&serde_json::Value> = windows
        .iter()
        .filter(|w| w["used_for_choice"].as_bool().unwrap())
        .collect();
    let users: f64 = seen_by_choice
        .iter()
        .map(|w| w["users"].as_f64().unwrap())
        .sum();
    let pooled = seen_by_choice
        .iter()
        .map(|w| w["chosen"].as_f64().unwrap() * w["users"].as_f64().unwrap())
        .sum::<f64>()
        / users;
    assert_eq!(users, cold["users"].as_f64().unwrap(), "{track}");
    assert!((pooled - cold["validation_ndcg_at_10"].as_f64().unwrap()).abs() < 1e-9);
    assert!(
        track["out_of_sample"]["windows"].as_u64().unwrap() > 0,
        "{track}"
    );
    let report = std::fs::read_to_string(models.join("job/report.html")).unwrap();
    assert!(report.contains("Cold users over time"));
    let asked = test_users(&split_dir.join("test.csv"));
    let seen = users_in(&[
        split_dir.join("train.csv"),
        split_dir.join("validation.csv"),
    ]);
    let (mut total, mut total_cold, mut cold_users) = (0.0, 0.0, 0u32);
    for (user, (relevant, time)) in &asked {
        let answer = client
            .recommend(RecommendRequest {
                user_id: user.clone(),
                num_items: 10,
                context: Some(RequestContext {
                    timestamp_unix: *time,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        // Each id as a number, for the metric's dense-id signature.
        let mut numbers: HashMap<String, u32> = HashMap::new();
        let mut number = |s: &str| {
            let n = numbers.len() as u32;
            *numbers.entry(s.to_owned()).or_insert(n)
        };
        let list: Vec<u32> = answer.items.iter().map(|i| number(&i.item_id)).collect();
        let wanted: HashSet<u32> = relevant.iter().map(|s| number(s)).collect();
        let ndcg = metrics::ndcg_at_k(&list, &wanted, 10);
        total += ndcg;
        if !seen.contains(user) {
            total_cold += ndcg;
            cold_users += 1;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let measured = total / asked.len() as f64;
    eprintln!(
        "NDCG@10 all users: evaluation.json {claimed:.4}, measured from the server {measured:.4} ({} users)",
        asked.len()
    );
    assert_eq!(asked.len() as u64, claimed_users);
    assert!(
        (measured - claimed).abs() < 0.005,
        "served {measured:.4} vs claimed {claimed:.4}"
    );
    let (claimed_cold, claimed_cold_users) = ndcg_claim(&job, "cold");
    let measured_cold = total_cold / f64::from(cold_users);
    eprintln!("NDCG@10 cold users: evaluation.json {claimed_cold:.4}, measured {measured_cold:.4}");
    assert_eq!(u64::from(cold_users), claimed_cold_users);
    assert!(
        (measured_cold - claimed_cold).abs() < 0.005,
        "cold users served {measured_cold:.4} vs claimed {claimed_cold:.4}"
    );
}

#[test]
fn train_on_generated_clicks_and_purchases_learns_from_positive_labels() {
    let _turn = take_turn();
    crate::support::libtorch();
    let start = 1_790_000_000 - 1_790_000_000 % 86_400;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.csv");
    let config = GeneratorConfig {
        bots: 0,
        bad_fraction: 0.0,
        ..GeneratorConfig::new(60_000, start)
    };
    generate(&events, &config).unwrap();
    let (users, items) = (dir.path().join("users.csv"), dir.path().join("items.csv"));
    write_catalog(&config, &users, &items).unwrap();
    let models: PathBuf = dir.path().join("models");
    let train = |version: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--events",
            path(&events),
            "--users",
            path(&users),
            "--items",
            path(&items),
            "--labels",
            "purchase,add_to_cart",
            "--out",
            path(&models),
            "--version",
            version,
            "--ranker-windows",
            "2",
            "--no-mf",
        ];
        args.extend(extra);
        recsys(&args)
    };
    let printed = train("shop", &["--max-epochs", "2", "--ranker-trials", "2"]);
    let e = evaluation(&models.join("shop"));
    assert_eq!(e["labels"], "purchase,add_to_cart");
    let positives = e["ranker_positives"].as_u64().unwrap();
    assert!(positives > 0, "{printed}");
    let (ndcg, users_evaluated) = ndcg_claim(&e, "all");
    assert!(
        users_evaluated > 50 && ndcg > 0.0,
        "{ndcg} over {users_evaluated}"
    );
    // Categories came from the metadata column, not from the ids.
    let catalog: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join("shop/catalog.json")).unwrap()).unwrap();
    let categories: HashSet<&str> = catalog["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["genres"][0].as_str().unwrap())
        .collect();
    assert!(categories.len() > 5, "{categories:?}");
    assert!(!categories.contains(recsys_data::event_dataset::UNCATEGORIZED));
    // The version carries its cold-start list, chosen on validation.
    assert!(models.join("shop/cold_start.json").exists());
    assert!(e["cold_start"]["tried"].as_array().unwrap().len() > 5);

    // A live version refit on every event leaves nothing it has not seen: refused, clearly.
    let refused = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args([
            "train",
            "--events",
            path(&events),
            "--labels",
            "purchase,add_to_cart",
            "--out",
            path(&models),
            "--version",
            "never",
            "--max-epochs",
            "1",
            "--compare-to",
            path(&models.join("shop")),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("nothing is left to compare it on"),
        "{stderr}"
    );

    // Yesterday's version (its data ends where today's test window starts), then today's,
    // compared with it on that window: the live version is loaded as serving loads it and
    // asked for the same users.
    // Only the comparison is under test here, so these two train briefly.
    let brief = ["--max-epochs", "1", "--ranker-trials", "1"];
    train(
        "yesterday",
        &[&brief[..], &["--publish-state", "test-start"]].concat(),
    );
    let live = models.join("yesterday");
    train(
        "next",
        &[&brief[..], &["--seed", "8", "--compare-to", path(&live)]].concat(),
    );
    let next = evaluation(&models.join("next"));
    assert_eq!(next["verdict"]["previous_version"], "yesterday");
    assert_eq!(
        next["verdict"]["common_users"].as_u64().unwrap(),
        users_evaluated,
        "every evaluated user was asked of the live version"
    );
    assert!(next["gates"]["versus_live"]["low"].is_number());
    assert_eq!(next["gates"]["live_saw_test_window"], false);
}

/// The loop's data path: what the serving pods wrote (the real WAL and sink, a client's
/// retry included) is read with the history, validated in the same pass (the retried events
/// quarantined as duplicates), and the next version knows what only the feedback held.
#[test]
fn train_learns_from_the_feedback_partitions_validated_with_the_history() {
    use recsys_serving::serving::feedback_sink::FeedbackSink;
    use recsys_serving::serving::feedback_wal::{FeedbackRecord, Wal};
    let _turn = take_turn();
    crate::support::libtorch();
    // Thirty days ending a week ago, so nothing is judged from the future.
    let now = chrono::Utc::now().timestamp();
    let start = now - 37 * 86_400;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.csv");
    let config = GeneratorConfig {
        bots: 0,
        bad_fraction: 0.0,
        ..GeneratorConfig::new(60_000, start)
    };
    generate(&events, &config).unwrap();
    let (users, items) = (dir.path().join("users.csv"), dir.path().join("items.csv"));
    write_catalog(&config, &users, &items).unwrap();

    // Feedback on an item the history never saw, sent twice (a client's retry keeps the ids).
    let wal = Wal::open(&dir.path().join("wal"), 8 << 20).unwrap();
    let records: Vec<FeedbackRecord> = (0..30)
        .map(|i| FeedbackRecord {
            event_id: format!("fb-{i}"),
            user_id: format!("u{}", i * 3),
            item_id: "fresh-item".into(),
            event_type: "purchase".into(),
            timestamp: start + 29 * 86_400 + i * 60,
            value: None,
            session: String::new(),
            device: "ios".into(),
            country: "DE".into(),
            placement: "home".into(),
        })
        .collect();
    wal.append(&records).unwrap();
    wal.append(&records).unwrap();
    let feedback = dir.path().join("feedback");
    let sink = FeedbackSink {
        location: path(&feedback).to_owned(),
        instance: "movies-stable-0".into(),
    };
    let flushed = sink.flush(&wal, Duration::ZERO).unwrap();
    assert_eq!(flushed.events, 60);

    let models = dir.path().join("models");
    let printed = recsys(&[
        "train",
        "--events",
        path(&events),
        "--feedback",
        path(&feedback),
        "--users",
        path(&users),
        "--items",
        path(&items),
        "--labels",
        "purchase,add_to_cart",
        "--out",
        path(&models),
        "--version",
        "next",
        "--max-epochs",
        "1",
        "--ranker-trials",
        "1",
        "--ranker-windows",
        "2",
        "--no-mf",
    ]);
    assert!(printed.contains("validated"), "{printed}");
    let version = models.join("next");
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(version.join(recsys::pipeline::validate::REPORT_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(report["by_reason"]["duplicate"], 30, "{report}");
    assert_eq!(
        report["rows_in"].as_u64().unwrap(),
        report["clean"].as_u64().unwrap() + 30
    );
    // Sealed with the version: verification covers the report.
    let manifest = recsys_version::verify(&version, None).unwrap();
    assert!(manifest
        .files
        .contains_key(recsys::pipeline::validate::REPORT_FILE));
    let catalog: serde_json::Value =
        serde_json::from_slice(&std::fs::read(version.join("catalog.json")).unwrap()).unwrap();
    assert!(
        catalog["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["external_id"] == "fresh-item"),
        "the feedback's item is in the new version"
    );
}
