//! First stage: train the two-tower model on a history window and index its item vectors.

use crate::features::{tower, FeatureSnapshot};
use crate::pipeline::labels::relevant_by_user;
use crate::pipeline::ranking::CANDIDATES;
use recsys_core::{metrics, ranking, Interaction};
use recsys_models::two_tower::Validator;
use recsys_models::{AnnIndex, IndexKind, ModelError, TrainReport, TwoTower, TwoTowerConfig};

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

pub use crate::scoring::retrieve_unseen;

/// Trains on every interaction in `history` (as of `snapshot`). With `validation` rows, stops
/// early on their Recall@50; otherwise runs `epochs` epochs. `seed` fixes initialisation and
/// batch order.
pub fn train(
    snapshot: &FeatureSnapshot,
    history: &[Interaction],
    validation: Option<&[Interaction]>,
    epochs: usize,
    seed: u64,
) -> Result<Retrieval, ModelError> {
    let users = tower::all_users(snapshot);
    let items = tower::all_items(snapshot);
    let config = TwoTowerConfig {
        max_epochs: epochs,
        seed,
        ..TwoTowerConfig::new(
            snapshot.users.len() as i64 + 1,
            snapshot.items.len() as i64 + 1,
            users.feature_dim as i64,
            items.feature_dim as i64,
        )
    };
    let positives: Vec<(usize, usize)> = history
        .iter()
        .filter(|r| r.timestamp < snapshot.cutoff)
        .map(|r| (r.user as usize, r.item as usize))
        .collect();
    let counts = snapshot.item_counts();
    let total = counts.iter().sum::<u64>().max(1) as f32;
    let log_q: Vec<f32> = counts
        .iter()
        .map(|&c| (c.max(1) as f32 / total).ln())
        .collect();

    let labels = validation.map(relevant_by_user);
    let mut validate = |model: &TwoTower| -> Result<f64, ModelError> {
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
    let (model, report) = TwoTower::fit(config, &users, &items, &positives, &log_q, validator)?;

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
