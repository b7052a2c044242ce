//! First stage: train the two-tower model on a history window and index its item vectors.

use crate::pipeline::labels::relevant_by_user;
use crate::pipeline::ranking::CANDIDATES;
use recsys_core::{metrics, ranking, Interaction};
use recsys_data::features::{tower, FeatureSnapshot};
use recsys_models::{AnnIndex, IndexKind, ModelError, TwoTowerConfig};
use recsys_two_tower::Validator;
use recsys_two_tower::{TowerError, TrainReport, TwoTower};

/// Recall@500 against exact search that an inverted-list index is tuned to (the ItemIndex
/// default).
pub const RECALL_TARGET: f64 = 0.95;
/// User vectors the tuning measures recall on.
const TUNING_QUERIES: usize = 500;

/// A trained retrieval stage: model, precomputed vectors and the ANN index over items.
pub struct Retrieval {
    pub model: TwoTower,
    pub user_vectors: Vec<f32>,
    pub item_vectors: Vec<f32>,
    pub ann: AnnIndex,
    pub report: TrainReport,
}

impl Retrieval {
    pub fn dim(&self) -> usize {
        self.model.config().output_dim as usize
    }

    pub fn user_vector(&self, user: u32) -> &[f32] {
        let d = self.dim();
        &self.user_vectors[user as usize * d..(user as usize + 1) * d]
    }

    /// Top `k` unseen items for `user` from the ANN index, best first.
    pub fn retrieve(
        &self,
        snapshot: &FeatureSnapshot,
        user: u32,
        k: usize,
    ) -> Result<Vec<(u32, f32)>, ModelError> {
        retrieve_unseen(&self.ann, snapshot, user, self.user_vector(user), k)
    }
}

pub use recsys_scoring::retrieve_unseen;

/// How the towers train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TowerTraining {
    /// The most epochs with validation rows (early stopping usually ends sooner), exactly
    /// this many without.
    pub epochs: usize,
    /// With a half-life, each epoch samples positives in proportion to ½^(age / half-life),
    /// the age counted back from the snapshot's cut-off, so recent tastes weigh more; without,
    /// it visits every positive once.
    pub recency_half_life_secs: Option<f64>,
    /// Fixes initialisation and sampling.
    pub seed: u64,
}

impl TowerTraining {
    pub fn uniform(epochs: usize, seed: u64) -> Self {
        Self {
            epochs,
            recency_half_life_secs: None,
            seed,
        }
    }
}

/// The lightest weight a positive gets, so a short half-life never leaves every weight zero.
const MIN_RECENCY_WEIGHT: f64 = 1e-12;

fn recency_weight(cutoff: i64, timestamp: i64, half_life_secs: f64) -> f64 {
    let age = (cutoff - timestamp).max(0) as f64;
    (-age / half_life_secs).exp2().max(MIN_RECENCY_WEIGHT)
}

/// Trains on every interaction in `history` before the snapshot's cut-off. With `validation`
/// rows, stops early on their Recall@50; otherwise runs `training.epochs` epochs.
pub fn train(
    snapshot: &FeatureSnapshot,
    history: &[Interaction],
    validation: Option<&[Interaction]>,
    training: &TowerTraining,
) -> Result<Retrieval, TowerError> {
    let users = tower::all_users(snapshot);
    let items = tower::all_items(snapshot);
    let config = TwoTowerConfig {
        max_epochs: training.epochs,
        seed: training.seed,
        ..TwoTowerConfig::new(
            snapshot.users.len() as i64 + 1,
            snapshot.items.len() as i64 + 1,
            users.feature_dim as i64,
            items.feature_dim as i64,
        )
    };
    let before_cutoff = || history.iter().filter(|r| r.timestamp < snapshot.cutoff);
    let positives: Vec<(usize, usize)> = before_cutoff()
        .map(|r| (r.user as usize, r.item as usize))
        .collect();
    let weights: Option<Vec<f64>> = training.recency_half_life_secs.map(|half_life| {
        before_cutoff()
            .map(|r| recency_weight(snapshot.cutoff, r.timestamp, half_life))
            .collect()
    });
    let counts = snapshot.item_counts();
    let total = counts.iter().sum::<u64>().max(1) as f32;
    let log_q: Vec<f32> = counts
        .iter()
        .map(|&c| (c.max(1) as f32 / total).ln())
        .collect();

    let labels = validation.map(relevant_by_user);
    let mut validate = |model: &TwoTower| -> Result<f64, TowerError> {
        let labels = labels.as_ref().expect("validator only exists with labels");
        let user_vectors = model.embed_users(&users)?;
        let item_vectors = model.embed_items(&items)?;
        let d = model.config().output_dim as usize;
        let mut sum = 0.0;
        for (&user, relevant) in labels {
            let q = &user_vectors[user as usize * d..(user as usize + 1) * d];
            let scores: Vec<f32> = item_vectors.chunks(d).map(|v| dot(q, v)).collect();
            let top = ranking::top_k_dense(&scores, 50, |i| snapshot.has_seen(user, i));
            sum += metrics::recall_at_k(&top, relevant, 50);
        }
        Ok(sum / labels.len().max(1) as f64)
    };
    let validator: Option<&mut Validator<'_>> = if labels.is_some() {
        Some(&mut validate)
    } else {
        None
    };
    let (model, report) = TwoTower::fit(
        config,
        &users,
        &items,
        &positives,
        weights.as_deref(),
        &log_q,
        validator,
    )?;

    let user_vectors = model.embed_users(&users)?;
    let item_vectors = model.embed_items(&items)?;
    let dim = model.config().output_dim as usize;
    let ids: Vec<u32> = (0..snapshot.items.len() as u32).collect();
    let mut ann = AnnIndex::build(IndexKind::for_catalog(ids.len()), dim, &item_vectors, ids)?;
    if ann.kind() != IndexKind::Flat {
        let exact = AnnIndex::build(
            IndexKind::Flat,
            dim,
            &item_vectors,
            (0..snapshot.items.len() as u32).collect(),
        )?;
        let step = (user_vectors.len() / dim / TUNING_QUERIES).max(1);
        let queries: Vec<f32> = user_vectors
            .chunks(dim)
            .step_by(step)
            .take(TUNING_QUERIES)
            .flatten()
            .copied()
            .collect();
        let recall = ann.tune_probes(&exact, &queries, CANDIDATES, RECALL_TARGET)?;
        tracing::info!(kind = ?ann.kind(), recall, "ANN probes tuned on user queries");
    }
    Ok(Retrieval {
        model,
        user_vectors,
        item_vectors,
        ann,
        report,
    })
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_positive_one_half_life_old_weighs_half_and_none_weighs_zero() {
        let day = 86_400;
        assert_eq!(recency_weight(10 * day, 10 * day, day as f64), 1.0);
        assert_eq!(recency_weight(10 * day, 9 * day, day as f64), 0.5);
        assert_eq!(recency_weight(10 * day, 7 * day, day as f64), 0.125);
        // Rows at the cut-off count as new, not as weighing more than new.
        assert_eq!(recency_weight(10 * day, 11 * day, day as f64), 1.0);
        assert_eq!(recency_weight(1000 * day, 0, 1.0), MIN_RECENCY_WEIGHT);
    }
}
