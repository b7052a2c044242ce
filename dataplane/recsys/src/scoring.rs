//! The two inference steps training and serving share, so both score candidates the same way:
//! retrieval that skips seen items, and ranking prepared feature rows.

use crate::features::FeatureSnapshot;
use recsys_core::ranking;
use recsys_models::{AnnIndex, ModelError, Ranker};

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
