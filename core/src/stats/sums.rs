//! The sufficient statistics of one experiment arm, shared by the data plane that writes them
//! and the operator that reads them.

use super::ratio::ArmStats;

/// One arm's exact sums over its users of impressions x, clicks y and conversions c: what
/// the router keeps (field names of its Redis hash and of the `sum` label on its metrics)
/// and what the Experiment controller reads back from Prometheus.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    pub n: f64,
    pub sx: f64,
    pub sy: f64,
    pub sc: f64,
    pub sxx: f64,
    pub syy: f64,
    pub scc: f64,
    pub sxy: f64,
}

impl Sums {
    /// CTR's statistics: x impressions, y clicks per user.
    pub fn ctr(&self) -> ArmStats {
        ArmStats {
            n: self.n,
            sum_x: self.sx,
            sum_y: self.sy,
            sum_xx: self.sxx,
            sum_yy: self.syy,
            sum_xy: self.sxy,
        }
    }

    /// Conversions per user: x ≡ 1.
    pub fn conversions(&self) -> ArmStats {
        ArmStats {
            n: self.n,
            sum_x: self.n,
            sum_y: self.sc,
            sum_xx: self.n,
            sum_yy: self.scc,
            sum_xy: self.sc,
        }
    }

    pub fn fields(&self) -> [(&'static str, f64); 8] {
        [
            ("n", self.n),
            ("sx", self.sx),
            ("sy", self.sy),
            ("sc", self.sc),
            ("sxx", self.sxx),
            ("syy", self.syy),
            ("scc", self.scc),
            ("sxy", self.sxy),
        ]
    }

    pub fn set(&mut self, field: &str, v: f64) {
        match field {
            "n" => self.n = v,
            "sx" => self.sx = v,
            "sy" => self.sy = v,
            "sc" => self.sc = v,
            "sxx" => self.sxx = v,
            "syy" => self.syy = v,
            "scc" => self.scc = v,
            "sxy" => self.sxy = v,
            _ => {}
        }
    }
}
