use super::common::CommonStatus;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An A/B test between two RecModels with a sticky split and a statistical decision.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "recsys.dev",
    version = "v1alpha1",
    kind = "Experiment",
    namespaced,
    status = "ExperimentStatus",
    shortname = "exp",
    category = "recsys",
    doc = "An A/B experiment: sticky traffic split, metrics from Prometheus, promote or roll back.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Control", type_ = "string", json_path = ".spec.control"),
    printcolumn(name = "Treatment", type_ = "string", json_path = ".spec.treatment"),
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
#[x_kube(validation = Rule::new("self.control != self.treatment").message("control and treatment must differ"))]
pub struct ExperimentSpec {
    /// RecModel serving the control arm.
    #[x_kube(validation = Rule::new("self == oldSelf").message("control is immutable"))]
    pub control: String,
    /// RecModel serving the treatment arm.
    #[x_kube(validation = Rule::new("self == oldSelf").message("treatment is immutable"))]
    pub treatment: String,
    /// Percent of users assigned to treatment.
    #[serde(default = "default_split")]
    #[schemars(range(min = 0, max = 100))]
    pub treatment_percent: u32,
    /// Salt of `hash(salt, user_id) mod 10000`; fixed for the experiment's life.
    #[x_kube(validation = Rule::new("self == oldSelf").message("salt is immutable"))]
    pub salt: String,
    /// Primary metric, e.g. "ctr".
    #[serde(default = "default_metric")]
    pub primary_metric: String,
    #[serde(default)]
    pub design: Design,
    #[serde(default)]
    pub analysis: Analysis,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<Guardrail>,
    /// Prometheus base URL; the operator's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
}

fn default_split() -> u32 {
    50
}

fn default_metric() -> String {
    "ctr".into()
}

/// Sample-size design.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Design {
    #[schemars(range(min = 0.0001, max = 0.5))]
    pub alpha: f64,
    #[schemars(range(min = 0.5, max = 0.999))]
    pub power: f64,
    /// Minimum detectable relative effect, e.g. 0.02 for 2 %.
    #[schemars(range(min = 0.0001, max = 10.0))]
    pub minimum_detectable_effect: f64,
}

impl Default for Design {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            power: 0.8,
            minimum_detectable_effect: 0.02,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub method: AnalysisMethod,
    /// Relative lift required to promote, besides significance.
    #[serde(default)]
    pub min_lift: f64,
    /// p-value threshold of the sample-ratio-mismatch check.
    #[serde(default = "default_srm")]
    pub srm_alpha: f64,
}

fn default_srm() -> f64 {
    0.001
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            method: AnalysisMethod::FixedHorizon,
            min_lift: 0.0,
            srm_alpha: default_srm(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AnalysisMethod {
    /// Two-proportion z-test once the designed sample is reached.
    FixedHorizon,
    /// Always-valid sequential test; may stop early.
    Sequential,
}

/// A metric that must not get worse in treatment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Guardrail {
    /// e.g. "p99_latency_seconds" or "error_rate".
    pub metric: String,
    /// Largest acceptable value in treatment.
    pub max: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Pending, Running, Concluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_samples: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_samples: Option<i64>,
    /// Relative lift with its confidence interval, formatted for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lift: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srm_p_value: Option<String>,
    /// Promote, Rollback or Continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}
