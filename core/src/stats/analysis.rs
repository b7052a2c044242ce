//! One look at an experiment from its arms' sufficient statistics: what `recsys ab analyze`
//! prints and what the Experiment controller will write to status.

use super::ratio::{compare_ratio, ArmStats};
use super::sequential;
use super::srm::srm;
use super::ztest::Comparison;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    pub alpha: f64,
    /// Shares of users planned for control and treatment (e.g. 50/50, 90/10).
    pub expected_split: (f64, f64),
    /// mSPRT mixing scale, in the metric's units (the planned absolute MDE is a good choice).
    pub tau: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub users_control: f64,
    pub users_treatment: f64,
    /// The metric Σy/Σx per arm, lift with fixed-horizon intervals and p-value.
    pub comparison: Comparison,
    /// Always-valid p-value at this look (a running minimum needs the previous look's).
    pub sequential_p: f64,
    /// Always-valid (1 − alpha) interval of the difference.
    pub sequential_ci: (f64, f64),
    pub srm_p: f64,
}

/// Analyses one look; `previous_sequential_p` is 1 at the first look.
pub fn analyze(
    control: &ArmStats,
    treatment: &ArmStats,
    settings: &Settings,
    previous_sequential_p: f64,
) -> Analysis {
    let comparison = compare_ratio(control, treatment, settings.alpha);
    let variance = control.ratio_variance() + treatment.ratio_variance();
    let half = sequential::confidence_half_width(variance, settings.tau, settings.alpha);
    let (_, srm_p) = srm(
        &[control.n, treatment.n],
        &[settings.expected_split.0, settings.expected_split.1],
    );
    Analysis {
        users_control: control.n,
        users_treatment: treatment.n,
        sequential_p: sequential::always_valid_p(
            previous_sequential_p,
            comparison.diff,
            variance,
            settings.tau,
        ),
        sequential_ci: (comparison.diff - half, comparison.diff + half),
        comparison,
        srm_p,
    }
}
