//! Ranker hyper-parameter search: random search scored by time-based cross-validation. The
//! candidate blocks are consecutive weeks, oldest first; fold f trains on every block before f
//! and validates on block f, so no fold ever learns from its own future. A configuration is
//! judged by the list serving would show: its scores through the business rules, over the
//! users with a relevant candidate.

use super::ensemble::{self, Ensemble, FoldScores, Member};
use super::fold_metrics::{
    judged_ndcg, mean_over_judged, retrieval_order_ndcg, served_ndcg, served_retrieval_ndcg,
};
use super::ranking::CandidateRows;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recsys_data::features::ranker::feature_names;
use recsys_models::{ModelError, Objective, Ranker, RankerParams};
use serde::Serialize;

/// How many copies of the winning configuration the search also fits with other LightGBM
/// seeds. Row and column subsampling make one fit partly the luck of its seed; the copies join
/// the candidates for the published average ([`ensemble::choose`]) like any other trial, so
/// they are kept only where averaging them serves the folds' users better.
pub const RESEEDED_COPIES: u64 = 2;

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
    /// The winning trial this one copies with another LightGBM seed ([`RESEEDED_COPIES`]);
    /// none for a sampled configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reseeded_from: Option<usize>,
}

impl Trial {
    /// What the search maximises: the served list's NDCG@10 on the users who can tell, or
    /// LightGBM's NDCG@10 where no fold has such a user.
    pub fn score(&self) -> f64 {
        self.served_ndcg.unwrap_or(self.mean_ndcg)
    }
}

/// The search's outcome: every trial, and the winner with its tree count fixed.
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    pub trials: Vec<Trial>,
    /// Index of the winning trial.
    pub chosen: usize,
    pub best: RankerParams,
    /// The configurations the published ranker averages (the winner first, each with its tree
    /// count fixed): the winner alone unless an average of it and the next best of its
    /// objective served better lists on the folds.
    pub averaged: Vec<RankerParams>,
    pub ensemble: Ensemble,
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

    /// How many configurations the search sampled (the trials that are not reseeded copies).
    pub fn sampled(&self) -> usize {
        self.trials.len() - self.reseeded()
    }

    /// How many trials are reseeded copies of the winner.
    pub fn reseeded(&self) -> usize {
        self.trials
            .iter()
            .filter(|t| t.reseeded_from.is_some())
            .count()
    }

    /// The winning configuration's mean time-CV NDCG@10 (LightGBM's, over every user).
    pub fn best_ndcg(&self) -> f64 {
        self.trials[self.chosen].mean_ndcg
    }

    /// What the search maximised, for the ranker it publishes: the chosen average's
    /// served-list score, else the winner's [`Trial::score`].
    pub fn best_score(&self) -> f64 {
        self.ensemble
            .served_ndcg
            .unwrap_or_else(|| self.trials[self.chosen].score())
    }
}

/// Time-CV NDCG@10 over the query groups with at least one relevant row (mean of the folds'
/// means; folds without such a group are left out).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct JudgedFolds {
    pub groups: usize,
    pub ranker_ndcg: f64,
    pub retrieval_order_ndcg: f64,
    /// The published ranker's served lists (after the business rules) on the same users.
    pub served_ranker_ndcg: f64,
    /// The retrieval order's lists through the same rules, on the same users: what serving
    /// would show without the ranker.
    pub served_retrieval_order_ndcg: f64,
}

impl JudgedFolds {
    /// Whether the ranker orders the judged users' candidates better than retrieval did.
    pub fn ranker_wins(&self) -> bool {
        self.groups == 0 || self.ranker_ndcg > self.retrieval_order_ndcg
    }

