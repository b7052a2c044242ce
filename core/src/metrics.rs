//! Offline metrics exactly as `shared/EVALUATION.md` defines them (binary relevance).

use crate::event::ItemId;
use std::collections::HashSet;

/// |top-K ∩ relevant| / |relevant|; 0 when nothing is relevant.
pub fn recall_at_k(ranked: &[ItemId], relevant: &HashSet<ItemId>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    hits(ranked, relevant, k) as f64 / relevant.len() as f64
}

/// 1 when any of the top K is relevant.
pub fn hit_rate_at_k(ranked: &[ItemId], relevant: &HashSet<ItemId>, k: usize) -> f64 {
    f64::from(u8::from(hits(ranked, relevant, k) > 0))
}

/// DCG@K / IDCG@K with gain 1 discounted by log2(rank + 1); IDCG puts min(|relevant|, K) on top.
pub fn ndcg_at_k(ranked: &[ItemId], relevant: &HashSet<ItemId>, k: usize) -> f64 {
    let ideal: f64 = (0..relevant.len().min(k)).map(discount).sum();
    if ideal == 0.0 {
        return 0.0;
    }
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, item)| relevant.contains(item))
        .map(|(position, _)| discount(position))
        .sum();
    dcg / ideal
}

/// (Σ_{k≤K} P@k · rel_k) / min(|relevant|, K).
pub fn average_precision_at_k(ranked: &[ItemId], relevant: &HashSet<ItemId>, k: usize) -> f64 {
    let denominator = relevant.len().min(k);
    if denominator == 0 {
        return 0.0;
    }
    let mut found = 0usize;
    let mut sum = 0.0;
    for (position, item) in ranked.iter().take(k).enumerate() {
        if relevant.contains(item) {
            found += 1;
            sum += found as f64 / (position + 1) as f64;
        }
    }
    sum / denominator as f64
}

/// Distinct recommended items over all lists (each cut at K) / catalog size.
pub fn coverage_at_k<'a>(
    lists: impl IntoIterator<Item = &'a [ItemId]>,
    k: usize,
    catalog: usize,
) -> f64 {
    if catalog == 0 {
        return 0.0;
    }
    let distinct: HashSet<ItemId> = lists
        .into_iter()
        .flat_map(|l| l.iter().take(k).copied())
        .collect();
    distinct.len() as f64 / catalog as f64
}

