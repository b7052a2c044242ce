use super::common::{CommonStatus, ResourceSpec};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Periodic retraining with offline gates before a new version may be tried on users.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "recsys.dev",
    version = "v1alpha1",
    kind = "RetrainSchedule",
    namespaced,
    status = "RetrainScheduleStatus",
    shortname = "rts",
    category = "recsys",
    doc = "Retraining on a cron schedule (or on drift), gated by offline metrics.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Last Run", type_ = "date", json_path = ".status.lastRunTime"),
    printcolumn(
        name = "Last Result",
        type_ = "string",
        json_path = ".status.lastResult"
    ),
    printcolumn(name = "Next Run", type_ = "date", json_path = ".status.nextRunTime")
)]
#[serde(rename_all = "camelCase")]
pub struct RetrainScheduleSpec {
    /// Cron expression (5 fields, UTC).
    #[x_kube(validation = Rule::new("self.split(' ').size() == 5").message("schedule must have 5 cron fields"))]
    pub schedule: String,
    /// The RecModel this schedule produces versions for.
    pub rec_model_ref: String,
    pub job: TrainingJob,
    #[serde(default)]
    pub gates: OfflineGates,
    #[serde(default)]
    pub on_pass: OnPass,
    /// Start a run when any feature's PSI exceeds this (0 disables).
    #[serde(default = "default_psi")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub drift_psi_threshold: f64,
    #[serde(default = "default_history")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_jobs_history_limit: i32,
    #[serde(default = "default_history")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_jobs_history_limit: i32,
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    #[serde(default)]
    pub suspend: bool,
}

fn default_psi() -> f64 {
    0.2
}

fn default_history() -> i32 {
    3
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJob {
    pub image: String,
    /// Event data location (local path or object storage URI).
    pub data_uri: String,
    /// Where new versions are written.
    pub output_uri: String,
    /// Days of history to train on.
    #[serde(default = "default_window")]
    #[schemars(range(min = 1, max = 3650))]
    pub data_window_days: u32,
    #[serde(default)]
    pub resources: ResourceSpec,
    /// Hyper-parameters passed to the trainer as flags.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub hyper_parameters: std::collections::BTreeMap<String, String>,
    /// Credentials for object storage, by reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

fn default_window() -> u32 {
    90
}

/// Offline checks a new version must pass.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfflineGates {
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_auc: f64,
    /// Largest allowed relative NDCG@10 drop versus the live model, e.g. 0.02.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_ndcg_regression: f64,
}

impl Default for OfflineGates {
    fn default() -> Self {
        Self {
            min_auc: 0.75,
            max_ndcg_regression: 0.02,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum OnPass {
    /// Open an Experiment against the live model.
    #[default]
    Experiment,
    /// Set the new version as the RecModel's canary.
    Canary,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    #[default]
    Forbid,
    Replace,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrainScheduleStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<String>,
    /// Passed, GateFailed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_version: Option<String>,
}
