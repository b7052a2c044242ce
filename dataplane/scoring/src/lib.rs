//! The inference steps training and serving share, so both score candidates the same way:
//! retrieval that skips seen items, ranking prepared feature rows, and the score the business
//! rules see.

use recsys_core::ranking;
use recsys_core::rules::Candidate;
use recsys_data::features::FeatureSnapshot;
use recsys_models::{AnnIndex, ModelError, Objective, Ranker};

/// Candidates per user that the ranker sees, offline and online.
pub const CANDIDATES: usize = 500;

/// ANN search that skips items the user has already seen, asking for enough extra results.
pub fn retrieve_unseen(
    ann: &AnnIndex,
    snapshot: &FeatureSnapshot,
    user: u32,
    query: &[f32],
    k: usize,
) -> Result<Vec<(u32, f32)>, ModelError> {
    let seen = snapshot
        .users
        .get(user as usize)
        .map_or(0, |u| u.seen.len());
    let mut hits = ann.search(query, k + seen)?;
    hits.retain(|(item, _)| !snapshot.has_seen(user, *item));
    // FAISS does not promise the protocol's tie-break; re-sort equal scores by item id.
    hits.sort_by(ranking::compare_scored);
    hits.truncate(k);
    Ok(hits)
}

/// Scores prepared rows (one per candidate, in order); returns the candidates best first.
pub fn score_rows(
    ranker: &Ranker,
    candidates: &[(u32, f32)],
    features: &[f32],
) -> Result<Vec<(u32, f32)>, ModelError> {
    let scores = ranker.predict(features)?;
    let mut scored: Vec<(u32, f32)> = candidates
        .iter()
        .zip(scores)
        .map(|(&(item, _), s)| (item, s as f32))
        .collect();
    scored.sort_by(ranking::compare_scored);
    Ok(scored)
}

/// The ranker's score as the business rules take it. The freshness boost multiplies scores,
/// so they must be positive: a binary ranker already answers probabilities, and lambdarank's
/// raw scores (often negative, where a boost would demote) go through the logistic map, which
/// keeps their order.
pub fn rule_score(objective: Objective, score: f32) -> f32 {
    match objective {
        Objective::Binary => score,
        Objective::LambdaRank => 1.0 / (1.0 + (-score).exp()),
    }
}

/// The retrieval stage's score (a cosine similarity in [−1, 1]) as the business rules would
/// take it if the retrieval order were served as it is: shifted into [0, 1], which keeps the
/// order and keeps the freshness boost from demoting an item. Offline only: the served
/// comparison of the two-tower's own list with the ranker's.
pub fn retrieval_rule_score(cosine: f32) -> f32 {
    ((cosine + 1.0) / 2.0).clamp(0.0, 1.0)
}

/// `item` as the business rules see it in `snapshot`: its first category and its age.
pub fn rule_candidate(snapshot: &FeatureSnapshot, item: u32, score: f32) -> Candidate {
    let features = &snapshot.items[item as usize];
    Candidate {
        item,
        score,
        category: features.genres.first().map_or(u32::MAX, |&g| g as u32),
        age_days: (features.days_since_first >= 0.0).then_some(features.days_since_first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_core::rules::{finish, RuleConfig};

    fn finished(objective: Objective, fresh: f32, old: f32) -> Vec<u32> {
        let candidate = |item, score, age_days| Candidate {
            item,
            score: rule_score(objective, score),
            category: item,
            age_days: Some(age_days),
        };
        let list = vec![candidate(1, fresh, 0.0), candidate(2, old, 400.0)];
        finish(list, 2, &RuleConfig::default())
            .into_iter()
            .map(|c| c.item)
            .collect()
    }

    #[test]
    fn the_freshness_boost_lifts_a_new_item_whatever_the_sign_of_a_raw_score() {
        // Raw lambdarank scores just below an older item's: the boost (×1.1 when new) lifts the
        // new item above it, negative or positive. Multiplying the raw −1.0 would demote it.
        assert_eq!(finished(Objective::LambdaRank, -1.0, -0.95), [1, 2]);
        assert_eq!(finished(Objective::LambdaRank, 1.0, 1.05), [1, 2]);
        // Too far below, it stays below.
        assert_eq!(finished(Objective::LambdaRank, -1.0, 0.0), [2, 1]);
        // Probabilities are boosted as they are.
        assert_eq!(finished(Objective::Binary, 0.30, 0.32), [1, 2]);
        assert!(rule_score(Objective::LambdaRank, -30.0) > 0.0);
    }

    #[test]
    fn retrieval_scores_map_into_the_unit_interval_in_order() {
        let mapped: Vec<f32> = [-1.0, -0.2, 0.0, 0.5, 1.0]
            .into_iter()
            .map(retrieval_rule_score)
            .collect();
        assert_eq!(mapped, vec![0.0, 0.4, 0.5, 0.75, 1.0]);
    }
}
