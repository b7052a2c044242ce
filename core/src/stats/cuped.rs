//! CUPED (Deng, Xu, Kohavi & Walker, 2013): a per-user metric y adjusted by a covariate z
//! measured before the experiment (e.g. the same metric in the previous weeks), so that the
//! part of y's variance that z predicts is removed. z predates assignment, so the adjustment
//! cannot bias the difference; it only narrows the interval (by about ρ², ρ = corr(y, z)).
//!
//! θ = cov(y, z) / var(z) over both arms' users pooled; each arm's adjusted mean is
//! ȳ − θ·(z̄_arm − z̄) and its variance (var y + θ² var z − 2θ cov(y, z)) / n within the arm.
//! Everything comes from per-arm sufficient statistics (n, Σy, Σy², Σz, Σz², Σyz).

use super::ztest::{compare, Comparison};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CovariateStats {
    pub n: f64,
    pub sum_y: f64,
    pub sum_yy: f64,
    pub sum_z: f64,
    pub sum_zz: f64,
    pub sum_yz: f64,
}

impl CovariateStats {
    pub fn add(&mut self, y: f64, z: f64) {
        self.n += 1.0;
        self.sum_y += y;
        self.sum_yy += y * y;
        self.sum_z += z;
        self.sum_zz += z * z;
        self.sum_yz += y * z;
    }

    fn pooled(&self, other: &Self) -> Self {
        Self {
            n: self.n + other.n,
            sum_y: self.sum_y + other.sum_y,
            sum_yy: self.sum_yy + other.sum_yy,
            sum_z: self.sum_z + other.sum_z,
            sum_zz: self.sum_zz + other.sum_zz,
            sum_yz: self.sum_yz + other.sum_yz,
        }
    }

    /// Sample (n − 1) covariance of a and b from Σab, Σa, Σb.
    fn cov(&self, sab: f64, sa: f64, sb: f64) -> f64 {
        (sab - sa * sb / self.n) / (self.n - 1.0)
    }

    fn var_y(&self) -> f64 {
        self.cov(self.sum_yy, self.sum_y, self.sum_y)
    }

    fn var_z(&self) -> f64 {
        self.cov(self.sum_zz, self.sum_z, self.sum_z)
    }

    fn cov_yz(&self) -> f64 {
        self.cov(self.sum_yz, self.sum_y, self.sum_z)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cuped {
    pub theta: f64,
    /// The adjusted means compared (diff, intervals, z, p).
    pub comparison: Comparison,
    /// 1 − adjusted variance / unadjusted variance of the difference.
    pub variance_reduction: f64,
}

pub fn cuped(control: &CovariateStats, treatment: &CovariateStats, alpha: f64) -> Cuped {
    let all = control.pooled(treatment);
    let var_z = all.var_z();
    let theta = if var_z > 0.0 {
        all.cov_yz() / var_z
    } else {
        0.0
    };
    let z_mean = all.sum_z / all.n;
    let adjusted = |a: &CovariateStats| {
        let mean = a.sum_y / a.n - theta * (a.sum_z / a.n - z_mean);
        let var = (a.var_y() + theta * theta * a.var_z() - 2.0 * theta * a.cov_yz()).max(0.0) / a.n;
        (mean, var)
    };
    let ((mc, vc), (mt, vt)) = (adjusted(control), adjusted(treatment));
    let unadjusted = control.var_y() / control.n + treatment.var_y() / treatment.n;
    Cuped {
        theta,
        comparison: compare(mc, vc, mt, vt, alpha),
        variance_reduction: 1.0 - (vc + vt) / unadjusted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_useless_covariate_changes_nothing_and_a_perfect_one_removes_the_noise() {
        let (mut c, mut t) = (CovariateStats::default(), CovariateStats::default());
        for i in 0..100 {
            let y = (i % 7) as f64;
            c.add(y, 1.0);
            t.add(y + 1.0, 1.0);
        }
        let r = cuped(&c, &t, 0.05);
        assert_eq!(r.theta, 0.0);
        assert!((r.comparison.diff - 1.0).abs() < 1e-12);
        assert!(r.variance_reduction.abs() < 1e-12);
        // z predicts y exactly (y = z + arm effect): all variance but the effect's goes.
        let (mut c, mut t) = (CovariateStats::default(), CovariateStats::default());
        for i in 0..100 {
            let z = (i % 7) as f64;
            c.add(z, z);
            t.add(z + 1.0, z);
        }
        let r = cuped(&c, &t, 0.05);
        assert!((r.comparison.diff - 1.0).abs() < 1e-9);
        assert!(r.variance_reduction > 0.999, "{}", r.variance_reduction);
    }
}
