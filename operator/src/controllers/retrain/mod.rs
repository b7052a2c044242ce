//! RetrainSchedule: starts a restricted training Job when the cron schedule (in its time
//! zone) or feature drift says so, judges each finished Job once on the gates its
//! termination message reports, opens an Experiment for a version that passes, and prunes
//! old Jobs. Everything it creates is owned by the schedule; no one's spec is written.

pub mod gates;
mod on_pass;

use super::apply::{apply_owned, apply_status, is_controlled_by, Owned};
use super::experiment::prometheus::query;
use super::job_outcome::{outcome, JobOutcome};
use super::{conditions, Context, Error};
use crate::builders::experiment::parse_duration;
use crate::builders::training_job::{
    self as build, check_hyper_parameters, parse_result, Run, SCHEDULED_AT, SCHEDULE_LABEL,
};
use crate::crd::v1alpha1::{
    condition, result, ConcurrencyPolicy, DriftTrigger, RecModel, RetrainSchedule,
    RetrainScheduleStatus,
};
use crate::schedule::cron::Cron;
use crate::schedule::due::{self, DriftReading, Scheduled};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub const CONTROLLER: &str = "retrainschedule";
/// How often a running Job (or drift) is looked at.
const POLL: Duration = Duration::from_secs(30);

/// The spec, checked: a schedule that cannot be evaluated starts nothing.
struct Plan {
    cron: Cron,
    tz: TimeZone,
    deadline: Option<SignedDuration>,
    drift_interval: Option<SignedDuration>,
}

fn plan(rts: &RetrainSchedule) -> Result<Plan, String> {
    let spec = &rts.spec;
    let cron: Cron = spec
        .schedule
        .parse()
        .map_err(|e| format!("schedule {:?}: {e}", spec.schedule))?;
    let tz = match &spec.time_zone {
        Some(name) => TimeZone::get(name)
            .map_err(|e| format!("timeZone {name:?} is not an IANA time zone: {e}"))?,
        None => TimeZone::UTC,
    };
    check_hyper_parameters(&spec.job.hyper_parameters)?;
    let drift_interval = spec
        .drift
        .as_ref()
        .map(|d| {
            parse_duration(&d.min_interval)
                .map_err(|e| format!("drift.minInterval: {e}"))
                .and_then(|d| {
                    SignedDuration::try_from(d).map_err(|e| format!("drift.minInterval: {e}"))
                })
        })
        .transpose()?;
    Ok(Plan {
        cron,
        tz,
        deadline: spec
            .starting_deadline_seconds
            .map(SignedDuration::from_secs),
        drift_interval,
    })
}

fn parse_time(s: Option<&str>) -> Option<Timestamp> {
    s.and_then(|s| s.parse().ok())
}

fn scheduled_at(job: &Job) -> Option<Timestamp> {
    parse_time(job.annotations().get(SCHEDULED_AT).map(String::as_str))
}

/// The default drift query: one series per feature of the live version's serving pods.
pub fn drift_query(drift: &DriftTrigger, live_version: &str) -> String {
    let escaped = live_version.replace('\\', "\\\\").replace('"', "\\\"");
    drift
        .query
        .clone()
        .unwrap_or_else(|| "max by (feature) (recsys_feature_psi{version=\"$VERSION\"})".into())
        .replace("$VERSION", &escaped)
}

async fn read_drift(base: &str, q: &str) -> Result<Option<DriftReading>, String> {
    let samples = query(base, q).await.map_err(|e| e.to_string())?;
    Ok(samples
        .into_iter()
        .filter(|s| s.value.is_finite())
        .max_by(|a, b| a.value.total_cmp(&b.value))
        .map(|s| DriftReading {
            feature: s
                .labels
                .get("feature")
                .cloned()
                .unwrap_or_else(|| "?".into()),
            psi: s.value,
        }))
}

