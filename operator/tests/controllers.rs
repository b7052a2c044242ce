//! Controller behaviour against the in-process fake API server: what gets applied, deleted
//! and reported for create, update, canary weight change, an index that is not ready,
//! deletion, and an index build's outcomes.

mod support;

use kube::runtime::events::{Recorder, Reporter};
use kube::Resource;
use recsys_operator::builders::index_job;
use recsys_operator::controllers::{item_index, rec_model, Context};
use recsys_operator::crd::v1alpha1::{ItemIndex, RecModel};
use recsys_operator::runtime::metrics::Metrics;
use serde_json::{json, Value};
use std::sync::Arc;
use support::fake_api::FakeApi;

const RM: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys/recmodels/movies";
const II: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys/itemindexes/movies-ivf";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/recsys/deployments";
const SERVICES: &str = "/api/v1/namespaces/recsys/services";
const ROUTING: &str = "/api/v1/namespaces/recsys/configmaps/movies-routing";

fn context(fake: &FakeApi) -> Arc<Context> {
    let client = fake.client();
    Arc::new(Context {
        recorder: Some(Recorder::new(
            client.clone(),
            Reporter {
                controller: "recsys-operator-test".into(),
                instance: None,
            },
        )),
        client,
        metrics: Arc::new(Metrics::default()),
        dataplane_image: "ghcr.io/recsys/dataplane:test".into(),
    })
}

