//! Controller behaviour against the strict fake API server (generations, resourceVersions,
//! 409s, label selectors, status subresources, owner references and cascading deletes): what
//! gets applied, deleted and reported as Deployments roll out, canaries come and go, index
//! builds finish or their Jobs disappear, and names collide with objects of someone else.

use crate::support::fake_api::FakeApi;
use crate::support::world::*;
use kube::Resource;
use recsys_operator::builders::{derived_index, index_job};
use recsys_operator::controllers::{item_index, rec_model};
use recsys_operator::crd::v1alpha1::ItemIndex;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn ready_and_the_served_version_wait_until_every_deployment_has_caught_up() {
    let fake = FakeApi::default();
    ready_index(&fake, "v1");
    apply_spec(&fake, "v1", None);
    let ctx = context(&fake);
    reconcile_model(&fake, &ctx).await;

    let applied = fake.applied();
    for path in [
        format!("{DEPLOYMENTS}/movies-stable"),
        format!("{SERVICES}/movies-stable"),
        ROUTING.to_owned(),
        format!("{DEPLOYMENTS}/movies-router"),
        format!("{SERVICES}/movies"),
        "/apis/policy/v1/namespaces/recsys/poddisruptionbudgets/movies-stable".to_owned(),
        "/apis/networking.k8s.io/v1/namespaces/recsys/networkpolicies/movies-serving".to_owned(),
        "/apis/networking.k8s.io/v1/namespaces/recsys/networkpolicies/movies-router".to_owned(),
        format!("{RM}/status"),
    ] {
        assert!(applied.contains(&path), "{path} applied; got {applied:?}");
    }
    for r in fake
        .requests()
        .iter()
        .filter(|r| r.method == http::Method::PATCH)
    {
        if !r.path.contains("/events") {
            assert!(
                r.query.contains("fieldManager=recsys-operator"),
                "{}",
                r.query
            );
            assert!(r.query.contains("force=true"), "{}", r.query);
        }
    }
    assert!(
        !applied.iter().any(|p| p == RM),
        "the operator never writes the user's spec"
    );
    assert!(args(&fake, "movies-stable").contains(&format!("{}/index/x", uri("v1"))));
    let s = status(&fake, RM);
    assert!(s.get("stableVersion").is_none(), "nothing runs yet: {s}");
    assert_eq!(
        condition(&s, "Ready"),
        ("False".into(), "RollingOut".into())
    );

    // The stable pods come up but the router's do not: still not Ready.
    roll_out(&fake, "movies-stable");
    reconcile_model(&fake, &ctx).await;
    let s = status(&fake, RM);
    assert_eq!(s["stableVersion"], "v1");
    assert_eq!(condition(&s, "Ready").0, "False");
    roll_out(&fake, "movies-router");
    reconcile_model(&fake, &ctx).await;
    let s = status(&fake, RM);
    assert_eq!(condition(&s, "Ready"), ("True".into(), "Serving".into()));
    assert_eq!(s["stableReadyReplicas"], 2);
    assert_eq!(s["observedGeneration"], 1);
    assert!(reasons(&fake).contains(&"StableVersionApplied".to_owned()));

    // A scale change bumps the Deployment's generation: not Ready until the controller has
    // observed it, though every old count still looks fine.
    fake.clear_requests();
    let mut rm = fake.get(RM).unwrap();
    rm["spec"]["replicas"] = json!(3);
    rm["metadata"]["generation"] = json!(2);
    fake.put(RM, rm);
    reconcile_model(&fake, &ctx).await;
    let d = fake.get(&format!("{DEPLOYMENTS}/movies-stable")).unwrap();
    assert_eq!(d["metadata"]["generation"], 2, "the spec change bumped it");
    assert_eq!(condition(&status(&fake, RM), "Ready").0, "False");
    roll_out(&fake, "movies-stable");
    reconcile_model(&fake, &ctx).await;
    assert_eq!(condition(&status(&fake, RM), "Ready").0, "True");
    assert!(
        !reasons(&fake).contains(&"StableVersionApplied".to_owned()),
        "the version did not change"
    );
}

