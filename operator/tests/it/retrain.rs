//! The RetrainSchedule controller against the strict fake API (and, for drift, a real
//! Prometheus): cron in a time zone across a DST change, one catch-up run after downtime and
//! none past the starting deadline, Forbid / Replace / Allow, history pruning, a failed Job,
//! gates that pass (an Experiment opens) and fail, and the drift trigger with its rate limit.

use crate::support::fake_api::FakeApi;
use crate::support::prometheus::{Exporter, Prometheus};
use crate::support::world::*;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use recsys_operator::builders::training_job::SCHEDULE_LABEL;
use recsys_operator::controllers::retrain;
use recsys_operator::crd::v1alpha1::RetrainSchedule;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const RTS: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys/retrainschedules/nightly";
const EXPERIMENTS: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys/experiments";
const PODS: &str = "/api/v1/namespaces/recsys/pods";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The RecModel the schedule feeds, serving v1 (what its controller would report).
fn live_model(fake: &FakeApi) {
    apply_spec(fake, "v1", None);
    fake.set_status(
        RM,
        json!({"stableVersion": "v1",
               "stableArm": {"modelUri": uri("v1"), "indexUri": format!("{}/index/x", uri("v1"))}}),
    );
}

/// A schedule as a user applies it, created at `created`, with `edit` applied to its spec.
fn schedule(fake: &FakeApi, created: &str, edit: impl FnOnce(&mut Value)) {
    let mut spec = json!({
        "schedule": "0 2 * * *",
        "timeZone": "Europe/Berlin",
        "recModelRef": "movies",
        "job": {"dataUri": "s3://events/movies/", "outputUri": "s3://artifacts/movies",
                "labels": "rating>=4", "dataWindowDays": 60,
                "credentialsSecret": "object-storage",
                "hyperParameters": {"max-epochs": "5"}},
        "gates": {"minAuc": 0.75, "maxNdcgRegression": 0.02},
    });
    edit(&mut spec);
    fake.put(
        RTS,
        json!({"apiVersion": "recsys.dev/v1alpha1", "kind": "RetrainSchedule",
               "metadata": {"name": "nightly", "namespace": "recsys",
                            "creationTimestamp": created},
               "spec": spec}),
    );
}

fn stored(fake: &FakeApi) -> Arc<RetrainSchedule> {
    Arc::new(serde_json::from_value(fake.get(RTS).unwrap()).unwrap())
}

async fn reconcile(fake: &FakeApi, ctx: &Arc<recsys_operator::controllers::Context>, now: &str) {
    retrain::reconcile_at(stored(fake), Arc::clone(ctx), at(now))
        .await
        .unwrap();
}

