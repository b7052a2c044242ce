//! Sample-ratio mismatch: Pearson's chi-square goodness of fit of the users per arm against
//! the configured split (scipy's `chisquare`). A tiny p-value means assignment or logging is
//! broken and no other number of the experiment can be trusted.

use super::distributions::chi2_sf;

/// (statistic, p-value) of `observed` counts against `expected_shares` (any positive scale).
pub fn srm(observed: &[f64], expected_shares: &[f64]) -> (f64, f64) {
    let total: f64 = observed.iter().sum();
    let share_total: f64 = expected_shares.iter().sum();
    if observed.len() < 2 || total <= 0.0 || share_total <= 0.0 {
        return (0.0, 1.0);
    }
    let stat: f64 = observed
        .iter()
        .zip(expected_shares)
        .map(|(&o, &s)| {
            let e = total * s / share_total;
            (o - e).powi(2) / e
        })
        .sum();
    (stat, chi2_sf(stat, (observed.len() - 1) as f64))
}
