use super::common::CommonStatus;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An A/B experiment on one RecModel: the operator runs the treatment version as that
/// RecModel's second arm (with its own index), routes `trafficPercent` of users to it by a
/// salt of its own, reads per-arm user-level statistics from Prometheus and decides. Nothing
/// here or in the RecModel's spec is ever written by the operator: a promotion is recorded in
/// this status and in an operator-owned ConfigMap, so GitOps tools see no drift.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "recsys.dev",
    version = "v1alpha1",
    kind = "Experiment",
    namespaced,
    status = "ExperimentStatus",
    shortname = "exp",
    category = "recsys",
    doc = "An A/B experiment on a RecModel: treatment arm, sticky split, user-level statistics from Prometheus, promote or roll back.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Control",
        type_ = "string",
        json_path = ".status.controlVersion"
    ),
    printcolumn(
        name = "Treatment",
        type_ = "string",
        json_path = ".status.treatmentVersion"
    ),
    printcolumn(
        name = "Traffic",
        type_ = "integer",
        json_path = ".spec.trafficPercent"
    ),
    printcolumn(name = "Users", type_ = "string", json_path = ".status.users"),
    printcolumn(name = "Lift", type_ = "string", json_path = ".status.lift"),
    printcolumn(name = "P-Value", type_ = "string", json_path = ".status.pValue"),
    printcolumn(name = "Decision", type_ = "string", json_path = ".status.decision"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// Changing any of it mid-experiment would void the statistics (a new split, a new alpha after
// a look): an experiment is changed by deleting it and creating a new one.
#[x_kube(validation = Rule::new("self == oldSelf").message("an Experiment's spec is immutable; delete it and create a new one"))]
pub struct ExperimentSpec {
    /// The RecModel (same namespace) whose stable version is the control arm.
    pub rec_model: String,
    pub treatment: Treatment,
    /// Percent of users routed to the treatment.
    #[serde(default = "default_traffic")]
    #[schemars(range(min = 1, max = 50))]
    pub traffic_percent: u32,
    /// Salt of `hash(salt, user_id) mod 10000`; the Experiment's uid when absent, so every
    /// experiment draws fresh users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// The metric that must improve.
    #[serde(default)]
    pub success_metric: UserMetric,
    #[serde(default)]
    pub design: Design,
    #[serde(default)]
    pub analysis: Analysis,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<Guardrail>,
    /// Prometheus base URL (`http://prometheus.monitoring:9090`); the operator's
    /// `--prometheus-url` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
}

fn default_traffic() -> u32 {
    50
}

/// The version under test.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Treatment {
    #[x_kube(validation = Rule::new("self.matches('^(/|s3://|gs://|file://).+')").message("treatment.modelUri must be an absolute path or an s3://, gs:// or file:// URI"))]
    pub model_uri: String,
}

/// A metric computed per user from the router's exact per-arm sums.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum UserMetric {
    /// Clicks / impressions over the arm's users (a ratio metric, delta-method variance).
    #[default]
    Ctr,
    /// Purchases per exposed user.
    ConversionsPerUser,
}

impl UserMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ctr => "ctr",
            Self::ConversionsPerUser => "conversionsPerUser",
        }
    }
}

/// Sample-size design of the success metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Design {
    #[schemars(range(min = 0.0001, max = 0.2))]
    pub alpha: f64,
    /// Power of the whole decision; each test is planned at 1 − (1 − power)/(1 + guardrails).
    #[schemars(range(min = 0.5, max = 0.999))]
    pub power: f64,
    /// The success metric's expected control value (e.g. CTR 0.05).
    #[schemars(range(min = 0.0001, max = 1.0))]
    pub baseline: f64,
    /// Minimum detectable relative effect, e.g. 0.05 for +5 %.
    #[schemars(range(min = 0.0001, max = 10.0))]
    pub minimum_detectable_effect: f64,
    /// No promotion before this (weekly cycles), e.g. `7d`, `36h`, `90s`.
    #[serde(default = "default_min_duration")]
    pub min_duration: String,
    /// Rolled back when no win by then.
    #[serde(default = "default_max_duration")]
    pub max_duration: String,
    /// Seconds between looks.
    #[serde(default = "default_interval")]
    #[schemars(range(min = 5, max = 86400))]
    pub interval_seconds: u32,
}

