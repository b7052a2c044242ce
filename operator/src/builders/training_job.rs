//! The training Job of a RetrainSchedule run and the result it reports. The container runs
//! `recsys train` on the spec's data window, compares the new version with the live one on
//! the same test window, and writes one JSON line (from the version's `evaluation.json`) to
//! its termination message; the controller judges the gates on that line.

use super::pod::{
    container_security, env_from, pod_security, resources, scratch_volumes, MODEL_CACHE_DIR,
};
use super::{child_meta, labels};
use crate::crd::v1alpha1::{Experiment, ExperimentSpec, RetrainSchedule, Treatment};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The label naming the RetrainSchedule a Job belongs to.
pub const SCHEDULE_LABEL: &str = "recsys.dev/retrain-schedule";
/// Annotations on the Job: the run's scheduled time, its version, and why it started.
pub const SCHEDULED_AT: &str = "recsys.dev/scheduled-at";
pub const VERSION: &str = "recsys.dev/version";
pub const TRIGGER: &str = "recsys.dev/trigger";

/// `recsys train` flags a spec's `hyperParameters` may set; inputs, outputs and the
/// comparison are the operator's.
pub const TUNABLE_FLAGS: &[&str] = &[
    "max-epochs",
    "recency",
    "ranker-trials",
    "seed",
    "no-mf",
    "split",
    "validation-days",
    "test-days",
    "train-fraction",
    "validation-fraction",
    "ranker-window-days",
    "ranker-windows",
    "category-column",
];

/// What a finished training run reports (the `gates` of its `evaluation.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainResult {
    pub version: String,
    pub model_uri: String,
    pub ndcg_at10: f64,
    /// Absent when the test window had no positive candidate to rank.
    #[serde(default)]
    pub ranker_auc: Option<f64>,
    /// The live version it was compared with, when there was one.
    #[serde(default)]
    pub live_version: Option<String>,
    #[serde(default)]
    pub live_ndcg_at10: Option<f64>,
    /// Paired 95 % interval of NDCG@10(new) − NDCG@10(live) over the common users.
    #[serde(default)]
    pub versus_live: Option<Interval>,
    #[serde(default)]
    pub common_users: usize,
    /// The live version had trained on the test window (the comparison flatters it).
    #[serde(default)]
    pub live_saw_test_window: Option<bool>,
    /// Rows of the data window trained on.
    #[serde(default)]
    pub rows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// Parses a training container's termination message (its last JSON line).
pub fn parse_result(message: &str) -> Result<TrainResult, String> {
    let line = message
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("no JSON result in the termination message {message:?}"))?;
    let r: TrainResult =
        serde_json::from_str(line).map_err(|e| format!("unreadable training result: {e}"))?;
    let unit = |x: f64| (0.0..=1.0).contains(&x);
    let interval_ok = r
        .versus_live
        .is_none_or(|i| i.low <= i.high && (-1.0..=1.0).contains(&i.low) && i.high <= 1.0);
    if !unit(r.ndcg_at10)
        || !r.ranker_auc.is_none_or(unit)
        || !r.live_ndcg_at10.is_none_or(unit)
        || !interval_ok
    {
        return Err(format!("implausible training result {line}"));
    }
    Ok(r)
}

/// Refuses hyper-parameters that are not tuning flags (or would smuggle in another flag).
pub fn check_hyper_parameters(params: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in params {
        if !TUNABLE_FLAGS.contains(&key.as_str()) {
            return Err(format!(
                "job.hyperParameters.{key} is not a tuning flag of recsys train (allowed: {})",
                TUNABLE_FLAGS.join(", ")
            ));
        }
        if value.starts_with('-') && value.parse::<f64>().is_err() {
            return Err(format!(
                "job.hyperParameters.{key} = {value:?} looks like a flag"
            ));
        }
    }
    Ok(())
}

/// One run: the Job's name, the version it trains, and why it started.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The scheduled (or drift-trigger) time, RFC 3339, minute precision.
    pub at: jiff::Timestamp,
    /// `schedule` or `drift`.
    pub trigger: &'static str,
}

impl Run {
    fn stamp(&self) -> String {
        self.at.strftime("%Y%m%dT%H%MZ").to_string()
    }

    /// Job names are the schedule's name and the run's minute, so a run is created once
    /// however often the controller retries.
    pub fn job_name(&self, rts: &RetrainSchedule) -> String {
        let suffix = format!("-{}", self.stamp().to_ascii_lowercase());
        let mut base = rts.name_any();
        // Job names are DNS labels (63), and the Job controller appends 6 for pod names.
        base.truncate(63 - 6 - suffix.len());
        format!("{}{suffix}", base.trim_end_matches('-'))
    }

    pub fn version(&self) -> String {
        format!("v{}", self.stamp())
    }
}

