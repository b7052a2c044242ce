//! Turning scores into a top-K list the way the evaluation protocol demands: highest score
//! first, ties broken by ascending item id, excluded items never returned.

use crate::event::ItemId;
use std::cmp::Ordering;

/// Orders `(item, score)` pairs best-first with the protocol's tie-break.
pub fn compare_scored(a: &(ItemId, f32), b: &(ItemId, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Top `k` items by score from a dense score vector indexed by item id, skipping items for which
/// `excluded` returns true. NaN scores rank last.
pub fn top_k_dense(scores: &[f32], k: usize, excluded: impl Fn(ItemId) -> bool) -> Vec<ItemId> {
    let mut scored: Vec<(ItemId, f32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (i as ItemId, if s.is_nan() { f32::NEG_INFINITY } else { s }))
        .filter(|(i, _)| !excluded(*i))
        .collect();
    top_k_pairs(&mut scored, k)
}

/// Top `k` of an arbitrary list of scored items (sorted in place, partially).
pub fn top_k_pairs(scored: &mut [(ItemId, f32)], k: usize) -> Vec<ItemId> {
    let k = k.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    if k < scored.len() {
        scored.select_nth_unstable_by(k - 1, compare_scored);
    }
    let head = &mut scored[..k];
    head.sort_unstable_by(compare_scored);
    head.iter().map(|(i, _)| *i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_break_by_ascending_item_id() {
        let scores = [0.5, 0.9, 0.5, 0.9, 0.1];
        assert_eq!(top_k_dense(&scores, 4, |_| false), vec![1, 3, 0, 2]);
    }

    #[test]
    fn excluded_items_are_skipped() {
        let scores = [0.5, 0.9, 0.7];
        assert_eq!(top_k_dense(&scores, 2, |i| i == 1), vec![2, 0]);
    }

    #[test]
    fn k_larger_than_catalog_returns_everything() {
        let scores = [0.1, f32::NAN, 0.3];
        assert_eq!(top_k_dense(&scores, 10, |_| false), vec![2, 0, 1]);
    }
}
