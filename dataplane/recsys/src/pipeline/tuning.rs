//! Ranker hyper-parameter search: random search scored by time-based cross-validation. The
//! candidate blocks are consecutive weeks, oldest first; fold f trains on every block before f
//! and validates on block f, so no fold ever learns from its own future. A configuration is
//! judged by the list serving would show: its scores through the business rules, over the
//! users with a relevant candidate.

use super::ranking::CandidateRows;
use crate::features::ranker::feature_names;
use crate::scoring::rule_score;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recsys_core::metrics;
use recsys_core::rules::{finish, Candidate, RuleConfig};
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
    /// Per fold: NDCG@10 over the users with a relevant candidate, and how many there were.
    pub fold_judged: Vec<(f64, usize)>,
    /// Per fold: the same users' NDCG@10 of the served list (scores through the business
    /// rules: freshness boost, category cap).
    pub fold_served: Vec<(f64, usize)>,
    pub mean_ndcg: f64,
    /// Mean of `fold_served` over the folds with such users; none when no fold has one.
    pub served_ndcg: Option<f64>,
}

impl Trial {
    /// What the search maximises: the served list's NDCG@10 on the users who can tell, or
    /// LightGBM's NDCG@10 where no fold has such a user.
    pub fn score(&self) -> f64 {
        self.served_ndcg.unwrap_or(self.mean_ndcg)
    }
}

/// Mean of the per-fold values over the folds with judged users.
fn mean_over_judged(folds: &[(f64, usize)]) -> Option<f64> {
    let judged: Vec<f64> = folds.iter().filter(|f| f.1 > 0).map(|f| f.0).collect();
    (!judged.is_empty()).then(|| judged.iter().sum::<f64>() / judged.len() as f64)
}

/// The search's outcome: every trial, and the winner with its tree count fixed.
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    pub trials: Vec<Trial>,
    /// Index of the winning trial.
    pub chosen: usize,
    pub best: RankerParams,
    pub folds: usize,
    /// The same folds' validation NDCG@10 with the candidates left in retrieval order: what
    /// the ranker has to beat to be worth its stage.
    pub retrieval_order_ndcg: f64,
    /// The winning configuration and the retrieval order on the same folds again, over only
    /// the users with a relevant candidate: LightGBM's metric scores a user without one as 1,
    /// which on sparse labels buries a ranker that orders worse than its candidates came.
    pub judged: JudgedFolds,
    /// How many of the newest rolling windows trained the ranker (before the validated block).
    pub windows: usize,
    /// Each window count tried, with its winning configuration's [`Trial::score`] on the same
    /// folds.
    pub windows_tried: Vec<(usize, f64)>,
    /// Blocks older than the chosen windows, left out of every refit.
    #[serde(skip)]
    first_block: usize,
}

impl Tuning {
    /// The blocks the chosen ranker trains on: those from the chosen windows on.
    pub fn used<'a>(&self, blocks: &'a [CandidateRows]) -> &'a [CandidateRows] {
        &blocks[self.first_block.min(blocks.len())..]
    }

    /// The winning configuration's mean time-CV NDCG@10 (LightGBM's, over every user).
    pub fn best_ndcg(&self) -> f64 {
        self.trials[self.chosen].mean_ndcg
    }

    /// The winning configuration's [`Trial::score`].
    pub fn best_score(&self) -> f64 {
        self.trials[self.chosen].score()
    }
}

/// Time-CV NDCG@10 over the query groups with at least one relevant row (mean of the folds'
/// means; folds without such a group are left out).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct JudgedFolds {
    pub groups: usize,
    pub ranker_ndcg: f64,
    pub retrieval_order_ndcg: f64,
    /// The winner's served lists (after the business rules) on the same users.
    pub served_ranker_ndcg: f64,
}

impl JudgedFolds {
    /// Whether the ranker orders the judged users' candidates better than retrieval did.
    pub fn ranker_wins(&self) -> bool {
        self.groups == 0 || self.ranker_ndcg > self.retrieval_order_ndcg
    }
}

/// Each query group of `block`: its rows, and the positions of its relevant rows within it.
fn query_groups(
    block: &CandidateRows,
) -> impl Iterator<Item = (std::ops::Range<usize>, HashSet<u32>)> + '_ {
    let mut start = 0usize;
    block.groups.iter().map(move |&size| {
        let range = start..start + size as usize;
        start = range.end;
        let relevant = range
            .clone()
            .filter(|&row| block.labels[row] > 0.5)
            .map(|row| (row - range.start) as u32)
            .collect();
        (range, relevant)
    })
}

