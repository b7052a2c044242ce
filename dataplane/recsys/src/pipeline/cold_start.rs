//! What users without history get, chosen on validation like the baselines: a popularity
//! list counted over all time, over a trailing window, or with exponentially decaying weights.
//! Which of those serves a dataset best depends on how dense its timeline is (a week of a
//! sparse dataset is a handful of users), so no window is fixed here.

use super::evaluate::LIST_LENGTH;
use crate::artifacts::bundle::ColdStart;
use crate::features::FeatureSnapshot;
use recsys_core::{metrics, ranking, Interaction, ItemId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

const DAY: f64 = 86_400.0;
/// Validation needs this many cold users to choose on them alone; with fewer, every validation
/// user votes (their lists differ only by the seen items removed).
pub const MIN_COLD_USERS: usize = 20;
/// Items a version's cold list keeps.
pub const LIST_SIZE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ColdPolicy {
    AllTime,
    Window { days: u32 },
    Decay { half_life_days: u32 },
}

impl ColdPolicy {
    pub fn candidates() -> Vec<Self> {
        let mut out = vec![Self::AllTime];
        out.extend([1, 3, 7, 14, 30, 60, 90, 180, 365].map(|days| Self::Window { days }));
        out.extend([1, 7, 30, 90].map(|half_life_days| Self::Decay { half_life_days }));
        out
    }

    /// Item scores as of `as_of` from the rows before it; all-time counts break ties (scaled
    /// below one event) so items outside a window still rank by long-run popularity.
    pub fn scores(self, rows: &[Interaction], num_items: usize, as_of: i64) -> Vec<f32> {
        let mut all = vec![0f64; num_items];
        let mut primary = vec![0f64; num_items];
        for r in rows.iter().filter(|r| r.timestamp < as_of) {
            let Some(slot) = all.get_mut(r.item as usize) else {
                continue;
            };
            *slot += 1.0;
            let age_days = (as_of - r.timestamp) as f64 / DAY;
            primary[r.item as usize] += match self {
                Self::AllTime => 1.0,
                Self::Window { days } => f64::from(u8::from(age_days <= f64::from(days))),
                Self::Decay { half_life_days } => 0.5f64.powf(age_days / f64::from(half_life_days)),
            };
        }
        let total = all.iter().sum::<f64>().max(1.0);
        primary
            .iter()
            .zip(&all)
            .map(|(&p, &a)| (p + a / total) as f32)
            .collect()
    }
}

impl std::fmt::Display for ColdPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AllTime => f.write_str("all-time counts"),
            Self::Window { days } => write!(f, "counts over the last {days} d"),
            Self::Decay { half_life_days } => {
                write!(f, "counts decayed with a {half_life_days} d half-life")
            }
        }
    }
}

/// The choice and what it scored on validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColdChoice {
    pub policy: ColdPolicy,
    pub validation_ndcg_at_10: f64,
    /// Users the choice was made on, and whether they were the cold ones.
    pub users: usize,
    pub cold_users_only: bool,
    pub tried: Vec<(ColdPolicy, f64)>,
}

/// Chooses the policy with the best NDCG@10 on `labels` (validation), fit on `train` as of
/// `snapshot.cutoff`; ties go to the earlier (simpler) candidate.
pub fn choose(
    snapshot: &FeatureSnapshot,
    train: &[Interaction],
    labels: &BTreeMap<UserId, HashSet<ItemId>>,
) -> ColdChoice {
    let cold: Vec<UserId> = labels
        .keys()
        .copied()
        .filter(|&u| snapshot.users[u as usize].history_len == 0)
        .collect();
    let cold_users_only = cold.len() >= MIN_COLD_USERS;
    let users: Vec<UserId> = if cold_users_only {
        cold
    } else {
        labels.keys().copied().collect()
    };
    let mut tried = Vec::new();
    for policy in ColdPolicy::candidates() {
        let scores = policy.scores(train, snapshot.items.len(), snapshot.cutoff);
        let ndcg = users
            .iter()
            .map(|&u| {
                let top = ranking::top_k_dense(&scores, LIST_LENGTH, |i| snapshot.has_seen(u, i));
                metrics::ndcg_at_k(&top, &labels[&u], 10)
            })
            .sum::<f64>()
            / users.len().max(1) as f64;
        tried.push((policy, ndcg));
    }
    let (policy, validation_ndcg_at_10) =
        tried
            .iter()
            .copied()
            .fold((ColdPolicy::AllTime, f64::NEG_INFINITY), |best, t| {
                if t.1 > best.1 {
                    t
                } else {
                    best
                }
            });
    ColdChoice {
        policy,
        validation_ndcg_at_10,
        users: users.len(),
        cold_users_only,
        tried,
    }
}

/// What a version stores: the policy's top items (dense ids, best first) as of its state.
pub fn list(
    policy: ColdPolicy,
    rows: &[Interaction],
    num_items: usize,
    as_of: i64,
    model_for_known_cold_users: bool,
) -> ColdStart {
    let scores = policy.scores(rows, num_items, as_of);
    let mut scored: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (i as u32, s))
        .collect();
    let top = ranking::top_k_pairs(&mut scored, LIST_SIZE);
    ColdStart {
        policy: policy.to_string(),
        as_of,
        items: top.into_iter().map(|i| (i, scores[i as usize])).collect(),
        model_for_known_cold_users,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_core::validation::EventType;

    fn row(item: u32, day: f64) -> Interaction {
        Interaction {
            user: 0,
            item,
            timestamp: (day * DAY) as i64,
            value: 1.0,
            kind: EventType::Click,
            relevant: false,
        }
    }

    #[test]
    fn policies_weigh_time_as_declared() {
        // Item 0: 5 old events; item 1: 2 events yesterday.
        let mut rows: Vec<Interaction> = (0..5).map(|_| row(0, 1.0)).collect();
        rows.extend([row(1, 99.0), row(1, 99.5)]);
        rows.push(row(2, 200.0)); // after as_of: never counted
        let as_of = (100.0 * DAY) as i64;
        let all = ColdPolicy::AllTime.scores(&rows, 3, as_of);
        assert!(all[0] > all[1] && all[2] == 0.0);
        let week = ColdPolicy::Window { days: 7 }.scores(&rows, 3, as_of);
        assert!(
            week[1] > week[0] && week[0] > 0.0,
            "ties broken by all time"
        );
        let decay = ColdPolicy::Decay { half_life_days: 7 }.scores(&rows, 3, as_of);
        assert!(decay[1] > decay[0]);
        let slow = ColdPolicy::Decay {
            half_life_days: 365,
        }
        .scores(&rows, 3, as_of);
        assert!(slow[0] > slow[1]);
        let list = list(ColdPolicy::Window { days: 7 }, &rows, 3, as_of, false);
        assert_eq!(
            list.items.iter().map(|x| x.0).collect::<Vec<_>>(),
            [1, 0, 2]
        );
    }

    #[test]
    fn serialized_policy_is_tagged() {
        let json = serde_json::to_string(&ColdPolicy::Decay { half_life_days: 30 }).unwrap();
        assert_eq!(json, r#"{"kind":"decay","half_life_days":30}"#);
    }
}