/// Names of this schedule's Jobs, in name (= scheduled time) order.
fn jobs(fake: &FakeApi) -> Vec<String> {
    let mut names: Vec<String> = fake
        .applied()
        .into_iter()
        .filter(|p| p.starts_with(JOBS))
        .filter(|p| {
            fake.get(p)
                .is_some_and(|j| j["metadata"]["labels"][SCHEDULE_LABEL] == "nightly")
        })
        .map(|p| p.rsplit('/').next().unwrap().to_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The Job's pod exits 0 with `message` as its termination message, and the Job completes.
fn succeed(fake: &FakeApi, job: &str, message: &str) {
    fake.put(
        &format!("{PODS}/{job}-pod"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": format!("{job}-pod"), "namespace": "recsys",
                            "labels": {"batch.kubernetes.io/job-name": job}},
               "status": {"containerStatuses": [{"name": "train", "image": "x", "imageID": "",
                 "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "message": message}}}]}}),
    );
    fake.set_status(&format!("{JOBS}/{job}"), json!({"succeeded": 1}));
}

fn fail(fake: &FakeApi, job: &str) {
    fake.set_status(
        &format!("{JOBS}/{job}"),
        json!({"failed": 2, "conditions": [{"type": "Failed", "status": "True",
               "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
    );
}

/// A training result line; `low` is the paired interval's lower end versus v1 (NDCG 0.30).
fn result_line(version: &str, auc: f64, low: f64) -> String {
    json!({"version": version, "modelUri": format!("{}/{version}", "s3://artifacts/movies"),
           "ndcgAt10": 0.31, "rankerAuc": auc, "liveVersion": "v1", "liveNdcgAt10": 0.30,
           "versusLive": {"mean": low + 0.005, "low": low, "high": low + 0.01},
           "commonUsers": 812, "liveSawTestWindow": false, "rows": 81234})
    .to_string()
}

fn rts_status(fake: &FakeApi) -> Value {
    status(fake, RTS)
}

/// How often an event was recorded: its first publication, plus each repeat (the recorder
/// folds a repeated reason into the same Event's series with a PATCH).
fn times_recorded(fake: &FakeApi, reason: &str) -> usize {
    let names: Vec<String> = events_with(fake, reason)
        .iter()
        .filter_map(|e| e["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let repeats = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == http::Method::PATCH && r.path.contains("/events/"))
        .filter(|r| names.iter().any(|n| r.path.ends_with(&format!("/{n}"))))
        .count();
    names.len() + repeats
}

fn events_with(fake: &FakeApi, reason: &str) -> Vec<Value> {
    fake.events()
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

#[tokio::test]
async fn runs_follow_the_zone_across_dst_with_one_catch_up_and_none_past_the_deadline() {
    let fake = FakeApi::default();
    live_model(&fake);
    schedule(&fake, "2026-03-27T00:00:00Z", |_| {});
    let ctx = context(&fake);

    reconcile(&fake, &ctx, "2026-03-27T00:30:00Z").await;
    assert!(jobs(&fake).is_empty());
    // 02:00 in Berlin is 01:00Z in winter.
    assert_eq!(rts_status(&fake)["nextRunTime"], "2026-03-27T01:00:00Z");
    reconcile(&fake, &ctx, "2026-03-27T01:00:20Z").await;
    succeed(
        &fake,
        "nightly-20260327t0100z",
        &result_line("v20260327T0100Z", 0.8, 0.0),
    );

    reconcile(&fake, &ctx, "2026-03-28T01:00:20Z").await;
    reconcile(&fake, &ctx, "2026-03-28T01:00:40Z").await;
    assert_eq!(
        jobs(&fake),
        ["nightly-20260327t0100z", "nightly-20260328t0100z"],
        "one Job per slot"
    );
    let job = fake.get(&format!("{JOBS}/nightly-20260328t0100z")).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let args: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
    let joined = args.join(" ");
    for expected in [
        "train --events s3://events/movies/ --labels rating>=4 --out s3://artifacts/movies",
        "--version v20260328T0100Z",
        "--window-days 60",
        "--result-file /dev/termination-log",
        &format!("--compare-to {}", uri("v1")),
        "--max-epochs 5",
    ] {
        assert!(joined.contains(expected), "{expected:?} not in {joined}");
    }
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "object-storage");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["kind"],
        "RetrainSchedule"
    );
    assert_eq!(
        rts_status(&fake)["active"],
        json!(["nightly-20260328t0100z"])
    );
    // Berlin springs forward on 2026-03-29 at 02:00 → 03:00: that night's run is at the jump
    // (01:00Z), and the night after at 02:00 CEST (00:00Z).
    assert_eq!(rts_status(&fake)["nextRunTime"], "2026-03-29T01:00:00Z");
    succeed(
        &fake,
        "nightly-20260328t0100z",
        &result_line("v20260328T0100Z", 0.8, 0.0),
    );
    reconcile(&fake, &ctx, "2026-03-29T01:00:05Z").await;
    assert_eq!(jobs(&fake).last().unwrap(), "nightly-20260329t0100z");
    assert_eq!(rts_status(&fake)["nextRunTime"], "2026-03-30T00:00:00Z");

    // The operator is down from the 29th to the 2nd, 05:00Z: four nights pass, one run starts,
    // for the latest of them.
    succeed(
        &fake,
        "nightly-20260329t0100z",
        &result_line("v20260329T0100Z", 0.8, 0.0),
    );
    let ctx = context(&fake); // a new operator process
    reconcile(&fake, &ctx, "2026-04-02T05:00:00Z").await;
    let after_downtime = jobs(&fake);
    assert_eq!(after_downtime.last().unwrap(), "nightly-20260402t0000z");
    assert_eq!(after_downtime.len(), 4, "{after_downtime:?}");
    let missed = events_with(&fake, "MissedSchedule");
    assert!(
        missed[0]["note"]
            .as_str()
            .unwrap()
            .contains("4 scheduled runs"),
        "{missed:?}"
    );

    // With a one-hour starting deadline, a run found five hours late is skipped.
    succeed(
        &fake,
        "nightly-20260402t0000z",
        &result_line("v20260402T0000Z", 0.8, 0.0),
    );
    schedule(&fake, "2026-03-27T00:00:00Z", |s| {
        s["startingDeadlineSeconds"] = json!(3600)
    });
    let ctx = context(&fake); // down again
    reconcile(&fake, &ctx, "2026-04-03T05:00:00Z").await;
    assert!(
        fake.get(&format!("{JOBS}/nightly-20260403t0000z"))
            .is_none(),
        "nothing started past the deadline"
    );
    // Four finished runs, three kept (the default history): the oldest went.
    assert_eq!(jobs(&fake).first().unwrap(), "nightly-20260328t0100z");
    assert_eq!(
        rts_status(&fake)["lastScheduleTime"],
        "2026-04-03T00:00:00Z"
    );
    let skipped = events_with(&fake, "MissedSchedule");
    assert!(skipped.last().unwrap()["note"]
        .as_str()
        .unwrap()
        .contains("past startingDeadlineSeconds 3600"));
    assert_eq!(skipped.last().unwrap()["type"], "Warning");
}

#[tokio::test]
async fn forbid_skips_replace_deletes_and_allow_overlaps() {
    for (policy, expect_jobs, expect_active) in [
        ("Forbid", 1, vec!["nightly-20260501t0000z"]),
        ("Replace", 1, vec!["nightly-20260501t0100z"]),
        (
            "Allow",
            2,
            vec!["nightly-20260501t0000z", "nightly-20260501t0100z"],
        ),
    ] {
        let fake = FakeApi::default();
        live_model(&fake);
        schedule(&fake, "2026-04-30T23:30:00Z", |s| {
            s["schedule"] = json!("0 * * * *");
            s["timeZone"] = Value::Null;
            s["concurrencyPolicy"] = json!(policy);
        });
        let ctx = context(&fake);
        reconcile(&fake, &ctx, "2026-05-01T00:00:10Z").await;
        // The first run is still training when the second falls due.
        reconcile(&fake, &ctx, "2026-05-01T01:00:10Z").await;
        let stored: Vec<String> = jobs(&fake)
            .into_iter()
            .filter(|j| fake.get(&format!("{JOBS}/{j}")).is_some())
            .collect();
        assert_eq!(stored.len(), expect_jobs, "{policy}: {stored:?}");
        assert_eq!(
            rts_status(&fake)["active"],
            json!(expect_active),
            "{policy}"
        );
        match policy {
            "Forbid" => assert_eq!(events_with(&fake, "Skipped").len(), 1),
            "Replace" => {
                assert!(fake
                    .deleted()
                    .contains(&format!("{JOBS}/nightly-20260501t0000z")));
                assert_eq!(events_with(&fake, "Replaced").len(), 1);
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn finished_jobs_beyond_the_history_limits_are_pruned_oldest_first() {
    let fake = FakeApi::default();
    live_model(&fake);
    schedule(&fake, "2026-04-30T23:30:00Z", |s| {
        s["schedule"] = json!("0 * * * *");
        s["timeZone"] = Value::Null;
        s["successfulJobsHistoryLimit"] = json!(2);
        s["failedJobsHistoryLimit"] = json!(1);
    });
    let ctx = context(&fake);
    for hour in 0..6 {
        let now = format!("2026-05-01T{hour:02}:00:10Z");
        reconcile(&fake, &ctx, &now).await;
        let job = format!("nightly-20260501t{hour:02}00z");
        if hour % 3 == 2 {
            fail(&fake, &job);
        } else {
            succeed(&fake, &job, &result_line(&format!("v{hour}"), 0.8, 0.0));
        }
    }
    reconcile(&fake, &ctx, "2026-05-01T05:30:00Z").await;
    let left: Vec<String> = jobs(&fake)
        .into_iter()
        .filter(|j| fake.get(&format!("{JOBS}/{j}")).is_some())
        .collect();
    // Succeeded: hours 0 1 3 4 → 3 and 4 stay; failed: 2 and 5 → 5 stays.
    assert_eq!(
        left,
        [
            "nightly-20260501t0300z",
            "nightly-20260501t0400z",
            "nightly-20260501t0500z"
        ]
    );
    // Each finished Job was judged exactly once, the pruned ones included.
    assert_eq!(
        times_recorded(&fake, "Passed") + times_recorded(&fake, "Failed"),
        6
    );
}

#[tokio::test]
async fn a_failed_job_and_a_failed_gate_are_reported_and_open_nothing() {
    let fake = FakeApi::default();
    live_model(&fake);
    schedule(&fake, "2026-04-30T23:30:00Z", |s| {
        s["schedule"] = json!("0 * * * *");
        s["timeZone"] = Value::Null;
    });
    let ctx = context(&fake);
    reconcile(&fake, &ctx, "2026-05-01T00:00:10Z").await;
    fail(&fake, "nightly-20260501t0000z");
    reconcile(&fake, &ctx, "2026-05-01T00:30:00Z").await;
    let s = rts_status(&fake);
    assert_eq!(s["lastResult"], "Failed");
    assert!(s["lastReason"]
        .as_str()
        .unwrap()
        .contains("BackoffLimitExceeded"));
    assert_eq!(condition(&s, "Progressing").0, "False");
    assert_eq!(events_with(&fake, "Failed")[0]["type"], "Warning");

    // AUC below the floor.
    reconcile(&fake, &ctx, "2026-05-01T01:00:10Z").await;
    succeed(
        &fake,
        "nightly-20260501t0100z",
        &result_line("v1h", 0.70, 0.01),
    );
    reconcile(&fake, &ctx, "2026-05-01T01:30:00Z").await;
    let s = rts_status(&fake);
    assert_eq!(s["lastResult"], "GateFailed");
    assert_eq!(s["lastVersion"], "v1h");
    assert!(s["lastReason"]
        .as_str()
        .unwrap()
        .contains("AUC 0.7000 < minAuc"));

    // NDCG may have dropped by more than 2 % of the live version's 0.30.
    reconcile(&fake, &ctx, "2026-05-01T02:00:10Z").await;
    succeed(
        &fake,
        "nightly-20260501t0200z",
        &result_line("v2h", 0.80, -0.012),
    );
    reconcile(&fake, &ctx, "2026-05-01T02:30:00Z").await;
    let s = rts_status(&fake);
    assert_eq!(s["lastResult"], "GateFailed");
    assert!(s["lastReason"].as_str().unwrap().contains("4.0 %"), "{s}");

    // A pod that exits 0 with garbage instead of a result.
    reconcile(&fake, &ctx, "2026-05-01T03:00:10Z").await;
    succeed(&fake, "nightly-20260501t0300z", "Segmentation fault");
    reconcile(&fake, &ctx, "2026-05-01T03:30:00Z").await;
    assert_eq!(rts_status(&fake)["lastResult"], "Failed");

    assert!(
        fake.applied().iter().all(|p| !p.starts_with(EXPERIMENTS)),
        "no Experiment for a version that did not pass"
    );
    assert_eq!(times_recorded(&fake, "GateFailed"), 2);
}

#[tokio::test]
async fn a_passing_version_opens_an_experiment_owned_by_the_schedule() {
    let fake = FakeApi::default();
    live_model(&fake);
    schedule(&fake, "2026-04-30T23:30:00Z", |s| {
        s["schedule"] = json!("0 * * * *");
        s["timeZone"] = Value::Null;
        s["experiment"] = json!({"trafficPercent": 20, "successMetric": "conversionsPerUser",
                                 "design": {"alpha": 0.05, "power": 0.8, "baseline": 0.1,
                                            "minimumDetectableEffect": 0.1,
                                            "minDuration": "1h", "maxDuration": "2d"}});
    });
    let ctx = context(&fake);
    reconcile(&fake, &ctx, "2026-05-01T00:00:10Z").await;
    succeed(
        &fake,
        "nightly-20260501t0000z",
        &format!(
            "training…\n{}",
            result_line("v20260501T0000Z", 0.81, -0.004)
        ),
    );
    reconcile(&fake, &ctx, "2026-05-01T00:40:00Z").await;
    reconcile(&fake, &ctx, "2026-05-01T00:41:00Z").await;
    let s = rts_status(&fake);
    assert_eq!(s["lastResult"], "Passed");
    assert_eq!(s["lastExperiment"], "nightly-v20260501t0000z");
    assert!(s["lastReason"].as_str().unwrap().contains("versus live v1"));
    let exp = fake
        .get(&format!("{EXPERIMENTS}/nightly-v20260501t0000z"))
        .expect("an Experiment");
    assert_eq!(exp["spec"]["recModel"], "movies");
    assert_eq!(
        exp["spec"]["treatment"]["modelUri"],
        "s3://artifacts/movies/v20260501T0000Z"
    );
    assert_eq!(exp["spec"]["trafficPercent"], 20);
    assert_eq!(exp["spec"]["successMetric"], "conversionsPerUser");
    assert_eq!(
        exp["metadata"]["ownerReferences"][0]["kind"],
        "RetrainSchedule"
    );
    // Judged once: the second reconcile opened nothing new and published no second event.
    assert_eq!(times_recorded(&fake, "Passed"), 1);
    // The RecModel's spec was never written.
    assert!(fake.applied().iter().all(|p| p != RM));
}

#[tokio::test]
async fn on_pass_canary_routes_the_version_until_git_names_one() {
    let fake = FakeApi::default();
    let ctx = context(&fake);
    serving(&fake, &ctx, "v1").await;
    assert_eq!(status(&fake, RM)["stableVersion"], "v1");
    schedule(&fake, "2026-04-30T23:30:00Z", |s| {
        s["schedule"] = json!("0 * * * *");
        s["timeZone"] = Value::Null;
        s["onPass"] = json!("Canary");
        s["canary"] = json!({"weight": 15});
    });
    reconcile(&fake, &ctx, "2026-05-01T00:00:10Z").await;
    let job = "nightly-20260501t0000z";
    let stored_job = fake.get(&format!("{JOBS}/{job}")).unwrap();
    assert!(
        stored_job["spec"]["template"]["spec"]["containers"][0]["args"]
            .to_string()
            .contains(&uri("v1")),
        "the Job compares with the live version"
    );
    succeed(&fake, job, &result_line("v20260501T0000Z", 0.81, -0.004));
    reconcile(&fake, &ctx, "2026-05-01T00:40:00Z").await;
    let s = rts_status(&fake);
    assert_eq!(s["lastResult"], "Passed", "{s}");
    assert_eq!(s["lastCanary"], "v20260501T0000Z");
    assert!(s.get("lastExperiment").is_none(), "no Experiment: {s}");
    assert!(fake.applied().iter().all(|p| !p.starts_with(EXPERIMENTS)));
    let record_path = "/api/v1/namespaces/recsys/configmaps/movies-retrain-canary";
    let record = fake.get(record_path).expect("a canary record");
    assert_eq!(record["metadata"]["ownerReferences"][0]["kind"], "RecModel");
    assert_eq!(record["data"]["comparedWith"], uri("v1"));

    // The RecModel's controller builds the canary its index, pods, then routes 15 %.
    let new = "v20260501T0000Z";
    reconcile_model(&fake, &ctx).await;
    publish(&fake, &derived_path(&fake, new), new);
    reconcile_model(&fake, &ctx).await;
    roll_out(&fake, "movies-canary");
    reconcile_model(&fake, &ctx).await;
    let table = routing(&fake);
    assert_eq!(table["arms"][1]["name"], "canary", "{table}");
    let share =
        |arm: &Value| arm["bucketEnd"].as_u64().unwrap() - arm["bucketStart"].as_u64().unwrap();
    assert_eq!(
        share(&table["arms"][1]) * 100 / (share(&table["arms"][0]) + share(&table["arms"][1])),
        15,
        "{table}"
    );
    let rm = status(&fake, RM);
    assert_eq!(rm["canaryVersion"], new, "{rm}");
    assert_eq!(rm["canaryBy"], "nightly", "{rm}");
    assert!(args(&fake, "movies-canary").contains(&uri(new)));
    // The RecModel's spec was never written by the operator.
    assert!(fake.applied().iter().all(|p| p != RM));

    // Git promotes it: the record no longer applies and goes; the canary arm leaves.
    apply_spec(&fake, new, None);
    reconcile_model(&fake, &ctx).await;
    assert!(
        fake.get(record_path).is_none(),
        "record removed once Git names a version"
    );
    assert!(fake.deleted().iter().any(|p| p == record_path));
    assert!(status(&fake, RM).get("canaryBy").is_none());
}

#[tokio::test]
async fn an_invalid_schedule_or_zone_or_flag_starts_nothing_and_says_why() {
    for (edit, needle) in [
        (
            json!({"schedule": "0 25 * * *"}),
            "hour: 25 is outside 0–23",
        ),
        (json!({"timeZone": "Mars/Olympus"}), "not an IANA time zone"),
        (
            json!({"job": {"dataUri": "s3://e/", "outputUri": "s3://o", "labels": "click",
                            "hyperParameters": {"out": "s3://elsewhere"}}}),
            "not a tuning flag",
        ),
    ] {
        let fake = FakeApi::default();
        live_model(&fake);
        schedule(&fake, "2026-04-30T23:30:00Z", |s| {
            for (k, v) in edit.as_object().unwrap() {
                s[k] = v.clone();
            }
        });
        let ctx = context(&fake);
        reconcile(&fake, &ctx, "2026-05-02T00:00:10Z").await;
        assert!(jobs(&fake).is_empty());
        let s = rts_status(&fake);
        assert_eq!(
            condition(&s, "Degraded"),
            ("True".into(), "InvalidSpec".into())
        );
        let message = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Degraded")
            .unwrap()["message"]
            .to_string();
        assert!(message.contains(needle), "{message}");
    }
}

/// The serving pods' PSI gauges as `recsys serve` exports them.
fn psi_text(version: &str, age: f64, genre: f64) -> String {
    format!(
        "# TYPE recsys_feature_psi gauge\nrecsys_feature_psi{{feature=\"user_age\",version=\"{version}\"}} {age}\nrecsys_feature_psi{{feature=\"item_genre\",version=\"{version}\"}} {genre}\n"
    )
}

#[tokio::test]
async fn drift_starts_a_run_at_most_once_per_interval_and_says_why() {
    let exporter = Exporter::start();
    exporter.set(psi_text("v1", 0.05, 0.08));
    let prometheus = Prometheus::start(&[(&exporter.addr, "movies-v1-0")]);
    let fake = FakeApi::default();
    live_model(&fake);
    let url = prometheus.url.clone();
    // Created now (the test runs on the real clock, as Prometheus does).
    let created = Timestamp::now().to_string();
    schedule(&fake, &created, move |s| {
        // Monthly: every run in this test is drift's.
        s["schedule"] = json!("0 3 1 * *");
        s["timeZone"] = Value::Null;
        s["drift"] = json!({"psiThreshold": 0.2, "minInterval": "24h", "prometheusUrl": url});
    });
    let ctx = context(&fake);
    let scraped = |fake: &FakeApi| {
        rts_status(fake)["drift"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Wait for the first scrape: below the threshold, nothing starts.
    let t0 = Timestamp::now();
    let mut now = t0;
    for _ in 0..60 {
        retrain::reconcile_at(stored(&fake), Arc::clone(&ctx), now)
            .await
            .unwrap();
        if scraped(&fake).starts_with("item_genre=") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(scraped(&fake), "item_genre=0.080");
    assert!(jobs(&fake).is_empty());

    // The traffic shifts: age drifts past the threshold.
    exporter.set(psi_text("v1", 0.34, 0.08));
    for _ in 0..60 {
        now = Timestamp::now();
        retrain::reconcile_at(stored(&fake), Arc::clone(&ctx), now)
            .await
            .unwrap();
        if !jobs(&fake).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let started = jobs(&fake);
    assert_eq!(started.len(), 1, "one drift run");
    let job = fake.get(&format!("{JOBS}/{}", started[0])).unwrap();
    assert_eq!(
        job["metadata"]["annotations"]["recsys.dev/trigger"],
        "drift"
    );
    let s = rts_status(&fake);
    assert!(s["lastDriftReason"]
        .as_str()
        .unwrap()
        .contains("feature user_age drifted: PSI 0.340 > 0.2"));
    assert_eq!(events_with(&fake, "DriftDetected").len(), 1);

    // Still drifted an hour later, the run done: the interval holds the next one back…
    succeed(&fake, &started[0], &result_line("vdrift", 0.8, 0.0));
    let later = now.checked_add(SignedDuration::from_hours(1)).unwrap();
    retrain::reconcile_at(stored(&fake), Arc::clone(&ctx), later)
        .await
        .unwrap();
    assert_eq!(jobs(&fake).len(), 1);
    // …until it has passed.
    let next_day = now.checked_add(SignedDuration::from_hours(25)).unwrap();
    retrain::reconcile_at(stored(&fake), Arc::clone(&ctx), next_day)
        .await
        .unwrap();
    assert_eq!(jobs(&fake).len(), 2);
    assert_eq!(times_recorded(&fake, "DriftDetected"), 2);
    drop(prometheus);
}