fn set_conditions(
    status: &mut RetrainScheduleStatus,
    generation: Option<i64>,
    degraded: Option<(&str, &str)>,
    suspended: bool,
) {
    let c = &mut status.common.conditions;
    let active = !status.active.is_empty();
    let (ready, reason, message) = match degraded {
        Some((reason, message)) => (false, reason, message.to_owned()),
        None if suspended => (
            true,
            "Suspended",
            "no new runs while spec.suspend".to_owned(),
        ),
        None => (true, "Scheduled", String::new()),
    };
    conditions::set(c, condition::READY, ready, reason, &message, generation);
    conditions::set(
        c,
        condition::PROGRESSING,
        active,
        if active { "Training" } else { "Idle" },
        status.active.join(", "),
        generation,
    );
    conditions::set(
        c,
        condition::DEGRADED,
        degraded.is_some(),
        degraded.map_or("AsExpected", |d| d.0),
        degraded.map_or("", |d| d.1),
        generation,
    );
}

async fn write(
    api: &Api<RetrainSchedule>,
    rts: &RetrainSchedule,
    mut status: RetrainScheduleStatus,
    degraded: Option<(&str, &str)>,
) -> Result<(), Error> {
    status.common.observed_generation = rts.metadata.generation;
    set_conditions(
        &mut status,
        rts.metadata.generation,
        degraded,
        rts.spec.suspend,
    );
    apply_status(api, &rts.name_any(), serde_json::json!(status)).await?;
    Ok(())
}

pub async fn reconcile(rts: Arc<RetrainSchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_at(rts, ctx, Timestamp::now()).await
}

/// One reconcile at time `now` (tests drive simulated time through here).
pub async fn reconcile_at(
    rts: Arc<RetrainSchedule>,
    ctx: Arc<Context>,
    now: Timestamp,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.start(CONTROLLER);
    if rts.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rts.namespace().ok_or_else(|| Error::MissingNamespace {
        kind: "RetrainSchedule",
        name: rts.name_any(),
    })?;
    let api = Api::<RetrainSchedule>::namespaced(ctx.client.clone(), &ns);
    let mut status = rts.status.clone().unwrap_or_default();
    let plan = match plan(&rts) {
        Ok(p) => p,
        Err(e) => {
            status.next_run_time = None;
            write(&api, &rts, status, Some(("InvalidSpec", &e))).await?;
            return Ok(Action::await_change());
        }
    };
    let image = rts
        .spec
        .job
        .image
        .clone()
        .unwrap_or_else(|| ctx.dataplane_image.clone());
    if let Some(refusal) = refusal(&ctx, &rts, &ns, &image).await? {
        if status
            .common
            .conditions
            .iter()
            .all(|c| c.reason != refusal.reason)
        {
            ctx.event(&*rts, true, refusal.reason, refusal.message.clone())
                .await;
        }
        write(&api, &rts, status, Some((refusal.reason, &refusal.message))).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    let jobs = Api::<Job>::namespaced(ctx.client.clone(), &ns);
    judge_finished_jobs(&ctx, &rts, &ns, &jobs, &mut status).await?;
    let degraded = if rts.spec.suspend {
        status.next_run_time = None;
        None
    } else {
        let degraded = run_when_due(&ctx, &rts, &plan, &jobs, &image, now, &mut status).await?;
        status.next_run_time = plan.cron.next_after(now, &plan.tz).map(|t| t.to_string());
        degraded
    };
    let requeue = requeue_after(&rts, &status, degraded.is_some(), now);
    write(
        &api,
        &rts,
        status,
        degraded.as_ref().map(|(r, m)| (*r, m.as_str())),
    )
    .await?;
    Ok(Action::requeue(requeue))
}

/// Why the Job may not run: its image, or a Secret it names, outside the operator's policy.
async fn refusal(
    ctx: &Context,
    rts: &RetrainSchedule,
    ns: &str,
    image: &str,
) -> Result<Option<super::policy::Refusal>, Error> {
    let secrets: Vec<&str> = rts
        .spec
        .job
        .credentials_secret
        .as_deref()
        .into_iter()
        .collect();
    let allowed = match ctx.policy.check_image(image) {
        Ok(()) => {
            ctx.policy
                .check_secret_names(&ctx.client, ns, &secrets)
                .await?
        }
        Err(r) => Err(r),
    };
    Ok(allowed.err())
}

/// Each finished Job of this schedule judged once, oldest first; running ones listed as
/// active; old ones pruned by the history limits.
async fn judge_finished_jobs(
    ctx: &Context,
    rts: &RetrainSchedule,
    ns: &str,
    jobs: &Api<Job>,
    status: &mut RetrainScheduleStatus,
) -> Result<(), Error> {
    let uid = rts.uid().unwrap_or_default();
    let selector = format!("{SCHEDULE_LABEL}={}", rts.name_any());
    let mut mine: Vec<Job> = jobs
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|j| is_controlled_by(j, &uid))
        .collect();
    mine.sort_by_key(|j| (scheduled_at(j), j.name_any()));
    let pods = Api::namespaced(ctx.client.clone(), ns);
    let mut finished = Vec::new();
    status.active.clear();
    for job in &mine {
        let state = outcome(job, &pods).await?;
        if !state.finished() {
            status.active.push(job.name_any());
            continue;
        }
        let succeeded = matches!(state, JobOutcome::Succeeded(_));
        finished.push((job.name_any(), succeeded));
        if status.judged.contains(&job.name_any()) {
            continue;
        }
        judge_one(ctx, rts, ns, job, state, status).await?;
        status.judged.push(job.name_any());
    }
    prune(jobs, rts, &finished, status).await
}

