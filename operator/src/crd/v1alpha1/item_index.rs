use super::common::{CommonStatus, ResourceSpec};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A FAISS index over one model version's item embeddings, built by a Job.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "recsys.dev",
    version = "v1alpha1",
    kind = "ItemIndex",
    plural = "itemindexes",
    namespaced,
    status = "ItemIndexStatus",
    shortname = "ii",
    category = "recsys",
    doc = "An ANN index over a model version's item embeddings; published only above its recall target.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Items", type_ = "integer", json_path = ".status.items"),
    printcolumn(name = "Recall", type_ = "number", json_path = ".status.recall"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.type.startsWith('IVF') || has(self.nlist)").message("IVF, IVFSQ8 and IVFPQ indexes need nlist"))]
#[x_kube(validation = Rule::new("self.type != 'IVFPQ' || has(self.pqM)").message("IVFPQ indexes need pqM"))]
pub struct ItemIndexSpec {
    /// Artifact directory whose item embeddings are indexed.
    pub model_uri: String,
    #[serde(rename = "type")]
    pub index_type: IndexType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub nlist: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub nprobe: Option<u32>,
    /// HNSW links per node.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "m")]
    #[schemars(range(min = 4, max = 128))]
    pub hnsw_m: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub ef_search: Option<u32>,
    /// Product-quantizer sub-vectors (IVFPQ); must divide the embedding width.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "pqM")]
    #[schemars(range(min = 1, max = 256))]
    pub pq_m: Option<u32>,
    /// Minimum recall@k versus exact search on a sample before the index is published.
    #[serde(default = "default_recall_target")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub recall_target: f64,
    /// k of the recall measurement.
    #[serde(default = "default_recall_k")]
    #[schemars(range(min = 1, max = 5000))]
    pub recall_k: u32,
    #[serde(default)]
    pub resources: ResourceSpec,
    /// Secret (same namespace) whose keys become the pods' environment, e.g.
    /// `AWS_ACCESS_KEY_ID` for object storage. Credentials never appear in the spec itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_secret_name: Option<String>,
}

fn default_recall_target() -> f64 {
    0.95
}

fn default_recall_k() -> u32 {
    500
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum IndexType {
    Flat,
    #[serde(rename = "IVF")]
    Ivf,
    #[serde(rename = "HNSW")]
    Hnsw,
    #[serde(rename = "IVFPQ")]
    IvfPq,
    #[serde(rename = "IVFSQ8")]
    IvfSq8,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemIndexStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Pending, Building, Ready or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// The last published index (recall at or above target). It stays while a newer build
    /// runs or fails, so RecModels keep serving from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<String>,
    /// The model version directory whose item vectors `artifactUri` holds; serving refuses an
    /// index built from any other version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_model_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_seconds: Option<f64>,
    /// Digest of the spec the last finished build ran for. A finished build is never redone
    /// for the same digest, whether or not its Job still exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_spec_digest: Option<String>,
    /// The Job of the build in progress or last finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
}
