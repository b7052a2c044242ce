//! Second stage: LightGBM over the retrieval stage's candidates.

use crate::pipeline::labels::{first_event_times, relevant_by_user};
use crate::pipeline::retrieval::Retrieval;
use recsys_core::features::Context;
use recsys_core::rules::Candidate;
use recsys_core::Interaction;
use recsys_data::features::ranker::{context_columns, feature_names};
use recsys_data::features::{ranker_row, FeatureSnapshot};
use recsys_models::{GroupedRows, ModelError, Ranker, RankerParams};
use recsys_scoring::{retrieval_rule_score, rule_candidate};
use std::collections::HashSet;

pub use recsys_scoring::{score_rows, CANDIDATES};

/// Feature rows and relevance labels for every (user, candidate) pair.
#[derive(Debug, Default)]
pub struct CandidateRows {
    pub features: Vec<f32>,
    pub labels: Vec<f32>,
    pub users: Vec<u32>,
    pub items: Vec<u32>,
    /// Sizes of consecutive per-user query groups (for lambdarank and NDCG).
    pub groups: Vec<i32>,
    /// Per row, what the business rules know of its item at the block's time (category, age;
    /// the score is the retrieval score's, replaced when a ranker scores the row), so folds
    /// are scored as served.
    pub rules: Vec<Candidate>,
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

    pub fn append(&mut self, mut other: CandidateRows) {
        self.features.append(&mut other.features);
        self.labels.append(&mut other.labels);
        self.users.append(&mut other.users);
        self.items.append(&mut other.items);
        self.groups.append(&mut other.groups);
        self.rules.append(&mut other.rules);
    }

    /// Several blocks as one, in order.
    pub fn concat<'a>(blocks: impl IntoIterator<Item = &'a CandidateRows>) -> CandidateRows {
        let mut out = CandidateRows::default();
        for b in blocks {
            out.features.extend_from_slice(&b.features);
            out.labels.extend_from_slice(&b.labels);
            out.users.extend_from_slice(&b.users);
            out.items.extend_from_slice(&b.items);
            out.groups.extend_from_slice(&b.groups);
            out.rules.extend_from_slice(&b.rules);
        }
        out
    }

    /// Borrowed view for LightGBM.
    pub fn grouped(&self) -> GroupedRows<'_> {
        GroupedRows {
            features: &self.features,
            labels: &self.labels,
            groups: Some(&self.groups),
        }
    }
}

/// Retrieves candidates for each user of `window` and labels them with the window's relevance.
pub fn candidate_rows(
    retrieval: &Retrieval,
    snapshot: &FeatureSnapshot,
    window: &[Interaction],
) -> Result<CandidateRows, ModelError> {
    let labels = relevant_by_user(window);
    let times = first_event_times(window);
    let mut rows = CandidateRows::default();
    for (&user, relevant) in &labels {
        let ctx = Context {
            timestamp: times[&user],
            ..Context::default()
        };
        add_user(&mut rows, retrieval, snapshot, user, relevant, &ctx)?;
    }
    Ok(rows)
}

fn add_user(
    rows: &mut CandidateRows,
    retrieval: &Retrieval,
    snapshot: &FeatureSnapshot,
    user: u32,
    relevant: &HashSet<u32>,
    ctx: &Context,
) -> Result<(), ModelError> {
    let context = context_columns(snapshot, ctx);
    let candidates = retrieval.retrieve(snapshot, user, CANDIDATES)?;
    if candidates.is_empty() {
        return Ok(());
    }
    rows.groups.push(candidates.len() as i32);
    for (rank, (item, score)) in candidates.into_iter().enumerate() {
        rows.rules
            .push(rule_candidate(snapshot, item, retrieval_rule_score(score)));
        ranker_row(
            snapshot,
            user,
            item,
            (score, rank),
            &context,
            &mut rows.features,
        );
        rows.labels
            .push(f32::from(u8::from(relevant.contains(&item))));
        rows.users.push(user);
        rows.items.push(item);
    }
    Ok(())
}

/// Trains on `train`, choosing the number of trees by early stopping on the later `valid`
/// window (time-based validation), then refits on both with that many trees.
pub fn train_ranker(
    train: &CandidateRows,
    valid: &CandidateRows,
    params: &RankerParams,
) -> Result<Ranker, ModelError> {
    let has_both = |y: &[f32]| y.iter().any(|&l| l > 0.5) && y.iter().any(|&l| l < 0.5);
    if !has_both(&valid.labels) {
        return Ranker::train(train.grouped(), None, feature_names(), params);
    }
    let selected = Ranker::train(
        train.grouped(),
        Some(valid.grouped()),
        feature_names(),
        params,
    )?;
    let refit_params = RankerParams {
        num_iterations: selected.num_trees().max(1) as u32,
        ..params.clone()
    };
    let all = CandidateRows::concat([train, valid]);
    Ranker::train(all.grouped(), None, feature_names(), &refit_params)
}

/// Ranker training rows from `windows` rolling windows of `window_secs` before `cutoff`, oldest first:
/// for each, a retrieval model trained only on what came before the window proposes
/// candidates, and the window's ratings label them — exactly the situation the ranker meets in
/// production.
pub fn rolling_window_rows(
    data: &recsys_data::Dataset,
    history: &[Interaction],
    cutoff: i64,
    windows: usize,
    window_secs: i64,
    training: &crate::pipeline::retrieval::TowerTraining,
) -> Result<Vec<CandidateRows>, recsys_two_tower::TowerError> {
    let mut out = Vec::new();
    for k in (1..=windows as i64).rev() {
        let start = cutoff - k * window_secs;
        let before: Vec<Interaction> = history
            .iter()
            .filter(|r| r.timestamp < start)
            .copied()
            .collect();
        let window: Vec<Interaction> = history
            .iter()
            .filter(|r| (start..start + window_secs).contains(&r.timestamp))
            .copied()
            .collect();
        if before.is_empty() || window.is_empty() {
            continue;
        }
        let snapshot = FeatureSnapshot::compute(data, &before, start);
        let retrieval = crate::pipeline::retrieval::train(&snapshot, &before, None, training)?;
        out.push(candidate_rows(&retrieval, &snapshot, &window)?);
    }
    Ok(out)
}

/// Scores `candidates` of `user` with the ranker; returns them re-ordered best first.
pub fn rerank(
    ranker: &Ranker,
    snapshot: &FeatureSnapshot,
    user: u32,
    candidates: &[(u32, f32)],
    ctx: &Context,
) -> Result<Vec<(u32, f32)>, ModelError> {
    let context = context_columns(snapshot, ctx);
    let mut features = Vec::with_capacity(candidates.len() * ranker.feature_names().len());
    for (rank, &(item, score)) in candidates.iter().enumerate() {
        ranker_row(snapshot, user, item, (score, rank), &context, &mut features);
    }
    score_rows(ranker, candidates, &features)
}
