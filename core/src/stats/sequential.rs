//! An always-valid test for watching an experiment at every interval: the mixture sequential
//! probability ratio test (mSPRT) of Johari, Pekelis and Walsh (2017) on the difference of two
//! asymptotically normal estimates. With θ̂ the estimated difference, V its variance and a
//! normal mixing distribution N(0, τ²) over the true difference,
//!
//!   Λ = √(V / (V + τ²)) · exp(τ²·θ̂² / (2·V·(V + τ²)))
//!
//! and 1/Λ, kept as a running minimum over looks, is a p-value valid at every look: stopping
//! whenever it drops below alpha keeps the false-positive rate at most alpha. Inverting it
//! gives the confidence sequence θ̂ ± √(V(V+τ²)/τ² · (2·ln(1/α) + ln((V+τ²)/V))).
//!
//! Tuning: τ is the size of effect the test is most sensitive to, in the metric's own units;
//! a good choice is the effect the experiment was planned for (its MDE). Too small a τ wastes
//! power on large effects, too large a τ on small ones; validity holds for any τ > 0.

/// The mixture likelihood ratio Λ at one look.
pub fn msprt_lambda(diff: f64, variance: f64, tau: f64) -> f64 {
    if variance <= 0.0 || !variance.is_finite() {
        return 1.0;
    }
    let t2 = tau * tau;
    let log = 0.5 * (variance / (variance + t2)).ln()
        + t2 * diff * diff / (2.0 * variance * (variance + t2));
    log.exp()
}

/// The always-valid p-value after this look, given the previous one (1 before the first).
pub fn always_valid_p(previous: f64, diff: f64, variance: f64, tau: f64) -> f64 {
    previous
        .min(1.0 / msprt_lambda(diff, variance, tau))
        .min(1.0)
}

/// Half-width of the always-valid (1 − alpha) confidence sequence at this look.
pub fn confidence_half_width(variance: f64, tau: f64, alpha: f64) -> f64 {
    let t2 = tau * tau;
    (variance * (variance + t2) / t2
        * (2.0 * (1.0 / alpha).ln() + ((variance + t2) / variance).ln()))
    .sqrt()
}