fn default_min_duration() -> String {
    "7d".into()
}

fn default_max_duration() -> String {
    "28d".into()
}

fn default_interval() -> u32 {
    300
}

impl Default for Design {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            power: 0.8,
            baseline: 0.05,
            minimum_detectable_effect: 0.05,
            min_duration: default_min_duration(),
            max_duration: default_max_duration(),
            interval_seconds: default_interval(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// Absolute improvement of the success metric required to promote, besides significance.
    #[serde(default)]
    pub min_lift: f64,
    /// Below this p-value the split is broken and the experiment pauses.
    #[serde(default = "default_srm")]
    pub srm_alpha: f64,
    /// mSPRT mixing scale in the success metric's units; the planned absolute MDE
    /// (baseline × MDE) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
}

fn default_srm() -> f64 {
    0.001
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            min_lift: 0.0,
            srm_alpha: default_srm(),
            tau: None,
        }
    }
}

/// A metric the treatment must not make worse by more than `margin` (in the metric's units).
/// A user metric is tested for non-inferiority on the same always-valid interval as the
/// success metric. A `query` is an operational metric (p99 latency, error rate) read from
/// Prometheus per arm: it has no per-user variance, so it is compared with the margin as a
/// threshold, blocks promotion while breached and rolls back after `breachLooks` breached
/// looks in a row.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.userMetric) != has(self.query)").message("a guardrail has exactly one of userMetric and query"))]
pub struct Guardrail {
    /// A short name for status, e.g. `p99-latency`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_metric: Option<UserMetric>,
    /// PromQL returning one number; `$ARM` is replaced by the arm (`stable` or `canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// How much worse the treatment may be, in the metric's units.
    #[schemars(range(min = 0.0))]
    pub margin: f64,
    /// Higher is better for user metrics by default, lower for queries (latency, errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub higher_is_better: Option<bool>,
    #[serde(default = "default_breach_looks")]
    #[schemars(range(min = 1, max = 100))]
    pub breach_looks: u32,
}

fn default_breach_looks() -> u32 {
    3
}

impl Guardrail {
    pub fn higher_is_better(&self) -> bool {
        self.higher_is_better.unwrap_or(self.user_metric.is_some())
    }
}

/// Phases of an experiment.
pub mod phase {
    /// Waiting for the treatment arm (its index, its pods, the routing table).
    pub const PENDING: &str = "Pending";
    pub const RUNNING: &str = "Running";
    /// Sample-ratio mismatch: the numbers cannot be trusted; the arms keep running.
    pub const PAUSED: &str = "Paused";
    /// Decided (or aborted); the treatment arm is gone.
    pub const CONCLUDED: &str = "Concluded";
}

/// One metric at the last look.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    pub name: String,
    pub control: f64,
    pub treatment: f64,
    /// treatment − control.
    pub diff: f64,
    /// Always-valid (1 − alpha) interval of the difference (user metrics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_high: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Pending, Running, Paused or Concluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The control arm's model URI when the experiment started; a change voids it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_model_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_version: Option<String>,
    /// The salt in the routing table (and on the router's metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// When both arms were first routed (RFC 3339): durations count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_look_at: Option<String>,
    #[serde(default)]
    pub looks: u32,
    /// Users the design needs in both arms together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_users: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_users: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_users: Option<u64>,
    /// `control/treatment` users, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<String>,
    /// Relative lift of the success metric with its always-valid interval, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lift: Option<String>,
    /// Always-valid p-value of the success metric (running minimum over looks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<String>,
    /// The same, as a number: the next look continues from it (restart-safe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srm_p_value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricResult>,
    /// Consecutive breached looks per operational guardrail.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub breaches: std::collections::BTreeMap<String, u32>,
    /// Continue, Promote, Rollback, Inconclusive, Pause or Aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}
