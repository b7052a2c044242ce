//! How a ranker's scores on a validation block are judged: NDCG@10 per query group (one user's
//! candidates), over every group as LightGBM scores it, over the groups with a relevant
//! candidate, or on the list serving would show after the business rules.

use super::ranking::CandidateRows;
use recsys_core::metrics;
use recsys_core::rules::{finish, Candidate, RuleConfig};
use recsys_models::Objective;
use recsys_scoring::rule_score;
use std::collections::HashSet;

/// Each query group of `block`: its rows, and the positions of its relevant rows within it.
fn query_groups(
    block: &CandidateRows,
) -> impl Iterator<Item = (std::ops::Range<usize>, HashSet<u32>)> + '_ {
    let mut start = 0usize;
    block.groups.iter().map(move |&size| {
        let range = start..start + size as usize;
        start = range.end;
        let relevant = range
            .clone()
            .filter(|&row| block.labels[row] > 0.5)
            .map(|row| (row - range.start) as u32)
            .collect();
        (range, relevant)
    })
}

/// Mean NDCG@10 over the groups of `block` with a relevant row, each group's rows ordered by
/// `scores` (higher first, ties in stored order), and how many such groups there were.
pub fn judged_ndcg(block: &CandidateRows, scores: &[f64]) -> (f64, usize) {
    let (mut sum, mut judged) = (0.0, 0usize);
    for (range, relevant) in query_groups(block).filter(|(_, r)| !r.is_empty()) {
        let group_scores = &scores[range];
        let mut order: Vec<u32> = (0..group_scores.len() as u32).collect();
        order.sort_by(|&a, &b| group_scores[b as usize].total_cmp(&group_scores[a as usize]));
        sum += metrics::ndcg_at_k(&order, &relevant, 10);
        judged += 1;
    }
    (sum / judged.max(1) as f64, judged)
}

/// Like [`judged_ndcg`], but each group's list is what serving would show: `scores` (of a
/// ranker with `objective`) through the business rules, ties by item id.
pub fn served_ndcg(block: &CandidateRows, scores: &[f64], objective: Objective) -> (f64, usize) {
    served_lists_ndcg(block, |row| rule_score(objective, scores[row] as f32))
}

/// [`served_ndcg`] of the retrieval order itself: each group's candidates through the business
/// rules with their retrieval scores, as they would be shown without a ranker.
pub fn served_retrieval_ndcg(block: &CandidateRows) -> (f64, usize) {
    served_lists_ndcg(block, |row| block.rules[row].score)
}

/// Mean NDCG@10 of the lists the business rules make of each judged group's rows, a row scored
/// `rule_score_of(row)`.
fn served_lists_ndcg(block: &CandidateRows, rule_score_of: impl Fn(usize) -> f32) -> (f64, usize) {
    let rules = RuleConfig::default();
    let (mut sum, mut judged) = (0.0, 0usize);
    for (range, relevant) in query_groups(block).filter(|(_, r)| !r.is_empty()) {
        let candidates: Vec<Candidate> = range
            .clone()
            .map(|row| Candidate {
                score: rule_score_of(row),
                ..block.rules[row]
            })
            .collect();
        let list: Vec<u32> = finish(candidates, 10, &rules)
            .iter()
            .map(|c| c.item)
            .collect();
        let wanted: HashSet<u32> = relevant
            .iter()
            .map(|&k| block.items[range.start + k as usize])
            .collect();
        sum += metrics::ndcg_at_k(&list, &wanted, 10);
        judged += 1;
    }
    (sum / judged.max(1) as f64, judged)
}

/// NDCG@10 of each query group's rows in their stored (retrieval) order, averaged over groups
/// and scored as LightGBM scores a validation set: binary gains, and a group without a
/// relevant row counts as 1.
pub fn retrieval_order_ndcg(block: &CandidateRows) -> f64 {
    let sum: f64 = query_groups(block)
        .map(|(range, relevant)| {
            if relevant.is_empty() {
                return 1.0;
            }
            // Rows by their position in the group: the retrieval order is 0, 1, 2, …
            let order: Vec<u32> = (0..range.len() as u32).collect();
            metrics::ndcg_at_k(&order, &relevant, 10)
        })
        .sum();
    sum / block.groups.len().max(1) as f64
}

