//! Full-catalog offline evaluation as `shared/EVALUATION.md` prescribes: per evaluated user a
//! ranked list over every item they had not seen before the test window, binary relevance,
//! metrics averaged over users, bootstrap intervals for NDCG@10 and Recall@50.

use recsys_core::bootstrap::{bootstrap_mean, Interval};
use recsys_core::{metrics, ItemId, UserId};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Longest list any metric looks at (Recall@100).
pub const LIST_LENGTH: usize = 100;
const RESAMPLES: usize = 1000;
const SEED: u64 = 20_260_101;

/// One system's metrics on one user subset.
#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    pub system: String,
    pub subset: String,
    pub users: usize,
    pub recall_at_10: f64,
    pub recall_at_50: Interval,
    pub recall_at_100: f64,
    pub ndcg_at_10: Interval,
    pub map_at_10: f64,
    pub hit_rate_at_10: f64,
    pub coverage_at_10: f64,
    pub novelty_at_10: f64,
}

/// Who is evaluated and what is relevant to them.
pub struct EvalSet<'a> {
    pub relevant: &'a BTreeMap<UserId, HashSet<ItemId>>,
    /// Users with history before the test window.
    pub warm: &'a HashSet<UserId>,
    /// Train + validation interaction counts per item (for novelty).
    pub item_counts: &'a [u64],
    pub catalog_size: usize,
}

/// Metrics of `lists` (each user's ranked list) for all evaluated users, the warm subset and
/// the cold one.
pub fn evaluate(
    system: &str,
    lists: &BTreeMap<UserId, Vec<ItemId>>,
    set: &EvalSet<'_>,
) -> [MetricRow; 3] {
    let all: Vec<UserId> = set.relevant.keys().copied().collect();
    let (warm, cold): (Vec<UserId>, Vec<UserId>) = all.iter().partition(|u| set.warm.contains(u));
    [
        row(system, "all", &all, lists, set),
        row(system, "warm", &warm, lists, set),
        row(system, "cold", &cold, lists, set),
    ]
}

fn row(
    system: &str,
    subset: &str,
    users: &[UserId],
    lists: &BTreeMap<UserId, Vec<ItemId>>,
    set: &EvalSet<'_>,
) -> MetricRow {
    let empty = Vec::new();
    let list_of = |u: &UserId| lists.get(u).unwrap_or(&empty);
    let per_user = |f: &dyn Fn(&[ItemId], &HashSet<ItemId>) -> f64| -> Vec<f64> {
        users
            .iter()
            .map(|u| f(list_of(u), &set.relevant[u]))
            .collect()
    };
    let mean = |v: Vec<f64>| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let chosen: Vec<&[ItemId]> = users.iter().map(|u| list_of(u).as_slice()).collect();
    MetricRow {
        system: system.to_owned(),
        subset: subset.to_owned(),
        users: users.len(),
        recall_at_10: mean(per_user(&|l, r| metrics::recall_at_k(l, r, 10))),
        recall_at_50: bootstrap_mean(
            &per_user(&|l, r| metrics::recall_at_k(l, r, 50)),
            RESAMPLES,
            SEED,
        ),
        recall_at_100: mean(per_user(&|l, r| metrics::recall_at_k(l, r, 100))),
        ndcg_at_10: bootstrap_mean(
            &per_user(&|l, r| metrics::ndcg_at_k(l, r, 10)),
            RESAMPLES,
            SEED,
        ),
        map_at_10: mean(per_user(&|l, r| metrics::average_precision_at_k(l, r, 10))),
        hit_rate_at_10: mean(per_user(&|l, r| metrics::hit_rate_at_k(l, r, 10))),
        coverage_at_10: metrics::coverage_at_k(chosen.iter().copied(), 10, set.catalog_size),
        novelty_at_10: metrics::novelty_at_k(chosen.iter().copied(), 10, set.item_counts),
    }
}

/// Mean Recall@K over the evaluated users for every K from 1 to `max_k`.
pub fn recall_curve(
    lists: &BTreeMap<UserId, Vec<ItemId>>,
    relevant: &BTreeMap<UserId, HashSet<ItemId>>,
    max_k: usize,
) -> Vec<f64> {
    let empty = Vec::new();
    let n = relevant.len().max(1) as f64;
    (1..=max_k)
        .map(|k| {
            relevant
                .iter()
                .map(|(u, r)| metrics::recall_at_k(lists.get(u).unwrap_or(&empty), r, k))
                .sum::<f64>()
                / n
        })
        .collect()
}

/// NDCG@10 of each evaluated user.
pub fn per_user_ndcg(
    lists: &BTreeMap<UserId, Vec<ItemId>>,
    relevant: &BTreeMap<UserId, HashSet<ItemId>>,
) -> BTreeMap<UserId, f64> {
    let empty = Vec::new();
    relevant
        .iter()
        .map(|(u, r)| {
            (
                *u,
                metrics::ndcg_at_k(lists.get(u).unwrap_or(&empty), r, 10),
            )
        })
        .collect()
}

