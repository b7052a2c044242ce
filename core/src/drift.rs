//! Population stability index (PSI) between a reference and a current window, per numeric or
//! categorical feature, with the seed's thresholds: < 0.1 no drift, 0.1–0.2 moderate,
//! > 0.2 retrain.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Share given to an empty bin so the logarithm stays finite.
const EPSILON: f64 = 1e-4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftLevel {
    None,
    Moderate,
    Retrain,
}

impl DriftLevel {
    pub fn of(psi: f64) -> Self {
        if psi > 0.2 {
            Self::Retrain
        } else if psi >= 0.1 {
            Self::Moderate
        } else {
            Self::None
        }
    }
}

fn psi_from_shares(reference: &[f64], current: &[f64]) -> f64 {
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let (r, c) = (r.max(EPSILON), c.max(EPSILON));
            (c - r) * (c / r).ln()
        })
        .sum()
}

fn shares(counts: &[u64]) -> Vec<f64> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    counts.iter().map(|&c| c as f64 / total).collect()
}

/// PSI of a numeric feature over `bins` quantile bins of the reference window. Non-finite
/// values are ignored. Returns 0 when either window is empty.
pub fn psi_numeric(reference: &[f64], current: &[f64], bins: usize) -> f64 {
    let mut sorted: Vec<f64> = reference
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if sorted.is_empty() || current.iter().all(|v| !v.is_finite()) || bins < 2 {
        return 0.0;
    }
    sorted.sort_by(f64::total_cmp);
    // Interior cut points at reference quantiles, deduplicated (ties collapse bins).
    let mut cuts: Vec<f64> = (1..bins)
        .map(|b| sorted[(b * sorted.len() / bins).min(sorted.len() - 1)])
        .collect();
    cuts.dedup();
    let bin_of = |v: f64| cuts.partition_point(|&c| c <= v);
    let count = |values: &[f64]| {
        let mut counts = vec![0u64; cuts.len() + 1];
        for &v in values.iter().filter(|v| v.is_finite()) {
            counts[bin_of(v)] += 1;
        }
        counts
    };
    psi_from_shares(&shares(&count(reference)), &shares(&count(current)))
}

/// PSI of a categorical feature; categories seen in only one window count as empty bins in
/// the other.
pub fn psi_categorical<S: AsRef<str>>(reference: &[S], current: &[S]) -> f64 {
    if reference.is_empty() || current.is_empty() {
        return 0.0;
    }
    fn tally<S: AsRef<str>>(values: &[S]) -> BTreeMap<&str, u64> {
        let mut m: BTreeMap<&str, u64> = BTreeMap::new();
        for v in values {
            *m.entry(v.as_ref()).or_default() += 1;
        }
        m
    }
    let (r, c) = (tally(reference), tally(current));
    let categories: BTreeSet<&str> = r.keys().chain(c.keys()).copied().collect();
    let counts = |m: &BTreeMap<&str, u64>| -> Vec<u64> {
        categories
            .iter()
            .map(|k| m.get(k).copied().unwrap_or(0))
            .collect()
    };
    psi_from_shares(&shares(&counts(&r)), &shares(&counts(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, shift: f64) -> Vec<f64> {
        // A deterministic spread of values in [0, 1) plus a shift.
        (0..n)
            .map(|i| ((i as f64 * 0.618_033_988_75).fract()) + shift)
            .collect()
    }

    #[test]
    fn a_window_against_itself_has_zero_psi() {
        let a = sample(10_000, 0.0);
        assert!(psi_numeric(&a, &a, 10).abs() < 1e-12);
        let cats = ["web", "ios", "android", "web"];
        assert!(psi_categorical(&cats, &cats).abs() < 1e-12);
        assert_eq!(DriftLevel::of(0.0), DriftLevel::None);
    }

    #[test]
    fn a_shifted_window_crosses_the_retrain_threshold() {
        let reference = sample(10_000, 0.0);
        let shifted = sample(10_000, 0.5);
        let psi = psi_numeric(&reference, &shifted, 10);
        assert!(psi > 0.2, "psi {psi}");
        assert_eq!(DriftLevel::of(psi), DriftLevel::Retrain);
        let slightly = sample(10_000, 0.03);
        let small = psi_numeric(&reference, &slightly, 10);
        assert!(small < 0.1, "psi {small}");
    }

    #[test]
    fn categorical_psi_matches_a_hand_computed_value() {
        // Reference 50/50, current 75/25: (0.75−0.5)·ln(1.5) + (0.25−0.5)·ln(0.5).
        let r = ["a", "b"];
        let c = ["a", "a", "a", "b"];
        let expected = 0.25 * 1.5f64.ln() + (-0.25) * 0.5f64.ln();
        assert!((psi_categorical(&r, &c) - expected).abs() < 1e-12);
        // A new category in the current window is drift too.
        assert!(psi_categorical(&["a"; 10], &["b"; 10]) > 0.2);
    }

    #[test]
    fn thresholds_follow_the_seed() {
        assert_eq!(DriftLevel::of(0.099), DriftLevel::None);
        assert_eq!(DriftLevel::of(0.1), DriftLevel::Moderate);
        assert_eq!(DriftLevel::of(0.2), DriftLevel::Moderate);
        assert_eq!(DriftLevel::of(0.21), DriftLevel::Retrain);
    }
}