/// Starts a run when the schedule (or, between runs, drift) says one is due; what keeps it
/// from starting, as a Degraded reason and message.
#[allow(clippy::too_many_arguments)]
async fn run_when_due(
    ctx: &Context,
    rts: &RetrainSchedule,
    plan: &Plan,
    jobs: &Api<Job>,
    image: &str,
    now: Timestamp,
    status: &mut RetrainScheduleStatus,
) -> Result<Option<(&'static str, String)>, Error> {
    let ns = rts.namespace().unwrap_or_default();
    let rm = Api::<RecModel>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&rts.spec.rec_model_ref)
        .await?;
    let live_uri = rm
        .as_ref()
        .and_then(|rm| rm.status.as_ref()?.stable_arm.as_ref())
        .map(|arm| arm.model_uri.clone());
    let feedback_uri = rm
        .as_ref()
        .and_then(|rm| rm.spec.feedback.as_ref())
        .map(|f| f.uri.clone());
    let mut run = scheduled_run(ctx, rts, plan, now, status).await;
    if run.is_none() {
        if let (Some(drift), Some(interval)) = (&rts.spec.drift, plan.drift_interval) {
            run = check_drift(ctx, rts, drift, interval, live_uri.as_deref(), now, status).await;
        }
    }
    let Some(run) = run else {
        return Ok(None);
    };
    if rm.is_none() {
        return Ok(Some((
            "RecModelMissing",
            format!(
                "RecModel {} does not exist; the run waits",
                rts.spec.rec_model_ref
            ),
        )));
    }
    let started = start(
        ctx,
        jobs,
        rts,
        &run,
        live_uri.as_deref(),
        feedback_uri.as_deref(),
        image,
        now,
        status,
    )
    .await?;
    Ok(started.map(|problem| ("NameCollision", problem)))
}

