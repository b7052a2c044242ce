//! Experiment: Pending (the RecModel's second arm is being given the treatment, its index and
//! the experiment's salt) → Running (a look every interval: the arms' exact user-level sums and
//! operational guardrails from Prometheus, the always-valid decision rule) → Concluded, or
//! Paused while the split is broken. A promotion is written to an operator-owned ConfigMap
//! the RecModel controller reads — never to anyone's spec.

pub mod look;
pub mod prometheus;

use super::apply::{apply_owned, apply_status};
use super::{conditions, Context, Error};
use crate::builders::experiment::{self as build, parse_duration, Promotion};
use crate::builders::version_of;
use crate::crd::v1alpha1::{condition, phase, Experiment, ExperimentStatus, RecModel};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use look::{decision_name, reason_of, Durations, Observation};
use prometheus::{query, PromError};
use recsys_core::stats::decision::Decision;
use std::sync::Arc;
use std::time::Duration;

pub const CONTROLLER: &str = "experiment";
/// Condition type set while a sample-ratio mismatch holds the experiment.
pub const PAUSED: &str = "Paused";
/// The control and treatment arms' names in the routing table.
pub const CONTROL_ARM: &str = "stable";
pub const TREATMENT_ARM: &str = "canary";

fn promql_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The router replicas export the same Redis-backed sums, so `max` (not `sum`) over them.
pub fn users_query(salt: &str) -> String {
    format!(
        "max by (arm) (recsys_experiment_users{{salt=\"{}\"}})",
        promql_string(salt)
    )
}

pub fn sums_query(salt: &str) -> String {
    format!(
        "max by (arm, sum) (recsys_experiment_sum{{salt=\"{}\"}})",
        promql_string(salt)
    )
}

/// Reads both arms' sums and every operational guardrail.
async fn observe(base: &str, exp: &Experiment, salt: &str) -> Result<Observation, PromError> {
    let mut obs = Observation::default();
    for s in query(base, &users_query(salt)).await? {
        match s.labels.get("arm").map(String::as_str) {
            Some(CONTROL_ARM) => obs.control.n = s.value,
            Some(TREATMENT_ARM) => obs.treatment.n = s.value,
            _ => {}
        }
    }
    for s in query(base, &sums_query(salt)).await? {
        let (Some(a), Some(field)) = (s.labels.get("arm"), s.labels.get("sum")) else {
            continue;
        };
        match a.as_str() {
            CONTROL_ARM => obs.control.set(field, s.value),
            TREATMENT_ARM => obs.treatment.set(field, s.value),
            _ => {}
        }
    }
    for g in &exp.spec.guardrails {
        let Some(q) = &g.query else { continue };
        let mut values = [None, None];
        for (i, arm) in [CONTROL_ARM, TREATMENT_ARM].into_iter().enumerate() {
            let samples = query(base, &q.replace("$ARM", arm)).await?;
            // One number per arm; anything else is treated as missing, never guessed.
            if let [one] = samples.as_slice() {
                values[i] = Some(one.value);
            }
        }
        let pair = match values {
            [Some(c), Some(t)] => Some((c, t)),
            _ => None,
        };
        obs.operational.insert(g.name.clone(), pair);
    }
    Ok(obs)
}

fn set_conditions(status: &mut ExperimentStatus, generation: Option<i64>, degraded: Option<&str>) {
    let phase = status.phase.clone().unwrap_or_default();
    let reason = status.reason.clone().unwrap_or_default();
    let c = &mut status.common.conditions;
    let active = phase != phase::CONCLUDED;
    conditions::set(
        c,
        condition::PROGRESSING,
        active,
        if active { "Experimenting" } else { "Concluded" },
        reason.clone(),
        generation,
    );
    conditions::set(
        c,
        PAUSED,
        phase == phase::PAUSED,
        if phase == phase::PAUSED {
            "SampleRatioMismatch"
        } else {
            "SplitAsPlanned"
        },
        if phase == phase::PAUSED {
            reason
        } else {
            String::new()
        },
        generation,
    );
    conditions::set(
        c,
        condition::DEGRADED,
        degraded.is_some(),
        if degraded.is_some() {
            "MetricsUnavailable"
        } else {
            "AsExpected"
        },
        degraded.unwrap_or_default(),
        generation,
    );
}

async fn write(
    api: &Api<Experiment>,
    exp: &Experiment,
    mut status: ExperimentStatus,
    degraded: Option<&str>,
) -> Result<(), Error> {
    status.common.observed_generation = exp.metadata.generation;
    set_conditions(&mut status, exp.metadata.generation, degraded);
    apply_status(api, &exp.name_any(), serde_json::json!(status)).await?;
    Ok(())
}

