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
/// Cold users the choice wants: about ±0.03 of standard error on a mean NDCG@10. A short
/// validation window of a sparse dataset has fewer, so earlier windows of the same length are
/// backtested too (their newcomers, judged on lists as of each window's start) until this
/// many are found or `MAX_BACKTEST_WINDOWS` have been tried.
const COLD_USERS_WANTED: usize = 100;
/// How many windows before validation the backtest may step back.
const MAX_BACKTEST_WINDOWS: usize = 12;
/// With fewer cold users than this, even after the backtest, every validation user votes (their
/// lists differ only by the seen items removed); the model competes with the list only on at
/// least this many of validation's own cold users.
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
    /// Windows their newcomers came from: 1 is the validation window alone, more means
    /// earlier windows of its length were backtested.
    #[serde(default = "one")]
    pub windows: usize,
    /// The chosen list's NDCG@10 on validation's own cold users alone (when there are at
    /// least [`MIN_COLD_USERS`]): what the model competes with on the same users.
    #[serde(default)]
    pub validation_cold_ndcg_at_10: Option<f64>,
    pub tried: Vec<(ColdPolicy, f64)>,
}

fn one() -> usize {
    1
}

/// Users judged as of one moment, with what each found relevant after it.
struct Judged {
    as_of: i64,
    users: Vec<(UserId, HashSet<ItemId>)>,
    /// Whether seen items are removed (validation's warm users); cold users have none.
    exclude_seen: bool,
}

/// Newcomers of earlier windows of `window_secs` before `cutoff`: users whose first row in
/// `train` falls inside one, with the relevant items of that window.
fn backtest_windows(
    train: &[Interaction],
    cutoff: i64,
    window_secs: i64,
    have: usize,
) -> Vec<Judged> {
    let mut first_seen: BTreeMap<UserId, i64> = BTreeMap::new();
    for r in train {
        let t = first_seen.entry(r.user).or_insert(r.timestamp);
        *t = (*t).min(r.timestamp);
    }
    let earliest = first_seen.values().copied().min().unwrap_or(cutoff);
    let mut out = Vec::new();
    let mut found = have;
    for k in 1..=MAX_BACKTEST_WINDOWS as i64 {
        if found >= COLD_USERS_WANTED || window_secs <= 0 {
            break;
        }
        let (start, end) = (cutoff - k * window_secs, cutoff - (k - 1) * window_secs);
        if start <= earliest {
            break;
        }
        let mut labels: BTreeMap<UserId, HashSet<ItemId>> = BTreeMap::new();
        for r in train
            .iter()
            .filter(|r| r.relevant && (start..end).contains(&r.timestamp))
        {
            if (start..end).contains(&first_seen[&r.user]) {
                labels.entry(r.user).or_default().insert(r.item);
            }
        }
        found += labels.len();
        out.push(Judged {
            as_of: start,
            users: labels.into_iter().collect(),
            exclude_seen: false,
        });
    }
    out
}

