//! The RecModel's status and events, computed from what the reconcile observed.

use super::plan::{CanaryPlan, Rollout};
use super::Error;
use crate::builders::version_of;
use crate::controllers::apply::{apply_status, Collisions};
use crate::controllers::{conditions, Context};
use crate::crd::v1alpha1::{condition, AppliedArm, RecModel, RecModelStatus};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::time::Duration;

/// Everything the status is computed from.
pub struct Observed {
    /// What the stable Deployment was applied with.
    pub stable: AppliedArm,
    pub stable_rollout: Rollout,
    pub canary: CanaryPlan,
    pub canary_rollout: Rollout,
    /// Percent of users the routing table written in this reconcile sends to the canary.
    pub routed_canary_weight: u32,
    pub router_rollout: Rollout,
    pub collisions: Collisions,
    pub now: Timestamp,
    /// What the spec, a promotion and an experiment asked for.
    pub intent: super::Intent,
}

/// Condition type saying the stable arm runs a promoted version the spec does not name.
pub const PROMOTED: &str = "Promoted";

pub fn status(rm: &RecModel, old: &RecModelStatus, o: &Observed) -> RecModelStatus {
    let generation = rm.metadata.generation;
    let mut status = old.clone();
    status.common.observed_generation = generation;
    status.stable_arm = Some(o.stable.clone());
    let stable_target = version_of(&o.stable.model_uri);
    // Only a finished rollout changes what is reported as running.
    if o.stable_rollout.caught_up && o.stable_rollout.version.as_deref() == Some(&stable_target) {
        status.stable_version = Some(stable_target.clone());
    }
    status.stable_ready_replicas = o.stable_rollout.ready;
    status.canary_weight = o.routed_canary_weight;
    status.canary_draining_since = None;
    match &o.canary {
        CanaryPlan::Apply(arm) => {
            status.canary_arm = Some(arm.clone());
            status.canary_ready_replicas = o.canary_rollout.ready;
            status.canary_version = o
                .canary_rollout
                .caught_up
                .then(|| version_of(&arm.model_uri));
        }
        CanaryPlan::Drain { since } => {
            status.canary_draining_since = Some(since.to_string());
            status.canary_version = None;
        }
        CanaryPlan::Remove | CanaryPlan::Absent | CanaryPlan::WaitForIndex => {
            status.canary_arm = None;
            status.canary_version = None;
            status.canary_ready_replicas = 0;
        }
    }

    let wanted_uri = &o.intent.stable_uri;
    let spec_version = version_of(wanted_uri);
    let stable_done = o.stable_rollout.caught_up
        && &o.stable.model_uri == wanted_uri
        && status.stable_version.as_deref() == Some(&spec_version);
    let canary_done = match (&o.intent.canary, &o.canary) {
        (None, CanaryPlan::Absent | CanaryPlan::Remove) => true,
        (Some((_, w)), CanaryPlan::Apply(_)) => o.routed_canary_weight == *w,
        _ => false,
    };
    // The experiment whose treatment the table written now routes.
    status.experiment = match (&o.intent.experiment, o.routed_canary_weight) {
        (Some((name, _)), w) if w > 0 => Some(name.clone()),
        _ => None,
    };
    status.promoted_by = o.intent.promotion.as_ref().map(|p| p.experiment.clone());
    status.canary_by = match (&o.intent.canary_by, o.routed_canary_weight) {
        (Some(schedule), w) if w > 0 => Some(schedule.clone()),
        _ => None,
    };
    let router_done = o.router_rollout.caught_up;
    let collided = !o.collisions.0.is_empty();
    let ready = stable_done && canary_done && router_done && !collided;

    let (reason, message) = if collided {
        ("NameCollision", o.collisions.message())
    } else if ready {
        ("Serving", serving_message(&status))
    } else if &o.stable.model_uri != wanted_uri {
        (
            "BuildingIndex",
            format!(
                "waiting for the index of {spec_version}; {}",
                serving_message(&status)
            ),
        )
    } else if !stable_done {
        (
            "RollingOut",
            format!(
                "stable {stable_target}: {}/{} pods ready and updated",
                o.stable_rollout.ready, o.stable_rollout.desired
            ),
        )
    } else if !canary_done {
        let why = match &o.canary {
            CanaryPlan::WaitForIndex => "canary waits for its index".to_owned(),
            CanaryPlan::Drain { .. } => "canary out of the routing table, draining".to_owned(),
            CanaryPlan::Remove => "removing the old canary".to_owned(),
            _ => format!(
                "canary: {}/{} pods ready; routed once all are",
                o.canary_rollout.ready, o.canary_rollout.desired
            ),
        };
        ("CanaryPending", why)
    } else {
        (
            "RouterRollingOut",
            format!(
                "router: {}/{} pods ready",
                o.router_rollout.ready, o.router_rollout.desired
            ),
        )
    };
    let c = &mut status.common.conditions;
    conditions::set(c, condition::READY, ready, reason, &message, generation);
    conditions::set(
        c,
        condition::PROGRESSING,
        !ready && !collided,
        if ready { "Stable" } else { reason },
        if ready {
            String::new()
        } else {
            message.clone()
        },
        generation,
    );
    conditions::set(
        c,
        condition::DEGRADED,
        collided,
        if collided {
            "NameCollision"
        } else {
            "AsExpected"
        },
        if collided { message } else { String::new() },
        generation,
    );
    match &o.intent.promotion {
        Some(p) => conditions::set(
            c,
            PROMOTED,
            true,
            "ExperimentPromoted",
            format!(
                "serving {} as promoted by Experiment {} at {}; spec.modelUri still names {}: \
                 set it to {} in Git to make the promotion permanent",
                version_of(&p.to),
                p.experiment,
                p.at,
                version_of(&p.from),
                p.to
            ),
            generation,
        ),
        None => {
            if c.iter().any(|c| c.type_ == PROMOTED) {
                conditions::set(c, PROMOTED, false, "SpecVersion", "", generation);
            }
        }
    }
    status
}

