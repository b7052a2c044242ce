//! A/B statistics, pure: the randomization unit is the user, so every metric is computed from
//! per-user aggregates, summarised per arm by exact sufficient statistics. Each function is
//! checked against scipy / statsmodels (`scripts/stats_reference.py` writes
//! `core/tests/fixtures/stats_reference.json`).

pub mod analysis;
pub mod cuped;
pub mod decision;
pub mod distributions;
pub mod holm;
pub mod power;
pub mod ratio;
pub mod sequential;
pub mod srm;
pub mod sums;
pub mod ztest;

pub use distributions::{chi2_sf, norm_cdf, norm_ppf, norm_sf};
pub use ratio::ArmStats;
pub use sums::Sums;