/// Mean of the per-fold values over the folds with judged users.
pub fn mean_over_judged(folds: &[(f64, usize)]) -> Option<f64> {
    let judged: Vec<f64> = folds.iter().filter(|f| f.1 > 0).map(|f| f.0).collect();
    (!judged.is_empty()).then(|| judged.iter().sum::<f64>() / judged.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retrieval_order_is_scored_per_group_like_lightgbm_scores_validation() {
        // Group 1: the relevant row 3rd of 4 → 1/log2(4) = 0.5. Group 2: none relevant → 1.
        // Group 3: both relevant rows first → 1.
        let block = CandidateRows {
            labels: vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0],
            groups: vec![4, 2, 3],
            ..CandidateRows::default()
        };
        assert!((retrieval_order_ndcg(&block) - 2.5 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn judged_users_are_only_those_with_a_relevant_candidate() {
        // Group 1: the relevant row 3rd of 4; group 2: none relevant (left out).
        let block = CandidateRows {
            labels: vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            groups: vec![4, 2],
            ..CandidateRows::default()
        };
        let stored: Vec<f64> = (0..6).map(|r| -f64::from(r)).collect();
        assert_eq!(judged_ndcg(&block, &stored), (0.5, 1));
        let relevant_first = [0.1, 0.2, 0.9, 0.3, 5.0, 4.0];
        assert_eq!(judged_ndcg(&block, &relevant_first), (1.0, 1));
    }

    #[test]
    fn served_lists_are_scored_after_the_category_cap_and_the_freshness_boost() {
        // One user, 12 candidates scored 1.00, 0.99, …, 0.89; the first four share a category and
        // the 4th is the relevant one: the cap (3 per category in the top 10) pushes it to
        // 11th, out of the list, though its score ranks it 4th.
        let rules = |row: u32, age: Option<f32>| Candidate {
            item: 100 + row,
            score: 0.0,
            category: if row < 4 { 0 } else { row },
            age_days: age,
        };
        let mut block = CandidateRows {
            labels: (0..12).map(|r| f32::from(u8::from(r == 3))).collect(),
            items: (0..12).map(|r| 100 + r).collect(),
            groups: vec![12],
            rules: (0..12).map(|r| rules(r, None)).collect(),
            ..CandidateRows::default()
        };
        let scores: Vec<f64> = (0..12).map(|r| 1.0 - 0.01 * f64::from(r)).collect();
        assert_eq!(judged_ndcg(&block, &scores).0, 1.0 / 5f64.log2());
        assert_eq!(served_ndcg(&block, &scores, Objective::Binary), (0.0, 1));
        // In a category of its own and brand new, the boost (×1.1) lifts it from 0.97 to
        // 1.067, above every older item: first place.
        block.rules[3] = Candidate {
            category: 50,
            ..rules(3, Some(0.0))
        };
        let (ndcg, judged) = served_ndcg(&block, &scores, Objective::Binary);
        assert_eq!((ndcg, judged), (1.0, 1));
    }

    #[test]
    fn the_retrieval_order_is_served_through_the_same_rules_with_its_own_scores() {
        // The relevant item is 4th by retrieval score and in the first three's category: the cap
        // pushes it out. Brand new and in its own category, the boost lifts it first.
        let candidate = |row: u32, category: u32, age: Option<f32>| Candidate {
            item: 100 + row,
            score: 0.9 - 0.01 * row as f32,
            category,
            age_days: age,
        };
        let mut block = CandidateRows {
            labels: (0..12).map(|r| f32::from(u8::from(r == 3))).collect(),
            items: (0..12).map(|r| 100 + r).collect(),
            groups: vec![12],
            rules: (0..12)
                .map(|r| candidate(r, if r < 4 { 0 } else { r }, None))
                .collect(),
            ..CandidateRows::default()
        };
        assert_eq!(served_retrieval_ndcg(&block), (0.0, 1));
        block.rules[3] = candidate(3, 50, Some(0.0));
        assert_eq!(served_retrieval_ndcg(&block), (1.0, 1));
    }
}
