//! Averaging the search's best configurations. Configurations that tie on the time folds can
//! still order a test window's users quite differently (session 19 measured 0.015 of warm
//! users' NDCG@10 between two that tied to the fourth decimal), so picking one of them is
//! partly a coin toss. The mean of the best few of one objective is tried on the same folds,
//! judged by the same served-list score, and kept only where it beats the single winner.

use super::fold_metrics::{judged_ndcg, mean_over_judged, served_ndcg};
use super::ranking::CandidateRows;
use recsys_models::Objective;
use serde::Serialize;

/// The most configurations averaged.
pub const LARGEST: usize = 5;

/// One averageable trial: its index, its fold predictions and the trees it would be refit with.
pub struct Member<'a> {
    pub trial: usize,
    pub scores: &'a FoldScores,
    pub trees: usize,
}

/// A trial's predictions on each fold's validation block, as `Ranker::predict` gave them.
pub type FoldScores = Vec<Vec<f64>>;

/// The chosen average and what was tried.
#[derive(Debug, Clone, Serialize)]
pub struct Ensemble {
    /// Indices of the averaged trials, the search's winner first.
    pub members: Vec<usize>,
    /// Each size tried, with its served-list NDCG@10 on the folds' judged users.
    pub tried: Vec<(usize, f64)>,
    /// The chosen average's served-list NDCG@10 (none where no fold has a judged user).
    pub served_ndcg: Option<f64>,
    /// The chosen average's NDCG@10 per fold before the rules, and its judged users.
    pub fold_judged: Vec<(f64, usize)>,
}

/// A raw score for a prediction: a binary ranker predicts probabilities, and its models
/// average as logits (what adding their trees does).
fn margin(objective: Objective, score: f64) -> f64 {
    match objective {
        Objective::Binary => {
            let p = score.clamp(1e-15, 1.0 - 1e-15);
            (p / (1.0 - p)).ln()
        }
        Objective::LambdaRank => score,
    }
}

/// What the averaged model predicts for the mean `margin`.
fn prediction(objective: Objective, margin: f64) -> f64 {
    match objective {
        Objective::Binary => 1.0 / (1.0 + (-margin).exp()),
        Objective::LambdaRank => margin,
    }
}

/// The averaged model's predictions on one fold.
fn averaged(objective: Objective, members: &[&FoldScores], fold: usize) -> Vec<f64> {
    if let [only] = members {
        return only[fold].clone();
    }
    let rows = members[0][fold].len();
    (0..rows)
        .map(|row| {
            let sum: f64 = members
                .iter()
                .map(|m| margin(objective, m[fold][row]))
                .sum();
            prediction(objective, sum / members.len() as f64)
        })
        .collect()
}

