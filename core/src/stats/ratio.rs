//! Per-arm sufficient statistics of per-user values and the delta-method variance of ratio
//! metrics. Each user contributes a denominator x (impressions; 1 for per-user metrics) and a
//! numerator y (clicks, conversions, revenue); an arm keeps n, Σx, Σy, Σx², Σy², Σxy, which
//! are additive across replicas and intervals and enough for every test here.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmStats {
    /// Users exposed.
    pub n: f64,
    pub sum_x: f64,
    pub sum_y: f64,
    pub sum_xx: f64,
    pub sum_yy: f64,
    pub sum_xy: f64,
}

impl ArmStats {
    /// Adds one user's (x, y).
    pub fn add(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        self.sum_x += x;
        self.sum_y += y;
        self.sum_xx += x * x;
        self.sum_yy += y * y;
        self.sum_xy += x * y;
    }

    pub fn merge(&mut self, other: &ArmStats) {
        self.n += other.n;
        self.sum_x += other.sum_x;
        self.sum_y += other.sum_y;
        self.sum_xx += other.sum_xx;
        self.sum_yy += other.sum_yy;
        self.sum_xy += other.sum_xy;
    }

    /// The metric Σy / Σx (CTR when x is impressions; mean per user when x ≡ 1).
    pub fn ratio(&self) -> f64 {
        self.sum_y / self.sum_x
    }

    /// Delta-method variance of Σy/Σx over users:
    /// (1/n)·(s_yy/μx² − 2·μy·s_xy/μx³ + μy²·s_xx/μx⁴), with sample (n − 1) covariances.
    pub fn ratio_variance(&self) -> f64 {
        let n = self.n;
        if n < 2.0 {
            return f64::NAN;
        }
        let (mx, my) = (self.sum_x / n, self.sum_y / n);
        let cov = |sab: f64, sa: f64, sb: f64| (sab - sa * sb / n) / (n - 1.0);
        let s_xx = cov(self.sum_xx, self.sum_x, self.sum_x);
        let s_yy = cov(self.sum_yy, self.sum_y, self.sum_y);
        let s_xy = cov(self.sum_xy, self.sum_x, self.sum_y);
        (s_yy / (mx * mx) - 2.0 * my * s_xy / mx.powi(3) + my * my * s_xx / mx.powi(4)) / n
    }

    /// Sample variance of y per user (the per-user metric's spread).
    pub fn y_variance(&self) -> f64 {
        let n = self.n;
        (self.sum_yy - self.sum_y * self.sum_y / n) / (n - 1.0)
    }
}

/// Treatment versus control on the ratio metric, by the delta method.
pub fn compare_ratio(
    control: &ArmStats,
    treatment: &ArmStats,
    alpha: f64,
) -> super::ztest::Comparison {
    super::ztest::compare(
        control.ratio(),
        control.ratio_variance(),
        treatment.ratio(),
        treatment.ratio_variance(),
        alpha,
    )
}