fn seconds_between(from: &str, now: Timestamp) -> Option<f64> {
    let from: Timestamp = from.parse().ok()?;
    Some(now.duration_since(from).as_secs_f64())
}

pub async fn reconcile(exp: Arc<Experiment>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_at(exp, ctx, Timestamp::now()).await
}

/// One reconcile at time `now` (tests drive simulated time through here).
pub async fn reconcile_at(
    exp: Arc<Experiment>,
    ctx: Arc<Context>,
    now: Timestamp,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.start(CONTROLLER);
    let old = exp.status.clone().unwrap_or_default();
    if exp.metadata.deletion_timestamp.is_some() || old.phase.as_deref() == Some(phase::CONCLUDED) {
        return Ok(Action::await_change());
    }
    let ns = exp.namespace().ok_or_else(|| Error::MissingNamespace {
        kind: "Experiment",
        name: exp.name_any(),
    })?;
    let api = Api::<Experiment>::namespaced(ctx.client.clone(), &ns);
    let spec = &exp.spec;
    let mut status = old.clone();
    let interval = Duration::from_secs(u64::from(spec.design.interval_seconds));
    let running = matches!(
        old.phase.as_deref(),
        Some(phase::RUNNING) | Some(phase::PAUSED)
    );

    let pending = |mut status: ExperimentStatus, why: String| {
        status.phase = Some(phase::PENDING.into());
        status.decision = None;
        status.reason = Some(why);
        status
    };
    let (min, max) = match (
        parse_duration(&spec.design.min_duration),
        parse_duration(&spec.design.max_duration),
    ) {
        (Ok(a), Ok(b)) if a <= b => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            write(&api, &exp, pending(status, e.clone()), Some(&e)).await?;
            return Ok(Action::await_change());
        }
        _ => {
            let e = "design.minDuration exceeds design.maxDuration".to_owned();
            write(&api, &exp, pending(status, e.clone()), Some(&e)).await?;
            return Ok(Action::await_change());
        }
    };

    let rms = Api::<RecModel>::namespaced(ctx.client.clone(), &ns);
    let Some(rm) = rms.get_opt(&spec.rec_model).await? else {
        let why = format!("RecModel {} does not exist", spec.rec_model);
        if running {
            return conclude(&ctx, &api, &exp, status, now, "Aborted", why, None).await;
        }
        write(&api, &exp, pending(status, why), None).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    let rm_status = rm.status.clone().unwrap_or_default();
    if !running {
        if rm.spec.canary.is_some() {
            let why = format!(
                "RecModel {} has a canary in its spec; the experiment needs its second arm",
                rm.name_any()
            );
            write(&api, &exp, pending(status, why), None).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
        let all = api.list(&ListParams::default()).await?.items;
        if let Some(other) = build::active_for(&rm.name_any(), &all) {
            if other.uid() != exp.uid() {
                let why = format!(
                    "Experiment {} holds RecModel {}'s second arm; this one starts after it",
                    other.name_any(),
                    rm.name_any()
                );
                write(&api, &exp, pending(status, why), None).await?;
                return Ok(Action::requeue(Duration::from_secs(30)));
            }
        }
    }
    let salt = build::salt(&exp);
    let treatment_version = version_of(&spec.treatment.model_uri);
    let routed = rm_status.experiment.as_deref() == Some(&exp.name_any())
        && rm_status.canary_version.as_deref() == Some(&treatment_version)
        && rm_status.canary_weight == spec.traffic_percent;
    let control_uri = rm_status.stable_arm.as_ref().map(|a| a.model_uri.clone());

    if !running {
        if !routed {
            let why = format!(
                "waiting for RecModel {} to route {}% of users to {treatment_version}",
                rm.name_any(),
                spec.traffic_percent
            );
            write(&api, &exp, pending(status, why), None).await?;
            return Ok(Action::requeue(Duration::from_secs(15)));
        }
        status.phase = Some(phase::RUNNING.into());
        status.started_at = Some(now.to_string());
        status.control_model_uri = control_uri.clone();
        status.control_version = rm_status.stable_version.clone();
        status.treatment_version = Some(treatment_version.clone());
        status.salt = Some(salt.clone());
        status.planned_users = Some(look::planned_users(spec));
        status.decision = Some("Continue".into());
        status.reason = Some("started".into());
        ctx.event(
            &*exp,
            false,
            "Started",
            format!(
                "{} vs {treatment_version}, {}% of users, {} users planned",
                status.control_version.clone().unwrap_or_default(),
                spec.traffic_percent,
                status.planned_users.unwrap_or(0)
            ),
        )
        .await;
        write(&api, &exp, status, None).await?;
        return Ok(Action::requeue(interval));
    }

    if control_uri != status.control_model_uri {
        let why = format!(
            "the control arm changed mid-experiment ({} → {}); its numbers would mix two models",
            status.control_model_uri.clone().unwrap_or_default(),
            control_uri.unwrap_or_default()
        );
        return conclude(&ctx, &api, &exp, status, now, "Aborted", why, None).await;
    }
    if !routed {
        status.reason = Some(format!(
            "treatment arm not routed at the moment (RecModel {}); no look",
            rm.name_any()
        ));
        write(&api, &exp, status, None).await?;
        return Ok(Action::requeue(Duration::from_secs(15)));
    }
    if let Some(since) = old
        .last_look_at
        .as_deref()
        .and_then(|t| seconds_between(t, now))
    {
        if since < interval.as_secs_f64() {
            return Ok(Action::requeue(Duration::from_secs_f64(
                interval.as_secs_f64() - since,
            )));
        }
    }
    let Some(base) = spec.prometheus_url.clone().or(ctx.prometheus_url.clone()) else {
        let e = "no Prometheus URL: set spec.prometheusUrl or the operator's --prometheus-url";
        status.reason = Some(e.into());
        write(&api, &exp, status, Some(e)).await?;
        return Ok(Action::requeue(interval));
    };
    let obs = match observe(&base, &exp, &salt).await {
        Ok(o) => o,
        Err(e) => {
            // Keep every number and the phase as they were: an outage never decides.
            let e = e.to_string();
            status.reason = Some(format!("no look: {e}"));
            write(&api, &exp, status, Some(&e)).await?;
            return Ok(Action::requeue(interval));
        }
    };
    let started = status.started_at.clone().unwrap_or_else(|| now.to_string());
    let durations = Durations {
        elapsed: seconds_between(&started, now).unwrap_or(0.0),
        min: min.as_secs_f64(),
        max: max.as_secs_f64(),
    };
    let decision = look::look(spec, &mut status, &obs, durations);
    status.last_look_at = Some(now.to_string());
    let name = decision_name(&decision);
    let why = reason_of(&decision).to_owned();
    tracing::info!(experiment = %exp.name_any(), decision = name, reason = %why, users = ?status.users, lift = ?status.lift, "look");
    match &decision {
        Decision::Promote(_) => {
            let promotion = Promotion {
                from: rm.spec.model_uri.clone(),
                to: spec.treatment.model_uri.clone(),
                experiment: exp.name_any(),
                at: now.to_string(),
            };
            conclude(
                &ctx,
                &api,
                &exp,
                status,
                now,
                name,
                why,
                Some((&rm, promotion)),
            )
            .await
        }
        Decision::Rollback(_) | Decision::Inconclusive(_) => {
            conclude(&ctx, &api, &exp, status, now, name, why, None).await
        }
        Decision::Pause(_) => {
            if old.phase.as_deref() != Some(phase::PAUSED) {
                ctx.event(&*exp, true, "SampleRatioMismatch", why.clone())
                    .await;
            }
            status.phase = Some(phase::PAUSED.into());
            status.decision = Some(name.into());
            status.reason = Some(why);
            write(&api, &exp, status, None).await?;
            Ok(Action::requeue(interval))
        }
        Decision::Continue(_) => {
            status.phase = Some(phase::RUNNING.into());
            status.decision = Some(name.into());
            status.reason = Some(why);
            write(&api, &exp, status, None).await?;
            Ok(Action::requeue(interval))
        }
    }
}

/// Ends the experiment; a promotion is recorded (ConfigMap owned by the RecModel) before the
/// status says so, so a crash between the two repeats the same promotion, never loses it.
#[allow(clippy::too_many_arguments)]
async fn conclude(
    ctx: &Context,
    api: &Api<Experiment>,
    exp: &Experiment,
    mut status: ExperimentStatus,
    now: Timestamp,
    decision: &str,
    why: String,
    promotion: Option<(&RecModel, Promotion)>,
) -> Result<Action, Error> {
    if let Some((rm, p)) = promotion {
        let ns = rm.namespace().unwrap_or_default();
        let configmaps = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns);
        let cm = build::promotion_configmap(rm, &p);
        if let super::apply::Owned::Collision(c) = apply_owned(&configmaps, rm, &cm).await? {
            let e = format!("cannot record the promotion: {c}");
            status.reason = Some(e.clone());
            write(api, exp, status, Some(&e)).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    }
    status.phase = Some(phase::CONCLUDED.into());
    status.decision = Some(decision.into());
    status.reason = Some(why.clone());
    status.decided_at = Some(now.to_string());
    let warning = decision != "Promote";
    ctx.event(exp, warning, decision, why).await;
    write(api, exp, status, None).await?;
    Ok(Action::await_change())
}

/// Retries with a delay; the error is counted by category and logged.
pub fn error_policy(exp: Arc<Experiment>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(CONTROLLER, error.category());
    tracing::warn!(experiment = %exp.name_any(), error = %error, "reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
