//! RecModel: gives every served version an index built from its own item vectors, applies the
//! serving arms, the router with its routing table, autoscaling and disruption budgets, and
//! reports what is actually running.
//!
//! The steps: read (indexes, what was applied) → decide ([`plan`]) → apply (children it
//! owns, never an object of someone else's) → report ([`report`]). Honesty rules: a version
//! is reported only once its Deployment has rolled out completely; the canary is routed only
//! once its pods are ready, and leaves the routing table before its pods are removed.

mod intent;
pub mod plan;
mod report;

use super::apply::{apply_owned, apply_status, delete_owned, Collisions};
use super::{conditions, Context, Error};
use crate::builders::derived_index::{self, RECMODEL_LABEL};
use crate::builders::experiment::{self as experiments, read_promotion};
use crate::builders::router::{self, Routed};
use crate::builders::serving::{self, Arm};
use crate::builders::{network, retrain_canary, scaling, version_of};
use crate::crd::v1alpha1::{condition, AppliedArm, Experiment, ItemIndex, RecModel};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use plan::{CanaryInputs, CanaryPlan, Rollout, StablePlan};
use std::sync::Arc;
use std::time::Duration;

pub use intent::Intent;
pub use report::Observed;

/// What the RecModel should serve: its spec, a promotion recorded by an Experiment (dropped
/// here once Git names another version), and the experiment or RetrainSchedule canary
/// holding the second arm (a canary record dropped once it no longer applies).
async fn read_intent(
    ctx: &Context,
    rm: &RecModel,
    ns: &str,
    collisions: &mut Collisions,
) -> Result<Intent, Error> {
    let experiments = Api::<Experiment>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    let configmaps = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns);
    let uid = rm.uid().unwrap_or_default();
    let owned = |cm: Option<ConfigMap>| cm.filter(|cm| super::apply::is_controlled_by(cm, &uid));
    let name = experiments::promotion_name(rm);
    let stored = owned(configmaps.get_opt(&name).await?).and_then(|cm| read_promotion(&cm));
    let canary_name = retrain_canary::name(rm);
    let canary_record = owned(configmaps.get_opt(&canary_name).await?);
    let canary = canary_record.as_ref().and_then(retrain_canary::read);
    let unreadable = canary_record.is_some() && canary.is_none();
    let intent = intent::intent(rm, &experiments, stored.clone(), canary);
    if stored.is_some() && intent.promotion.is_none() {
        tracing::info!(recmodel = %rm.name_any(), "spec names a new version; promotion record removed");
        collisions.take(delete_owned(&configmaps, rm, &name).await?);
    }
    // A record that no longer applies, or that cannot be read, goes.
    if unreadable || intent.stale_retrain_canary {
        tracing::info!(recmodel = %rm.name_any(), "retrain canary record no longer applies; removed");
        collisions.take(delete_owned(&configmaps, rm, &canary_name).await?);
    }
    Ok(intent)
}

pub const CONTROLLER: &str = "recmodel";

/// The published index for `model_uri`: from the referenced ItemIndex when it was built from
/// that version, else from the RecModel's own ItemIndex for it (applied here, built by the
/// ItemIndex controller).
async fn index_for(
    api: &Api<ItemIndex>,
    rm: &RecModel,
    referenced: &ItemIndex,
    model_uri: &str,
    collisions: &mut Collisions,
) -> Result<Option<String>, Error> {
    if derived_index::referenced_covers(referenced, model_uri) {
        return Ok(derived_index::servable(referenced, model_uri));
    }
    let wanted = derived_index::item_index(rm, referenced, model_uri);
    let applied = collisions.take(apply_owned(api, rm, &wanted).await?);
    Ok(applied.and_then(|ii| derived_index::servable(&ii, model_uri)))
}

/// Applies one arm's Deployment and Service; the Deployment as the server returned it.
async fn apply_arm(
    ctx: &Context,
    rm: &RecModel,
    ns: &str,
    arm: Arm,
    applied: &AppliedArm,
    collisions: &mut Collisions,
) -> Result<Option<Deployment>, Error> {
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), ns);
    let services = Api::<Service>::namespaced(ctx.client.clone(), ns);
    let d = serving::deployment(rm, arm, &applied.model_uri, &applied.index_uri);
    let d = collisions.take(apply_owned(&deployments, rm, &d).await?);
    collisions.take(apply_owned(&services, rm, &serving::service(rm, arm)).await?);
    Ok(d)
}

async fn remove_arm(
    ctx: &Context,
    rm: &RecModel,
    ns: &str,
    arm: Arm,
    collisions: &mut Collisions,
) -> Result<(), Error> {
    let name = serving::name(rm, arm);
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), ns);
    let services = Api::<Service>::namespaced(ctx.client.clone(), ns);
    collisions.take(delete_owned(&deployments, rm, &name).await?);
    collisions.take(delete_owned(&services, rm, &name).await?);
    Ok(())
}

