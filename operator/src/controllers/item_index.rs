//! ItemIndex: runs the index-build Job for the current spec and copies its result into status.
//! A recall below the target marks the index Degraded, and RecModels never serve it. A
//! finished build is recorded with its spec digest and never redone for that digest, so the
//! Job's TTL clean-up does not start a new build; the last published index stays in status
//! (and servable) while a newer build runs or after it fails.

use super::apply::{apply_owned, apply_status, Owned};
use super::job_outcome::{outcome, JobOutcome};
use super::{conditions, Context, Error};
use crate::builders::index_job::{self, BuildResult};
use crate::crd::v1alpha1::{condition, ItemIndex, ItemIndexStatus};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub const CONTROLLER: &str = "itemindex";

/// Where a build stands.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildState {
    Running,
    Succeeded(BuildResult),
    /// The Job succeeded but its result could not be read.
    Unreadable(String),
    Failed(String),
}

/// Reads the Job's state; the result comes from the termination message of its pod.
async fn build_state(job: &Job, pods: &Api<Pod>) -> Result<BuildState, Error> {
    Ok(match outcome(job, pods).await? {
        JobOutcome::Running => BuildState::Running,
        JobOutcome::Failed(why) => BuildState::Failed(why),
        JobOutcome::Succeeded(None) => {
            BuildState::Unreadable("the build pod left no termination message".into())
        }
        JobOutcome::Succeeded(Some(m)) => match index_job::parse_result(&m) {
            Ok(result) => BuildState::Succeeded(result),
            Err(e) => BuildState::Unreadable(e),
        },
    })
}

/// The status a build state implies.
pub fn status_for(ii: &ItemIndex, state: &BuildState) -> ItemIndexStatus {
    let mut status = ii.status.clone().unwrap_or_default();
    let generation = ii.metadata.generation;
    status.common.observed_generation = generation;
    status.job_name = Some(index_job::job_name(ii));
    if !matches!(state, BuildState::Running) {
        status.built_spec_digest = Some(index_job::spec_digest(ii));
    }
    let c = &mut status.common.conditions;
    match state {
        BuildState::Running => {
            status.phase = Some("Building".into());
            conditions::set(
                c,
                condition::READY,
                false,
                "Building",
                "index build running",
                generation,
            );
            conditions::set(c, condition::PROGRESSING, true, "Building", "", generation);
            conditions::set(c, condition::DEGRADED, false, "Building", "", generation);
        }
        BuildState::Succeeded(r) => {
            status.items = Some(r.items);
            status.recall = Some(r.recall);
            status.build_seconds = Some(r.build_seconds);
            let good = r.recall >= ii.spec.recall_target;
            if good {
                status.artifact_uri = Some(r.artifact_uri.clone());
                status.artifact_model_uri = Some(ii.spec.model_uri.clone());
            }
            let message = format!(
                "recall@{} {:.4} against target {:.4} over {} items",
                ii.spec.recall_k, r.recall, ii.spec.recall_target, r.items
            );
            status.phase = Some(if good { "Ready" } else { "Degraded" }.into());
            let reason = if good {
                "Published"
            } else {
                "RecallBelowTarget"
            };
            conditions::set(c, condition::READY, good, reason, &message, generation);
            conditions::set(c, condition::PROGRESSING, false, reason, "", generation);
            conditions::set(c, condition::DEGRADED, !good, reason, &message, generation);
        }
        BuildState::Unreadable(e) | BuildState::Failed(e) => {
            status.phase = Some("Failed".into());
            conditions::set(c, condition::READY, false, "BuildFailed", e, generation);
            conditions::set(
                c,
                condition::PROGRESSING,
                false,
                "BuildFailed",
                "",
                generation,
            );
            conditions::set(c, condition::DEGRADED, true, "BuildFailed", e, generation);
        }
    }
    status
}