#[tokio::test]
async fn a_redis_policy_is_applied_while_the_spec_names_redis_pods_and_removed_after() {
    let fake = FakeApi::default();
    ready_index(&fake, "v1");
    apply_spec(&fake, "v1", None);
    let ctx = context(&fake);
    let policy = "/apis/networking.k8s.io/v1/namespaces/recsys/networkpolicies/movies-redis";
    with_spec(&fake, |s| {
        s["redis"] = json!({"urlSecretRef": {"name": "redis", "key": "url"},
                            "networkPolicy": {"podSelector": {"app": "redis"}}})
    });
    reconcile_model(&fake, &ctx).await;
    assert!(fake.applied().contains(&policy.to_owned()));
    let applied = fake.get(policy).unwrap();
    assert_eq!(
        applied["spec"]["podSelector"]["matchLabels"],
        json!({"app": "redis"})
    );
    assert_eq!(applied["spec"]["ingress"][0]["ports"][0]["port"], 6379);
    // Redis without the selector: the policy goes; the arms' and the router's stay.
    with_spec(&fake, |s| {
        s["redis"] = json!({"urlSecretRef": {"name": "redis", "key": "url"}})
    });
    fake.clear_requests();
    reconcile_model(&fake, &ctx).await;
    assert!(
        fake.deleted().contains(&policy.to_owned()),
        "{:?}",
        fake.deleted()
    );
    assert!(fake.get(policy).is_none());
    assert!(fake
        .get("/apis/networking.k8s.io/v1/namespaces/recsys/networkpolicies/movies-serving")
        .is_some());
}

#[tokio::test]
async fn a_new_version_gets_its_own_index_and_the_old_one_serves_until_it_has_rolled_out() {
    let fake = FakeApi::default();
    let ctx = context(&fake);
    serving(&fake, &ctx, "v1").await;

    // Git now says v2; the referenced index still holds v1's vectors.
    apply_spec(&fake, "v2", None);
    reconcile_model(&fake, &ctx).await;
    let derived = derived_path(&fake, "v2");
    let ii = fake.get(&derived).expect("an ItemIndex for v2");
    assert_eq!(ii["spec"]["modelUri"], uri("v2"));
    assert_eq!(
        ii["spec"]["type"], "Flat",
        "the referenced index's settings"
    );
    assert_eq!(
        ii["metadata"]["ownerReferences"][0]["uid"],
        fake.get(RM).unwrap()["metadata"]["uid"]
    );
    assert!(
        args(&fake, "movies-stable").contains(&uri("v1")),
        "v1 keeps serving"
    );
    let s = status(&fake, RM);
    assert_eq!(s["stableVersion"], "v1");
    assert_eq!(
        condition(&s, "Ready"),
        ("False".into(), "BuildingIndex".into())
    );

    // The v2 index is published: the stable arm rolls to v2 with it.
    publish(&fake, &derived, "v2");
    reconcile_model(&fake, &ctx).await;
    let a = args(&fake, "movies-stable");
    assert!(a.contains(&format!("{}/index/x", uri("v2"))), "{a}");
    assert_eq!(
        status(&fake, RM)["stableVersion"],
        "v1",
        "pods are still rolling"
    );
    roll_out(&fake, "movies-stable");
    reconcile_model(&fake, &ctx).await;
    let s = status(&fake, RM);
    assert_eq!(s["stableVersion"], "v2");
    assert_eq!(condition(&s, "Ready").0, "True");
    assert_eq!(routing(&fake)["arms"][0]["modelVersion"], "v2");
}

