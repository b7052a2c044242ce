//! The RetrainSchedule ↔ `recsys train` contract, run for real: the training Job the
//! operator builds for the example manifest runs (through the stand-in kubelet of
//! tests/it/support/cluster.rs) as a local `recsys` process with exactly its args, env (the
//! object-storage Secret) and volumes, against a real S3 endpoint (moto) holding the event
//! history and the live version. Its termination message is read by the operator's own parser
//! and judged by its own gates, and the version it names is fetched back and verified.

use crate::support::cluster::{example, run_pod, Secrets};
use crate::support::moto::{moto, s3_env};
use crate::support::version_named;
use recsys_data::remote;
use recsys_operator::builders::training_job::{self, check_hyper_parameters, Run};
use recsys_operator::controllers::retrain::gates;
use recsys_operator::crd::v1alpha1::{OfflineGates, RetrainSchedule};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_training_job_writes_a_gated_version_to_object_storage() {
    // The live version v1, put in object storage below: trained on the global split's first
    // 90 % and published as of its test start, so its data ends before the Job's test window
    // (the last 7 days) begins. Trained (or waited for) before the S3 lock is taken.
    let live = crate::support::serve::trained_demo().await;
    let work = tempfile::tempdir().unwrap();
    let _s3_env = crate::support::moto::exclusive_s3_env().await;
    let s3 = moto(&["recsys-artifacts", "recsys-events"]);
    let env = s3_env(s3.1);
    for (k, v) in &env {
        // This test's own uploads and reads use the same endpoint.
        std::env::set_var(k, v);
    }
    let secrets: Secrets = BTreeMap::from([("recsys-object-storage".to_owned(), env.clone())]);

    let live_uri = "s3://recsys-artifacts/movies/v1";
    let live_dir = version_named(live, &work.path().join("sealed"), "v1");
    remote::upload_dir(&live_dir, live_uri).unwrap();

    // The event history under the schedule's data prefix; profiles and metadata beside it.
    let files = work.path().join("ml-100k");
    let out = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(["export-movielens", "--out", files.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut rts: RetrainSchedule = example("retrainschedule.yaml");
    rts.metadata.uid = Some("uid-retrain".into());
    let data = rts.spec.job.data_uri.clone();
    remote::upload_dir(
        &{
            let d = work.path().join("events-only");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(files.join("events.csv"), d.join("events.csv")).unwrap();
            d
        },
        data.trim_end_matches('/'),
    )
    .unwrap();
    let entities = "s3://recsys-events/movies-entities";
    for f in ["users.csv", "items.csv"] {
        let d = work.path().join(format!("up-{f}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(files.join(f), d.join(f)).unwrap();
        remote::upload_dir(&d, entities).unwrap();
    }
    rts.spec.job.users_uri = Some(format!("{entities}/users.csv"));
    rts.spec.job.items_uri = Some(format!("{entities}/items.csv"));
    // MovieLens spans about seven months; 150 days keeps most of it and drops the rest.
    rts.spec.job.data_window_days = 150;
    // Tuning flags only (the operator refuses any other), small enough for a test.
    rts.spec.job.hyper_parameters = BTreeMap::from([
        ("max-epochs".into(), "2".into()),
        ("ranker-trials".into(), "1".into()),
        ("no-mf".into(), "true".into()),
        ("category-column".into(), "genres".into()),
        ("recency".into(), "none,0.25".into()),
    ]);
    check_hyper_parameters(&rts.spec.job.hyper_parameters).unwrap();

    let run = Run {
        at: "2026-05-01T02:00:00Z".parse().unwrap(),
        trigger: "schedule",
    };
    let job = training_job::job(
        &rts,
        &run,
        Some(live_uri),
        None,
        "ghcr.io/recsys/dataplane:0.1.0",
    );
    let spec = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let name = job.metadata.name.unwrap();
    let mut pod = run_pod(&name, &spec, &secrets, &BTreeMap::new(), work.path());
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(s) = pod.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not finish:\n{}",
            pod.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let logs = pod.logs();
    assert!(status.success(), "{name} failed with {status}:\n{logs}");
    assert!(logs.contains("window    last 150 days"), "{logs}");
    // Both recency candidates reached the trainer and were tried on validation.
    assert!(
        logs.contains(" of none 0.") && logs.contains(" / 0.25 0."),
        "{logs}"
    );

    // The operator's side: its parser on the termination message, its gates on the result.
    let message = std::fs::read_to_string(&pod.termination_log).unwrap();
    let result = training_job::parse_result(&message)
        .unwrap_or_else(|e| panic!("the controller cannot read {message:?}: {e}"));
    assert_eq!(result.version, "v20260501T0200Z");
    assert_eq!(
        result.model_uri,
        "s3://recsys-artifacts/movies/v20260501T0200Z"
    );
    assert!(
        result.rows > 10_000 && result.rows < 100_000,
        "the data window dropped the oldest events: {} rows",
        result.rows
    );
    assert_eq!(result.live_version.as_deref(), Some("v1"));
    assert!(result.common_users > 20, "{result:?}");
    let diff = result.versus_live.expect("a paired interval against v1");
    assert!(diff.low <= diff.mean && diff.mean <= diff.high);
    // Neither version trained on the test window: the comparison is fair.
    assert_eq!(result.live_saw_test_window, Some(false));
    assert!(result.live_ndcg_at10.unwrap() > 0.05, "{result:?}");

    // The version is in object storage, complete: fetching verifies every file's digest.
    let fetched =
        recsys_version::fetch::fetch_version(&result.model_uri, &work.path().join("cache"))
            .unwrap();
    assert!(fetched.join("evaluation.json").exists());

    // The gates judge what the Job measured: a floor just under its AUC passes, just over it
    // fails; a regression allowance below the measured drop fails.
    let auc = result.ranker_auc.expect("an AUC");
    let lenient = OfflineGates {
        min_auc: auc - 0.01,
        min_ndcg_at10: None,
        max_ndcg_regression: 1.0,
    };
    let summary = gates::judge(&lenient, &result, true).unwrap();
    assert!(summary.contains("versus live v1"), "{summary}");
    let strict_auc = OfflineGates {
        min_auc: (auc + 0.01).min(1.0),
        ..lenient.clone()
    };
    assert!(gates::judge(&strict_auc, &result, true).is_err());
    let live_ndcg = result.live_ndcg_at10.unwrap();
    if diff.low < 0.0 {
        let tight = OfflineGates {
            max_ndcg_regression: (-diff.low / live_ndcg) / 2.0,
            ..lenient
        };
        assert!(gates::judge(&tight, &result, true).is_err());
    }
    drop(s3);
}