fn rec_model(canary_weight: Option<u32>, model: &str) -> RecModel {
    let mut spec = json!({
        "modelUri": format!("s3://artifacts/movies/{model}"),
        "itemIndexRef": "movies-ivf",
        "replicas": 2,
    });
    if let Some(w) = canary_weight {
        spec["canary"] = json!({"modelUri": "s3://artifacts/movies/v2", "weight": w});
    }
    serde_json::from_value(json!({
        "apiVersion": "recsys.dev/v1alpha1",
        "kind": "RecModel",
        "metadata": {"name": "movies", "namespace": "recsys", "uid": "uid-rm", "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn ready_index() -> Value {
    json!({
        "apiVersion": "recsys.dev/v1alpha1",
        "kind": "ItemIndex",
        "metadata": {"name": "movies-ivf", "namespace": "recsys", "uid": "uid-ii"},
        "spec": {"modelUri": "s3://artifacts/movies/v1", "type": "Flat"},
        "status": {
            "phase": "Ready",
            "artifactUri": "s3://artifacts/movies/v1/index/movies-ivf",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Published",
                            "message": "", "lastTransitionTime": "2026-11-26T00:00:00Z"}]
        }
    })
}

fn seed(fake: &FakeApi, rm: &RecModel) {
    fake.put(RM, serde_json::to_value(rm).unwrap());
}

fn set_ready(fake: &FakeApi, deployment: &str, replicas: i32) {
    let path = format!("{DEPLOYMENTS}/{deployment}");
    let mut d = fake.get(&path).unwrap_or(json!({}));
    d["status"] =
        json!({"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas});
    fake.put(&path, d);
}

fn status(fake: &FakeApi, path: &str) -> Value {
    fake.get(path).unwrap()["status"].clone()
}

fn condition(status: &Value, type_: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap();
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn creating_a_model_applies_arms_router_and_budgets_then_reports_ready() {
    let fake = FakeApi::default();
    fake.put(II, ready_index());
    let rm = rec_model(None, "v1");
    seed(&fake, &rm);
    let ctx = context(&fake);
    rec_model::reconcile(Arc::new(rm.clone()), Arc::clone(&ctx))
        .await
        .unwrap();

    let applied = fake.applied();
    for path in [
        format!("{DEPLOYMENTS}/movies-stable"),
        format!("{SERVICES}/movies-stable"),
        ROUTING.to_owned(),
        format!("{DEPLOYMENTS}/movies-router"),
        format!("{SERVICES}/movies"),
        "/apis/policy/v1/namespaces/recsys/poddisruptionbudgets/movies-stable".to_owned(),
        format!("{RM}/status"),
    ] {
        assert!(applied.contains(&path), "{path} applied; got {applied:?}");
    }
    // Server-side apply under one field manager, forced.
    for r in fake
        .requests()
        .iter()
        .filter(|r| r.method == http::Method::PATCH)
    {
        assert!(
            r.query.contains("fieldManager=recsys-operator"),
            "{}",
            r.query
        );
        assert!(r.query.contains("force=true"), "{}", r.query);
    }
    assert!(!applied.iter().any(|p| p.contains("canary")));
    assert!(
        !applied.iter().any(|p| p == RM),
        "the operator never writes the user's spec"
    );
    let s = status(&fake, RM);
    assert_eq!(s["stableVersion"], "v1");
    assert_eq!(
        condition(&s, "Ready"),
        ("False".into(), "PodsNotReady".into())
    );
    let deployment = fake.get(&format!("{DEPLOYMENTS}/movies-stable")).unwrap();
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("s3://artifacts/movies/v1/index/movies-ivf"),
        "{args}"
    );

    // Pods come up: the next reconcile reports Ready.
    set_ready(&fake, "movies-stable", 2);
    set_ready(&fake, "movies-router", 2);
    let rm = serde_json::from_value::<RecModel>(fake.get(RM).unwrap()).unwrap();
    rec_model::reconcile(Arc::new(rm), ctx).await.unwrap();
    let s = status(&fake, RM);
    assert_eq!(condition(&s, "Ready"), ("True".into(), "Serving".into()));
    assert_eq!(s["stableReadyReplicas"], 2);
    assert_eq!(s["observedGeneration"], 1);
    let reasons: Vec<Value> = fake.events().iter().map(|e| e["reason"].clone()).collect();
    assert!(
        reasons.contains(&json!("StableVersionApplied")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_model_waits_for_its_index_without_creating_workloads() {
    let fake = FakeApi::default();
    let rm = rec_model(None, "v1");
    seed(&fake, &rm);
    let mut index = ready_index();
    index["status"]["conditions"][0]["status"] = json!("False");
    fake.put(II, index);
    let action = rec_model::reconcile(Arc::new(rm), context(&fake))
        .await
        .unwrap();
    assert_eq!(fake.applied(), vec![format!("{RM}/status")]);
    let s = status(&fake, RM);
    assert_eq!(
        condition(&s, "Ready"),
        ("False".into(), "WaitingForIndex".into())
    );
    assert_eq!(condition(&s, "Progressing").0, "True");
    assert!(format!("{action:?}").contains("30s"), "{action:?}");
    assert_eq!(fake.events()[0]["reason"], "WaitingForIndex");

    // A missing index is the same wait, with a message that says so.
    let fake = FakeApi::default();
    let rm = rec_model(None, "v1");
    seed(&fake, &rm);
    rec_model::reconcile(Arc::new(rm), context(&fake))
        .await
        .unwrap();
    let message = status(&fake, RM)["conditions"][0]["message"].clone();
    assert_eq!(message, "ItemIndex movies-ivf does not exist");
}

fn routing(fake: &FakeApi) -> Value {
    let cm = fake.get(ROUTING).unwrap();
    serde_json::from_str(cm["data"]["routing.json"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn canary_weight_changes_rewrite_the_routing_table_and_removal_deletes_the_arm() {
    let fake = FakeApi::default();
    fake.put(II, ready_index());
    let ctx = context(&fake);
    let rm = rec_model(Some(10), "v1");
    seed(&fake, &rm);
    rec_model::reconcile(Arc::new(rm), Arc::clone(&ctx))
        .await
        .unwrap();
    assert!(fake.get(&format!("{DEPLOYMENTS}/movies-canary")).is_some());
    let table = routing(&fake);
    assert_eq!(table["arms"][1]["name"], "canary");
    assert_eq!(table["arms"][1]["bucketStart"], 9000);
    assert_eq!(status(&fake, RM)["canaryWeight"], 10);

    assert!(fake.events().iter().any(|e| e["reason"] == "CanaryRouted"));

    fake.clear_requests();
    // As the controller would see it: the stored object, status included, with a new spec.
    let mut rm: RecModel = serde_json::from_value(fake.get(RM).unwrap()).unwrap();
    rm.spec.canary.as_mut().unwrap().weight = 50;
    rec_model::reconcile(Arc::new(rm), Arc::clone(&ctx))
        .await
        .unwrap();
    assert_eq!(routing(&fake)["arms"][1]["bucketStart"], 5000);
    assert_eq!(status(&fake, RM)["canaryWeight"], 50);
    // The recorder folds a repeated reason into the existing Event (a PATCH of its series).
    let event_writes = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/events") || r.path.contains("/events/"))
        .count();
    assert_eq!(event_writes, 1, "one event write per weight change");

    fake.clear_requests();
    let rm = rec_model(None, "v1");
    rec_model::reconcile(Arc::new(rm), ctx).await.unwrap();
    let deleted = fake.deleted();
    assert!(
        deleted.contains(&format!("{DEPLOYMENTS}/movies-canary")),
        "{deleted:?}"
    );
    assert!(
        deleted.contains(&format!("{SERVICES}/movies-canary")),
        "{deleted:?}"
    );
    assert_eq!(routing(&fake)["arms"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_new_model_uri_rolls_the_stable_arm_to_the_new_version() {
    let fake = FakeApi::default();
    fake.put(II, ready_index());
    let ctx = context(&fake);
    let rm = rec_model(None, "v1");
    seed(&fake, &rm);
    rec_model::reconcile(Arc::new(rm), Arc::clone(&ctx))
        .await
        .unwrap();
    let mut rm = rec_model(None, "v7");
    rm.meta_mut().generation = Some(2);
    rec_model::reconcile(Arc::new(rm), ctx).await.unwrap();
    let d = fake.get(&format!("{DEPLOYMENTS}/movies-stable")).unwrap();
    assert_eq!(d["metadata"]["labels"]["recsys.dev/model-version"], "v7");
    assert!(d["spec"]["template"]["spec"]["containers"][0]["args"]
        .to_string()
        .contains("s3://artifacts/movies/v7"));
    let s = status(&fake, RM);
    assert_eq!(s["stableVersion"], "v7");
    assert_eq!(s["observedGeneration"], 2);
    assert_eq!(routing(&fake)["arms"][0]["modelVersion"], "v7");
}

#[tokio::test]
async fn a_model_being_deleted_is_left_to_the_garbage_collector() {
    let fake = FakeApi::default();
    fake.put(II, ready_index());
    let mut rm = rec_model(Some(10), "v1");
    rm.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    seed(&fake, &rm);
    rec_model::reconcile(Arc::new(rm.clone()), context(&fake))
        .await
        .unwrap();
    assert!(fake.requests().is_empty(), "no API calls while deleting");
    // Every child carries a controller owner reference, which is what lets the collector
    // remove them.
    let d = recsys_operator::builders::serving::deployment(
        &rm,
        recsys_operator::builders::serving::Arm::Canary,
        "s3://x/v2",
        "s3://i",
    );
    let owner = &d.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        ("uid-rm", Some(true))
    );
}

fn index(recall_target: f64) -> ItemIndex {
    serde_json::from_value(json!({
        "apiVersion": "recsys.dev/v1alpha1",
        "kind": "ItemIndex",
        "metadata": {"name": "movies-ivf", "namespace": "recsys", "uid": "uid-ii", "generation": 1},
        "spec": {"modelUri": "s3://artifacts/movies/v1", "type": "IVF", "nlist": 1024,
                 "recallTarget": recall_target},
    }))
    .unwrap()
}

fn finish_job(fake: &FakeApi, ii: &ItemIndex, recall: f64) {
    let job = format!(
        "/apis/batch/v1/namespaces/recsys/jobs/{}",
        index_job::job_name(ii)
    );
    let mut j = fake.get(&job).unwrap();
    j["status"] = json!({"succeeded": 1});
    fake.put(&job, j);
    let message = format!(
        "{{\"items\":1682,\"recall\":{recall},\"artifactUri\":\"s3://artifacts/movies/v1/index/x\",\"buildSeconds\":2.5}}"
    );
    fake.put(
        "/api/v1/namespaces/recsys/pods/build-pod",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "build-pod"},
               "status": {"containerStatuses": [{"name": "build", "image": "x", "imageID": "",
                 "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "message": message}}}]}}),
    );
}

#[tokio::test]
async fn an_index_build_runs_as_a_job_and_its_result_lands_in_status() {
    let fake = FakeApi::default();
    let ii = index(0.95);
    fake.put(II, serde_json::to_value(&ii).unwrap());
    let ctx = context(&fake);
    item_index::reconcile(Arc::new(ii.clone()), Arc::clone(&ctx))
        .await
        .unwrap();
    let job_path = format!(
        "/apis/batch/v1/namespaces/recsys/jobs/{}",
        index_job::job_name(&ii)
    );
    assert!(fake.applied().contains(&job_path));
    assert_eq!(status(&fake, II)["phase"], "Building");

    finish_job(&fake, &ii, 0.97);
    let ii = serde_json::from_value::<ItemIndex>(fake.get(II).unwrap()).unwrap();
    fake.clear_requests();
    item_index::reconcile(Arc::new(ii), ctx).await.unwrap();
    assert!(
        !fake.applied().contains(&job_path),
        "the Job exists; not re-applied"
    );
    let s = status(&fake, II);
    assert_eq!(s["phase"], "Ready");
    assert_eq!(s["items"], 1682);
    assert_eq!(s["recall"], 0.97);
    assert_eq!(condition(&s, "Ready"), ("True".into(), "Published".into()));
    assert_eq!(fake.events()[0]["reason"], "Published");
}

#[tokio::test]
async fn an_index_below_its_recall_target_is_degraded_and_never_served() {
    let fake = FakeApi::default();
    let ii = index(0.99);
    fake.put(II, serde_json::to_value(&ii).unwrap());
    let ctx = context(&fake);
    item_index::reconcile(Arc::new(ii.clone()), Arc::clone(&ctx))
        .await
        .unwrap();
    finish_job(&fake, &ii, 0.93);
    let ii = serde_json::from_value::<ItemIndex>(fake.get(II).unwrap()).unwrap();
    item_index::reconcile(Arc::new(ii), Arc::clone(&ctx))
        .await
        .unwrap();
    let s = status(&fake, II);
    assert_eq!(s["phase"], "Degraded");
    assert_eq!(
        condition(&s, "Degraded"),
        ("True".into(), "RecallBelowTarget".into())
    );
    let warning = fake
        .events()
        .into_iter()
        .find(|e| e["reason"] == "RecallBelowTarget")
        .expect("a warning event");
    assert_eq!(warning["type"], "Warning");

    // A RecModel pointing at it keeps waiting.
    let index: ItemIndex = serde_json::from_value(fake.get(II).unwrap()).unwrap();
    assert_eq!(rec_model::ready_index_uri(&index), None);
}