/// Mean NDCG@10 over the groups of `block` with a relevant row, each group's rows ordered by
/// `scores` (higher first, ties in stored order), and how many such groups there were.
pub fn judged_ndcg(block: &CandidateRows, scores: &[f64]) -> (f64, usize) {
    let (mut sum, mut judged) = (0.0, 0usize);
    for (range, relevant) in query_groups(block).filter(|(_, r)| !r.is_empty()) {
        let group_scores = &scores[range];
        let mut order: Vec<u32> = (0..group_scores.len() as u32).collect();
        order.sort_by(|&a, &b| group_scores[b as usize].total_cmp(&group_scores[a as usize]));
        sum += metrics::ndcg_at_k(&order, &relevant, 10);
        judged += 1;
    }
    (sum / judged.max(1) as f64, judged)
}

/// Like [`judged_ndcg`], but each group's list is what serving would show: `scores` (of a
/// ranker with `objective`) through the business rules, ties by item id.
pub fn served_ndcg(block: &CandidateRows, scores: &[f64], objective: Objective) -> (f64, usize) {
    let rules = RuleConfig::default();
    let (mut sum, mut judged) = (0.0, 0usize);
    for (range, relevant) in query_groups(block).filter(|(_, r)| !r.is_empty()) {
        let candidates: Vec<Candidate> = range
            .clone()
            .map(|row| Candidate {
                score: rule_score(objective, scores[row] as f32),
                ..block.rules[row]
            })
            .collect();
        let list: Vec<u32> = finish(candidates, 10, &rules)
            .iter()
            .map(|c| c.item)
            .collect();
        let wanted: HashSet<u32> = relevant
            .iter()
            .map(|&k| block.items[range.start + k as usize])
            .collect();
        sum += metrics::ndcg_at_k(&list, &wanted, 10);
        judged += 1;
    }
    (sum / judged.max(1) as f64, judged)
}

/// NDCG@10 of each query group's rows in their stored (retrieval) order, averaged over groups
/// and scored as LightGBM scores a validation set: binary gains, and a group without a
/// relevant row counts as 1.
pub fn retrieval_order_ndcg(block: &CandidateRows) -> f64 {
    let sum: f64 = query_groups(block)
        .map(|(range, relevant)| {
            if relevant.is_empty() {
                return 1.0;
            }
            // Rows by their position in the group: the retrieval order is 0, 1, 2, …
            let order: Vec<u32> = (0..range.len() as u32).collect();
            metrics::ndcg_at_k(&order, &relevant, 10)
        })
        .sum();
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

/// How many rolling windows of candidate rows train the ranker, chosen like its
/// configuration: `blocks` are the rolling windows (oldest first) and then the validation
/// window's block; for each count in `windows`, the newest that many windows and the
/// validation block are searched over the same validation folds (the last blocks), and the
/// count whose winner scores best ([`Trial::score`]) wins (the fewest windows on ties). A
/// longer history helps where tastes are stable and hurts where they drift, so neither is
/// assumed.
pub fn search_windows(
    blocks: &[CandidateRows],
    windows: &[usize],
    trials: usize,
    seed: u64,
) -> Result<Tuning, ModelError> {
    let built = blocks.len().saturating_sub(1);
    let mut counts: Vec<usize> = windows.iter().map(|&w| w.min(built)).collect();
    counts.sort_unstable();
    counts.dedup();
    let Some(&fewest) = counts.first().filter(|&&w| w > 0) else {
        return Err(ModelError::Invalid(format!(
            "time-based cross-validation needs at least two candidate blocks (rolling windows \
             tried {windows:?}, {built} built)"
        )));
    };
    // Every count is judged on the same blocks: as many folds as the fewest windows allow.
    let folds = fewest.min(MAX_FOLDS);
    let mut best: Option<Tuning> = None;
    let mut tried = Vec::new();
    for w in counts {
        let first_block = built - w;
        let tuning = search_folds(&blocks[first_block..], folds, trials, seed)?;
        tried.push((w, tuning.best_score()));
        if best
            .as_ref()
            .is_none_or(|b| tuning.best_score() > b.best_score())
        {
            best = Some(Tuning {
                windows: w,
                first_block,
                ..tuning
            });
        }
    }
    let best = best.expect("at least one window count");
    Ok(Tuning {
        windows_tried: tried,
        ..best
    })
}

/// Validation folds of the time-CV: the newest blocks, each validated by a model trained on
/// every block before it.
const MAX_FOLDS: usize = 3;

/// Runs `trials` configurations over the time folds of `blocks` (oldest first, at least two).
pub fn search(blocks: &[CandidateRows], trials: usize, seed: u64) -> Result<Tuning, ModelError> {
    search_folds(
        blocks,
        blocks.len().saturating_sub(1).min(MAX_FOLDS),
        trials,
        seed,
    )
}

/// [`search`] validated on the newest `folds` blocks.
fn search_folds(
    blocks: &[CandidateRows],
    folds: usize,
    trials: usize,
    seed: u64,
) -> Result<Tuning, ModelError> {
    if blocks.len() < 2 {
        return Err(ModelError::Invalid(format!(
            "time-based cross-validation needs at least two candidate blocks, got {}",
            blocks.len()
        )));
    }
    let first_fold = blocks.len().saturating_sub(folds).max(1);
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
        let mut fold_judged = Vec::new();
        let mut fold_served = Vec::new();
        for (train, valid) in &folds {
            let ranker = Ranker::train(
                train.grouped(),
                Some(valid.grouped()),
                feature_names(),
                &params,
            )?;
            fold_ndcg.push(ranker.best_validation().unwrap_or(0.0));
            fold_trees.push(ranker.num_trees());
            let scores = ranker.predict(&valid.features)?;
            fold_judged.push(judged_ndcg(valid, &scores));
            fold_served.push(served_ndcg(valid, &scores, params.objective));
            progress.inc(1);
        }
        let mean_ndcg = fold_ndcg.iter().sum::<f64>() / fold_ndcg.len() as f64;
        done.push(Trial {
            params,
            fold_ndcg,
            fold_trees,
            served_ndcg: mean_over_judged(&fold_served),
            fold_judged,
            fold_served,
            mean_ndcg,
        });
    }
    progress.finish_and_clear();
    let (chosen, winner) = done
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.score().total_cmp(&b.1.score()))
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
    let judged = judge_folds(&folds, winner);
    Ok(Tuning {
        folds: folds.len(),
        chosen,
        trials: done,
        best,
        retrieval_order_ndcg,
        judged,
        windows: blocks.len() - 1,
        windows_tried: Vec::new(),
        first_block: 0,
    })
}

