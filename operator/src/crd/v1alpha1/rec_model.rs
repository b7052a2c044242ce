use super::common::{CommonStatus, Placement, ResourceSpec, SecretKeyRef};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A served recommender: data-plane Deployments (stable and optional canary) behind a router.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "recsys.dev",
    version = "v1alpha1",
    kind = "RecModel",
    namespaced,
    status = "RecModelStatus",
    shortname = "rm",
    category = "recsys",
    doc = "A served recommender: stable and canary model versions behind a sticky router.",
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.stableVersion"
    ),
    printcolumn(name = "Canary", type_ = "string", json_path = ".status.canaryVersion"),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".status.canaryWeight"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RecModelSpec {
    /// Versioned artifact directory of the stable model (local path, s3:// or gs://).
    #[x_kube(validation = Rule::new("self.matches('^(/|s3://|gs://|file://).+')").message("modelUri must be an absolute path or an s3://, gs:// or file:// URI"))]
    pub model_uri: String,
    /// Name of the ItemIndex (same namespace) whose index this model serves.
    pub item_index_ref: String,
    /// Container image of the data plane.
    #[serde(default = "default_image")]
    pub image: String,
    /// Serving replicas when autoscaling is off.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    #[serde(default)]
    pub resources: ResourceSpec,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default)]
    pub serving: ServingConfig,
    /// Secret (same namespace) whose keys become the pods' environment, e.g.
    /// `AWS_ACCESS_KEY_ID` for object storage. Credentials never appear in the spec itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_secret_name: Option<String>,
    /// A second model version receiving `weight` percent of users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// Where the pods send the feedback they accept (the next training run's data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackSink>,
    /// The shared Redis (online features, caches, trending), by Secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisRef>,
    /// Who may call the data plane. Without it, Feedback is refused (it changes shared
    /// state) and Recommend is open to what the NetworkPolicies admit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// TLS for the router's and the arms' gRPC and HTTP ports. Without it they speak plain
    /// text, which only the NetworkPolicies protect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// A certificate by Secret reference, in the layout cert-manager writes (`tls.crt`,
/// `tls.key`, `ca.crt`). Its names must cover the RecModel's Services — `<name>`,
/// `<name>-stable`, `<name>-canary` — since the router verifies each arm against `ca.crt` by
/// the name it dials. The pods mount it as a directory, so a renewal reaches them without a
/// restart.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret (same namespace) with `tls.crt`, `tls.key` and `ca.crt`.
    pub secret_name: String,
}

/// Bearer tokens, by Secret reference: its `tokens` key lists the accepted tokens, one per
/// line. The router and the arms mount it (a rotation reaches them without a restart); the
/// router presents the first token to the arms, which accept calls from token holders only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Secret (same namespace) with a `tokens` key.
    pub token_secret_name: String,
    /// Recommend through the router needs a token too.
    #[serde(default)]
    pub require_token_for_recommend: bool,
}

/// Accepted feedback is buffered on each pod's volume (fsynced before it is acknowledged) and
/// flushed here as Parquet, `date=YYYY-MM-DD/hour=HH/`, in the pipeline's event schema with a
/// unique `event_id` per event (delivery is at-least-once; `recsys validate` deduplicates).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackSink {
    /// Object-storage prefix, e.g. `s3://recsys-events/movies/feedback`; credentials come from
    /// `storageSecretName`.
    #[x_kube(validation = Rule::new("self.matches('^(s3|gs|file)://.+')").message("feedback.uri must be an s3://, gs:// or file:// URI"))]
    pub uri: String,
    /// Seconds between flushes (and one more on shutdown).
    #[serde(default = "default_flush_seconds")]
    #[schemars(range(min = 5, max = 3600))]
    pub flush_seconds: u32,
}

fn default_flush_seconds() -> u32 {
    60
}

/// Redis connection settings; neither the URL nor the password ever appears in a spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisRef {
    /// Secret key holding the URL (`redis://host:6379/0`, or `rediss://` for TLS).
    pub url_secret_ref: SecretKeyRef,
    /// Secret key holding the password, when the URL has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Redis runs in this namespace, in the pods these labels select: with NetworkPolicies on,
    /// the operator admits only this RecModel's arms and router to them (`<name>-redis`).
    /// Policies add up, so RecModels sharing one Redis each admit their own pods; any other
    /// client (a `recsys materialize` CronJob) needs a policy of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<RedisNetworkPolicy>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisNetworkPolicy {
    /// Labels of the Redis pods (at least one: an empty selector would select every pod of
    /// the namespace).
    #[x_kube(validation = Rule::new("self.size() > 0").message("redis.networkPolicy.podSelector must name at least one label"))]
    pub pod_selector: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_redis_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

fn default_redis_port() -> i32 {
    6379
}

fn default_image() -> String {
    "ghcr.io/recsys/dataplane:0.1.0".into()
}

fn default_replicas() -> i32 {
    2
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Target average CPU utilisation, percent.
    #[serde(default = "default_cpu_target")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_percent: i32,
}

fn default_cpu_target() -> i32 {
    70
}

/// Request-path settings passed to the data plane.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingConfig {
    /// Candidates retrieved from the ANN index before ranking.
    #[schemars(range(min = 10, max = 5000))]
    pub candidates: u32,
    /// Default list length when a request does not say.
    #[schemars(range(min = 1, max = 100))]
    pub num_items: u32,
    /// At most this many items of one category in the top 10.
    #[schemars(range(min = 1, max = 10))]
    pub max_per_category: u32,
}

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            candidates: 500,
            num_items: 10,
            max_per_category: 3,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    /// Artifact directory of the candidate model.
    pub model_uri: String,
    /// Percent of users (by sticky bucket) routed to the canary.
    #[schemars(range(min = 0, max = 100))]
    pub weight: u32,
}

/// What one arm's Deployment was last applied with: a model version and the index built from
/// that version's own item vectors.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedArm {
    pub model_uri: String,
    pub index_uri: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecModelStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The version every stable pod runs: set only once the stable Deployment has rolled out
    /// completely (observed generation, updated, ready and total replicas all caught up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_version: Option<String>,
    /// The canary version, once its pods have rolled out completely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_version: Option<String>,
    /// What the stable Deployment was last applied with (it may still be rolling out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_arm: Option<AppliedArm>,
    /// What the canary Deployment was last applied with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_arm: Option<AppliedArm>,
    /// Since when (RFC 3339) the canary has been out of the routing table while its pods
    /// still run: they are removed or replaced only after the routers had time to reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_draining_since: Option<String>,
    #[serde(default)]
    pub stable_ready_replicas: i32,
    #[serde(default)]
    pub canary_ready_replicas: i32,
    /// Percent of users on the canary as last written to the routing table.
    #[serde(default)]
    pub canary_weight: u32,
    /// The Experiment whose treatment the routing table sends users to (by its salt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// The Experiment whose promotion the stable arm runs while the spec names the version it
    /// beat (see the `Promoted` condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_by: Option<String>,
    /// The RetrainSchedule whose passing version the canary arm runs (`onPass: Canary`),
    /// while the spec has no canary of its own and no Experiment holds the arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_by: Option<String>,
}