/// Mean over recommended items of −log2(share of training interactions on the item); an item
/// never seen counts as one interaction.
pub fn novelty_at_k<'a>(
    lists: impl IntoIterator<Item = &'a [ItemId]>,
    k: usize,
    item_counts: &[u64],
) -> f64 {
    let total: u64 = item_counts.iter().sum::<u64>().max(1);
    let mut sum = 0.0;
    let mut n = 0usize;
    for list in lists {
        for item in list.iter().take(k) {
            let count = item_counts.get(*item as usize).copied().unwrap_or(0).max(1);
            sum += -(count as f64 / total as f64).log2();
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Area under the ROC curve by the rank statistic, with tied scores sharing their average rank.
/// `None` when only one class is present.
pub fn auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len(), "one label per score");
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_positive = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        // 1-based ranks start+1..=end+1 share their mean.
        let mean_rank = (start + end + 2) as f64 / 2.0;
        let tied_positives = order[start..=end].iter().filter(|&&i| labels[i]).count();
        rank_sum_positive += mean_rank * tied_positives as f64;
        start = end + 1;
    }
    let p = positives as f64;
    Some((rank_sum_positive - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// Mean binary cross-entropy of probabilities, clipped away from 0 and 1.
pub fn log_loss(probabilities: &[f32], labels: &[bool]) -> f64 {
    assert_eq!(
        probabilities.len(),
        labels.len(),
        "one label per probability"
    );
    if probabilities.is_empty() {
        return 0.0;
    }
    const EPS: f64 = 1e-15;
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = f64::from(p).clamp(EPS, 1.0 - EPS);
            if y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    total / probabilities.len() as f64
}

fn hits(ranked: &[ItemId], relevant: &HashSet<ItemId>, k: usize) -> usize {
    ranked
        .iter()
        .take(k)
        .filter(|i| relevant.contains(i))
        .count()
}

fn discount(position: usize) -> f64 {
    1.0 / ((position + 2) as f64).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[ItemId]) -> HashSet<ItemId> {
        items.iter().copied().collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn recall_and_hit_rate_by_hand() {
        let ranked = [5, 1, 9, 2];
        let relevant = set(&[1, 2, 7]);
        assert!(close(recall_at_k(&ranked, &relevant, 2), 1.0 / 3.0));
        assert!(close(recall_at_k(&ranked, &relevant, 4), 2.0 / 3.0));
        assert!(close(hit_rate_at_k(&ranked, &relevant, 1), 0.0));
        assert!(close(hit_rate_at_k(&ranked, &relevant, 2), 1.0));
    }

    #[test]
    fn ndcg_by_hand() {
        // Relevant at ranks 2 and 4 of 3 relevant items: DCG = 1/log2(3) + 1/log2(5);
        // IDCG = 1 + 1/log2(3) + 1/log2(4).
        let ranked = [5, 1, 9, 2];
        let relevant = set(&[1, 2, 7]);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5;
        assert!(close(ndcg_at_k(&ranked, &relevant, 10), dcg / idcg));
        assert!(close(ndcg_at_k(&[1, 2, 7], &relevant, 10), 1.0));
        assert!(close(ndcg_at_k(&[4], &set(&[]), 10), 0.0));
    }

    #[test]
    fn average_precision_by_hand() {
        // Hits at ranks 2 and 4: (1/2 + 2/4) / min(3, 10) = 1/3.
        let ranked = [5, 1, 9, 2];
        assert!(close(
            average_precision_at_k(&ranked, &set(&[1, 2, 7]), 10),
            1.0 / 3.0
        ));
        // Denominator is capped at K: 12 relevant, K = 2, both top-2 relevant → 1.
        let many: Vec<ItemId> = (0..12).collect();
        assert!(close(average_precision_at_k(&[0, 1], &set(&many), 2), 1.0));
    }

    #[test]
    fn coverage_and_novelty_by_hand() {
        let a: Vec<ItemId> = vec![0, 1];
        let b: Vec<ItemId> = vec![1, 2];
        let lists = [a.as_slice(), b.as_slice()];
        assert!(close(coverage_at_k(lists, 2, 10), 0.3));
        // counts: item0 = 2, item1 = 6, item2 = 0 (counts as 1); total = 8.
        let counts = [2, 6, 0];
        let expected =
            (-(2.0f64 / 8.0).log2() - 2.0 * (6.0f64 / 8.0).log2() - (1.0f64 / 8.0).log2()) / 4.0;
        assert!(close(novelty_at_k(lists, 2, &counts), expected));
    }

    #[test]
    fn auc_matches_pairwise_definition_with_ties() {
        let scores = [0.9, 0.8, 0.8, 0.3, 0.1];
        let labels = [true, false, true, false, false];
        // Pairs (pos, neg): 0.9 beats all 3; 0.8 ties one, beats two → 2.5. (3 + 2.5) / 6.
        assert!(close(auc(&scores, &labels).unwrap(), 5.5 / 6.0));
        assert!(auc(&[0.1, 0.2], &[true, true]).is_none());
    }

    #[test]
    fn log_loss_by_hand() {
        let value = log_loss(&[0.8, 0.4], &[true, false]);
        let expected = (-(0.8f64).ln() - (0.6f64).ln()) / 2.0;
        assert!((value - expected).abs() < 1e-6);
        assert!(log_loss(&[0.0], &[true]).is_finite());
    }
}