/// The winner's judged fold scores (before and after the rules) beside the retrieval order of
/// the same users.
fn judge_folds(folds: &[(CandidateRows, &CandidateRows)], winner: &Trial) -> JudgedFolds {
    let (mut ranker_sum, mut retrieval_sum, mut counted, mut groups) = (0.0, 0.0, 0usize, 0);
    for ((_, valid), &(ranked, judged)) in folds.iter().zip(&winner.fold_judged) {
        if judged == 0 {
            continue;
        }
        // Stored order: the first row scores highest.
        let stored: Vec<f64> = (0..valid.len()).map(|row| -(row as f64)).collect();
        ranker_sum += ranked;
        retrieval_sum += judged_ndcg(valid, &stored).0;
        counted += 1;
        groups += judged;
    }
    let folds = counted.max(1) as f64;
    JudgedFolds {
        groups,
        ranker_ndcg: ranker_sum / folds,
        retrieval_order_ndcg: retrieval_sum / folds,
        served_ranker_ndcg: winner.served_ndcg.unwrap_or(0.0),
    }
}

/// Refits the chosen configuration on every block from the chosen windows on (blocks
/// appended after the search, such as the test window's for a published version, included).
pub fn refit(blocks: &[CandidateRows], tuning: &Tuning) -> Result<Ranker, ModelError> {
    let all = CandidateRows::concat(tuning.used(blocks));
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

    /// A block of 40 users × 10 candidates whose first column decides relevance: above 0.5
    /// when `flipped` is false, below it when true (a taste that drifted).
    fn block(rng: &mut StdRng, flipped: bool) -> CandidateRows {
        let width = feature_names().len();
        let mut rows = CandidateRows::default();
        for user in 0..40 {
            for item in 0..10 {
                let x: f32 = rng.random();
                rows.features.push(x);
                rows.features
                    .extend((1..width).map(|_| rng.random::<f32>()));
                rows.labels.push(f32::from(u8::from((x > 0.5) != flipped)));
                rows.users.push(user);
                rows.items.push(item);
                rows.rules.push(Candidate {
                    item,
                    score: 0.0,
                    category: item,
                    age_days: None,
                });
            }
            rows.groups.push(10);
        }
        rows
    }

    #[test]
    fn the_window_count_is_chosen_on_the_same_folds_and_the_refit_uses_only_it() {
        // Six rolling windows: the four oldest follow the old taste, the two newest and the
        // validation block the new one. The newest two alone must beat all six.
        let mut rng = StdRng::seed_from_u64(3);
        let mut blocks: Vec<CandidateRows> = (0..4).map(|_| block(&mut rng, false)).collect();
        blocks.extend((0..3).map(|_| block(&mut rng, true)));
        let tuning = search_windows(&blocks, &[6, 2], 1, 7).unwrap();
        assert_eq!(tuning.windows, 2, "{:?}", tuning.windows_tried);
        assert_eq!(
            tuning.windows_tried.iter().map(|t| t.0).collect::<Vec<_>>(),
            [2, 6]
        );
        assert!(tuning.windows_tried[0].1 > tuning.windows_tried[1].1);
        assert_eq!(tuning.folds, 2, "as many folds as the fewest windows allow");
        assert_eq!(tuning.used(&blocks).len(), 3);
        // A block appended after the search (the test window's) is refit on too.
        blocks.push(block(&mut rng, true));
        assert_eq!(tuning.used(&blocks).len(), 4);
        assert!(refit(&blocks, &tuning).is_ok());

        // More windows than were built count as all of them; none at all is refused.
        let all = search_windows(&blocks[..7], &[20], 1, 7).unwrap();
        assert_eq!(all.windows, 6);
        assert!(search_windows(&blocks[..1], &[4], 1, 7).is_err());
    }

    #[test]
    fn judged_users_are_only_those_with_a_relevant_candidate() {
        // Group 1: the relevant row 3rd of 4; group 2: none relevant (left out).
        let block = CandidateRows {
            labels: vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            groups: vec![4, 2],
            ..CandidateRows::default()
        };
        let stored: Vec<f64> = (0..6).map(|r| -f64::from(r)).collect();
        assert_eq!(judged_ndcg(&block, &stored), (0.5, 1));
        let relevant_first = [0.1, 0.2, 0.9, 0.3, 5.0, 4.0];
        assert_eq!(judged_ndcg(&block, &relevant_first), (1.0, 1));
        let tie = JudgedFolds {
            groups: 1,
            ranker_ndcg: 0.5,
            retrieval_order_ndcg: 0.5,
            served_ranker_ndcg: 0.5,
        };
        assert!(!tie.ranker_wins(), "a tie is not a win");
    }

    #[test]
    fn served_lists_are_scored_after_the_category_cap_and_the_freshness_boost() {
        // One user, 12 candidates scored 1.00, 0.99, …, 0.89; the first four share a category and
        // the 4th is the relevant one: the cap (3 per category in the top 10) pushes it to
        // 11th, out of the list, though its score ranks it 4th.
        let rules = |row: u32, age: Option<f32>| Candidate {
            item: 100 + row,
            score: 0.0,
            category: if row < 4 { 0 } else { row },
            age_days: age,
        };
        let mut block = CandidateRows {
            labels: (0..12).map(|r| f32::from(u8::from(r == 3))).collect(),
            items: (0..12).map(|r| 100 + r).collect(),
            groups: vec![12],
            rules: (0..12).map(|r| rules(r, None)).collect(),
            ..CandidateRows::default()
        };
        let scores: Vec<f64> = (0..12).map(|r| 1.0 - 0.01 * f64::from(r)).collect();
        assert_eq!(judged_ndcg(&block, &scores).0, 1.0 / 5f64.log2());
        assert_eq!(served_ndcg(&block, &scores, Objective::Binary), (0.0, 1));
        // In a category of its own and brand new, the boost (×1.1) lifts it from 0.97 to
        // 1.067, above every older item: first place.
        block.rules[3] = Candidate {
            category: 50,
            ..rules(3, Some(0.0))
        };
        let (ndcg, judged) = served_ndcg(&block, &scores, Objective::Binary);
        assert_eq!((ndcg, judged), (1.0, 1));
    }

    #[test]
    fn one_block_is_not_enough_for_time_folds() {
        let err = search(&[CandidateRows::default()], 1, 0).unwrap_err();
        assert!(err.to_string().contains("two candidate blocks"), "{err}");
    }
}
