//! The version format beyond the manifest: the files a servable version holds, the types
//! serving reads them into, and the writer training uses. Neither side imports the other;
//! both import this.

use crate::artifacts::{self, DataWindow, Manifest};
use crate::data::{Dataset, ItemMeta};
use crate::features::FeatureSnapshot;
use recsys_models::{AnnIndex, Ranker, TwoTower};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Display metadata and external ids, by dense id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub user_ids: Vec<String>,
    pub items: Vec<ItemMeta>,
}

impl Catalog {
    pub fn from_dataset(data: &Dataset) -> Self {
        Self {
            user_ids: data.users.iter().map(|u| u.external_id.clone()).collect(),
            items: data.items.clone(),
        }
    }
}

pub const SNAPSHOT_FILE: &str = "snapshot.json";
pub const CATALOG_FILE: &str = "catalog.json";
pub const RANKER_FILE: &str = "ranker.txt";
pub const COLD_START_FILE: &str = "cold_start.json";

/// What users without history get: a popularity list chosen on validation (older versions
/// lack the file and fall back to their items' 7-day counts).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColdStart {
    /// How the list was counted, in words.
    pub policy: String,
    pub as_of: i64,
    /// Dense item ids, best first, with their scores.
    pub items: Vec<(u32, f32)>,
    /// Whether users the version knows but who have no history yet go through the model
    /// (it beat the list on validation) rather than get the list.
    pub model_for_known_cold_users: bool,
}

/// Everything needed to write one version directory.
pub struct BundleParts<'a> {
    pub version: &'a str,
    pub model: &'a TwoTower,
    /// The ANN index over the version's item vectors.
    pub ann: &'a AnnIndex,
    pub ranker: &'a Ranker,
    pub snapshot: &'a FeatureSnapshot,
    pub catalog: &'a Catalog,
    pub data_window: DataWindow,
    pub hyper_parameters: serde_json::Value,
    pub metrics: serde_json::Value,
    pub cold_start: Option<&'a ColdStart>,
}

/// Writes the version into `dir` (created) and seals it.
pub fn write(dir: &Path, parts: BundleParts<'_>) -> anyhow::Result<Manifest> {
    std::fs::create_dir_all(dir)?;
    parts.model.save(dir)?;
    parts.ann.save(dir)?;
    parts.ranker.save(&dir.join(RANKER_FILE))?;
    std::fs::write(dir.join(SNAPSHOT_FILE), serde_json::to_vec(parts.snapshot)?)?;
    std::fs::write(dir.join(CATALOG_FILE), serde_json::to_vec(parts.catalog)?)?;
    if let Some(cold) = parts.cold_start {
        std::fs::write(dir.join(COLD_START_FILE), serde_json::to_vec(cold)?)?;
    }
    let manifest = Manifest {
        format_version: 0,
        model_version: parts.version.to_owned(),
        created_at: chrono::Utc::now().to_rfc3339(),
        data_window: parts.data_window,
        feature_schema_hash: artifacts::feature_schema_hash(parts.snapshot),
        feature_spec_hash: parts.snapshot.declared.spec.schema_hash(),
        hyper_parameters: parts.hyper_parameters,
        metrics: parts.metrics,
        files: Default::default(),
    };
    Ok(artifacts::seal(dir, manifest)?)
}