/// The Job for `run`: compared with `live_model_uri` (the RecModel's served version),
/// learning also from `feedback_uri` (the spec's, else the RecModel's feedback sink).
pub fn job(
    rts: &RetrainSchedule,
    run: &Run,
    live_model_uri: Option<&str>,
    feedback_uri: Option<&str>,
    default_image: &str,
) -> Job {
    let spec = &rts.spec.job;
    let version = run.version();
    let mut args = vec![
        "train".to_owned(),
        "--events".into(),
        spec.data_uri.clone(),
        "--labels".into(),
        spec.labels.clone(),
        "--out".into(),
        spec.output_uri.clone(),
        "--version".into(),
        version.clone(),
        "--window-days".into(),
        spec.data_window_days.to_string(),
        "--result-file".into(),
        "/dev/termination-log".into(),
    ];
    if let Some(live) = live_model_uri {
        args.extend(["--compare-to".into(), live.to_owned()]);
    }
    if let Some(feedback) = spec.feedback_uri.as_deref().or(feedback_uri) {
        args.extend(["--feedback".into(), feedback.to_owned()]);
    }
    for (flag, value) in [("--users", &spec.users_uri), ("--items", &spec.items_uri)] {
        if let Some(v) = value {
            args.extend([flag.to_owned(), v.clone()]);
        }
    }
    for (key, value) in &spec.hyper_parameters {
        if key == "no-mf" {
            if value == "true" {
                args.push("--no-mf".into());
            }
            continue;
        }
        args.extend([format!("--{key}"), value.clone()]);
    }
    let (volumes, mounts) = scratch_volumes();
    let mut job_labels = labels(&rts.name_any(), "training");
    job_labels.insert(SCHEDULE_LABEL.into(), rts.name_any());
    let mut meta = child_meta(rts, run.job_name(rts), job_labels.clone());
    meta.annotations = Some(BTreeMap::from([
        (SCHEDULED_AT.into(), run.at.to_string()),
        (VERSION.into(), version),
        (TRIGGER.into(), run.trigger.into()),
    ]));
    Job {
        metadata: meta,
        spec: Some(JobSpec {
            // A training run is expensive and its failure is reported, not retried blindly.
            backoff_limit: Some(1),
            active_deadline_seconds: Some(spec.active_deadline_seconds),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "train".into(),
                        image: Some(
                            spec.image
                                .clone()
                                .unwrap_or_else(|| default_image.to_owned()),
                        ),
                        args: Some(args),
                        env: Some(vec![EnvVar {
                            name: "RECSYS_CACHE_DIR".into(),
                            value: Some(MODEL_CACHE_DIR.into()),
                            ..Default::default()
                        }]),
                        env_from: env_from(spec.credentials_secret.as_ref()),
                        resources: Some(resources(&spec.resources)),
                        security_context: Some(container_security()),
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
                        volume_mounts: Some(mounts),
                        ..Default::default()
                    }],
                    security_context: Some(pod_security()),
                    automount_service_account_token: Some(false),
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The Experiment a passing version opens: the schedule's template, the RecModel's live
/// version as control, owned by the schedule (so Argo CD shows it as the schedule's child,
/// and nothing in Git is edited).
pub fn experiment_for(rts: &RetrainSchedule, result: &TrainResult) -> Experiment {
    let t = &rts.spec.experiment;
    let name = format!("{}-{}", rts.name_any(), result.version.to_ascii_lowercase());
    let mut exp = Experiment::new(
        &name,
        ExperimentSpec {
            rec_model: rts.spec.rec_model_ref.clone(),
            treatment: Treatment {
                model_uri: result.model_uri.clone(),
            },
            traffic_percent: t.traffic_percent,
            salt: None,
            success_metric: t.success_metric,
            design: t.design.clone(),
            analysis: t.analysis.clone(),
            guardrails: t.guardrails.clone(),
            prometheus_url: t.prometheus_url.clone(),
        },
    );
    let mut exp_labels = labels(&rts.name_any(), "experiment");
    exp_labels.insert(SCHEDULE_LABEL.into(), rts.name_any());
    exp.metadata = child_meta(rts, name, exp_labels);
    exp.metadata.annotations = Some(BTreeMap::from([(VERSION.into(), result.version.clone())]));
    exp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_parse_and_implausible_ones_are_refused() {
        let good = r#"{"version":"v1","modelUri":"s3://m/v1","ndcgAt10":0.3,"rankerAuc":0.8,"liveVersion":"v0","liveNdcgAt10":0.29,"versusLive":{"mean":0.01,"low":-0.002,"high":0.02},"commonUsers":900,"rows":1000}"#;
        let r = parse_result(&format!("training…\n{good}\n")).unwrap();
        assert_eq!(r.live_version.as_deref(), Some("v0"));
        assert_eq!(r.versus_live.unwrap().low, -0.002);
        assert!(parse_result("no json here").is_err());
        assert!(parse_result(&good.replace("0.8", "1.8")).is_err());
        assert!(parse_result(&good.replace("\"low\":-0.002", "\"low\":0.5")).is_err());
    }

    #[test]
    fn only_tuning_flags_pass_as_hyper_parameters() {
        let ok = BTreeMap::from([("max-epochs".to_owned(), "5".to_owned())]);
        assert!(check_hyper_parameters(&ok).is_ok());
        for (k, v) in [
            ("out", "s3://elsewhere"),
            ("events", "/etc"),
            ("seed", "--out"),
        ] {
            let bad = BTreeMap::from([(k.to_owned(), v.to_owned())]);
            assert!(check_hyper_parameters(&bad).is_err(), "{k}={v}");
        }
    }
}
