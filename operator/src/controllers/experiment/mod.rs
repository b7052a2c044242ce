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
    let run = Run::new(&exp, &ctx, now, old)?;
    let status = run.old.clone();
    let (min, max) = match design_durations(&exp.spec) {
        Ok(d) => d,
        Err(e) => return run.wait(status, e.clone(), None, Some(&e)).await,
    };
    let rms = Api::<RecModel>::namespaced(ctx.client.clone(), &run.ns);
    let Some(rm) = rms.get_opt(&exp.spec.rec_model).await? else {
        let why = format!("RecModel {} does not exist", exp.spec.rec_model);
        if run.running {
            return run.conclude(status, "Aborted", why, None).await;
        }
        return run
            .wait(status, why, Some(Duration::from_secs(30)), None)
            .await;
    };
    let arms = Arms::of(&exp, &rm);
    if run.running {
        run.while_running(&rm, status, &arms, (min, max)).await
    } else {
        run.start_when_ready(&rm, status, &arms).await
    }
}

/// The experiment's design window, or why it is invalid.
fn design_durations(
    spec: &crate::crd::v1alpha1::ExperimentSpec,
) -> Result<(Duration, Duration), String> {
    match (
        parse_duration(&spec.design.min_duration),
        parse_duration(&spec.design.max_duration),
    ) {
        (Ok(a), Ok(b)) if a <= b => Ok((a, b)),
        (Err(e), _) | (_, Err(e)) => Err(e),
        _ => Err("design.minDuration exceeds design.maxDuration".to_owned()),
    }
}

/// What the RecModel routes, read against the experiment.
struct Arms {
    salt: String,
    treatment_version: String,
    /// The RecModel routes this experiment's share of users to its treatment.
    routed: bool,
    control_uri: Option<String>,
}

impl Arms {
    fn of(exp: &Experiment, rm: &RecModel) -> Self {
        let rm_status = rm.status.clone().unwrap_or_default();
        let treatment_version = version_of(&exp.spec.treatment.model_uri);
        Self {
            salt: build::salt(exp),
            routed: rm_status.experiment.as_deref() == Some(&exp.name_any())
                && rm_status.canary_version.as_deref() == Some(&treatment_version)
                && rm_status.canary_weight == exp.spec.traffic_percent,
            treatment_version,
            control_uri: rm_status.stable_arm.as_ref().map(|a| a.model_uri.clone()),
        }
    }
}

/// One reconcile of one Experiment: what every step needs.
struct Run<'a> {
    exp: &'a Experiment,
    ctx: &'a Context,
    api: Api<Experiment>,
    ns: String,
    now: Timestamp,
    /// The status as the last reconcile left it.
    old: ExperimentStatus,
    interval: Duration,
    /// Started (Running or Paused): its numbers are being collected.
    running: bool,
}

impl<'a> Run<'a> {
    fn new(
        exp: &'a Experiment,
        ctx: &'a Context,
        now: Timestamp,
        old: ExperimentStatus,
    ) -> Result<Self, Error> {
        let ns = exp.namespace().ok_or_else(|| Error::MissingNamespace {
            kind: "Experiment",
            name: exp.name_any(),
        })?;
        Ok(Self {
            exp,
            ctx,
            api: Api::<Experiment>::namespaced(ctx.client.clone(), &ns),
            ns,
            now,
            running: matches!(
                old.phase.as_deref(),
                Some(phase::RUNNING) | Some(phase::PAUSED)
            ),
            interval: Duration::from_secs(u64::from(exp.spec.design.interval_seconds)),
            old,
        })
    }

    /// Pending, with why; looked at again after `requeue` (or on the next change).
    async fn wait(
        &self,
        mut status: ExperimentStatus,
        why: String,
        requeue: Option<Duration>,
        degraded: Option<&str>,
    ) -> Result<Action, Error> {
        status.phase = Some(phase::PENDING.into());
        status.decision = None;
        status.reason = Some(why);
        write(&self.api, self.exp, status, degraded).await?;
        Ok(requeue.map_or_else(Action::await_change, Action::requeue))
    }

    async fn conclude(
        &self,
        status: ExperimentStatus,
        decision: &str,
        why: String,
        promotion: Option<(&RecModel, Promotion)>,
    ) -> Result<Action, Error> {
        conclude(
            self.ctx, &self.api, self.exp, status, self.now, decision, why, promotion,
        )
        .await
    }

    /// Starts once the RecModel has no canary of its own, no other experiment holds its second
    /// arm, and it routes this experiment's treatment.
    async fn start_when_ready(
        &self,
        rm: &RecModel,
        mut status: ExperimentStatus,
        arms: &Arms,
    ) -> Result<Action, Error> {
        let wait = Some(Duration::from_secs(30));
        if rm.spec.canary.is_some() {
            let why = format!(
                "RecModel {} has a canary in its spec; the experiment needs its second arm",
                rm.name_any()
            );
            return self.wait(status, why, wait, None).await;
        }
        let all = self.api.list(&ListParams::default()).await?.items;
        if let Some(other) = build::active_for(&rm.name_any(), &all) {
            if other.uid() != self.exp.uid() {
                let why = format!(
                    "Experiment {} holds RecModel {}'s second arm; this one starts after it",
                    other.name_any(),
                    rm.name_any()
                );
                return self.wait(status, why, wait, None).await;
            }
        }
        let spec = &self.exp.spec;
        if !arms.routed {
            let why = format!(
                "waiting for RecModel {} to route {}% of users to {}",
                rm.name_any(),
                spec.traffic_percent,
                arms.treatment_version
            );
            return self
                .wait(status, why, Some(Duration::from_secs(15)), None)
                .await;
        }
        let rm_status = rm.status.clone().unwrap_or_default();
        status.phase = Some(phase::RUNNING.into());
        status.started_at = Some(self.now.to_string());
        status.control_model_uri = arms.control_uri.clone();
        status.control_version = rm_status.stable_version.clone();
        status.treatment_version = Some(arms.treatment_version.clone());
        status.salt = Some(arms.salt.clone());
        status.planned_users = Some(look::planned_users(spec));
        status.decision = Some("Continue".into());
        status.reason = Some("started".into());
        self.ctx
            .event(
                self.exp,
                false,
                "Started",
                format!(
                    "{} vs {}, {}% of users, {} users planned",
                    status.control_version.clone().unwrap_or_default(),
                    arms.treatment_version,
                    spec.traffic_percent,
                    status.planned_users.unwrap_or(0)
                ),
            )
            .await;
        write(&self.api, self.exp, status, None).await?;
        Ok(Action::requeue(self.interval))
    }

