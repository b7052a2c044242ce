//! Two-sample z-tests on proportions and on estimates with known standard errors, with
//! intervals for the absolute and the relative lift.

use super::distributions::{norm_ppf, norm_sf};
use serde::{Deserialize, Serialize};

/// A treatment-minus-control comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub control: f64,
    pub treatment: f64,
    /// treatment − control.
    pub diff: f64,
    pub diff_ci: (f64, f64),
    /// (treatment − control) / control.
    pub relative: f64,
    pub relative_ci: (f64, f64),
    pub z: f64,
    /// Two-sided.
    pub p_value: f64,
}

/// Two-sided p-value of a z statistic.
pub fn two_sided(z: f64) -> f64 {
    (2.0 * norm_sf(z.abs())).min(1.0)
}

/// Compares two estimates with their variances (of the estimates, not of the data): a Wald
/// test, the CI of the difference, and the CI of the relative lift by the delta method
/// (Var(t/c) ≈ var_t/c² + t²·var_c/c⁴).
pub fn compare(control: f64, var_c: f64, treatment: f64, var_t: f64, alpha: f64) -> Comparison {
    let diff = treatment - control;
    let se = (var_c + var_t).sqrt();
    let z = if se > 0.0 { diff / se } else { 0.0 };
    let q = norm_ppf(1.0 - alpha / 2.0);
    let relative = diff / control;
    let se_rel =
        (var_t / (control * control) + treatment * treatment * var_c / control.powi(4)).sqrt();
    Comparison {
        control,
        treatment,
        diff,
        diff_ci: (diff - q * se, diff + q * se),
        relative,
        relative_ci: (relative - q * se_rel, relative + q * se_rel),
        z,
        p_value: if se > 0.0 { two_sided(z) } else { 1.0 },
    }
}

/// The two-proportion z-test (pooled variance under H0, as statsmodels'
/// `proportions_ztest`), with Wald intervals from the unpooled variances.
pub fn two_proportions(
    successes_c: f64,
    n_c: f64,
    successes_t: f64,
    n_t: f64,
    alpha: f64,
) -> Comparison {
    let (pc, pt) = (successes_c / n_c, successes_t / n_t);
    let mut c = compare(pc, pc * (1.0 - pc) / n_c, pt, pt * (1.0 - pt) / n_t, alpha);
    let pooled = (successes_c + successes_t) / (n_c + n_t);
    let se0 = (pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t)).sqrt();
    c.z = if se0 > 0.0 { (pt - pc) / se0 } else { 0.0 };
    c.p_value = if se0 > 0.0 { two_sided(c.z) } else { 1.0 };
    c
}

/// One-sided non-inferiority test of `diff` (treatment − control, higher is better) against
/// the margin: H0 diff ≤ −margin. For a lower-is-better metric (latency, errors) pass the
/// negated difference. Returns (z, p).
pub fn non_inferiority(diff: f64, se: f64, margin: f64) -> (f64, f64) {
    if se <= 0.0 {
        return (0.0, if diff > -margin { 0.0 } else { 1.0 });
    }
    let z = (diff + margin) / se;
    (z, norm_sf(z))
}

/// One-sided superiority / deterioration p-value: P(Z ≥ z) for H0 diff ≤ 0.
pub fn one_sided_greater(diff: f64, se: f64) -> f64 {
    if se <= 0.0 {
        return if diff > 0.0 { 0.0 } else { 1.0 };
    }
    norm_sf(diff / se)
}
