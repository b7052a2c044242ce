//! Second stage: LightGBM over the retrieval stage's candidates.

use crate::features::{ranker::feature_names, ranker_row, FeatureSnapshot, RANKER_FEATURES};
use crate::pipeline::labels::relevant_by_user;
use crate::pipeline::retrieval::Retrieval;
use recsys_core::{ranking, Interaction};
use recsys_models::ranker::LabelledRows;
use recsys_models::{ModelError, Ranker, RankerParams};
use std::collections::HashSet;

/// Candidates per user that the ranker sees, as in serving.
pub const CANDIDATES: usize = 500;

/// Feature rows and relevance labels for every (user, candidate) pair.
#[derive(Debug, Default)]
pub struct CandidateRows {
    pub features: Vec<f32>,
    pub labels: Vec<f32>,
    pub users: Vec<u32>,
    pub items: Vec<u32>,
}

impl CandidateRows {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&l| l > 0.5).count()
    }
}

/// Retrieves candidates for each user of `window` and labels them with the window's relevance.
pub fn candidate_rows(
    retrieval: &Retrieval,
    snapshot: &FeatureSnapshot,
    window: &[Interaction],
) -> Result<CandidateRows, ModelError> {
    let labels = relevant_by_user(window);
    let mut rows = CandidateRows::default();
    for (&user, relevant) in &labels {
        add_user(&mut rows, retrieval, snapshot, user, relevant)?;
    }
    Ok(rows)
}

fn add_user(
    rows: &mut CandidateRows,
    retrieval: &Retrieval,
    snapshot: &FeatureSnapshot,
    user: u32,
    relevant: &HashSet<u32>,
) -> Result<(), ModelError> {
    for (rank, (item, score)) in retrieval
        .retrieve(snapshot, user, CANDIDATES)?
        .into_iter()
        .enumerate()
    {
        ranker_row(snapshot, user, item, score, rank, &mut rows.features);
        rows.labels
            .push(f32::from(u8::from(relevant.contains(&item))));
        rows.users.push(user);
        rows.items.push(item);
    }
    Ok(())
}

/// Trains the ranker on `rows`, holding out every fifth user for early stopping.
pub fn train_ranker(rows: &CandidateRows, params: &RankerParams) -> Result<Ranker, ModelError> {
    let n = RANKER_FEATURES.len();
    let (mut train_x, mut train_y, mut valid_x, mut valid_y) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (row, &user) in rows.users.iter().enumerate() {
        let (x, y) = if user % 5 == 0 {
            (&mut valid_x, &mut valid_y)
        } else {
            (&mut train_x, &mut train_y)
        };
        x.extend_from_slice(&rows.features[row * n..(row + 1) * n]);
        y.push(rows.labels[row]);
    }
    let has_both = |y: &[f32]| y.iter().any(|&l| l > 0.5) && y.iter().any(|&l| l < 0.5);
    let valid = has_both(&valid_y).then_some(LabelledRows {
        features: &valid_x,
        labels: &valid_y,
    });
    Ranker::train(
        LabelledRows {
            features: &train_x,
            labels: &train_y,
        },
        valid,
        feature_names(),
        params,
    )
}

/// Scores `candidates` of `user` with the ranker; returns them re-ordered best first.
pub fn rerank(
    ranker: &Ranker,
    snapshot: &FeatureSnapshot,
    user: u32,
    candidates: &[(u32, f32)],
) -> Result<Vec<(u32, f32)>, ModelError> {
    let mut features = Vec::with_capacity(candidates.len() * RANKER_FEATURES.len());
    for (rank, &(item, score)) in candidates.iter().enumerate() {
        ranker_row(snapshot, user, item, score, rank, &mut features);
    }
    let scores = ranker.predict(&features)?;
    let mut scored: Vec<(u32, f32)> = candidates
        .iter()
        .zip(scores)
        .map(|(&(item, _), s)| (item, s as f32))
        .collect();
    scored.sort_by(ranking::compare_scored);
    Ok(scored)
}