fn serving_message(status: &RecModelStatus) -> String {
    let stable = status.stable_version.as_deref().unwrap_or("nothing yet");
    match (&status.canary_version, status.canary_weight) {
        (Some(v), w) if w > 0 => format!("serving {stable}; canary {v} at {w}% of users"),
        _ => format!("serving {stable}"),
    }
}

pub async fn events(
    rm: &RecModel,
    ctx: &Context,
    old: &RecModelStatus,
    new: &RecModelStatus,
    o: &Observed,
) {
    if old.stable_version != new.stable_version {
        let note = format!(
            "stable arm runs {} on every pod",
            new.stable_version.clone().unwrap_or_default()
        );
        ctx.event(rm, false, "StableVersionApplied", note).await;
    }
    if old.canary_weight != new.canary_weight {
        let note = match (&new.canary_arm, new.canary_weight) {
            (Some(arm), w) if w > 0 => {
                format!("canary {} at {w}% of users", version_of(&arm.model_uri))
            }
            _ => "no users routed to a canary".to_owned(),
        };
        ctx.event(rm, false, "CanaryRouted", note).await;
    }
    if !o.collisions.0.is_empty() {
        ctx.event(rm, true, "NameCollision", o.collisions.message())
            .await;
    }
}

/// Nothing can be served yet: say why, touch no workload.
/// The RecModel asks for an image or a Secret the policy does not allow: nothing is applied
/// or changed, Ready and Degraded say why, and a Warning event names it once per generation.
pub async fn refused(
    rm: &RecModel,
    ctx: &Context,
    ns: &str,
    old: &RecModelStatus,
    refusal: crate::controllers::policy::Refusal,
) -> Result<Action, Error> {
    let generation = rm.metadata.generation;
    let mut status = old.clone();
    status.common.observed_generation = generation;
    let c = &mut status.common.conditions;
    let (reason, message) = (refusal.reason, refusal.message.as_str());
    conditions::set(c, condition::READY, false, reason, message, generation);
    conditions::set(
        c,
        condition::PROGRESSING,
        false,
        reason,
        message,
        generation,
    );
    conditions::set(c, condition::DEGRADED, true, reason, message, generation);
    if !conditions::is_true(&old.common.conditions, condition::DEGRADED)
        || old.common.observed_generation != generation
    {
        ctx.event(rm, true, reason, refusal.message.clone()).await;
    }
    apply_status::<RecModel>(
        &Api::namespaced(ctx.client.clone(), ns),
        &rm.name_any(),
        serde_json::json!(status),
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

pub async fn waiting_for_index(
    rm: &RecModel,
    ctx: &Context,
    ns: &str,
    old: &RecModelStatus,
    message: String,
) -> Result<Action, Error> {
    let generation = rm.metadata.generation;
    let mut status = old.clone();
    status.common.observed_generation = generation;
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
        ctx.event(rm, false, "WaitingForIndex", message).await;
    }
    apply_status::<RecModel>(
        &Api::namespaced(ctx.client.clone(), ns),
        &rm.name_any(),
        serde_json::json!(status),
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(30)))
}