/// Autoscaler and disruption budgets of the stable arm.
async fn apply_scaling(
    ctx: &Context,
    rm: &RecModel,
    ns: &str,
    collisions: &mut Collisions,
) -> Result<(), Error> {
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), ns);
    match scaling::hpa(rm) {
        Some(hpa) => drop(collisions.take(apply_owned(&hpas, rm, &hpa).await?)),
        None => {
            drop(collisions.take(delete_owned(&hpas, rm, &serving::name(rm, Arm::Stable)).await?))
        }
    }
    let pdbs = Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), ns);
    let wanted = scaling::pdbs(rm);
    for pdb in &wanted {
        collisions.take(apply_owned(&pdbs, rm, pdb).await?);
    }
    let stable_pdb = serving::name(rm, Arm::Stable);
    if !wanted
        .iter()
        .any(|p| p.metadata.name.as_deref() == Some(&stable_pdb))
    {
        collisions.take(delete_owned(&pdbs, rm, &stable_pdb).await?);
    }
    Ok(())
}

/// The data plane's NetworkPolicies, when enabled; removed when disabled.
async fn apply_network_policies(
    ctx: &Context,
    rm: &RecModel,
    ns: &str,
    collisions: &mut Collisions,
) -> Result<(), Error> {
    let api = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), ns);
    match &ctx.network_policy_metrics_namespace {
        Some(scraper) => {
            for p in network::policies(rm, scraper) {
                collisions.take(apply_owned(&api, rm, &p).await?);
            }
            if network::redis_policy(rm).is_none() {
                collisions.take(delete_owned(&api, rm, &network::redis_name(rm)).await?);
            }
        }
        None => {
            let names = [
                network::serving_name(rm),
                network::router_name(rm),
                network::redis_name(rm),
            ];
            for name in names {
                collisions.take(delete_owned(&api, rm, &name).await?);
            }
        }
    }
    Ok(())
}