    /// Whether the ranker's served lists beat the retrieval order's served lists.
    pub fn served_ranker_wins(&self) -> bool {
        self.groups == 0 || self.served_ranker_ndcg > self.served_retrieval_order_ndcg
    }
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
    let mut done: Vec<Trial> = Vec::new();
    // Fold predictions of the trials that could still join an average; the rest are dropped
    // as the search goes, so memory stays at a few trials' worth.
    let mut kept: Vec<Option<FoldScores>> = Vec::new();
    for t in 0..trials.max(1) {
        let params = RankerParams {
            seed,
            ..sample(&mut rng, t)
        };
        let (trial, fold_scores) = run_trial(&folds, params, &progress)?;
        done.push(trial);
        kept.push(Some(fold_scores));
        forget_all_but_the_best(&done, &mut kept);
    }
    let (chosen, winner) = done
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.score().total_cmp(&b.1.score()))
        .expect("at least one trial");
    let copies = reseeded(&winner.params);
    progress.inc_length((copies.len() * folds.len()) as u64);
    for params in copies {
        let (trial, fold_scores) = run_trial(&folds, params, &progress)?;
        done.push(Trial {
            reseeded_from: Some(chosen),
            ..trial
        });
        kept.push(Some(fold_scores));
    }
    progress.finish_and_clear();
    forget_all_but_the_best(&done, &mut kept);
    let winner = &done[chosen];
    let best = fixed_trees(winner);
    let ensemble = average_of_the_best(&folds, &done, &kept, chosen);
    let averaged = ensemble
        .members
        .iter()
        .map(|&t| fixed_trees(&done[t]))
        .collect();
    let retrieval_order_ndcg = folds
        .iter()
        .map(|(_, valid)| retrieval_order_ndcg(valid))
        .sum::<f64>()
        / folds.len() as f64;
    let judged = judge_folds(&folds, &ensemble);
    Ok(Tuning {
        folds: folds.len(),
        chosen,
        trials: done,
        best,
        averaged,
        ensemble,
        retrieval_order_ndcg,
        judged,
        windows: blocks.len() - 1,
        windows_tried: Vec::new(),
        first_block: 0,
    })
}

/// The winning configuration `params` with [`RESEEDED_COPIES`] other seeds (offsets of 1000,
/// far from the neighbouring run seeds a seed table uses); none where it samples neither rows
/// nor columns, since a copy would then be the same model.
fn reseeded(params: &RankerParams) -> Vec<RankerParams> {
    if params.bagging_fraction >= 1.0 && params.feature_fraction >= 1.0 {
        return Vec::new();
    }
    (1..=RESEEDED_COPIES)
        .map(|k| RankerParams {
            seed: params.seed.wrapping_add(1000 * k),
            ..params.clone()
        })
        .collect()
}

/// Trains `params` on every fold and scores it on the fold's validation block.
fn run_trial(
    folds: &[(CandidateRows, &CandidateRows)],
    params: RankerParams,
    progress: &indicatif::ProgressBar,
) -> Result<(Trial, FoldScores), ModelError> {
    let mut fold_ndcg = Vec::new();
    let mut fold_trees = Vec::new();
    let mut fold_judged = Vec::new();
    let mut fold_served = Vec::new();
    let mut fold_scores = Vec::new();
    for (train, valid) in folds {
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
        fold_scores.push(scores);
        progress.inc(1);
    }
    let mean_ndcg = fold_ndcg.iter().sum::<f64>() / fold_ndcg.len() as f64;
    let trial = Trial {
        params,
        fold_ndcg,
        fold_trees,
        served_ndcg: mean_over_judged(&fold_served),
        fold_judged,
        fold_served,
        mean_ndcg,
        reseeded_from: None,
    };
    Ok((trial, fold_scores))
}

/// The average of the winner (`chosen`) and the next best of its objective that serves the
/// folds' judged users best ([`ensemble::choose`]).
fn average_of_the_best(
    folds: &[(CandidateRows, &CandidateRows)],
    done: &[Trial],
    kept: &[Option<FoldScores>],
    chosen: usize,
) -> Ensemble {
    let winner = &done[chosen];
    let valid: Vec<&CandidateRows> = folds.iter().map(|(_, valid)| *valid).collect();
    // The winner first, then the rest of its objective by score.
    let ranked: Vec<Member<'_>> = std::iter::once(chosen)
        .chain(
            best_of_objective(done, kept, winner.params.objective)
                .into_iter()
                .filter(|&t| t != chosen),
        )
        .map_while(|t| {
            Some(Member {
                trial: t,
                scores: kept[t].as_ref()?,
                trees: fixed_trees(&done[t]).num_iterations as usize,
            })
        })
        .collect();
    if ranked.is_empty() {
        // The winner's predictions were dropped: more trials than an average takes tied it.
        Ensemble {
            members: vec![chosen],
            tried: Vec::new(),
            served_ndcg: winner.served_ndcg,
            fold_judged: winner.fold_judged.clone(),
        }
    } else {
        // No more trees than one configuration may grow, so averaging never costs serving
        // more than the search could have chosen anyway.
        let budget = RankerParams::default().num_iterations as usize;
        ensemble::choose(&valid, &ranked, winner.params.objective, budget)
    }
}

