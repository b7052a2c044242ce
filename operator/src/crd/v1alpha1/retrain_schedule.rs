use super::common::{CommonStatus, ResourceSpec};
use super::experiment::{Analysis, Design, Guardrail, UserMetric};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    doc = "Retraining on a cron schedule (or on drift), gated by offline metrics against the live version; a version that passes opens an Experiment (or a canary).",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Last Run", type_ = "date", json_path = ".status.lastRunTime"),
    printcolumn(
        name = "Last Result",
        type_ = "string",
        json_path = ".status.lastResult"
    ),
    printcolumn(
        name = "Last Version",
        type_ = "string",
        json_path = ".status.lastVersion"
    ),
    printcolumn(name = "Next Run", type_ = "date", json_path = ".status.nextRunTime")
)]
#[serde(rename_all = "camelCase")]
pub struct RetrainScheduleSpec {
    /// Cron expression, 5 fields (minute hour day-of-month month day-of-week), in `timeZone`.
    #[x_kube(validation = Rule::new("self.trim().split(' ').filter(f, f != '').size() == 5").message("schedule must have 5 cron fields"))]
    pub schedule: String,
    /// IANA time zone of the schedule (`Europe/Berlin`); UTC when absent. A wall-clock time
    /// skipped by a daylight-saving jump runs just after it; one repeated runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// A run more than this late (the operator was down) is skipped, not started. Without
    /// it, the latest missed run starts however late; never more than one catches up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10))]
    pub starting_deadline_seconds: Option<i64>,
    /// The RecModel (same namespace) this schedule produces versions for; its served
    /// version is the one every new version is compared with.
    pub rec_model_ref: String,
    pub job: TrainingJob,
    #[serde(default)]
    pub gates: OfflineGates,
    #[serde(default)]
    pub on_pass: OnPass,
    /// The Experiment opened for a version that passes the gates.
    #[serde(default)]
    pub experiment: ExperimentTemplate,
    /// The canary a version that passes the gates gets with `onPass: Canary`.
    #[serde(default)]
    pub canary: CanaryTemplate,
    /// Start a run when the serving pods' feature drift passes a threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftTrigger>,
    #[serde(default = "default_history")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_jobs_history_limit: i32,
    #[serde(default = "default_history")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_jobs_history_limit: i32,
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// No new runs while true; a running one finishes and is judged.
    #[serde(default)]
    pub suspend: bool,
}

fn default_history() -> i32 {
    3
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJob {
    /// The data-plane image; the operator's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Event history in the pipeline schema: a file or a prefix of files (CSV, JSONL,
    /// Parquet), local or `s3://`/`gs://`.
    #[x_kube(validation = Rule::new("self.matches('^(/|s3://|gs://|file://).+')").message("dataUri must be an absolute path or an s3://, gs:// or file:// URI"))]
    pub data_uri: String,
    /// The feedback the serving pods wrote (a prefix of `date=…/hour=…/` partitions), read
    /// and validated with the history so the next version learns from the last one's
    /// traffic; the RecModel's `feedback.uri` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_uri: Option<String>,
    /// Model root; each run writes `<outputUri>/<version>`.
    #[x_kube(validation = Rule::new("self.matches('^(/|s3://|gs://|file://).+')").message("outputUri must be an absolute path or an s3://, gs:// or file:// URI"))]
    pub output_uri: String,
    /// Which events count as relevant (`purchase,add_to_cart`, `rating>=4`): declared, never
    /// guessed from the data.
    pub labels: String,
    /// User profiles and item metadata (optional, as for `recsys train`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_uri: Option<String>,
    /// Days of history to train on, counted back from the newest event.
    #[serde(default = "default_window")]
    #[schemars(range(min = 1, max = 3650))]
    pub data_window_days: u32,
    #[serde(default)]
    pub resources: ResourceSpec,
    /// Trainer flags without the dashes (`max-epochs: "10"`); only the tuning flags of
    /// `recsys train` are accepted, never its inputs or outputs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hyper_parameters: BTreeMap<String, String>,
    /// Secret with object-storage credentials (`AWS_*` keys), by reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// A run longer than this is failed by Kubernetes.
    #[serde(default = "default_deadline")]
    #[schemars(range(min = 60))]
    pub active_deadline_seconds: i64,
}

fn default_window() -> u32 {
    90
}

fn default_deadline() -> i64 {
    6 * 3600
}

/// Offline checks a new version must pass, measured by the training Job itself: absolute,
/// and against the live version on the same test window with a paired interval.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfflineGates {
    /// Lowest ranker AUC on the test window.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_auc: f64,
    /// Lowest NDCG@10 (all users) on the test window; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_ndcg_at10: Option<f64>,
    /// Largest relative NDCG@10 drop versus the live version the new one may have: it
    /// passes when the lower end of the paired 95 % interval of the difference is above
    /// −maxNdcgRegression × live NDCG@10 (non-inferiority), e.g. 0.02.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_ndcg_regression: f64,
}