/// The run the cron schedule makes due now, if any; missed runs are reported as events.
async fn scheduled_run(
    ctx: &Context,
    rts: &RetrainSchedule,
    plan: &Plan,
    now: Timestamp,
    status: &mut RetrainScheduleStatus,
) -> Option<Run> {
    let last = parse_time(status.last_schedule_time.as_deref())
        .or_else(|| rts.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    match due::scheduled(&plan.cron, &plan.tz, last, now, plan.deadline) {
        Scheduled::Run { at, missed } => {
            if missed > 1 {
                ctx.event(
                    rts,
                    true,
                    "MissedSchedule",
                    format!(
                        "{}{missed} scheduled runs passed while the operator was away; only the latest ({at}) starts",
                        if missed >= due::MISSED_CAP { "more than " } else { "" }
                    ),
                )
                .await;
            }
            Some(Run {
                at,
                trigger: "schedule",
            })
        }
        Scheduled::TooLate { at, missed } => {
            ctx.event(
                rts,
                true,
                "MissedSchedule",
                format!(
                    "the run scheduled at {at} ({missed} missed) is past startingDeadlineSeconds {}; skipped",
                    rts.spec.starting_deadline_seconds.unwrap_or(0)
                ),
            )
            .await;
            status.last_schedule_time = Some(at.to_string());
            None
        }
        Scheduled::NotDue => None,
    }
}

/// Until the next scheduled run, or sooner while a Job runs, drift is watched or something is
/// degraded.
fn requeue_after(
    rts: &RetrainSchedule,
    status: &RetrainScheduleStatus,
    degraded: bool,
    now: Timestamp,
) -> Duration {
    let requeue = status
        .next_run_time
        .as_deref()
        .and_then(|t| parse_time(Some(t)))
        .map(|next| Duration::from_secs(next.duration_since(now).as_secs().max(1) as u64))
        .unwrap_or(Duration::from_secs(3600));
    let poll = !status.active.is_empty() || rts.spec.drift.is_some() || degraded;
    if poll {
        requeue.min(POLL)
    } else {
        requeue
    }
}

/// Reads the drift metric; returns a drift run when it is due, recording why.
async fn check_drift(
    ctx: &Context,
    rts: &RetrainSchedule,
    drift: &DriftTrigger,
    interval: SignedDuration,
    live_uri: Option<&str>,
    now: Timestamp,
    status: &mut RetrainScheduleStatus,
) -> Option<Run> {
    let live_version = crate::builders::version_of(live_uri?);
    let Some(base) = drift.prometheus_url.clone().or(ctx.prometheus_url.clone()) else {
        status.drift =
            Some("no Prometheus URL: set drift.prometheusUrl or --prometheus-url".into());
        return None;
    };
    let reading = match read_drift(&base, &drift_query(drift, &live_version)).await {
        Ok(r) => r,
        Err(e) => {
            // An outage starts nothing and is shown; the schedule still runs.
            status.drift = Some(format!("unavailable: {e}"));
            return None;
        }
    };
    status.drift = Some(match &reading {
        Some(r) => format!("{}={:.3}", r.feature, r.psi),
        None => format!("no PSI series for version {live_version}"),
    });
    let why = due::drift_due(
        reading.as_ref(),
        drift.psi_threshold,
        interval,
        parse_time(status.last_drift_run_time.as_deref()),
        now,
    )?;
    ctx.event(rts, false, "DriftDetected", why.clone()).await;
    status.last_drift_run_time = Some(now.to_string());
    status.last_drift_reason = Some(why);
    // Whole minutes: the Job's name is the minute, so a retry finds the same run.
    let minute = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(60)).ok()?;
    Some(Run {
        at: minute,
        trigger: "drift",
    })
}

/// Starts `run` under the concurrency policy; `Some(problem)` when its name is taken.
#[allow(clippy::too_many_arguments)]
async fn start(
    ctx: &Context,
    jobs: &Api<Job>,
    rts: &RetrainSchedule,
    run: &Run,
    live_uri: Option<&str>,
    feedback_uri: Option<&str>,
    image: &str,
    now: Timestamp,
    status: &mut RetrainScheduleStatus,
) -> Result<Option<String>, Error> {
    let name = run.job_name(rts);
    if run.trigger == "schedule" {
        status.last_schedule_time = Some(run.at.to_string());
    }
    if status.active.contains(&name) || status.judged.contains(&name) {
        return Ok(None);
    }
    if !status.active.is_empty() {
        match rts.spec.concurrency_policy {
            ConcurrencyPolicy::Forbid => {
                ctx.event(
                    rts,
                    false,
                    "Skipped",
                    format!(
                        "the {} run at {} is skipped: {} is still running (concurrencyPolicy Forbid)",
                        run.trigger,
                        run.at,
                        status.active.join(", ")
                    ),
                )
                .await;
                return Ok(None);
            }
            ConcurrencyPolicy::Replace => {
                for old in std::mem::take(&mut status.active) {
                    let dp = DeleteParams {
                        propagation_policy: Some(PropagationPolicy::Background),
                        ..Default::default()
                    };
                    jobs.delete(&old, &dp).await?;
                    ctx.event(
                        rts,
                        false,
                        "Replaced",
                        format!(
                            "Job {old} deleted for the {} run at {}",
                            run.trigger, run.at
                        ),
                    )
                    .await;
                }
            }
            ConcurrencyPolicy::Allow => {}
        }
    }
    let job = build::job(rts, run, live_uri, feedback_uri, image);
    match apply_owned(jobs, rts, &job).await? {
        Owned::Done(_) => {
            status.active.push(name.clone());
            status.last_run_time = Some(now.to_string());
            ctx.event(
                rts,
                false,
                "RunStarted",
                format!(
                    "Job {name} trains {} ({} run at {}){}",
                    run.version(),
                    run.trigger,
                    run.at,
                    live_uri.map_or(String::new(), |l| format!(", compared with {l}"))
                ),
            )
            .await;
            Ok(None)
        }
        Owned::Collision(c) => Ok(Some(c.to_string())),
    }
}