/// A trial's configuration with its tree count fixed: the last fold's, which trains on the
/// most (and most recent) data, like the final refit.
fn fixed_trees(trial: &Trial) -> RankerParams {
    let trees = *trial.fold_trees.last().expect("at least one fold");
    RankerParams {
        num_iterations: trees.max(1) as u32,
        early_stopping_rounds: 0,
        ..trial.params.clone()
    }
}

/// Indices of the trials of `objective` whose fold predictions are kept, best
/// [`Trial::score`] first (the earlier trial on ties).
fn best_of_objective(
    done: &[Trial],
    kept: &[Option<FoldScores>],
    objective: Objective,
) -> Vec<usize> {
    let mut of: Vec<usize> = (0..done.len())
        .filter(|&t| done[t].params.objective == objective && kept[t].is_some())
        .collect();
    of.sort_by(|&a, &b| done[b].score().total_cmp(&done[a].score()).then(a.cmp(&b)));
    of
}

/// Drops the fold predictions of every trial outside the best [`ensemble::LARGEST`] of its
/// objective.
fn forget_all_but_the_best(done: &[Trial], kept: &mut [Option<FoldScores>]) {
    for objective in [Objective::Binary, Objective::LambdaRank] {
        for t in best_of_objective(done, kept, objective)
            .into_iter()
            .skip(ensemble::LARGEST)
        {
            kept[t] = None;
        }
    }
}

/// The published ranker's judged fold scores (before and after the rules) beside the
/// retrieval order of the same users.
fn judge_folds(folds: &[(CandidateRows, &CandidateRows)], ensemble: &Ensemble) -> JudgedFolds {
    let (mut ranker_sum, mut retrieval_sum, mut served_retrieval_sum) = (0.0, 0.0, 0.0);
    let (mut counted, mut groups) = (0usize, 0);
    for ((_, valid), &(ranked, judged)) in folds.iter().zip(&ensemble.fold_judged) {
        if judged == 0 {
            continue;
        }
        // Stored order: the first row scores highest.
        let stored: Vec<f64> = (0..valid.len()).map(|row| -(row as f64)).collect();
        ranker_sum += ranked;
        retrieval_sum += judged_ndcg(valid, &stored).0;
        served_retrieval_sum += served_retrieval_ndcg(valid).0;
        counted += 1;
        groups += judged;
    }
    let folds = counted.max(1) as f64;
    JudgedFolds {
        groups,
        ranker_ndcg: ranker_sum / folds,
        retrieval_order_ndcg: retrieval_sum / folds,
        served_ranker_ndcg: ensemble.served_ndcg.unwrap_or(0.0),
        served_retrieval_order_ndcg: served_retrieval_sum / folds,
    }
}