    /// A running experiment: aborted if its control arm changed, paused looks while its
    /// treatment is not routed, otherwise a look once per interval.
    async fn while_running(
        &self,
        rm: &RecModel,
        mut status: ExperimentStatus,
        arms: &Arms,
        window: (Duration, Duration),
    ) -> Result<Action, Error> {
        if arms.control_uri != status.control_model_uri {
            let why = format!(
                "the control arm changed mid-experiment ({} → {}); its numbers would mix two models",
                status.control_model_uri.clone().unwrap_or_default(),
                arms.control_uri.clone().unwrap_or_default()
            );
            return self.conclude(status, "Aborted", why, None).await;
        }
        if !arms.routed {
            status.reason = Some(format!(
                "treatment arm not routed at the moment (RecModel {}); no look",
                rm.name_any()
            ));
            write(&self.api, self.exp, status, None).await?;
            return Ok(Action::requeue(Duration::from_secs(15)));
        }
        if let Some(since) = self
            .old
            .last_look_at
            .as_deref()
            .and_then(|t| seconds_between(t, self.now))
        {
            if since < self.interval.as_secs_f64() {
                return Ok(Action::requeue(Duration::from_secs_f64(
                    self.interval.as_secs_f64() - since,
                )));
            }
        }
        self.look(rm, status, arms, window).await
    }

    /// Reads both arms' user-level sums from Prometheus and decides; an outage keeps every
    /// number and the phase as they were.
    async fn look(
        &self,
        rm: &RecModel,
        mut status: ExperimentStatus,
        arms: &Arms,
        (min, max): (Duration, Duration),
    ) -> Result<Action, Error> {
        let spec = &self.exp.spec;
        let Some(base) = spec
            .prometheus_url
            .clone()
            .or(self.ctx.prometheus_url.clone())
        else {
            let e = "no Prometheus URL: set spec.prometheusUrl or the operator's --prometheus-url";
            status.reason = Some(e.into());
            write(&self.api, self.exp, status, Some(e)).await?;
            return Ok(Action::requeue(self.interval));
        };
        let obs = match observe(&base, self.exp, &arms.salt).await {
            Ok(o) => o,
            Err(e) => {
                let e = e.to_string();
                status.reason = Some(format!("no look: {e}"));
                write(&self.api, self.exp, status, Some(&e)).await?;
                return Ok(Action::requeue(self.interval));
            }
        };
        let started = status
            .started_at
            .clone()
            .unwrap_or_else(|| self.now.to_string());
        let durations = Durations {
            elapsed: seconds_between(&started, self.now).unwrap_or(0.0),
            min: min.as_secs_f64(),
            max: max.as_secs_f64(),
        };
        let decision = look::look(spec, &mut status, &obs, durations);
        status.last_look_at = Some(self.now.to_string());
        tracing::info!(experiment = %self.exp.name_any(), decision = decision_name(&decision), reason = %reason_of(&decision), users = ?status.users, lift = ?status.lift, "look");
        self.act(rm, status, &decision).await
    }

    /// Concludes, pauses or continues as the look decided.
    async fn act(
        &self,
        rm: &RecModel,
        mut status: ExperimentStatus,
        decision: &Decision,
    ) -> Result<Action, Error> {
        let name = decision_name(decision);
        let why = reason_of(decision).to_owned();
        match decision {
            Decision::Promote(_) => {
                let promotion = Promotion {
                    from: rm.spec.model_uri.clone(),
                    to: self.exp.spec.treatment.model_uri.clone(),
                    experiment: self.exp.name_any(),
                    at: self.now.to_string(),
                };
                self.conclude(status, name, why, Some((rm, promotion)))
                    .await
            }
            Decision::Rollback(_) | Decision::Inconclusive(_) => {
                self.conclude(status, name, why, None).await
            }
            Decision::Pause(_) => {
                if self.old.phase.as_deref() != Some(phase::PAUSED) {
                    self.ctx
                        .event(self.exp, true, "SampleRatioMismatch", why.clone())
                        .await;
                }
                status.phase = Some(phase::PAUSED.into());
                status.decision = Some(name.into());
                status.reason = Some(why);
                write(&self.api, self.exp, status, None).await?;
                Ok(Action::requeue(self.interval))
            }
            Decision::Continue(_) => {
                status.phase = Some(phase::RUNNING.into());
                status.decision = Some(name.into());
                status.reason = Some(why);
                write(&self.api, self.exp, status, None).await?;
                Ok(Action::requeue(self.interval))
            }
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