/// Deletes the RecModel's own indexes that no arm wants or runs any more.
async fn prune_indexes(
    api: &Api<ItemIndex>,
    rm: &RecModel,
    keep: &[&str],
    collisions: &mut Collisions,
) -> Result<(), Error> {
    let selector = format!("{RECMODEL_LABEL}={}", rm.name_any());
    let keep: Vec<String> = keep.iter().map(|u| derived_index::name(rm, u)).collect();
    for ii in api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        let name = ii.name_any();
        if !keep.contains(&name) {
            collisions.take(delete_owned(api, rm, &name).await?);
        }
    }
    Ok(())
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
    let old = rm.status.clone().unwrap_or_default();
    // Policy first: a refused RecModel gets no pods, new or updated.
    let allowed = match ctx.policy.check_image(&rm.spec.image) {
        Ok(()) => ctx.policy.check_secrets(&ctx.client, &ns, &rm).await?,
        Err(refusal) => Err(refusal),
    };
    if let Err(refusal) = allowed {
        return report::refused(&rm, &ctx, &ns, &old, refusal).await;
    }
    let indexes = Api::<ItemIndex>::namespaced(ctx.client.clone(), &ns);
    let mut collisions = Collisions::default();

    // Read: the index of every version the spec asks for.
    let Some(referenced) = indexes.get_opt(&rm.spec.item_index_ref).await? else {
        let message = format!("ItemIndex {} does not exist", rm.spec.item_index_ref);
        return report::waiting_for_index(&rm, &ctx, &ns, &old, message).await;
    };
    let intent = read_intent(&ctx, &rm, &ns, &mut collisions).await?;
    let stable_uri = intent.stable_uri.clone();
    let stable_index = index_for(&indexes, &rm, &referenced, &stable_uri, &mut collisions).await?;
    let canary_uri = intent.canary.as_ref().map(|(uri, _)| uri.clone());
    let canary_index = match &canary_uri {
        Some(uri) => Some(index_for(&indexes, &rm, &referenced, uri, &mut collisions).await?),
        None => None,
    };

    // Decide.
    let arm_of = |uri: &str, index: Option<String>| {
        index.map(|index_uri| AppliedArm {
            model_uri: uri.to_owned(),
            index_uri,
        })
    };
    let stable = match plan::stable_plan(arm_of(&stable_uri, stable_index), old.stable_arm.as_ref())
    {
        StablePlan::Wait => {
            let message = format!(
                "no published index of {} yet (ItemIndex {})",
                version_of(&stable_uri),
                if derived_index::referenced_covers(&referenced, &stable_uri) {
                    rm.spec.item_index_ref.clone()
                } else {
                    derived_index::name(&rm, &stable_uri)
                }
            );
            return report::waiting_for_index(&rm, &ctx, &ns, &old, message).await;
        }
        StablePlan::Wanted(a) | StablePlan::Keep(a) => a,
    };
    let now = Timestamp::now();
    let canary = plan::canary_plan(&CanaryInputs {
        wanted: canary_uri
            .as_deref()
            .map(|uri| arm_of(uri, canary_index.clone().flatten())),
        applied: old.canary_arm.as_ref(),
        routed_weight: old.canary_weight,
        draining_since: old
            .canary_draining_since
            .as_deref()
            .and_then(|t| t.parse().ok()),
        now,
        drain: ctx.router_reload,
    });

    // Apply.
    let stable_rollout = apply_arm(&ctx, &rm, &ns, Arm::Stable, &stable, &mut collisions)
        .await?
        .as_ref()
        .map(plan::rollout)
        .unwrap_or_default();
    let mut canary_rollout = Rollout::default();
    match &canary {
        CanaryPlan::Apply(arm) => {
            // Sized by its share of users, whether the spec or an experiment asked for it.
            let sized = intent::with_canary(&rm, &intent);
            if let Some(d) = apply_arm(&ctx, &sized, &ns, Arm::Canary, arm, &mut collisions).await?
            {
                canary_rollout = plan::rollout(&d);
            }
        }
        CanaryPlan::Drain { .. } => {}
        CanaryPlan::Remove | CanaryPlan::Absent | CanaryPlan::WaitForIndex => {
            remove_arm(&ctx, &rm, &ns, Arm::Canary, &mut collisions).await?
        }
    }
    let routed_canary = routed_canary(&canary, &canary_rollout, &intent);
    let routed = Routed {
        stable_uri: &stable.model_uri,
        canary: routed_canary.as_ref().map(|(uri, w)| (uri.as_str(), *w)),
        salt: intent.experiment.as_ref().map(|(_, salt)| salt.as_str()),
    };
    let router_rollout = apply_router(&ctx, &rm, &ns, &routed, &mut collisions).await?;
    apply_scaling(&ctx, &rm, &ns, &mut collisions).await?;
    apply_network_policies(&ctx, &rm, &ns, &mut collisions).await?;
    let mut keep = vec![stable_uri.as_str(), stable.model_uri.as_str()];
    keep.extend(canary_uri.as_deref());
    if matches!(canary, CanaryPlan::Drain { .. }) {
        keep.extend(old.canary_arm.as_ref().map(|a| a.model_uri.as_str()));
    }
    prune_indexes(&indexes, &rm, &keep, &mut collisions).await?;

    // Report.
    let observed = Observed {
        stable,
        stable_rollout,
        canary,
        canary_rollout,
        routed_canary_weight: routed_canary.as_ref().map_or(0, |(_, w)| *w),
        router_rollout,
        collisions,
        now,
        intent,
    };
    let status = report::status(&rm, &old, &observed);
    report::events(&rm, &ctx, &old, &status, &observed).await;
    let settled = conditions::is_true(&status.common.conditions, condition::READY);
    let draining = status.canary_draining_since.is_some();
    apply_status::<RecModel>(
        &Api::namespaced(ctx.client.clone(), &ns),
        &rm.name_any(),
        serde_json::json!(status),
    )
    .await?;
    // Children's changes trigger reconciles through the watches; these are safety nets.
    Ok(Action::requeue(if draining {
        ctx.router_reload.max(Duration::from_secs(1))
    } else if settled {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(15)
    }))
}

/// The canary the router may send users to: only once its pods run the wanted version.
fn routed_canary(
    canary: &CanaryPlan,
    rollout: &Rollout,
    intent: &intent::Intent,
) -> Option<(String, u32)> {
    match canary {
        CanaryPlan::Apply(arm)
            if rollout.caught_up
                && rollout.version.as_deref() == Some(&version_of(&arm.model_uri)) =>
        {
            intent
                .canary
                .as_ref()
                .map(|(_, w)| (arm.model_uri.clone(), *w))
        }
        _ => None,
    }
}

/// The routing table, the router's Deployment and its Service; the router's rollout.
async fn apply_router(
    ctx: &Context,
    rm: &RecModel,
    ns: &str,
    routed: &Routed<'_>,
    collisions: &mut Collisions,
) -> Result<Rollout, Error> {
    let configmap = router::configmap(rm, routed).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let configmaps = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns);
    collisions.take(apply_owned(&configmaps, rm, &configmap).await?);
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), ns);
    let services = Api::<Service>::namespaced(ctx.client.clone(), ns);
    let rollout = collisions
        .take(apply_owned(&deployments, rm, &router::deployment(rm)).await?)
        .as_ref()
        .map(plan::rollout)
        .unwrap_or_default();
    collisions.take(apply_owned(&services, rm, &router::service(rm)).await?);
    Ok(rollout)
}

/// Retries with a delay; the error is counted by category and logged.
pub fn error_policy(rm: Arc<RecModel>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(CONTROLLER, error.category());
    tracing::warn!(recmodel = %rm.name_any(), error = %error, "reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
