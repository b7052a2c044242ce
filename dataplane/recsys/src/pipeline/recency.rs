//! How much the two-tower favours recent positives, chosen on validation like everything
//! else: each candidate trains the towers on the training window with early stopping, and the
//! highest validation Recall@50 wins (the uniform candidate on ties, since it comes first).
//! Candidates are shares of the training window's span, so one list fits a week of clicks
//! and years of ratings alike; the winner's half-life in seconds is what later fits use.

use super::retrieval::{self, Retrieval, TowerTraining};
use recsys_core::Interaction;
use recsys_data::features::FeatureSnapshot;
use recsys_models::ModelError;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

const DAY: f64 = 86_400.0;

/// One candidate: every positive alike, or a half-life as a share of the training span.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recency {
    Uniform,
    SpanShare(f64),
}

impl FromStr for Recency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "none" {
            return Ok(Self::Uniform);
        }
        match s.trim().parse::<f64>() {
            Ok(share) if share.is_finite() && share > 0.0 => Ok(Self::SpanShare(share)),
            _ => Err(format!(
                "`{s}`: a recency candidate is `none` or a positive share of the training span (0.25 = a quarter of it)"
            )),
        }
    }
}

impl fmt::Display for Recency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uniform => f.write_str("none"),
            Self::SpanShare(share) => write!(f, "{share}"),
        }
    }
}

/// The candidates `recsys train` tries unless told otherwise: uniform only. On MovieLens's
/// global split validation Recall@50 preferred an eighth of the span on three seeds of three,
/// by at most 0.006, and the two-stage test NDCG@10 fell on all three (docs/evaluation.md,
/// session 16), so favouring recency is offered (`--recency none,0.5,0.25,0.125`), not assumed.
pub fn default_candidates() -> Vec<Recency> {
    vec![Recency::Uniform]
}

/// What one candidate did on validation.
#[derive(Debug, Clone, Serialize)]
pub struct RecencyTrial {
    pub candidate: Recency,
    pub half_life_days: Option<f64>,
    pub best_epoch: usize,
    pub validation_recall_at_50: f64,
}

/// The search's outcome, for `evaluation.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RecencyChoice {
    pub chosen: Recency,
    pub half_life_days: Option<f64>,
    pub training_span_days: f64,
    pub trials: Vec<RecencyTrial>,
}

impl RecencyChoice {
    /// The chosen setting for later fits: its half-life and the epochs validation picked.
    pub fn training(&self, epochs: usize, seed: u64) -> TowerTraining {
        TowerTraining {
            epochs,
            recency_half_life_secs: self.half_life_days.map(|d| d * DAY),
            seed,
        }
    }
}

/// Trains one two-tower per candidate on `train` (before the snapshot's cut-off), stopping
/// each early on `validation`; returns the best one and every candidate's score.
pub fn choose(
    snapshot: &FeatureSnapshot,
    train: &[Interaction],
    validation: &[Interaction],
    candidates: &[Recency],
    max_epochs: usize,
    seed: u64,
) -> Result<(Retrieval, RecencyChoice), recsys_two_tower::TowerError> {
    if candidates.is_empty() {
        return Err(ModelError::Invalid(
            "no recency candidate to try (give at least `none`)".into(),
        )
        .into());
    }
    let first = train
        .iter()
        .map(|r| r.timestamp)
        .filter(|&t| t < snapshot.cutoff)
        .min()
        .ok_or_else(|| ModelError::Invalid("no training interactions".into()))?;
    // At least a day, so a window of same-second events still gets finite half-lives.
    let span_secs = ((snapshot.cutoff - first) as f64).max(DAY);
    let mut best: Option<(Retrieval, usize)> = None;
    let mut trials = Vec::with_capacity(candidates.len());
    for &candidate in candidates {
        let half_life_secs = match candidate {
            Recency::Uniform => None,
            Recency::SpanShare(share) => Some(share * span_secs),
        };
        let training = TowerTraining {
            epochs: max_epochs,
            recency_half_life_secs: half_life_secs,
            seed,
        };
        let fitted = retrieval::train(snapshot, train, Some(validation), &training)?;
        let score = fitted.report.best_validation;
        trials.push(RecencyTrial {
            candidate,
            half_life_days: half_life_secs.map(|s| s / DAY),
            best_epoch: fitted.report.best_epoch,
            validation_recall_at_50: score,
        });
        let improves = best
            .as_ref()
            .is_none_or(|(b, _)| score > b.report.best_validation);
        if improves {
            best = Some((fitted, trials.len() - 1));
        }
    }
    let (fitted, index) = best.expect("at least one candidate was trained");
    let chosen = &trials[index];
    Ok((
        fitted,
        RecencyChoice {
            chosen: chosen.candidate,
            half_life_days: chosen.half_life_days,
            training_span_days: span_secs / DAY,
            trials,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_parse_and_nonsense_is_refused_with_the_rule() {
        assert_eq!("none".parse::<Recency>().unwrap(), Recency::Uniform);
        assert_eq!(
            " 0.25".parse::<Recency>().unwrap(),
            Recency::SpanShare(0.25)
        );
        for bad in ["0", "-1", "inf", "NaN", "week", ""] {
            let err = bad.parse::<Recency>().unwrap_err();
            assert!(err.contains("positive share of the training span"), "{err}");
        }
        assert_eq!(default_candidates(), [Recency::Uniform]);
        assert_eq!(Recency::SpanShare(0.125).to_string(), "0.125");
        assert_eq!(Recency::Uniform.to_string(), "none");
    }

    #[test]
    fn the_choice_carries_its_half_life_into_later_fits() {
        let choice = RecencyChoice {
            chosen: Recency::SpanShare(0.25),
            half_life_days: Some(10.0),
            training_span_days: 40.0,
            trials: Vec::new(),
        };
        let training = choice.training(4, 9);
        assert_eq!(training.epochs, 4);
        assert_eq!(training.seed, 9);
        assert_eq!(training.recency_half_life_secs, Some(864_000.0));
        let uniform = RecencyChoice {
            chosen: Recency::Uniform,
            half_life_days: None,
            ..choice
        };
        assert_eq!(uniform.training(4, 9), TowerTraining::uniform(4, 9));
    }
}
