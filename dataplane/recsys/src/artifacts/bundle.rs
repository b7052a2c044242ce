//! The version format beyond the manifest: the files a servable version holds, the types
//! serving reads them into, and the writer training uses. Neither side imports the other;
//! both import this.

use crate::artifacts::{self, DataWindow, Manifest};
use crate::data::{Dataset, ItemMeta};
use crate::features::profile::ProfileKey;
use crate::features::FeatureSnapshot;
use recsys_models::{AnnIndex, Ranker, TwoTower};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
pub const DRIFT_REFERENCE_FILE: &str = "drift_reference.json";

/// What requests looked like in training, per declared user feature: the distribution serving
/// compares its own requests with (PSI). Each event of the last `days` before the version's
/// cutoff counts as one request by its user, with the user's values as the version holds them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftReference {
    pub days: i64,
    /// Events the shares were counted over.
    pub events: u64,
    pub features: Vec<DriftFeature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftFeature {
    pub name: String,
    /// The feature's column in the declared user row.
    pub column: usize,
    pub bins: recsys_core::drift::Bins,
}

impl DriftReference {
    /// Days of requests the reference counts.
    pub const DAYS: i64 = 7;
    const BINS: usize = 10;

    /// From each request's user row (declared values, in the spec's user order).
    pub fn from_rows<'r>(names: &[String], rows: impl Iterator<Item = &'r [f32]>) -> Option<Self> {
        let mut columns: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        let mut events = 0u64;
        for row in rows {
            events += 1;
            for (c, v) in columns.iter_mut().zip(row) {
                c.push(f64::from(*v));
            }
        }
        let features: Vec<DriftFeature> = names
            .iter()
            .zip(&columns)
            .enumerate()
            .filter_map(|(column, (name, values))| {
                Some(DriftFeature {
                    name: name.clone(),
                    column,
                    bins: recsys_core::drift::Bins::fit(values, Self::BINS)?,
                })
            })
            .collect();
        (events > 0 && !features.is_empty()).then_some(Self {
            days: Self::DAYS,
            events,
            features,
        })
    }
}

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
    /// Lists per profile segment, when they beat `items` on validation: a known user without
    /// history whose profile has the key's column gets their segment's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_profile: Option<SegmentLists>,
}

/// One list per value of a profile column.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentLists {
    pub key: ProfileKey,
    /// Dense item ids, best first, with their scores, by segment.
    pub lists: BTreeMap<String, Vec<(u32, f32)>>,
}

impl ColdStart {
    /// The list for `user` (a dense id of `snapshot`, or None for a user the version does
    /// not know): their profile segment's, else the version's one list.
    pub fn for_user(&self, snapshot: &FeatureSnapshot, user: Option<u32>) -> &[(u32, f32)] {
        self.by_profile
            .as_ref()
            .zip(user)
            .and_then(|(s, u)| s.lists.get(&s.key.segment(snapshot, u)?))
            .unwrap_or(&self.items)
    }

    /// Every item id of every list, for a check against the catalog.
    pub fn all_items(&self) -> impl Iterator<Item = u32> + '_ {
        let segments = self.by_profile.iter().flat_map(|s| s.lists.values());
        std::iter::once(&self.items)
            .chain(segments)
            .flat_map(|l| l.iter().map(|&(i, _)| i))
    }
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
    pub drift_reference: Option<&'a DriftReference>,
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
    if let Some(reference) = parts.drift_reference {
        std::fs::write(
            dir.join(DRIFT_REFERENCE_FILE),
            serde_json::to_vec(reference)?,
        )?;
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
