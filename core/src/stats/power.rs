//! Sample size and power for a two-arm test at a two-sided alpha, in statsmodels' convention
//! (`NormalIndPower`: effect size in standard deviations; for proportions Cohen's h =
//! 2·asin√p₂ − 2·asin√p₁). Guardrails: when a promotion needs the success metric to win *and*
//! G guardrails to be shown non-inferior, all 1 + G tests must succeed, so each is planned at
//! power 1 − β/(1 + G) (a Bonferroni correction of the type-II error; alpha is not corrected,
//! as each guardrail protects against its own harm).

use super::distributions::{norm_cdf, norm_ppf};

/// Cohen's h between two proportions.
pub fn proportion_effect_size(p1: f64, p2: f64) -> f64 {
    2.0 * p2.sqrt().asin() - 2.0 * p1.sqrt().asin()
}

/// Users per arm (equal arms) to detect `effect` (in standard deviations) with `power`: the
/// n at which [`power_per_arm`] (both tails) reaches `power`, found by bisection from the
/// one-tail closed form (which it never exceeds).
pub fn sample_size_per_arm(effect: f64, alpha: f64, power: f64) -> f64 {
    let z = norm_ppf(1.0 - alpha / 2.0) + norm_ppf(power);
    let upper = 2.0 * (z / effect).powi(2);
    let (mut lo, mut hi) = (0.0, upper);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if power_per_arm(effect, mid, alpha) < power {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Power of a two-sided test with `n` users per arm (both tails counted, as statsmodels).
pub fn power_per_arm(effect: f64, n: f64, alpha: f64) -> f64 {
    let crit = norm_ppf(1.0 - alpha / 2.0);
    let shift = effect.abs() * (n / 2.0).sqrt();
    norm_cdf(shift - crit) + norm_cdf(-shift - crit)
}

/// The per-test power that gives `power` for the whole decision of 1 success metric and
/// `guardrails` non-inferiority tests.
pub fn per_test_power(power: f64, guardrails: usize) -> f64 {
    1.0 - (1.0 - power) / (1 + guardrails) as f64
}

/// A plan for a conversion-like metric.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Plan {
    pub baseline: f64,
    /// Relative minimum detectable effect, e.g. 0.05 for +5 %.
    pub mde: f64,
    pub alpha: f64,
    pub power: f64,
    pub guardrails: usize,
    pub per_test_power: f64,
    pub users_per_arm: u64,
}

pub fn plan(baseline: f64, mde: f64, alpha: f64, power: f64, guardrails: usize) -> Plan {
    let per_test = per_test_power(power, guardrails);
    let h = proportion_effect_size(baseline, baseline * (1.0 + mde));
    Plan {
        baseline,
        mde,
        alpha,
        power,
        guardrails,
        per_test_power: per_test,
        users_per_arm: sample_size_per_arm(h, alpha, per_test).ceil() as u64,
    }
}