/// Paired bootstrap interval of NDCG@10(a) − NDCG@10(b) over the same users.
pub fn paired_ndcg_difference(
    a: &BTreeMap<UserId, Vec<ItemId>>,
    b: &BTreeMap<UserId, Vec<ItemId>>,
    relevant: &BTreeMap<UserId, HashSet<ItemId>>,
) -> Interval {
    let empty = Vec::new();
    let diffs: Vec<f64> = relevant
        .iter()
        .map(|(u, r)| {
            metrics::ndcg_at_k(a.get(u).unwrap_or(&empty), r, 10)
                - metrics::ndcg_at_k(b.get(u).unwrap_or(&empty), r, 10)
        })
        .collect();
    bootstrap_mean(&diffs, RESAMPLES, SEED)
}

/// Cold users' paired NDCG@10 difference against whichever baseline scored them higher (the
/// cold target is the better of the two), with that baseline's name and how many users; none
/// without cold users.
pub fn cold_versus_better_baseline(
    rows: &[MetricRow],
    relevant: &BTreeMap<UserId, HashSet<ItemId>>,
    warm: &HashSet<UserId>,
    served: &BTreeMap<UserId, Vec<ItemId>>,
    baselines: [(&str, &BTreeMap<UserId, Vec<ItemId>>); 2],
) -> Option<(String, usize, Interval)> {
    let cold: BTreeMap<UserId, HashSet<ItemId>> = relevant
        .iter()
        .filter(|(u, _)| !warm.contains(u))
        .map(|(&u, items)| (u, items.clone()))
        .collect();
    let cold_ndcg = |name: &str| {
        rows.iter()
            .find(|r| r.system == name && r.subset == "cold")
            .map_or(f64::NEG_INFINITY, |r| r.ndcg_at_10.mean)
    };
    let (name, lists) = baselines.into_iter().reduce(|best, other| {
        if cold_ndcg(other.0) > cold_ndcg(best.0) {
            other
        } else {
            best
        }
    })?;
    (!cold.is_empty()).then(|| {
        (
            name.to_owned(),
            cold.len(),
            paired_ndcg_difference(served, lists, &cold),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_lists_score_one_and_warm_subset_is_separate() {
        let relevant = BTreeMap::from([(1, HashSet::from([7])), (2, HashSet::from([8, 9]))]);
        let warm = HashSet::from([2]);
        let lists = BTreeMap::from([(1, vec![7, 1]), (2, vec![3, 4])]);
        let counts = vec![1; 10];
        let set = EvalSet {
            relevant: &relevant,
            warm: &warm,
            item_counts: &counts,
            catalog_size: 10,
        };
        let [all, warm_row, cold_row] = evaluate("x", &lists, &set);
        assert_eq!(cold_row.users, 1);
        assert_eq!(cold_row.ndcg_at_10.mean, 1.0);
        assert_eq!(all.users, 2);
        assert!((all.ndcg_at_10.mean - 0.5).abs() < 1e-9);
        assert!((all.hit_rate_at_10 - 0.5).abs() < 1e-9);
        assert_eq!(warm_row.users, 1);
        assert_eq!(warm_row.ndcg_at_10.mean, 0.0);
        assert!((all.coverage_at_10 - 0.4).abs() < 1e-9);
    }

    #[test]
    fn cold_users_are_compared_with_the_baseline_that_served_them_best() {
        // Users 1 and 2 are cold, 3 warm. Baseline "b" finds both cold users' items; "a"
        // finds none; the served lists find user 1's only.
        let relevant = BTreeMap::from([
            (1, HashSet::from([7])),
            (2, HashSet::from([8])),
            (3, HashSet::from([9])),
        ]);
        let warm = HashSet::from([3]);
        let a = BTreeMap::from([(1, vec![1]), (2, vec![1]), (3, vec![9])]);
        let b = BTreeMap::from([(1, vec![7]), (2, vec![8]), (3, vec![1])]);
        let served = BTreeMap::from([(1, vec![7]), (2, vec![1]), (3, vec![9])]);
        let set = EvalSet {
            relevant: &relevant,
            warm: &warm,
            item_counts: &[1; 10],
            catalog_size: 10,
        };
        let rows: Vec<MetricRow> = [evaluate("a", &a, &set), evaluate("b", &b, &set)]
            .into_iter()
            .flatten()
            .collect();
        let (name, users, d) =
            cold_versus_better_baseline(&rows, &relevant, &warm, &served, [("a", &a), ("b", &b)])
                .unwrap();
        assert_eq!((name.as_str(), users), ("b", 2));
        // Per cold user: 1 − 1 and 0 − 1; the warm user's +1 is left out.
        assert!((d.mean + 0.5).abs() < 1e-12, "{d:?}");
        let no_cold = HashSet::from([1, 2, 3]);
        assert!(cold_versus_better_baseline(
            &rows,
            &relevant,
            &no_cold,
            &served,
            [("a", &a), ("b", &b)]
        )
        .is_none());
    }
}
