//! Business rules that finish a ranked list: a freshness boost, diversity (at most a few items
//! of one category near the top) and the final cut. Filters that remove items (exclusions,
//! recently seen, categories, age) run before, on the candidates.

use std::cmp::Ordering;

/// A ranked candidate with what the rules need to know about it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub item: u32,
    pub score: f32,
    /// A small dense category id (e.g. the primary genre).
    pub category: u32,
    /// Days since the item became available, when known.
    pub age_days: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleConfig {
    /// At most this many items of one category…
    pub max_per_category: usize,
    /// …among the first `diversity_window` positions.
    pub diversity_window: usize,
    /// Freshness boost: score × (1 + weight · e^(−age / decay_days)).
    pub freshness_weight: f32,
    pub freshness_decay_days: f32,
}

impl Default for RuleConfig {
    fn default() -> Self {
        Self {
            max_per_category: 3,
            diversity_window: 10,
            freshness_weight: 0.1,
            freshness_decay_days: 30.0,
        }
    }
}

fn by_score(a: &Candidate, b: &Candidate) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then_with(|| a.item.cmp(&b.item))
}

/// Applies the boost, orders by score (ties by item id) and fills the first positions without
/// exceeding the per-category cap; returns the top `n`.
///
/// Scores must be non-negative for the multiplicative boost to mean "more": callers pass
/// probabilities, or a monotone map of raw scores onto (0, 1).
pub fn finish(mut candidates: Vec<Candidate>, n: usize, config: &RuleConfig) -> Vec<Candidate> {
    for c in &mut candidates {
        if let Some(age) = c.age_days {
            let age = age.max(0.0);
            c.score *= 1.0 + config.freshness_weight * (-age / config.freshness_decay_days).exp();
        }
    }
    candidates.sort_by(by_score);
    let window = config.diversity_window.min(n);
    let mut head = Vec::with_capacity(window);
    let mut rest = Vec::new();
    let mut per_category: std::collections::HashMap<u32, usize> = Default::default();
    for c in candidates {
        let count = per_category.entry(c.category).or_default();
        if head.len() < window && *count < config.max_per_category {
            *count += 1;
            head.push(c);
        } else {
            rest.push(c);
        }
    }
    // Too few categories to fill the window within the cap: the best remaining items take the
    // places (a short list would be worse than a less diverse one).
    let missing = window.saturating_sub(head.len()).min(rest.len());
    head.extend(rest.drain(..missing));
    head.extend(rest);
    head.truncate(n);
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::SplitMix64;

    fn random_candidates(rng: &mut SplitMix64, n: usize, categories: u32) -> Vec<Candidate> {
        (0..n as u32)
            .map(|item| Candidate {
                item,
                score: (rng.next_u64() % 10_000) as f32 / 10_000.0,
                category: (rng.next_u64() % u64::from(categories)) as u32,
                age_days: rng
                    .next_u64()
                    .is_multiple_of(2)
                    .then(|| (rng.next_u64() % 400) as f32),
            })
            .collect()
    }

    #[test]
    fn diversity_holds_in_the_window_for_many_random_lists() {
        let config = RuleConfig::default();
        let mut rng = SplitMix64::new(5);
        for case in 0..500 {
            let categories = 4 + (case % 6) as u32;
            let list = finish(random_candidates(&mut rng, 200, categories), 20, &config);
            assert_eq!(list.len(), 20);
            let mut counts = std::collections::HashMap::new();
            for c in &list[..10] {
                *counts.entry(c.category).or_insert(0) += 1;
            }
            assert!(counts.values().all(|&n| n <= 3), "case {case}: {counts:?}");
            // Each part is in score order; no item twice.
            assert!(list[..10].windows(2).all(|w| w[0].score >= w[1].score));
            assert!(list[10..].windows(2).all(|w| w[0].score >= w[1].score));
            let mut items: Vec<u32> = list.iter().map(|c| c.item).collect();
            items.dedup();
            assert_eq!(items.len(), 20);
        }
    }

    #[test]
    fn freshness_boost_follows_the_formula_and_favours_new_items() {
        let config = RuleConfig::default();
        let c = |item, age| Candidate {
            item,
            score: 0.5,
            category: item,
            age_days: Some(age),
        };
        let list = finish(vec![c(1, 300.0), c(2, 0.0)], 2, &config);
        assert_eq!(list[0].item, 2, "the new item wins a tie");
        assert!((list[0].score - 0.5 * 1.1).abs() < 1e-6);
        let expected_old = 0.5 * (1.0 + 0.1 * (-10.0f32).exp());
        assert!((list[1].score - expected_old).abs() < 1e-6);
    }

    #[test]
    fn a_single_category_still_fills_the_list() {
        let config = RuleConfig::default();
        let mut rng = SplitMix64::new(9);
        let list = finish(random_candidates(&mut rng, 50, 1), 10, &config);
        assert_eq!(list.len(), 10, "diversity never shortens the list");
    }
}