/// Chooses the policy with the best NDCG@10 for users without history, fit on `train` as of
/// `snapshot.cutoff` and judged on validation's cold users (`labels`), plus the newcomers of
/// earlier windows of `window_secs` when validation has fewer than `COLD_USERS_WANTED`; ties
/// go to the earlier (simpler) candidate.
pub fn choose(
    snapshot: &FeatureSnapshot,
    train: &[Interaction],
    labels: &BTreeMap<UserId, HashSet<ItemId>>,
    window_secs: i64,
) -> ColdChoice {
    let cold: Vec<(UserId, HashSet<ItemId>)> = labels
        .iter()
        .filter(|(&u, _)| snapshot.users[u as usize].history_len == 0)
        .map(|(&u, items)| (u, items.clone()))
        .collect();
    let mut judged = backtest_windows(train, snapshot.cutoff, window_secs, cold.len());
    judged.insert(
        0,
        Judged {
            as_of: snapshot.cutoff,
            users: cold,
            exclude_seen: true,
        },
    );
    let cold_count: usize = judged.iter().map(|j| j.users.len()).sum();
    let cold_users_only = cold_count >= MIN_COLD_USERS;
    if !cold_users_only {
        judged = vec![Judged {
            as_of: snapshot.cutoff,
            users: labels.iter().map(|(&u, i)| (u, i.clone())).collect(),
            exclude_seen: true,
        }];
    }
    let users: usize = judged.iter().map(|j| j.users.len()).sum();
    // Per policy: the mean over every judged user, and the sum over validation's own (the
    // first set).
    let mut tried = Vec::new();
    let mut on_validation = Vec::new();
    for policy in ColdPolicy::candidates() {
        let mut sums = vec![0.0; judged.len()];
        for (j, sum) in judged.iter().zip(&mut sums) {
            let scores = policy.scores(train, snapshot.items.len(), j.as_of);
            for (u, relevant) in &j.users {
                let top = ranking::top_k_dense(&scores, LIST_LENGTH, |i| {
                    j.exclude_seen && snapshot.has_seen(*u, i)
                });
                *sum += metrics::ndcg_at_k(&top, relevant, 10);
            }
        }
        tried.push((policy, sums.iter().sum::<f64>() / users.max(1) as f64));
        on_validation.push(sums[0] / judged[0].users.len().max(1) as f64);
    }
    let best = (0..tried.len()).fold(
        0,
        |best, i| {
            if tried[i].1 > tried[best].1 {
                i
            } else {
                best
            }
        },
    );
    let (policy, validation_ndcg_at_10) = tried[best];
    let validation_cold_ndcg_at_10 =
        (cold_users_only && judged[0].users.len() >= MIN_COLD_USERS).then_some(on_validation[best]);
    ColdChoice {
        policy,
        validation_ndcg_at_10,
        users,
        cold_users_only,
        windows: if cold_users_only { judged.len() } else { 1 },
        validation_cold_ndcg_at_10,
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

    fn by(user: u32, item: u32, day: f64, relevant: bool) -> Interaction {
        Interaction {
            user,
            relevant,
            ..row(item, day)
        }
    }

    #[test]
    fn the_backtest_judges_each_windows_newcomers_on_that_window() {
        // Weekly windows before day 70: user 1 arrives on day 64 (window 1), user 2 on day 50
        // (window 3) with a relevant item there and another after; user 0 has been around since
        // day 0 and is never a newcomer. Day 0 is the earliest row, so the backtest stops before
        // a window that would start there.
        let rows = vec![
            by(0, 9, 0.0, true),
            by(2, 5, 50.0, true),
            by(2, 6, 58.0, true),
            by(0, 7, 60.0, true),
            by(1, 3, 64.0, true),
            by(1, 4, 65.0, false),
        ];
        let week = (7.0 * DAY) as i64;
        let cutoff = (70.0 * DAY) as i64;
        let windows = backtest_windows(&rows, cutoff, week, 0);
        assert_eq!(
            windows.len(),
            9,
            "days 7..70 in weeks; the window from day 0 is skipped"
        );
        let found: Vec<_> = windows
            .into_iter()
            .filter(|w| !w.users.is_empty())
            .map(|w| (w.as_of, w.users))
            .collect();
        assert_eq!(
            found,
            [
                (cutoff - week, vec![(1, HashSet::from([3]))]),
                (cutoff - 3 * week, vec![(2, HashSet::from([5]))]),
            ]
        );
        // Enough cold users already: nothing is backtested.
        assert!(backtest_windows(&rows, cutoff, week, COLD_USERS_WANTED).is_empty());
    }

    #[test]
    fn serialized_policy_is_tagged() {
        let json = serde_json::to_string(&ColdPolicy::Decay { half_life_days: 30 }).unwrap();
        assert_eq!(json, r#"{"kind":"decay","half_life_days":30}"#);
    }
}