#[tokio::test]
async fn a_canary_is_routed_only_once_ready_and_unrouted_before_its_pods_are_deleted() {
    let fake = FakeApi::default();
    ready_index(&fake, "v1");
    apply_spec(&fake, "v1", Some(("v2", 10)));
    let ctx = context(&fake);
    reconcile_model(&fake, &ctx).await;
    roll_out(&fake, "movies-stable");
    roll_out(&fake, "movies-router");

    // No index of v2's vectors yet: no canary pods, nobody routed.
    assert!(fake.get(&format!("{DEPLOYMENTS}/movies-canary")).is_none());
    assert_eq!(routing(&fake)["arms"].as_array().unwrap().len(), 1);
    let derived = derived_path(&fake, "v2");
    publish(&fake, &derived, "v2");

    // Index ready: canary pods are created with v2's own index, still unrouted.
    reconcile_model(&fake, &ctx).await;
    let a = args(&fake, "movies-canary");
    assert!(a.contains(&format!("{}/index/x", uri("v2"))), "{a}");
    assert!(!a.contains(&format!("{}/index/x", uri("v1"))), "{a}");
    assert_eq!(routing(&fake)["arms"].as_array().unwrap().len(), 1);
    let s = status(&fake, RM);
    assert_eq!(s["canaryWeight"], 0);
    assert_eq!(
        condition(&s, "Ready"),
        ("False".into(), "CanaryPending".into())
    );

    // Canary pods ready: routed.
    roll_out(&fake, "movies-canary");
    reconcile_model(&fake, &ctx).await;
    let table = routing(&fake);
    assert_eq!(table["arms"][1]["name"], "canary");
    assert_eq!(table["arms"][1]["bucketStart"], 9000);
    let s = status(&fake, RM);
    assert_eq!(s["canaryWeight"], 10);
    assert_eq!(s["canaryVersion"], "v2");
    assert_eq!(condition(&s, "Ready").0, "True");
    assert!(reasons(&fake).contains(&"CanaryRouted".to_owned()));

    // Removed from the spec: first out of the routing table, pods untouched.
    fake.clear_requests();
    apply_spec(&fake, "v1", None);
    reconcile_model(&fake, &ctx).await;
    assert_eq!(routing(&fake)["arms"].as_array().unwrap().len(), 1);
    assert!(fake.get(&format!("{DEPLOYMENTS}/movies-canary")).is_some());
    assert!(fake.deleted().is_empty(), "{:?}", fake.deleted());
    let s = status(&fake, RM);
    assert_eq!(s["canaryWeight"], 0);
    assert!(s["canaryDrainingSince"].is_string(), "{s}");
    // Within the routers' reload window: still draining.
    reconcile_model(&fake, &ctx).await;
    assert!(fake.deleted().is_empty());

    // After it: the arm goes, and with it the v2 index the RecModel made.
    let ctx = context_with(&fake, Duration::ZERO);
    reconcile_model(&fake, &ctx).await;
    let deleted = fake.deleted();
    for path in [
        format!("{DEPLOYMENTS}/movies-canary"),
        format!("{SERVICES}/movies-canary"),
        derived.clone(),
    ] {
        assert!(deleted.contains(&path), "{path} deleted; got {deleted:?}");
    }
    let s = status(&fake, RM);
    assert!(
        s.get("canaryArm").is_none() && s.get("canaryDrainingSince").is_none(),
        "{s}"
    );
    assert_eq!(condition(&s, "Ready").0, "True");
}

#[tokio::test]
async fn a_name_collision_touches_nothing_and_reports_degraded() {
    let fake = FakeApi::default();
    ready_index(&fake, "v1");
    apply_spec(&fake, "v1", None);
    // Someone else's Deployment and Service happen to be called like our canary arm.
    let foreign = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "movies-canary", "namespace": "recsys"},
                         "spec": {"replicas": 5, "selector": {}, "template": {}}});
    fake.put(&format!("{DEPLOYMENTS}/movies-canary"), foreign.clone());
    fake.put(
        &format!("{SERVICES}/movies"),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "movies", "namespace": "recsys"}, "spec": {"ports": []}}),
    );
    let ctx = context(&fake);
    reconcile_model(&fake, &ctx).await;

    assert!(fake.deleted().is_empty(), "{:?}", fake.deleted());
    let d = fake.get(&format!("{DEPLOYMENTS}/movies-canary")).unwrap();
    assert_eq!(d["spec"], foreign["spec"]);
    assert!(!fake.applied().contains(&format!("{SERVICES}/movies")));
    let svc = fake.get(&format!("{SERVICES}/movies")).unwrap();
    assert_eq!(
        svc["spec"]["ports"],
        json!([]),
        "the foreign Service is untouched"
    );
    let s = status(&fake, RM);
    assert_eq!(
        condition(&s, "Degraded"),
        ("True".into(), "NameCollision".into())
    );
    assert_eq!(condition(&s, "Ready").0, "False");
    let message = &s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap()["message"];
    assert!(
        message.as_str().unwrap().contains("Service movies"),
        "{message}"
    );
    let warning = fake
        .events()
        .into_iter()
        .find(|e| e["reason"] == "NameCollision")
        .expect("a warning event");
    assert_eq!(warning["type"], "Warning");
}

