//! Ranker hyper-parameter search: random search scored by time-based cross-validation. The
//! candidate blocks are consecutive weeks, oldest first; fold f trains on every block before f
//! and validates on block f, so no fold ever learns from its own future.

use super::ranking::CandidateRows;
use crate::features::ranker::feature_names;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recsys_core::metrics;
use recsys_models::{ModelError, Objective, Ranker, RankerParams};
use serde::Serialize;
use std::collections::HashSet;

/// One sampled configuration and how it did on each fold.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub params: RankerParams,
    /// Validation NDCG@10 per fold (LightGBM's, over the 500 candidates of each user).
    pub fold_ndcg: Vec<f64>,
    /// Trees kept by early stopping per fold.
    pub fold_trees: Vec<usize>,
    pub mean_ndcg: f64,
}

/// The search's outcome: every trial, and the winner with its tree count fixed.
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    pub trials: Vec<Trial>,
    pub best: RankerParams,
    pub folds: usize,
    /// The same folds' validation NDCG@10 with the candidates left in retrieval order: what
    /// the ranker has to beat to be worth its stage.
    pub retrieval_order_ndcg: f64,
}

impl Tuning {
    /// The winning configuration's mean time-CV NDCG@10.
    pub fn best_ndcg(&self) -> f64 {
        self.trials
            .iter()
            .map(|t| t.mean_ndcg)
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// NDCG@10 of each query group's rows in their stored (retrieval) order, averaged over groups
/// and scored as LightGBM scores a validation set: binary gains, and a group without a
/// relevant row counts as 1.
pub fn retrieval_order_ndcg(block: &CandidateRows) -> f64 {
    let mut start = 0usize;
    let mut sum = 0.0;
    for &size in &block.groups {
        let labels = &block.labels[start..start + size as usize];
        start += size as usize;
        // Rows by their position in the group: the retrieval order is 0, 1, 2, …
        let relevant: HashSet<u32> = (0..labels.len() as u32)
            .filter(|&row| labels[row as usize] > 0.5)
            .collect();
        let order: Vec<u32> = (0..labels.len() as u32).collect();
        sum += if relevant.is_empty() {
            1.0
        } else {
            metrics::ndcg_at_k(&order, &relevant, 10)
        };
    }
    sum / block.groups.len().max(1) as f64
}

/// Samples a configuration; trial 0 is the hand-set default, so search never does worse than
/// not searching on the folds it is judged by.
fn sample(rng: &mut StdRng, trial: usize) -> RankerParams {
    if trial == 0 {
        return RankerParams::default();
    }
    let log_uniform = |rng: &mut StdRng, low: f64, high: f64| -> f64 {
        (rng.random_range(low.ln()..high.ln())).exp()
    };
    RankerParams {
        objective: if rng.random_bool(0.5) {
            Objective::Binary
        } else {
            Objective::LambdaRank
        },
        learning_rate: log_uniform(rng, 0.02, 0.2),
        num_leaves: [15, 31, 63, 127][rng.random_range(0..4)],
        min_data_in_leaf: [20, 50, 100, 200][rng.random_range(0..4)],
        feature_fraction: rng.random_range(0.6..1.0),
        bagging_fraction: rng.random_range(0.6..1.0),
        lambda_l2: log_uniform(rng, 0.1, 10.0),
        ..RankerParams::default()
    }
}

/// Runs `trials` configurations over the time folds of `blocks` (oldest first, at least two).
pub fn search(blocks: &[CandidateRows], trials: usize, seed: u64) -> Result<Tuning, ModelError> {
    if blocks.len() < 2 {
        return Err(ModelError::Invalid(format!(
            "time-based cross-validation needs at least two candidate blocks, got {}",
            blocks.len()
        )));
    }
    let first_fold = blocks.len().saturating_sub(3).max(1);
    let folds: Vec<(CandidateRows, &CandidateRows)> = (first_fold..blocks.len())
        .map(|f| (CandidateRows::concat(&blocks[..f]), &blocks[f]))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let progress = indicatif::ProgressBar::new((trials.max(1) * folds.len()) as u64)
        .with_message("ranker search");
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} fits {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut done = Vec::new();
    for t in 0..trials.max(1) {
        let params = RankerParams {
            seed,
            ..sample(&mut rng, t)
        };
        let mut fold_ndcg = Vec::new();
        let mut fold_trees = Vec::new();
        for (train, valid) in &folds {
            let ranker = Ranker::train(
                train.grouped(),
                Some(valid.grouped()),
                feature_names(),
                &params,
            )?;
            fold_ndcg.push(ranker.best_validation().unwrap_or(0.0));
            fold_trees.push(ranker.num_trees());
            progress.inc(1);
        }
        let mean_ndcg = fold_ndcg.iter().sum::<f64>() / fold_ndcg.len() as f64;
        done.push(Trial {
            params,
            fold_ndcg,
            fold_trees,
            mean_ndcg,
        });
    }
    progress.finish_and_clear();
    let winner = done
        .iter()
        .max_by(|a, b| a.mean_ndcg.total_cmp(&b.mean_ndcg))
        .expect("at least one trial");
    // The last fold trains on the most (and most recent) data, like the final refit.
    let trees = *winner.fold_trees.last().expect("at least one fold");
    let best = RankerParams {
        num_iterations: trees.max(1) as u32,
        early_stopping_rounds: 0,
        ..winner.params.clone()
    };
    let retrieval_order_ndcg = folds
        .iter()
        .map(|(_, valid)| retrieval_order_ndcg(valid))
        .sum::<f64>()
        / folds.len() as f64;
    Ok(Tuning {
        folds: folds.len(),
        trials: done,
        best,
        retrieval_order_ndcg,
    })
}

/// Refits the chosen configuration on every block.
pub fn refit(blocks: &[CandidateRows], tuning: &Tuning) -> Result<Ranker, ModelError> {
    let all = CandidateRows::concat(blocks);
    Ranker::train(all.grouped(), None, feature_names(), &tuning.best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_configurations_stay_in_their_ranges_and_trial_zero_is_the_default() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(sample(&mut rng, 0), RankerParams::default());
        let mut objectives = std::collections::HashSet::new();
        for t in 1..200 {
            let p = sample(&mut rng, t);
            assert!((0.02..0.2).contains(&p.learning_rate), "{p:?}");
            assert!((0.1..10.0).contains(&p.lambda_l2), "{p:?}");
            assert!([15, 31, 63, 127].contains(&p.num_leaves));
            objectives.insert(format!("{:?}", p.objective));
        }
        assert_eq!(objectives.len(), 2, "both objectives are searched");
    }

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
    fn one_block_is_not_enough_for_time_folds() {
        let err = search(&[CandidateRows::default()], 1, 0).unwrap_err();
        assert!(err.to_string().contains("two candidate blocks"), "{err}");
    }
}