pub async fn reconcile(ii: Arc<ItemIndex>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.start(CONTROLLER);
    if ii.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = ii.namespace().ok_or_else(|| Error::MissingNamespace {
        kind: "ItemIndex",
        name: ii.name_any(),
    })?;
    if build_finished(&ii) {
        // Recorded already; the Job may be gone (TTL) and must not be recreated.
        return Ok(Action::await_change());
    }
    let jobs = Api::<Job>::namespaced(ctx.client.clone(), &ns);
    let job_name = index_job::job_name(&ii);
    let job = match jobs.get_opt(&job_name).await? {
        Some(job) if super::apply::is_controlled_by(&job, &ii.uid().unwrap_or_default()) => job,
        Some(_) => return collided(&ii, &ctx, &ns, &job_name).await,
        None => match apply_owned(&jobs, &*ii, &index_job::job(&ii, &ctx.dataplane_image)).await? {
            Owned::Done(Some(job)) => {
                ctx.event(
                    &*ii,
                    false,
                    "BuildStarted",
                    format!("Job {job_name} builds the index"),
                )
                .await;
                job
            }
            _ => return collided(&ii, &ctx, &ns, &job_name).await,
        },
    };
    let state = build_state(&job, &Api::namespaced(ctx.client.clone(), &ns)).await?;
    let status = status_for(&ii, &state);
    let old_phase = ii.status.as_ref().and_then(|s| s.phase.clone());
    if old_phase != status.phase {
        let (warning, reason, note) = match &state {
            BuildState::Succeeded(r) if status.phase.as_deref() == Some("Ready") => (
                false,
                "Published",
                format!("{} items, recall {:.4}", r.items, r.recall),
            ),
            BuildState::Succeeded(r) => (
                true,
                "RecallBelowTarget",
                format!(
                    "recall {:.4} < target {:.4}; not published",
                    r.recall, ii.spec.recall_target
                ),
            ),
            BuildState::Failed(e) | BuildState::Unreadable(e) => (true, "BuildFailed", e.clone()),
            BuildState::Running => (false, "Building", format!("Job {job_name} running")),
        };
        ctx.event(&*ii, warning, reason, note).await;
    }
    apply_status::<ItemIndex>(
        &Api::namespaced(ctx.client.clone(), &ns),
        &ii.name_any(),
        serde_json::json!(status),
    )
    .await?;
    Ok(match state {
        BuildState::Running => Action::requeue(Duration::from_secs(20)),
        _ => Action::await_change(),
    })
}

/// Whether the current spec's build has finished (published, below target or failed).
pub fn build_finished(ii: &ItemIndex) -> bool {
    let Some(status) = &ii.status else {
        return false;
    };
    status.built_spec_digest.as_deref() == Some(index_job::spec_digest(ii).as_str())
        && matches!(
            status.phase.as_deref(),
            Some("Ready" | "Degraded" | "Failed")
        )
}

/// A Job of the build's name exists and is not ours: Degraded, nothing touched.
async fn collided(
    ii: &ItemIndex,
    ctx: &Context,
    ns: &str,
    job_name: &str,
) -> Result<Action, Error> {
    let message = format!("Job {job_name} exists and is not owned by this ItemIndex");
    let mut status = ii.status.clone().unwrap_or_default();
    let generation = ii.metadata.generation;
    status.common.observed_generation = generation;
    let c = &mut status.common.conditions;
    conditions::set(
        c,
        condition::READY,
        false,
        "NameCollision",
        &message,
        generation,
    );
    conditions::set(
        c,
        condition::DEGRADED,
        true,
        "NameCollision",
        &message,
        generation,
    );
    ctx.event(ii, true, "NameCollision", message).await;
    apply_status::<ItemIndex>(
        &Api::namespaced(ctx.client.clone(), ns),
        &ii.name_any(),
        serde_json::json!(status),
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

pub fn error_policy(ii: Arc<ItemIndex>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(CONTROLLER, error.category());
    tracing::warn!(itemindex = %ii.name_any(), error = %error, "reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