#[tokio::test]
async fn a_model_waits_for_its_index_without_creating_workloads() {
    let fake = FakeApi::default();
    apply_spec(&fake, "v1", None);
    fake.put(
        II,
        json!({"apiVersion": "recsys.dev/v1alpha1", "kind": "ItemIndex",
               "metadata": {"name": "movies-ivf", "namespace": "recsys"},
               "spec": {"modelUri": uri("v1"), "type": "Flat"}}),
    );
    let action = rec_model::reconcile(stored_model(&fake), context(&fake))
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
    apply_spec(&fake, "v1", None);
    rec_model::reconcile(stored_model(&fake), context(&fake))
        .await
        .unwrap();
    let message = status(&fake, RM)["conditions"][0]["message"].clone();
    assert_eq!(message, "ItemIndex movies-ivf does not exist");
}

#[tokio::test]
async fn a_deleted_model_takes_every_child_with_it() {
    let fake = FakeApi::default();
    ready_index(&fake, "v1");
    apply_spec(&fake, "v1", Some(("v2", 10)));
    let ctx = context(&fake);
    reconcile_model(&fake, &ctx).await;
    let derived = derived_path(&fake, "v2");
    assert!(fake.get(&derived).is_some());

    // While it is being deleted the controller makes no calls.
    let mut rm = (*stored_model(&fake)).clone();
    rm.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    fake.clear_requests();
    rec_model::reconcile(Arc::new(rm), Arc::clone(&ctx))
        .await
        .unwrap();
    assert!(fake.requests().is_empty(), "no API calls while deleting");

    // The collector follows the owner references.
    fake.remove(RM);
    for path in [
        format!("{DEPLOYMENTS}/movies-stable"),
        format!("{DEPLOYMENTS}/movies-router"),
        ROUTING.to_owned(),
        derived,
    ] {
        assert!(fake.get(&path).is_none(), "{path} survived its owner");
    }
    assert!(
        fake.get(II).is_some(),
        "the user's own ItemIndex is not ours"
    );
}

fn index(recall_target: f64, index_type: &str) -> Value {
    json!({"apiVersion": "recsys.dev/v1alpha1", "kind": "ItemIndex",
           "metadata": {"name": "movies-ivf", "namespace": "recsys"},
           "spec": {"modelUri": uri("v1"), "type": index_type, "nlist": 1024,
                    "recallTarget": recall_target}})
}

fn stored_index(fake: &FakeApi) -> Arc<ItemIndex> {
    Arc::new(serde_json::from_value(fake.get(II).unwrap()).unwrap())
}

fn job_path(ii: &ItemIndex) -> String {
    format!("{JOBS}/{}", index_job::job_name(ii))
}

/// The Job's pod finishes and writes its termination message.
fn finish_job(fake: &FakeApi, ii: &ItemIndex, recall: f64) {
    fake.set_status(&job_path(ii), json!({"succeeded": 1}));
    let message = format!(
        "{{\"items\":1682,\"recall\":{recall},\"artifactUri\":\"{}/index/built\",\"buildSeconds\":2.5}}",
        uri("v1")
    );
    fake.put(
        "/api/v1/namespaces/recsys/pods/build-pod",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "build-pod", "namespace": "recsys",
                            "labels": {"batch.kubernetes.io/job-name": index_job::job_name(ii)}},
               "status": {"containerStatuses": [{"name": "build", "image": "x", "imageID": "",
                 "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "message": message}}}]}}),
    );
    // A pod of another Job, whose message must not be read (the list is label-selected).
    fake.put(
        "/api/v1/namespaces/recsys/pods/other-pod",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "other-pod", "namespace": "recsys",
                            "labels": {"batch.kubernetes.io/job-name": "other"}},
               "status": {"containerStatuses": [{"name": "build", "image": "x", "imageID": "",
                 "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "message": "{\"items\":1,\"recall\":0.1,\"artifactUri\":\"wrong\",\"buildSeconds\":1}"}}}]}}),
    );
}

