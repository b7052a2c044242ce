//! The decision rule for one look at an experiment, in the manner of Spotify's risk-aware
//! product decisions (Schultzberg, Ankargren & Frånberg, 2024): ship only if the success metric
//! improved significantly — by more than `min_lift` — *and* every guardrail is significantly
//! non-inferior within its margin; roll back as soon as any metric is significantly worse;
//! roll back at the maximum duration without a win; call it inconclusive when the planned
//! sample is reached without an effect. Every test uses the always-valid confidence sequence,
//! so the rule may be applied at every look. Missing or non-finite numbers never promote and
//! never roll back: the experiment keeps running and says why.

use super::sequential::confidence_half_width;
use serde::Serialize;

/// One metric at this look: treatment − control and the variance of that difference.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricLook {
    pub name: String,
    pub diff: f64,
    pub variance: f64,
    /// True when larger values are better (CTR, conversions); false for latency, errors.
    pub higher_is_better: bool,
    /// Guardrails: how much worse the treatment may be and still count as non-inferior, in
    /// the metric's units (ignored for the success metric).
    pub margin: f64,
    /// mSPRT mixing scale for this metric.
    pub tau: f64,
}

impl MetricLook {
    /// The always-valid interval of the improvement (the difference signed so that positive
    /// is better).
    fn improvement_interval(&self, alpha: f64) -> Option<(f64, f64)> {
        if !self.diff.is_finite() || !self.variance.is_finite() || self.variance <= 0.0 {
            return None;
        }
        let sign = if self.higher_is_better { 1.0 } else { -1.0 };
        let half = confidence_half_width(self.variance, self.tau, alpha);
        let d = sign * self.diff;
        Some((d - half, d + half))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    pub success: MetricLook,
    pub guardrails: Vec<MetricLook>,
    pub srm_p: f64,
    pub users: f64,
    pub planned_users: f64,
    pub elapsed_secs: f64,
    pub min_duration_secs: f64,
    pub max_duration_secs: f64,
    pub alpha: f64,
    /// Below this p-value the split is considered broken.
    pub srm_alpha: f64,
    /// The improvement the success metric must significantly exceed, in its units.
    pub min_lift: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Decision {
    /// Keep collecting; the reason says what is missing.
    Continue(String),
    Promote(String),
    Rollback(String),
    Inconclusive(String),
    /// Sample-ratio mismatch: the numbers cannot be trusted until the split is fixed.
    Pause(String),
}

pub fn decide(look: &Look) -> Decision {
    let all: Vec<&MetricLook> = std::iter::once(&look.success)
        .chain(&look.guardrails)
        .collect();
    let mut intervals = Vec::with_capacity(all.len());
    for m in &all {
        match m.improvement_interval(look.alpha) {
            Some(i) => intervals.push(i),
            None => {
                return Decision::Continue(format!("metric {} is missing or undefined", m.name))
            }
        }
    }
    if !look.srm_p.is_finite() {
        return Decision::Continue("the users per arm are unknown".into());
    }
    if look.srm_p < look.srm_alpha {
        return Decision::Pause(format!(
            "sample-ratio mismatch (p = {:.2e} < {})",
            look.srm_p, look.srm_alpha
        ));
    }
    // Deterioration: any metric significantly worse ends it now, whatever the duration.
    for (m, (_, hi)) in all.iter().zip(&intervals) {
        if *hi < 0.0 {
            return Decision::Rollback(format!("{} is significantly worse", m.name));
        }
    }
    if look.elapsed_secs < look.min_duration_secs {
        return Decision::Continue("minimum duration not reached".into());
    }
    let (success_lo, _) = intervals[0];
    let guardrails_hold = all[1..]
        .iter()
        .zip(&intervals[1..])
        .all(|(m, (lo, _))| *lo > -m.margin);
    if success_lo > look.min_lift && guardrails_hold {
        return Decision::Promote(format!(
            "{} improved significantly by more than {} and every guardrail is non-inferior",
            look.success.name, look.min_lift
        ));
    }
    if look.elapsed_secs >= look.max_duration_secs {
        return Decision::Rollback("maximum duration reached without a win".into());
    }
    if look.users >= look.planned_users {
        return Decision::Inconclusive(format!(
            "planned sample reached without a significant win on {} above {}",
            look.success.name, look.min_lift
        ));
    }
    Decision::Continue(if success_lo > look.min_lift {
        "success metric won; waiting for guardrails to show non-inferiority".into()
    } else {
        "no significant effect yet".into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, diff: f64, higher_is_better: bool, margin: f64) -> MetricLook {
        MetricLook {
            name: name.into(),
            diff,
            variance: 1e-6,
            higher_is_better,
            margin,
            tau: 0.001,
        }
    }

    fn look(success: f64, latency: f64) -> Look {
        Look {
            success: metric("ctr", success, true, 0.0),
            guardrails: vec![metric("p99_latency", latency, false, 0.005)],
            srm_p: 0.4,
            users: 1000.0,
            planned_users: 5000.0,
            elapsed_secs: 7.0 * 86_400.0,
            min_duration_secs: 86_400.0,
            max_duration_secs: 14.0 * 86_400.0,
            alpha: 0.05,
            srm_alpha: 0.001,
            min_lift: 0.0,
        }
    }

    #[test]
    fn a_significant_win_with_non_inferior_guardrails_promotes() {
        assert!(matches!(decide(&look(0.02, 0.0)), Decision::Promote(_)));
        // The same win with latency significantly worse rolls back.
        assert!(matches!(decide(&look(0.02, 0.02)), Decision::Rollback(r) if r.contains("p99")));
        // A win of less than the required lift does not promote.
        let mut l = look(0.02, 0.0);
        l.min_lift = 0.05;
        assert!(matches!(decide(&l), Decision::Continue(_)));
    }

    #[test]
    fn deterioration_rolls_back_early_but_a_win_waits_for_the_minimum_duration() {
        let mut l = look(-0.02, 0.0);
        l.elapsed_secs = 3600.0;
        assert!(matches!(decide(&l), Decision::Rollback(_)));
        let mut l = look(0.02, 0.0);
        l.elapsed_secs = 3600.0;
        assert_eq!(
            decide(&l),
            Decision::Continue("minimum duration not reached".into())
        );
    }

    #[test]
    fn missing_numbers_and_srm_never_promote() {
        let mut l = look(f64::NAN, 0.0);
        assert!(matches!(decide(&l), Decision::Continue(r) if r.contains("ctr")));
        l = look(0.02, 0.0);
        l.guardrails[0].variance = 0.0;
        assert!(matches!(decide(&l), Decision::Continue(_)));
        l = look(0.02, 0.0);
        l.srm_p = 1e-6;
        assert!(matches!(decide(&l), Decision::Pause(_)));
    }

    #[test]
    fn no_effect_ends_inconclusive_at_the_plan_and_in_rollback_at_the_limit() {
        let mut l = look(0.0, 0.0);
        assert!(matches!(decide(&l), Decision::Continue(_)));
        l.users = 5000.0;
        assert!(matches!(decide(&l), Decision::Inconclusive(_)));
        l.elapsed_secs = 14.0 * 86_400.0;
        assert!(matches!(decide(&l), Decision::Rollback(r) if r.contains("maximum")));
    }
}
