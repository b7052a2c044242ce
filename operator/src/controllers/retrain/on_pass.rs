//! What a version that passed the gates gets: an Experiment owned by the schedule, a canary
//! record owned by the RecModel (`onPass: Canary`), or only the record in status. Nothing in
//! Git is ever written.

use super::super::apply::{apply_owned, Owned};
use super::super::{Context, Error};
use crate::builders::retrain_canary::{self, RetrainCanary};
use crate::builders::training_job::{self as build, TrainResult};
use crate::crd::v1alpha1::{
    result, Experiment, OnPass, RecModel, RetrainSchedule, RetrainScheduleStatus,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt};

/// The live version the Job compared with (its `--compare-to`), if it compared.
pub fn compared_with(job: &Job) -> Option<String> {
    let args = job
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .args
        .as_ref()?;
    let at = args.iter().position(|a| a == "--compare-to")?;
    args.get(at + 1).cloned()
}

/// Acts on a pass; `summary` is the gates' verdict, `job` the run that produced `r`.
pub async fn act(
    ctx: &Context,
    rts: &RetrainSchedule,
    ns: &str,
    job: &Job,
    r: &TrainResult,
    summary: &str,
    status: &mut RetrainScheduleStatus,
) -> Result<(), Error> {
    match rts.spec.on_pass {
        OnPass::Experiment => open_experiment(ctx, rts, ns, r, summary, status).await,
        OnPass::Canary => start_canary(ctx, rts, ns, job, r, summary, status).await,
        OnPass::Record => {
            ctx.event(
                rts,
                false,
                result::PASSED,
                format!("{}: {summary}", r.version),
            )
            .await;
            Ok(())
        }
    }
}

async fn open_experiment(
    ctx: &Context,
    rts: &RetrainSchedule,
    ns: &str,
    r: &TrainResult,
    summary: &str,
    status: &mut RetrainScheduleStatus,
) -> Result<(), Error> {
    let exp = build::experiment_for(rts, r);
    let exps = Api::<Experiment>::namespaced(ctx.client.clone(), ns);
    match apply_owned(&exps, rts, &exp).await? {
        Owned::Done(_) => {
            status.last_experiment = Some(exp.name_any());
            let note = format!(
                "{}: {summary}; Experiment {} opened",
                r.version,
                exp.name_any()
            );
            ctx.event(rts, false, result::PASSED, note).await;
        }
        Owned::Collision(c) => {
            let why = format!(
                "{} passed but its Experiment cannot be created: {c}",
                r.version
            );
            not_acted(ctx, rts, status, "ExperimentNotOpened", why).await;
        }
    }
    Ok(())
}

/// Records the canary for the RecModel's controller, which gives it the second arm while
/// the live version is still the one this run was compared with.
async fn start_canary(
    ctx: &Context,
    rts: &RetrainSchedule,
    ns: &str,
    job: &Job,
    r: &TrainResult,
    summary: &str,
    status: &mut RetrainScheduleStatus,
) -> Result<(), Error> {
    let rms = Api::<RecModel>::namespaced(ctx.client.clone(), ns);
    let Some(rm) = rms.get_opt(&rts.spec.rec_model_ref).await? else {
        let why = format!(
            "{} passed but RecModel {} does not exist; no canary",
            r.version, rts.spec.rec_model_ref
        );
        not_acted(ctx, rts, status, "CanaryNotStarted", why).await;
        return Ok(());
    };
    // Without a comparison the run beat nothing in particular: the canary stands against
    // whatever the spec serves now.
    let against = compared_with(job).unwrap_or_else(|| rm.spec.model_uri.clone());
    let record = RetrainCanary {
        model_uri: r.model_uri.clone(),
        weight: rts.spec.canary.weight,
        against,
        schedule: rts.name_any(),
        version: r.version.clone(),
        at: jiff::Timestamp::now().to_string(),
    };
    let configmaps = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns);
    match apply_owned(&configmaps, &rm, &retrain_canary::configmap(&rm, &record)).await? {
        Owned::Done(_) => {
            status.last_canary = Some(r.version.clone());
            let note = format!(
                "{}: {summary}; canary on RecModel {} for {} % of users",
                r.version,
                rm.name_any(),
                record.weight
            );
            ctx.event(rts, false, result::PASSED, note).await;
        }
        Owned::Collision(c) => {
            let why = format!(
                "{} passed but its canary cannot be recorded: {c}",
                r.version
            );
            not_acted(ctx, rts, status, "CanaryNotStarted", why).await;
        }
    }
    Ok(())
}

/// A pass whose action could not be taken: the reason in status and a Warning.
async fn not_acted(
    ctx: &Context,
    rts: &RetrainSchedule,
    status: &mut RetrainScheduleStatus,
    reason: &str,
    why: String,
) {
    status.last_reason = Some(why.clone());
    ctx.event(rts, true, reason, why).await;
}
