//! The version format beyond the manifest: the files a servable version holds and the types
//! serving reads them into. Training writes them ([`crate::writer`]); serving
//! never imports training, and this crate links no libtorch.

use recsys_data::features::profile::ProfileKey;
use recsys_data::features::FeatureSnapshot;
use recsys_data::{Dataset, ItemMeta};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
