//! An experiment end to end with real processes and no cluster: two `recsys serve` arms with
//! genuinely different models — the ml-100k version, and a deliberately weaker copy of it whose
//! catalog names a fixed permutation of the items (so what it learned points at the wrong items) —
//! behind `recsys route` with its statistics in a real Redis, a real Prometheus scraping the
//! router and both arms, and simulated users whose clicks are their own held-out ml-100k
//! test-window interactions (global 80/10/10 split; relevant = rating ≥ 4, the protocol's
//! label policy for MovieLens). The operator's controllers run against the strict fake API:
//! the RecModel controller's routing table (the experiment's salt, endpoints pointed at the
//! local arms) is what the router loads, and the Experiment controller reads Prometheus at
//! simulated daily looks. It must promote the better model, roll back the worse one and not
//! promote an A/A test.

// The operator's test support, by source (`crate::operator_support`): its strict fake API
// server, a RecModel's world in it, and the real-Prometheus launcher.
use crate::operator_support::fake_api::FakeApi;
use crate::operator_support::prometheus::Prometheus;
use crate::operator_support::world::*;
use crate::support::serve::{permuted_items, trained_demo};
use crate::support::{free_port, wait_for_port, RedisServer};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use recsys::demo;
use recsys::pipeline::labels::relevant_by_user;
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::{FeedbackEvent, FeedbackRequest, RecommendRequest};
use recsys_core::{SplitWindows, TimeSplit};
use recsys_data::{locate, movielens};
use recsys_operator::controllers::experiment;
use recsys_operator::crd::v1alpha1::Experiment;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const EXP_PATH: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys/experiments/movies-exp";

/// Held-out relevant items of every test-window user (external ids).
fn test_users() -> Vec<(String, HashSet<String>)> {
    let mut data = movielens::load(&locate::find_movielens(None).unwrap()).unwrap();
    demo::movielens_labels().apply(&mut data.interactions);
    let windows = SplitWindows::by_fraction(&data.interactions, 0.8, 0.1).unwrap();
    let split = TimeSplit::new(&data.interactions, windows);
    relevant_by_user(&split.test)
        .into_iter()
        .map(|(u, items)| {
            (
                data.users[u as usize].external_id.clone(),
                items
                    .into_iter()
                    .map(|i| data.items[i as usize].external_id.clone())
                    .collect(),
            )
        })
        .collect()
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[String]) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_recsys"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The bearer token the router presents to the arms and clients present to the router.
const TOKEN: &str = "e2e-feedback-writer";

/// A serving arm: (process, gRPC address, HTTP address). Only token holders (the router) may
/// call it.
fn serve(version: &Path, tokens: &Path) -> (Process, String, String) {
    let (grpc, http) = (free_port(), free_port());
    let p = spawn(&[
        "serve".into(),
        "--model-dir".into(),
        version.display().to_string(),
        "--addr".into(),
        format!("127.0.0.1:{grpc}"),
        "--http-addr".into(),
        format!("127.0.0.1:{http}"),
        "--auth-tokens-file".into(),
        tokens.display().to_string(),
        "--recommend-auth".into(),
        "token".into(),
    ]);
    wait_for_port(grpc);
    (p, format!("127.0.0.1:{grpc}"), format!("127.0.0.1:{http}"))
}

struct Outcome {
    decision: String,
    day: i64,
    users: String,
    lift: String,
    reason: String,
}