#[tokio::test]
async fn an_index_build_runs_once_and_a_ttl_deleted_job_causes_no_rebuild() {
    let fake = FakeApi::default();
    fake.put(II, index(0.95, "IVF"));
    let ctx = context(&fake);
    item_index::reconcile(stored_index(&fake), Arc::clone(&ctx))
        .await
        .unwrap();
    let ii = stored_index(&fake);
    let job = job_path(&ii);
    assert!(fake.applied().contains(&job));
    assert_eq!(status(&fake, II)["phase"], "Building");

    finish_job(&fake, &ii, 0.97);
    fake.clear_requests();
    item_index::reconcile(stored_index(&fake), Arc::clone(&ctx))
        .await
        .unwrap();
    assert!(
        !fake.applied().contains(&job),
        "the Job exists; not re-applied"
    );
    let s = status(&fake, II);
    assert_eq!(s["phase"], "Ready");
    assert_eq!(s["items"], 1682);
    assert_eq!(s["recall"], 0.97);
    assert_eq!(s["artifactUri"], format!("{}/index/built", uri("v1")));
    assert_eq!(s["artifactModelUri"], uri("v1"));
    assert_eq!(condition(&s, "Ready"), ("True".into(), "Published".into()));
    assert_eq!(fake.events()[0]["reason"], "Published");

    // The TTL controller deletes the finished Job; the owns-watch wakes the controller.
    fake.remove(&job);
    fake.clear_requests();
    item_index::reconcile(stored_index(&fake), Arc::clone(&ctx))
        .await
        .unwrap();
    assert!(fake.get(&job).is_none(), "no new Job");
    assert!(fake.applied().is_empty(), "{:?}", fake.applied());
    assert_eq!(status(&fake, II)["phase"], "Ready");

    // A new spec builds again, and the published index stays servable meanwhile.
    let mut spec = fake.get(II).unwrap();
    spec["spec"]["type"] = json!("IVFSQ8");
    spec["metadata"]["generation"] = json!(2);
    fake.put(II, spec);
    item_index::reconcile(stored_index(&fake), ctx)
        .await
        .unwrap();
    let ii = stored_index(&fake);
    assert!(fake.get(&job_path(&ii)).is_some(), "a Job for the new spec");
    let s = status(&fake, II);
    assert_eq!(s["phase"], "Building");
    assert_eq!(
        derived_index::servable(&ii, &uri("v1")),
        Some(format!("{}/index/built", uri("v1")))
    );
}

#[tokio::test]
async fn a_model_keeps_reconciling_on_its_index_while_a_new_build_runs() {
    let fake = FakeApi::default();
    ready_index(&fake, "v1");
    apply_spec(&fake, "v1", None);
    let ctx = context(&fake);
    reconcile_model(&fake, &ctx).await;
    // The index is rebuilding (new settings): Building, last artifact kept.
    let mut s = status(&fake, II);
    s["phase"] = json!("Building");
    s["conditions"][0]["status"] = json!("False");
    fake.set_status(II, s);
    let mut rm = fake.get(RM).unwrap();
    rm["spec"]["replicas"] = json!(4);
    rm["metadata"]["generation"] = json!(2);
    fake.put(RM, rm);
    reconcile_model(&fake, &ctx).await;
    let d = fake.get(&format!("{DEPLOYMENTS}/movies-stable")).unwrap();
    assert_eq!(d["spec"]["replicas"], 4, "scaling still reconciles");
    assert!(args(&fake, "movies-stable").contains(&format!("{}/index/x", uri("v1"))));
}

#[tokio::test]
async fn a_foreign_job_of_the_builds_name_is_left_alone() {
    let fake = FakeApi::default();
    fake.put(II, index(0.95, "IVF"));
    let ii = stored_index(&fake);
    fake.put(
        &job_path(&ii),
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": index_job::job_name(&ii), "namespace": "recsys"},
               "spec": {"template": {}}, "status": {"succeeded": 1}}),
    );
    item_index::reconcile(ii, context(&fake)).await.unwrap();
    let s = status(&fake, II);
    assert_eq!(
        condition(&s, "Degraded"),
        ("True".into(), "NameCollision".into())
    );
    assert!(s.get("artifactUri").is_none());
}

#[tokio::test]
async fn an_index_below_its_recall_target_is_degraded_and_never_served() {
    let fake = FakeApi::default();
    fake.put(II, index(0.99, "IVF"));
    let ctx = context(&fake);
    item_index::reconcile(stored_index(&fake), Arc::clone(&ctx))
        .await
        .unwrap();
    finish_job(&fake, &stored_index(&fake), 0.93);
    item_index::reconcile(stored_index(&fake), Arc::clone(&ctx))
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
    assert_eq!(
        derived_index::servable(&stored_index(&fake), &uri("v1")),
        None
    );
}