/// Tries the mean of the first 1, 2, … [`LARGEST`] of `ranked` (all of `objective`, best
/// first) on the folds' validation blocks; the best served-list score wins, the fewest members
/// on ties. Serving scores every tree of the average, so an average stops growing before its
/// trees exceed `tree_budget` (the first member always counts).
pub fn choose(
    valid: &[&CandidateRows],
    ranked: &[Member<'_>],
    objective: Objective,
    tree_budget: usize,
) -> Ensemble {
    let mut best: Option<Ensemble> = None;
    let mut tried = Vec::new();
    let mut trees = 0;
    for size in 1..=ranked.len().min(LARGEST) {
        trees += ranked[size - 1].trees;
        if size > 1 && trees > tree_budget {
            break;
        }
        let members: Vec<&FoldScores> = ranked[..size].iter().map(|r| r.scores).collect();
        let (mut fold_served, mut fold_judged) = (Vec::new(), Vec::new());
        for (fold, block) in valid.iter().enumerate() {
            let scores = averaged(objective, &members, fold);
            fold_served.push(served_ndcg(block, &scores, objective));
            fold_judged.push(judged_ndcg(block, &scores));
        }
        let served = mean_over_judged(&fold_served);
        let candidate = Ensemble {
            members: ranked[..size].iter().map(|r| r.trial).collect(),
            tried: Vec::new(),
            served_ndcg: served,
            fold_judged,
        };
        let Some(score) = served else {
            // Nothing to judge an average by: the winner alone.
            best.get_or_insert(candidate);
            break;
        };
        tried.push((size, score));
        if best
            .as_ref()
            .is_none_or(|b| b.served_ndcg.is_none_or(|s| score > s))
        {
            best = Some(candidate);
        }
    }
    Ensemble {
        tried,
        ..best.unwrap_or(Ensemble {
            members: ranked.iter().take(1).map(|r| r.trial).collect(),
            tried: Vec::new(),
            served_ndcg: None,
            fold_judged: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_core::rules::Candidate;

    /// One fold of one user with `n` candidates in categories of their own; candidate 0 is the
    /// relevant one.
    fn fold(n: u32) -> CandidateRows {
        CandidateRows {
            labels: (0..n).map(|r| f32::from(u8::from(r == 0))).collect(),
            items: (0..n).collect(),
            groups: vec![n as i32],
            rules: (0..n)
                .map(|r| Candidate {
                    item: r,
                    score: 0.0,
                    category: r,
                    age_days: None,
                })
                .collect(),
            ..CandidateRows::default()
        }
    }

    fn member(trial: usize, scores: &FoldScores, trees: usize) -> Member<'_> {
        Member {
            trial,
            scores,
            trees,
        }
    }

    #[test]
    fn an_average_is_kept_only_where_it_serves_better_lists_than_the_winner() {
        // Twelve candidates. The winner puts the relevant one 11th (out of the top 10); the
        // runner-up puts it first by a wide margin. Their mean puts it first: the pair wins.
        let block = fold(12);
        let mut winner: Vec<f64> = (0..12).map(|r| 1.0 - 0.01 * f64::from(r)).collect();
        winner[0] = 0.895;
        let mut second: Vec<f64> = (0..12).map(|r| 0.5 - 0.01 * f64::from(r)).collect();
        second[0] = 0.99;
        let (w, s) = (vec![winner], vec![second]);
        let ranked = [member(4, &w, 30), member(9, &s, 20)];
        let chosen = choose(&[&block], &ranked, Objective::Binary, 50);
        assert_eq!(chosen.members, [4, 9]);
        assert_eq!(chosen.tried.len(), 2);
        assert_eq!(chosen.tried[0].1, 0.0);
        assert_eq!(chosen.served_ndcg, Some(1.0));

        // Over the tree budget the pair is not tried: serving would score 50 trees.
        let within = choose(&[&block], &ranked, Objective::Binary, 49);
        assert_eq!((within.members, within.tried.len()), (vec![4], 1));

        // A runner-up that agrees with the winner adds nothing: a tie keeps the winner alone.
        let same = [member(4, &w, 30), member(9, &w, 20)];
        let alone = choose(&[&block], &same, Objective::Binary, 50);
        assert_eq!(alone.members, [4]);
    }

    #[test]
    fn binary_members_average_as_logits_and_lambdarank_members_as_raw_scores() {
        let p = [0.2, 0.9];
        let a: FoldScores = vec![vec![p[0]]];
        let b: FoldScores = vec![vec![p[1]]];
        let logit = |p: f64| (p / (1.0 - p)).ln();
        let mean = averaged(Objective::Binary, &[&a, &b], 0)[0];
        assert!((logit(mean) - (logit(p[0]) + logit(p[1])) / 2.0).abs() < 1e-12);
        assert_eq!(averaged(Objective::LambdaRank, &[&a, &b], 0), [0.55]);
    }

    #[test]
    fn without_judged_users_the_winner_stands_alone() {
        let mut block = fold(3);
        block.labels = vec![0.0; 3];
        let s: FoldScores = vec![vec![0.3, 0.2, 0.1]];
        let ranked = [member(2, &s, 10), member(5, &s, 10)];
        let chosen = choose(&[&block], &ranked, Objective::LambdaRank, 300);
        assert_eq!(chosen.members, [2]);
        assert_eq!(chosen.served_ndcg, None);
        assert!(chosen.tried.is_empty());
    }
}