impl Default for OfflineGates {
    fn default() -> Self {
        Self {
            min_auc: 0.75,
            min_ndcg_at10: None,
            max_ndcg_regression: 0.02,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum OnPass {
    /// Open an Experiment against the live version.
    #[default]
    Experiment,
    /// Record the version as passed and stop there (a person or a pipeline takes it on).
    Record,
    /// Serve the version to `canary.weight` % of users on the RecModel's second arm, with
    /// no statistical decision: it stays until Git names a version (promoting it or not),
    /// the live version changes, or a newer passing run replaces it.
    Canary,
}

/// The canary a passing version gets with `onPass: Canary`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryTemplate {
    /// Percent of users (by bucket) the canary serves.
    #[serde(default = "default_traffic")]
    #[schemars(range(min = 1, max = 50))]
    pub weight: u32,
}

impl Default for CanaryTemplate {
    fn default() -> Self {
        Self {
            weight: default_traffic(),
        }
    }
}

/// The Experiment a passing version gets; the fields mean what they mean on an Experiment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentTemplate {
    #[serde(default = "default_traffic")]
    #[schemars(range(min = 1, max = 50))]
    pub traffic_percent: u32,
    #[serde(default)]
    pub success_metric: UserMetric,
    #[serde(default)]
    pub design: Design,
    #[serde(default)]
    pub analysis: Analysis,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<Guardrail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
}

fn default_traffic() -> u32 {
    10
}

impl Default for ExperimentTemplate {
    fn default() -> Self {
        Self {
            traffic_percent: default_traffic(),
            success_metric: UserMetric::default(),
            design: Design::default(),
            analysis: Analysis::default(),
            guardrails: Vec::new(),
            prometheus_url: None,
        }
    }
}

/// Retrain when what the serving pods see drifts from what the live version was trained
/// on: the largest PSI over the declared features, read from Prometheus.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftTrigger {
    /// A run starts when any feature's PSI exceeds this (0.1 moderate, 0.25 large shift).
    #[serde(default = "default_psi")]
    #[schemars(range(min = 0.01, max = 10.0))]
    pub psi_threshold: f64,
    /// At most one drift-started run per this long (`24h`, `90m`).
    #[serde(default = "default_drift_interval")]
    pub min_interval: String,
    /// PromQL with one series per feature (label `feature`); `$VERSION` is replaced by the
    /// live version. Default: `max by (feature) (recsys_feature_psi{version="$VERSION"})`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The operator's `--prometheus-url` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
}

fn default_psi() -> f64 {
    0.2
}

fn default_drift_interval() -> String {
    "24h".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// A run that falls due while another is active is skipped.
    #[default]
    Forbid,
    /// The active run is deleted and the new one starts.
    Replace,
    /// Runs may overlap.
    Allow,
}

/// How the last finished run ended.
pub mod result {
    /// Trained and passed every gate.
    pub const PASSED: &str = "Passed";
    /// Trained, but a gate said no.
    pub const GATE_FAILED: &str = "GateFailed";
    /// The Job failed or its result could not be read.
    pub const FAILED: &str = "Failed";
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrainScheduleStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The scheduled time of the latest run started or skipped (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// When the latest run was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<String>,
    /// Passed, GateFailed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// Why: the gate numbers, or the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
    /// The version the last finished run trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_version: Option<String>,
    /// The Job whose result `lastResult` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job: Option<String>,
    /// The Experiment opened for the last passing version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_experiment: Option<String>,
    /// The version the last passing run put on the RecModel's canary arm (`onPass: Canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_canary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<String>,
    /// Jobs of this schedule still running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// Finished Jobs whose result has been judged (so a restart never judges one twice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub judged: Vec<String>,
    /// When drift last started a run, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_run_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_reason: Option<String>,
    /// The largest PSI at the last drift check, `feature=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
}