/// A context whose policy admits only the project's images and Secrets labelled for recsys.
fn guarded(fake: &FakeApi) -> Arc<recsys_operator::controllers::Context> {
    let ctx = context(fake);
    let mut ctx = Arc::try_unwrap(ctx).unwrap_or_else(|_| unreachable!("one owner"));
    ctx.policy = recsys_operator::controllers::policy::Policy {
        allowed_images: vec!["ghcr.io/recsys/dataplane:".into()],
        secret_label: Some(("recsys.dev/usable".into(), "true".into())),
    };
    Arc::new(ctx)
}

fn secret(fake: &FakeApi, ns: &str, name: &str, labelled: bool) {
    let labels = if labelled {
        json!({"recsys.dev/usable": "true"})
    } else {
        json!({})
    };
    fake.put(
        &format!("/api/v1/namespaces/{ns}/secrets/{name}"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": ns, "labels": labels},
               "data": {"tokens": "c2VjcmV0"}}),
    );
}

fn with_spec(fake: &FakeApi, edit: impl FnOnce(&mut Value)) {
    let mut rm = fake.get(RM).unwrap();
    edit(&mut rm["spec"]);
    let g = rm["metadata"]["generation"].as_i64().unwrap();
    rm["metadata"]["generation"] = json!(g + 1);
    fake.put(RM, rm);
}

#[tokio::test]
async fn unlabelled_foreign_or_missing_secrets_and_other_images_are_refused() {
    let fake = FakeApi::default();
    ready_index(&fake, "v1");
    apply_spec(&fake, "v1", None);
    let ctx = guarded(&fake);
    // A Secret of another namespace, labelled, does not count: names resolve in the
    // RecModel's own namespace only.
    secret(&fake, "other", "tokens", true);
    with_spec(&fake, |s| s["auth"] = json!({"tokenSecretName": "tokens"}));
    let mut warnings = Vec::new();
    for (setup, reason, says) in [
        (
            None,
            "SecretNotAllowed",
            "Secret recsys/tokens does not exist",
        ),
        (Some(false), "SecretNotAllowed", "does not carry the label"),
    ] {
        if let Some(labelled) = setup {
            secret(&fake, "recsys", "tokens", labelled);
        }
        fake.clear_requests();
        reconcile_model(&fake, &ctx).await;
        assert_eq!(
            fake.applied(),
            vec![format!("{RM}/status")],
            "nothing but status"
        );
        let s = status(&fake, RM);
        assert_eq!(condition(&s, "Ready"), ("False".into(), reason.into()));
        assert_eq!(condition(&s, "Degraded").0, "True");
        let message = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["message"]
            .to_string();
        assert!(message.contains(says), "{message}");
        warnings.extend(fake.events());
    }
    assert!(warnings
        .iter()
        .any(|e| e["reason"] == "SecretNotAllowed" && e["type"] == "Warning"));

    // Labelled in its namespace: admitted, and the pods mount it.
    secret(&fake, "recsys", "tokens", true);
    reconcile_model(&fake, &ctx).await;
    assert!(fake
        .applied()
        .contains(&format!("{DEPLOYMENTS}/movies-stable")));
    assert!(args(&fake, "movies-stable").contains("--auth-tokens-file"));

    // The TLS Secret is held to the same rule: unlabelled, refused; labelled, mounted.
    secret(&fake, "recsys", "movies-tls", false);
    with_spec(&fake, |s| s["tls"] = json!({"secretName": "movies-tls"}));
    fake.clear_requests();
    reconcile_model(&fake, &ctx).await;
    assert_eq!(fake.applied(), vec![format!("{RM}/status")]);
    assert_eq!(
        condition(&status(&fake, RM), "Ready"),
        ("False".into(), "SecretNotAllowed".into())
    );
    assert!(!args(&fake, "movies-stable").contains("--tls-cert"));
    secret(&fake, "recsys", "movies-tls", true);
    reconcile_model(&fake, &ctx).await;
    assert!(args(&fake, "movies-stable").contains("--tls-cert"));

    // Another image is refused before anything is read or written.
    with_spec(&fake, |s| {
        s["image"] = json!("docker.io/someone/miner:latest")
    });
    fake.clear_requests();
    reconcile_model(&fake, &ctx).await;
    assert_eq!(fake.applied(), vec![format!("{RM}/status")]);
    assert_eq!(
        condition(&status(&fake, RM), "Ready"),
        ("False".into(), "ImageNotAllowed".into())
    );
    let stable = fake.get(&format!("{DEPLOYMENTS}/movies-stable")).unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/recsys/dataplane:0.1.0",
        "the running pods keep the allowed image"
    );
}
