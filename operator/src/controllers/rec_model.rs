//! RecModel: waits for its ItemIndex, then applies the serving arms, the router with its
//! routing table, autoscaling and disruption budgets, and reports what is being served.

use super::apply::{apply, apply_status, delete_if_present};
use super::{conditions, Context, Error};
use crate::builders::serving::{self, Arm};
use crate::builders::{router, scaling, version_of};
use crate::crd::v1alpha1::{condition, ItemIndex, RecModel};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub const CONTROLLER: &str = "recmodel";

/// The artifact URI of `index` when it is Ready to serve.
pub fn ready_index_uri(index: &ItemIndex) -> Option<String> {
    let status = index.status.as_ref()?;
    conditions::is_true(&status.common.conditions, condition::READY)
        .then(|| status.artifact_uri.clone())
        .flatten()
}

pub async fn reconcile(rm: Arc<RecModel>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.start(CONTROLLER);
    if rm.metadata.deletion_timestamp.is_some() {
        // Children carry owner references; the garbage collector removes them.
        return Ok(Action::await_change());
    }
    let ns = rm.namespace().ok_or_else(|| Error::MissingNamespace {
        kind: "RecModel",
        name: rm.name_any(),
    })?;
    let client = ctx.client.clone();
    let name = rm.name_any();
    let old = rm.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.common.observed_generation = rm.metadata.generation;
    let generation = rm.metadata.generation;

    let index = Api::<ItemIndex>::namespaced(client.clone(), &ns)
        .get_opt(&rm.spec.item_index_ref)
        .await?;
    let Some(index_uri) = index.as_ref().and_then(ready_index_uri) else {
        let message = match &index {
            None => format!("ItemIndex {} does not exist", rm.spec.item_index_ref),
            Some(_) => format!("ItemIndex {} is not Ready", rm.spec.item_index_ref),
        };
        let c = &mut status.common.conditions;
        conditions::set(
            c,
            condition::READY,
            false,
            "WaitingForIndex",
            &message,
            generation,
        );
        conditions::set(
            c,
            condition::PROGRESSING,
            true,
            "WaitingForIndex",
            &message,
            generation,
        );
        conditions::set(
            c,
            condition::DEGRADED,
            false,
            "WaitingForIndex",
            "",
            generation,
        );
        if !conditions::is_true(&old.common.conditions, condition::PROGRESSING)
            || old.common.observed_generation != generation
        {
            ctx.event(&*rm, false, "WaitingForIndex", message).await;
        }
        apply_status::<RecModel>(
            &Api::namespaced(client, &ns),
            &name,
            serde_json::json!(status),
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };

    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    let mut applied = Vec::new();
    for (arm, uri) in serving::arms(&rm) {
        applied.push(
            apply(
                &deployments,
                &serving::deployment(&rm, arm, uri, &index_uri),
            )
            .await?,
        );
        apply(&services, &serving::service(&rm, arm)).await?;
    }
    if rm.spec.canary.is_none() {
        delete_if_present(&deployments, &serving::name(&rm, Arm::Canary)).await?;
        delete_if_present(&services, &serving::name(&rm, Arm::Canary)).await?;
    }
    let configmap = router::configmap(&rm).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &ns),
        &configmap,
    )
    .await?;
    applied.push(apply(&deployments, &router::deployment(&rm)).await?);
    apply(&services, &router::service(&rm)).await?;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns);
    match scaling::hpa(&rm) {
        Some(hpa) => drop(apply(&hpas, &hpa).await?),
        None => delete_if_present(&hpas, &serving::name(&rm, Arm::Stable)).await?,
    }
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns);
    let wanted = scaling::pdbs(&rm);
    for pdb in &wanted {
        apply(&pdbs, pdb).await?;
    }
    let stable_pdb = serving::name(&rm, Arm::Stable);
    if !wanted
        .iter()
        .any(|p| p.metadata.name.as_deref() == Some(&stable_pdb))
    {
        delete_if_present(&pdbs, &stable_pdb).await?;
    }

    // What is actually running, from the Deployments the apply returned.
    let ready = |arm_name: &str| -> (i32, bool) {
        applied
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(arm_name))
            .and_then(|d| d.status.as_ref())
            .map_or((0, false), |s| {
                let ready = s.ready_replicas.unwrap_or(0);
                let want = s.replicas.unwrap_or(0);
                let updated = s.updated_replicas.unwrap_or(0);
                (ready, updated < want || ready < want)
            })
    };
    let (stable_ready, stable_rolling) = ready(&serving::name(&rm, Arm::Stable));
    let (canary_ready, canary_rolling) = ready(&serving::name(&rm, Arm::Canary));
    let (router_ready, _) = ready(&router::name(&rm));
    status.stable_version = Some(version_of(&rm.spec.model_uri));
    status.canary_version = rm.spec.canary.as_ref().map(|c| version_of(&c.model_uri));
    status.canary_weight = rm.spec.canary.as_ref().map_or(0, |c| c.weight);
    status.stable_ready_replicas = stable_ready;
    status.canary_ready_replicas = canary_ready;
    let serving_ok =
        stable_ready > 0 && router_ready > 0 && (rm.spec.canary.is_none() || canary_ready > 0);
    let rolling = stable_rolling || canary_rolling;
    let c = &mut status.common.conditions;
    let (reason, message) = if serving_ok {
        (
            "Serving",
            format!("serving {}", status.stable_version.as_deref().unwrap_or("")),
        )
    } else {
        (
            "PodsNotReady",
            "waiting for serving and router pods to become ready".into(),
        )
    };
    conditions::set(c, condition::READY, serving_ok, reason, message, generation);
    conditions::set(
        c,
        condition::PROGRESSING,
        rolling || !serving_ok,
        if rolling { "RollingOut" } else { "Stable" },
        "",
        generation,
    );
    conditions::set(c, condition::DEGRADED, false, "AsExpected", "", generation);

    if old.stable_version != status.stable_version {
        let note = format!(
            "stable arm serves {}",
            status.stable_version.clone().unwrap_or_default()
        );
        ctx.event(&*rm, false, "StableVersionApplied", note).await;
    }
    if old.canary_weight != status.canary_weight || old.canary_version != status.canary_version {
        let note = format!(
            "canary {} at {}% of users",
            status
                .canary_version
                .clone()
                .unwrap_or_else(|| "none".into()),
            status.canary_weight
        );
        ctx.event(&*rm, false, "CanaryRouted", note).await;
    }
    apply_status::<RecModel>(
        &Api::namespaced(client, &ns),
        &name,
        serde_json::json!(status),
    )
    .await?;
    // Children's changes trigger reconciles through the watch; this is a safety net.
    Ok(Action::requeue(if serving_ok {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(15)
    }))
}

/// Retries with a delay; the error is counted by category and logged.
pub fn error_policy(rm: Arc<RecModel>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(CONTROLLER, error.category());
    tracing::warn!(recmodel = %rm.name_any(), error = %error, "reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