/// One experiment: `control` serves, `treatment` is tested against it.
async fn run_experiment(
    label: &str,
    control: (&str, &Path),
    treatment: (&str, &Path),
    users: &[(String, HashSet<String>)],
) -> Outcome {
    let work = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let tokens = work.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let (_c, control_grpc, control_http) = serve(control.1, &tokens);
    let (_t, treatment_grpc, treatment_http) = serve(treatment.1, &tokens);
    let table_path = work.path().join("routing.json");
    let (router_grpc, router_http) = (free_port(), free_port());

    // Control plane: the RecModel serving `control`, then the Experiment.
    let fake = FakeApi::default();
    let ctx = context(&fake);
    ready_index(&fake, control.0);
    apply_spec(&fake, control.0, None);
    reconcile_model(&fake, &ctx).await;
    roll_out(&fake, "movies-stable");
    roll_out(&fake, "movies-router");
    reconcile_model(&fake, &ctx).await;
    let salt = format!("e2e-{label}");
    let prometheus = Prometheus::start(&[
        (&format!("127.0.0.1:{router_http}"), "movies-router-0"),
        (&control_http, "movies-stable-0"),
        (&treatment_http, "movies-canary-0"),
    ]);
    fake.put(
        EXP_PATH,
        json!({"apiVersion": "recsys.dev/v1alpha1", "kind": "Experiment",
               "metadata": {"name": "movies-exp", "namespace": "recsys"},
               "spec": {
                   "recModel": "movies", "treatment": {"modelUri": uri(treatment.0)},
                   "trafficPercent": 50, "salt": salt, "successMetric": "ctr",
                   "design": {"alpha": 0.05, "power": 0.8, "baseline": 0.05,
                              "minimumDetectableEffect": 1.0, "minDuration": "2d",
                              "maxDuration": "14d", "intervalSeconds": 3600},
                   "analysis": {"tau": 0.05},
                   "guardrails": [{"name": "p99-latency",
                       "query": "histogram_quantile(0.99, sum by (le) (rate(recsys_request_duration_seconds_bucket{pod=~\"movies-$ARM-.*\",method=\"Recommend\"}[10m])))",
                       "margin": 0.5}],
                   "prometheusUrl": prometheus.url}}),
    );
    let t0 = Timestamp::from_second(1_790_000_000).unwrap();
    let look = |day: i64| {
        let exp: Arc<Experiment> =
            Arc::new(serde_json::from_value(fake.get(EXP_PATH).unwrap()).unwrap());
        let ctx = Arc::clone(&ctx);
        async move {
            experiment::reconcile_at(exp, ctx, t0 + SignedDuration::from_hours(24 * day))
                .await
                .unwrap();
        }
    };
    look(0).await;
    reconcile_model(&fake, &ctx).await;
    if control.0 != treatment.0 {
        publish(&fake, &derived_path(&fake, treatment.0), treatment.0);
        reconcile_model(&fake, &ctx).await;
    }
    roll_out(&fake, "movies-canary");
    reconcile_model(&fake, &ctx).await;

    // The router loads the operator's table, the Services pointed at the local arms.
    let table = fake
        .get("/api/v1/namespaces/recsys/configmaps/movies-routing")
        .unwrap()["data"]["routing.json"]
        .as_str()
        .unwrap()
        .replace(
            "http://movies-stable:50051",
            &format!("http://{control_grpc}"),
        )
        .replace(
            "http://movies-canary:50051",
            &format!("http://{treatment_grpc}"),
        );
    assert!(table.contains(&salt), "{table}");
    std::fs::write(&table_path, &table).unwrap();
    let _router = spawn(&[
        "route".into(),
        "--table".into(),
        table_path.display().to_string(),
        "--addr".into(),
        format!("127.0.0.1:{router_grpc}"),
        "--http-addr".into(),
        format!("127.0.0.1:{router_http}"),
        "--redis-url".into(),
        redis.url(),
        "--auth-tokens-file".into(),
        tokens.display().to_string(),
        "--arm-token-file".into(),
        tokens.display().to_string(),
    ]);
    wait_for_port(router_grpc);
    look(0).await;
    assert_eq!(fake.get(EXP_PATH).unwrap()["status"]["phase"], "Running");
    let mut client = RecommenderClient::connect(format!("http://127.0.0.1:{router_grpc}"))
        .await
        .unwrap();

    // Users arrive over a week, about a seventh each day; each sees ten items once and
    // clicks those among their held-out relevant ones.
    let per_day = users.len().div_ceil(7);
    let mut sent = 0usize;
    let mut day = 0;
    loop {
        day += 1;
        for (user, relevant) in users.iter().skip(sent).take(per_day) {
            let r = client
                .recommend(RecommendRequest {
                    user_id: user.clone(),
                    num_items: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut events = Vec::new();
            for item in &r.items {
                for kind in ["impression", "click"] {
                    if kind == "click" && !relevant.contains(&item.item_id) {
                        continue;
                    }
                    events.push(FeedbackEvent {
                        user_id: user.clone(),
                        item_id: item.item_id.clone(),
                        event_type: kind.into(),
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
            sent += 1;
        }
        // Wait until Prometheus has scraped every user's exposure and impressions.
        let q = experiment::sums_query(&salt);
        let want = 10.0 * sent as f64;
        let mut seen = 0.0;
        for _ in 0..150 {
            if let Ok(samples) = experiment::prometheus::query(&prometheus.url, &q).await {
                seen = samples
                    .iter()
                    .filter(|s| s.labels.get("sum").map(String::as_str) == Some("sx"))
                    .map(|s| s.value)
                    .sum();
                if seen == want {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(seen, want, "{label}: impressions in Prometheus");
        look(day).await;
        let status = fake.get(EXP_PATH).unwrap()["status"].clone();
        println!(
            "{label} day {day}: {} users {} lift {} p {} — {}",
            status["decision"], status["users"], status["lift"], status["pValue"], status["reason"]
        );
        if status["phase"] == "Concluded" || day >= 20 {
            let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
            return Outcome {
                decision: text(&status["decision"]),
                day,
                users: text(&status["users"]),
                lift: text(&status["lift"]),
                reason: text(&status["reason"]),
            };
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_promotes_the_better_model_rolls_back_the_worse_and_not_an_a_a_test() {
    let work = tempfile::tempdir().unwrap();
    let good = trained_demo().await.to_path_buf();
    let weak = permuted_items(&good, work.path(), "weak");
    let mut users = test_users();
    assert!(users.len() > 100, "{} test users", users.len());
    // A fixed arrival order, independent of the ids' order.
    users.sort_by_key(|(u, _)| recsys_core::routing::bucket("arrival", u));

    let better = run_experiment("better", ("permuted", &weak), ("ml100k", &good), &users).await;
    let worse = run_experiment("worse", ("ml100k", &good), ("permuted", &weak), &users).await;
    let aa = run_experiment("a-a", ("ml100k", &good), ("ml100k", &good), &users).await;
    for (name, o) in [("better", &better), ("worse", &worse), ("A/A", &aa)] {
        println!(
            "| {name} | {} | {} | day {} | {} | {} |",
            o.users, o.lift, o.day, o.decision, o.reason
        );
    }
    assert_eq!(better.decision, "Promote", "{}", better.reason);
    assert_eq!(worse.decision, "Rollback", "{}", worse.reason);
    assert!(
        worse.reason.contains("significantly worse"),
        "{}",
        worse.reason
    );
    assert_ne!(aa.decision, "Promote", "{}", aa.reason);
    assert!(!aa.reason.contains("significantly worse"), "{}", aa.reason);
}
