//! Population stability index (PSI) between a reference and a current window, per numeric or
//! categorical feature, with the seed's thresholds: < 0.1 no drift, 0.1–0.2 moderate,
//! > 0.2 retrain.

use serde::{Deserialize, Serialize};
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

/// Quantile bins fitted on a reference window, and the reference's share in each: what a
/// current window's counts are compared with. Stored with a model version so serving can
/// compute PSI without the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    /// Interior cut points, increasing; a value `v` falls in bin `#(cuts ≤ v)`.
    pub cuts: Vec<f64>,
    pub shares: Vec<f64>,
}

impl Bins {
    /// Up to `bins` bins at the reference's quantiles (ties collapse bins); `None` when the
    /// reference has no finite value.
    pub fn fit(reference: &[f64], bins: usize) -> Option<Self> {
        let mut sorted: Vec<f64> = reference
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if sorted.is_empty() || bins < 2 {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let mut cuts: Vec<f64> = (1..bins)
            .map(|b| sorted[(b * sorted.len() / bins).min(sorted.len() - 1)])
            .collect();
        cuts.dedup();
        let mut fitted = Self {
            cuts,
            shares: Vec::new(),
        };
        fitted.shares = shares(&fitted.count(&sorted));
        Some(fitted)
    }

    pub fn bin_of(&self, v: f64) -> usize {
        self.cuts.partition_point(|&c| c <= v)
    }

    /// Counts per bin of the finite values.
    pub fn count(&self, values: &[f64]) -> Vec<u64> {
        let mut counts = vec![0u64; self.cuts.len() + 1];
        for &v in values.iter().filter(|v| v.is_finite()) {
            counts[self.bin_of(v)] += 1;
        }
        counts
    }

    /// PSI of a current window given as counts per bin (0 when it is empty).
    pub fn psi(&self, counts: &[u64]) -> f64 {
        if counts.iter().all(|&c| c == 0) || counts.len() != self.shares.len() {
            return 0.0;
        }
        psi_from_shares(&self.shares, &shares(counts))
    }
}

/// PSI of a numeric feature over `bins` quantile bins of the reference window. Non-finite
/// values are ignored. Returns 0 when either window is empty.
pub fn psi_numeric(reference: &[f64], current: &[f64], bins: usize) -> f64 {
    match Bins::fit(reference, bins) {
        Some(b) => b.psi(&b.count(current)),
        None => 0.0,
    }
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
    fn stored_bins_give_the_same_psi_as_the_two_windows() {
        let reference = sample(5_000, 0.0);
        let current = sample(3_000, 0.2);
        let bins = Bins::fit(&reference, 10).unwrap();
        assert!((bins.shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let via_counts = bins.psi(&bins.count(&current));
        assert!((via_counts - psi_numeric(&reference, &current, 10)).abs() < 1e-12);
        // A 0/1 feature: its bins still separate the two values.
        let flags: Vec<f64> = (0..100).map(|i| f64::from(i % 4 == 0)).collect();
        let flag_bins = Bins::fit(&flags, 10).unwrap();
        assert!(flag_bins.psi(&flag_bins.count(&flags)).abs() < 1e-12);
        assert!(flag_bins.psi(&flag_bins.count(&[1.0; 50])) > 0.2);
        assert!(Bins::fit(&[f64::NAN], 10).is_none());
        assert_eq!(bins.psi(&vec![0; bins.shares.len()]), 0.0);
    }

    #[test]
    fn thresholds_follow_the_seed() {
        assert_eq!(DriftLevel::of(0.099), DriftLevel::None);
        assert_eq!(DriftLevel::of(0.1), DriftLevel::Moderate);
        assert_eq!(DriftLevel::of(0.2), DriftLevel::Moderate);
        assert_eq!(DriftLevel::of(0.21), DriftLevel::Retrain);
    }
}
