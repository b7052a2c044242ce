//! What training needs of the live version: its per-user NDCG@10 on this run's test window.
//! The scorer that loads and asks the live version is serving's business
//! (the top-level `live_version` module); training only sees this interface.

use super::compare::EvaluationRecord;
use recsys_core::{Interaction, ItemId, UserId};
use recsys_data::Dataset;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The live version's record on the window, and whether its own data reached into it (then
/// it has seen the answers, and the comparison flatters it).
pub struct LiveScore {
    pub record: EvaluationRecord,
    pub saw_test_window: bool,
}

pub struct Window<'a> {
    pub data: &'a Dataset,
    /// What each user had done before the window: excluded, as serving excludes seen items.
    pub history: &'a [Interaction],
    pub relevant: &'a BTreeMap<UserId, HashSet<ItemId>>,
    pub request_times: &'a HashMap<UserId, i64>,
    pub test_start: i64,
    pub split: &'a str,
}

pub trait LiveScorer {
    /// Where the live version's data ended (exclusive, unix seconds), if it says.
    fn data_cutoff(&self) -> anyhow::Result<Option<i64>>;
    fn score(&self, window: &Window<'_>) -> anyhow::Result<LiveScore>;
}