/// Refits the chosen configurations on every block from the chosen windows on (blocks
/// appended after the search, such as the test window's for a published version, included),
/// as one ranker averaging them.
pub fn refit(blocks: &[CandidateRows], tuning: &Tuning) -> Result<Ranker, ModelError> {
    let all = CandidateRows::concat(tuning.used(blocks));
    let members = tuning
        .averaged
        .iter()
        .map(|params| Ranker::train(all.grouped(), None, feature_names(), params))
        .collect::<Result<Vec<_>, _>>()?;
    Ranker::average(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_core::rules::Candidate;

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

    /// Four blocks whose relevance follows two columns and noise, so configurations differ
    /// and can complement each other.
    fn noisy_blocks(seed: u64) -> Vec<CandidateRows> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..4)
            .map(|_| {
                let mut b = block(&mut rng, false);
                let width = feature_names().len();
                for (row, label) in b.labels.iter_mut().enumerate() {
                    let x = &b.features[row * width..];
                    let noise: f32 = rng.random();
                    *label = f32::from(u8::from(x[0] + 0.5 * x[1] + 0.8 * noise > 1.5));
                }
                b
            })
            .collect()
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
    fn the_published_ranker_is_the_mean_of_the_chosen_configurations() {
        let blocks = noisy_blocks(4);
        let tuning = search(&blocks, 12, 1).unwrap();
        let members = &tuning.ensemble.members;
        // On this data and seed an average of several configurations wins the folds.
        assert!(members.len() > 1, "{:?}", tuning.ensemble.tried);
        assert_eq!(members[0], tuning.chosen, "the winner comes first");
        assert_eq!(tuning.averaged.len(), members.len());
        assert!(members
            .iter()
            .all(|&t| tuning.trials[t].params.objective == tuning.best.objective));
        let sizes: Vec<usize> = tuning.ensemble.tried.iter().map(|t| t.0).collect();
        assert!(sizes.contains(&members.len()), "{sizes:?}");
        assert!(tuning.best_score() >= tuning.trials[tuning.chosen].score());

        let published = refit(&blocks, &tuning).unwrap();
        let all = CandidateRows::concat(&blocks);
        let alone: Vec<Ranker> = tuning
            .averaged
            .iter()
            .map(|p| Ranker::train(all.grouped(), None, feature_names(), p).unwrap())
            .collect();
        assert_eq!(
            published.num_trees(),
            alone.iter().map(Ranker::num_trees).sum::<usize>()
        );
        let rows = &all.features[..feature_names().len() * 20];
        let margin = |p: f64| match tuning.best.objective {
            Objective::Binary => (p / (1.0 - p)).ln(),
            Objective::LambdaRank => p,
        };
        let each: Vec<Vec<f64>> = alone.iter().map(|r| r.predict(rows).unwrap()).collect();
        for (row, got) in published.predict(rows).unwrap().into_iter().enumerate() {
            let mean = each.iter().map(|p| margin(p[row])).sum::<f64>() / each.len() as f64;
            assert!(
                (margin(got) - mean).abs() < 1e-9,
                "row {row}: {got} vs {mean}"
            );
        }
    }

    #[test]
    fn the_winner_is_refit_with_other_seeds_and_its_copies_may_join_the_average() {
        let tuning = search(&noisy_blocks(4), 12, 1).unwrap();
        assert_eq!(tuning.sampled(), 12);
        assert_eq!(tuning.trials.len(), 12 + RESEEDED_COPIES as usize);
        let winner = &tuning.trials[tuning.chosen];
        assert_eq!(winner.reseeded_from, None);
        let copies = &tuning.trials[12..];
        let mut seeds: Vec<u64> = copies.iter().map(|c| c.params.seed).collect();
        seeds.push(winner.params.seed);
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(
            seeds.len(),
            1 + RESEEDED_COPIES as usize,
            "every copy has its own seed"
        );
        for copy in copies {
            assert_eq!(copy.reseeded_from, Some(tuning.chosen));
            let same_but_seed = RankerParams {
                seed: winner.params.seed,
                ..copy.params.clone()
            };
            assert_eq!(same_but_seed, winner.params);
            assert_eq!(copy.fold_ndcg.len(), winner.fold_ndcg.len());
        }
        // Subsampling rows and columns under another seed grows another model.
        assert!(
            copies
                .iter()
                .any(|c| c.fold_ndcg != winner.fold_ndcg || c.fold_trees != winner.fold_trees),
            "{:?}",
            tuning.trials
        );
        // On this data and seed the published average holds both copies beside other
        // configurations.
        let members = &tuning.ensemble.members;
        assert!(
            members.contains(&12) && members.contains(&13),
            "{members:?}"
        );
        assert!(members.iter().any(|&t| t < 12 && t != tuning.chosen));
        // A configuration that samples neither rows nor columns is not copied.
        let whole = RankerParams {
            bagging_fraction: 1.0,
            feature_fraction: 1.0,
            ..RankerParams::default()
        };
        assert!(reseeded(&whole).is_empty());
        assert_eq!(
            reseeded(&RankerParams::default()).len(),
            RESEEDED_COPIES as usize
        );
    }

    #[test]
    fn a_tie_with_the_retrieval_order_is_not_a_win() {
        let tie = JudgedFolds {
            groups: 1,
            ranker_ndcg: 0.5,
            retrieval_order_ndcg: 0.5,
            served_ranker_ndcg: 0.4,
            served_retrieval_order_ndcg: 0.4,
        };
        assert!(!tie.ranker_wins(), "a tie is not a win");
        assert!(
            !tie.served_ranker_wins(),
            "a tie of served lists is not a win"
        );
        let served_better = JudgedFolds {
            served_ranker_ndcg: 0.41,
            ..tie
        };
        assert!(served_better.served_ranker_wins());
    }

    #[test]
    fn one_block_is_not_enough_for_time_folds() {
        let err = search(&[CandidateRows::default()], 1, 0).unwrap_err();
        assert!(err.to_string().contains("two candidate blocks"), "{err}");
    }
}
