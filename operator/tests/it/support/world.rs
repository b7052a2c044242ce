//! A RecModel's world in the fake API: its spec as a user applies it, its index published,
//! Deployments rolled out as the Deployment controller would, and readers of what the
//! operator wrote.

use super::fake_api::FakeApi;
use kube::runtime::events::{Recorder, Reporter};
use recsys_operator::builders::derived_index;
use recsys_operator::controllers::{rec_model, Context};
use recsys_operator::crd::v1alpha1::RecModel;
use recsys_operator::runtime::metrics::Metrics;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const NS: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys";
pub const RM: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys/recmodels/movies";
pub const II: &str = "/apis/recsys.dev/v1alpha1/namespaces/recsys/itemindexes/movies-ivf";
pub const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/recsys/deployments";
pub const SERVICES: &str = "/api/v1/namespaces/recsys/services";
pub const ROUTING: &str = "/api/v1/namespaces/recsys/configmaps/movies-routing";
pub const JOBS: &str = "/apis/batch/v1/namespaces/recsys/jobs";

pub fn context_with(fake: &FakeApi, router_reload: Duration) -> Arc<Context> {
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
        router_reload,
        prometheus_url: None,
        policy: Default::default(),
        network_policy_metrics_namespace: Some("monitoring".into()),
    })
}

pub fn context(fake: &FakeApi) -> Arc<Context> {
    context_with(fake, Duration::from_secs(3600))
}

pub fn uri(version: &str) -> String {
    format!("s3://artifacts/movies/{version}")
}

/// Stores a RecModel spec as a user's `kubectl apply` would: generation bumps on change.
pub fn apply_spec(fake: &FakeApi, model: &str, canary: Option<(&str, u32)>) {
    let mut spec = json!({"modelUri": uri(model), "itemIndexRef": "movies-ivf", "replicas": 2});
    if let Some((v, w)) = canary {
        spec["canary"] = json!({"modelUri": uri(v), "weight": w});
    }
    match fake.get(RM) {
        None => fake.put(
            RM,
            json!({"apiVersion": "recsys.dev/v1alpha1", "kind": "RecModel",
                   "metadata": {"name": "movies", "namespace": "recsys"}, "spec": spec}),
        ),
        Some(mut rm) => {
            if rm["spec"] != spec {
                rm["spec"] = spec;
                let g = rm["metadata"]["generation"].as_i64().unwrap();
                rm["metadata"]["generation"] = json!(g + 1);
                let uid = rm["metadata"]["uid"].clone();
                fake.put(RM, rm);
                assert_eq!(fake.get(RM).unwrap()["metadata"]["uid"], uid);
            }
        }
    }
}

/// What the controller's watch would hand it: the stored object.
pub fn stored_model(fake: &FakeApi) -> Arc<RecModel> {
    Arc::new(serde_json::from_value(fake.get(RM).unwrap()).unwrap())
}

pub async fn reconcile_model(fake: &FakeApi, ctx: &Arc<Context>) {
    rec_model::reconcile(stored_model(fake), Arc::clone(ctx))
        .await
        .unwrap();
}

/// A RecModel serving `model` with its index published and both Deployments rolled out, as
/// most tests start.
pub async fn serving(fake: &FakeApi, ctx: &Arc<Context>, model: &str) {
    ready_index(fake, model);
    apply_spec(fake, model, None);
    reconcile_model(fake, ctx).await;
    roll_out(fake, "movies-stable");
    roll_out(fake, "movies-router");
    reconcile_model(fake, ctx).await;
}

/// The referenced index, published for `model`.
pub fn ready_index(fake: &FakeApi, model: &str) {
    fake.put(
        II,
        json!({"apiVersion": "recsys.dev/v1alpha1", "kind": "ItemIndex",
               "metadata": {"name": "movies-ivf", "namespace": "recsys"},
               "spec": {"modelUri": uri(model), "type": "Flat"}}),
    );
    publish(fake, II, model);
}

pub fn publish(fake: &FakeApi, path: &str, model: &str) {
    fake.set_status(
        path,
        json!({"phase": "Ready", "artifactUri": format!("{}/index/x", uri(model)),
               "artifactModelUri": uri(model),
               "conditions": [{"type": "Ready", "status": "True", "reason": "Published",
                               "message": "", "lastTransitionTime": "2026-11-26T00:00:00Z"}]}),
    );
}

pub fn derived_path(fake: &FakeApi, model: &str) -> String {
    let rm = stored_model(fake);
    format!("{NS}/itemindexes/{}", derived_index::name(&rm, &uri(model)))
}

/// The Deployment controller finishing a rollout of the current generation.
pub fn roll_out(fake: &FakeApi, deployment: &str) {
    let path = format!("{DEPLOYMENTS}/{deployment}");
    let d = fake.get(&path).unwrap();
    let n = d["spec"]["replicas"].as_i64().unwrap_or(1);
    fake.set_status(
        &path,
        json!({"observedGeneration": d["metadata"]["generation"], "replicas": n,
               "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n}),
    );
}

pub fn status(fake: &FakeApi, path: &str) -> Value {
    fake.get(path).unwrap()["status"].clone()
}

pub fn condition(status: &Value, type_: &str) -> (String, String) {
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

pub fn args(fake: &FakeApi, deployment: &str) -> String {
    fake.get(&format!("{DEPLOYMENTS}/{deployment}")).unwrap()["spec"]["template"]["spec"]
        ["containers"][0]["args"]
        .to_string()
}

pub fn routing(fake: &FakeApi) -> Value {
    let cm = fake.get(ROUTING).unwrap();
    serde_json::from_str(cm["data"]["routing.json"].as_str().unwrap()).unwrap()
}

pub fn reasons(fake: &FakeApi) -> Vec<String> {
    fake.events()
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or("").to_owned())
        .collect()
}