/// Reads one finished Job's result, judges the gates, and acts on the verdict.
async fn judge_one(
    ctx: &Context,
    rts: &RetrainSchedule,
    ns: &str,
    job: &Job,
    state: JobOutcome,
    status: &mut RetrainScheduleStatus,
) -> Result<(), Error> {
    let name = job.name_any();
    status.last_job = Some(name.clone());
    status.last_version = job.annotations().get(build::VERSION).cloned();
    let compared = on_pass::compared_with(job).is_some();
    let verdict = match state {
        JobOutcome::Failed(why) => Err((result::FAILED, format!("Job {name} failed: {why}"))),
        JobOutcome::Succeeded(None) => Err((
            result::FAILED,
            format!("Job {name} left no termination message"),
        )),
        JobOutcome::Succeeded(Some(m)) => match parse_result(&m) {
            Err(e) => Err((result::FAILED, format!("Job {name}: {e}"))),
            Ok(r) => {
                status.last_version = Some(r.version.clone());
                match gates::judge(&rts.spec.gates, &r, compared) {
                    Err(why) => Err((result::GATE_FAILED, why)),
                    Ok(summary) => Ok((r, summary)),
                }
            }
        },
        JobOutcome::Running => unreachable!("only finished Jobs are judged"),
    };
    match verdict {
        Err((kind, why)) => {
            status.last_result = Some(kind.into());
            status.last_reason = Some(why.clone());
            ctx.event(rts, true, kind, why).await;
        }
        Ok((r, summary)) => {
            status.last_result = Some(result::PASSED.into());
            status.last_reason = Some(summary.clone());
            on_pass::act(ctx, rts, ns, job, &r, &summary, status).await?;
        }
    }
    Ok(())
}

/// Deletes the oldest finished Jobs beyond the history limits (judged ones only).
async fn prune(
    jobs: &Api<Job>,
    rts: &RetrainSchedule,
    finished: &[(String, bool)],
    status: &mut RetrainScheduleStatus,
) -> Result<(), Error> {
    for (want_succeeded, limit) in [
        (true, rts.spec.successful_jobs_history_limit),
        (false, rts.spec.failed_jobs_history_limit),
    ] {
        let of_kind: Vec<&String> = finished
            .iter()
            .filter(|(_, s)| *s == want_succeeded)
            .map(|(n, _)| n)
            .collect();
        let excess = of_kind.len().saturating_sub(limit.max(0) as usize);
        for name in of_kind.into_iter().take(excess) {
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            };
            match jobs.delete(name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            status.judged.retain(|j| j != name);
        }
    }
    // Forget judged Jobs that are gone (deleted by hand): the list stays bounded.
    status
        .judged
        .retain(|j| finished.iter().any(|(n, _)| n == j));
    Ok(())
}

/// Retries with a delay; the error is counted by category and logged.
pub fn error_policy(rts: Arc<RetrainSchedule>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(CONTROLLER, error.category());
    tracing::warn!(retrainschedule = %rts.name_any(), error = %error, "reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
