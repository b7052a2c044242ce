//! The matrix-factorization baseline (implicit ALS) as a full-catalog recommender: factors
//! chosen on validation, refit on train + validation, most-popular for users without history
//! (MF has nothing to say about them).

use super::labels::relevant_by_user;
use recsys_core::{metrics, ranking, Interaction, ItemId, UserId};
use recsys_data::features::FeatureSnapshot;
use recsys_models::{ImplicitMf, MfParams, ModelError};
use std::collections::BTreeMap;

/// The grid searched on validation: factors × λ × α.
const GRID: [(usize, f32, f32); 6] = [
    (32, 1.0, 10.0),
    (32, 10.0, 10.0),
    (64, 1.0, 10.0),
    (64, 10.0, 10.0),
    (64, 10.0, 40.0),
    (128, 10.0, 10.0),
];

fn pairs(history: &[Interaction], cutoff: i64) -> Vec<(u32, u32)> {
    history
        .iter()
        .filter(|r| r.timestamp < cutoff)
        .map(|r| (r.user, r.item))
        .collect()
}

/// Fits MF on everything in `history` before the snapshot's cut-off.
pub fn fit(
    snapshot: &FeatureSnapshot,
    history: &[Interaction],
    params: MfParams,
) -> Result<ImplicitMf, ModelError> {
    ImplicitMf::fit(
        snapshot.users.len(),
        snapshot.items.len(),
        &pairs(history, snapshot.cutoff),
        params,
    )
}

/// Top-`k` unseen items per user: MF scores for users with history, `cold_scores` otherwise.
pub fn lists(
    mf: &ImplicitMf,
    snapshot: &FeatureSnapshot,
    users: &[UserId],
    cold_scores: &[f32],
    k: usize,
) -> BTreeMap<UserId, Vec<ItemId>> {
    users
        .iter()
        .map(|&u| {
            let warm = snapshot
                .users
                .get(u as usize)
                .is_some_and(|f| f.history_len > 0);
            let scores = if warm {
                mf.scores(u)
            } else {
                cold_scores.to_vec()
            };
            (
                u,
                ranking::top_k_dense(&scores, k, |i| snapshot.has_seen(u, i)),
            )
        })
        .collect()
}

/// Picks the grid point with the best validation NDCG@10 (fit on train only).
pub fn tune(
    snapshot: &FeatureSnapshot,
    train: &[Interaction],
    validation: &[Interaction],
) -> Result<(MfParams, f64), ModelError> {
    let labels = relevant_by_user(validation);
    let users: Vec<UserId> = labels.keys().copied().collect();
    let popular: Vec<f32> = snapshot.item_counts().iter().map(|&c| c as f32).collect();
    let mut best: Option<(MfParams, f64)> = None;
    for (factors, regularization, alpha) in GRID {
        let params = MfParams {
            factors,
            regularization,
            alpha,
            ..MfParams::default()
        };
        let mf = fit(snapshot, train, params)?;
        let top = lists(&mf, snapshot, &users, &popular, 10);
        let ndcg = users
            .iter()
            .map(|u| metrics::ndcg_at_k(&top[u], &labels[u], 10))
            .sum::<f64>()
            / users.len().max(1) as f64;
        if best.is_none_or(|(_, b)| ndcg > b) {
            best = Some((params, ndcg));
        }
    }
    Ok(best.expect("grid is not empty"))
}
