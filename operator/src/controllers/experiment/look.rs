//! One look at an experiment, without a client: the arms' sums and operational guardrail
//! values in, the decision and every number written to status out. Everything that carries
//! over between looks (the running minimum of the always-valid p-value, consecutive guardrail
//! breaches, the start time) is in status, so an operator restarted mid-experiment reaches the
//! same decision from the same numbers.

use crate::crd::v1alpha1::{ExperimentSpec, ExperimentStatus, MetricResult, UserMetric};
use recsys_core::stats::analysis::{analyze, Settings};
use recsys_core::stats::decision::{decide, Decision, Look, MetricLook};
use recsys_core::stats::{power, ArmStats, Sums};
use std::collections::BTreeMap;

/// What Prometheus said at this look.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub control: Sums,
    pub treatment: Sums,
    /// Operational guardrails by name: (control, treatment), `None` when a value is missing.
    pub operational: BTreeMap<String, Option<(f64, f64)>>,
}

/// Durations of the design, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Durations {
    pub elapsed: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats_of(metric: UserMetric, sums: &Sums) -> ArmStats {
    match metric {
        UserMetric::Ctr => sums.ctr(),
        UserMetric::ConversionsPerUser => sums.conversions(),
    }
}

/// Users both arms need together: the fixed-horizon plan at the per-test power that keeps
/// the whole decision's power (guardrails correct power, not alpha), for the split's shares.
pub fn planned_users(spec: &ExperimentSpec) -> u64 {
    let d = &spec.design;
    let per_arm = power::plan(
        d.baseline,
        d.minimum_detectable_effect,
        d.alpha,
        d.power,
        spec.guardrails.len(),
    )
    .users_per_arm as f64;
    let share = f64::from(spec.traffic_percent) / 100.0;
    // Var ∝ 1/(N·p·(1−p)); at p = ½ that is 4/N, so N = 2·per_arm / (4·p·(1−p)).
    (2.0 * per_arm / (4.0 * share * (1.0 - share))).ceil() as u64
}

fn tau_of(spec: &ExperimentSpec) -> f64 {
    spec.analysis
        .tau
        .unwrap_or(spec.design.baseline * spec.design.minimum_detectable_effect)
}

pub fn decision_name(d: &Decision) -> &'static str {
    match d {
        Decision::Continue(_) => "Continue",
        Decision::Promote(_) => "Promote",
        Decision::Rollback(_) => "Rollback",
        Decision::Inconclusive(_) => "Inconclusive",
        Decision::Pause(_) => "Pause",
    }
}

pub fn reason_of(d: &Decision) -> &str {
    match d {
        Decision::Continue(r)
        | Decision::Promote(r)
        | Decision::Rollback(r)
        | Decision::Inconclusive(r)
        | Decision::Pause(r) => r,
    }
}

fn percent(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", 100.0 * x)
    } else {
        "?".into()
    }
}

fn p_text(p: f64) -> String {
    if !p.is_finite() {
        "?".into()
    } else if p < 1e-4 {
        "<0.0001".into()
    } else {
        format!("{p:.4}")
    }
}

/// Applies one look to `status` (a copy of the previous one) and returns the decision.
pub fn look(
    spec: &ExperimentSpec,
    status: &mut ExperimentStatus,
    obs: &Observation,
    durations: Durations,
) -> Decision {
    let alpha = spec.design.alpha;
    let tau = tau_of(spec);
    let share = f64::from(spec.traffic_percent) / 100.0;
    let settings = Settings {
        alpha,
        expected_split: (1.0 - share, share),
        tau,
    };
    let (c, t) = (
        stats_of(spec.success_metric, &obs.control),
        stats_of(spec.success_metric, &obs.treatment),
    );
    let previous_p = status.sequential_p.unwrap_or(1.0);
    let a = analyze(&c, &t, &settings, previous_p);
    let success = MetricLook {
        name: spec.success_metric.as_str().into(),
        diff: a.comparison.diff,
        variance: c.ratio_variance() + t.ratio_variance(),
        higher_is_better: true,
        margin: 0.0,
        tau,
    };
    let mut metrics = vec![MetricResult {
        name: success.name.clone(),
        control: a.comparison.control,
        treatment: a.comparison.treatment,
        diff: a.comparison.diff,
        ci_low: Some(a.sequential_ci.0),
        ci_high: Some(a.sequential_ci.1),
    }];
    let mut guardrails = Vec::new();
    for g in spec.guardrails.iter() {
        let Some(metric) = g.user_metric else {
            continue;
        };
        let (gc, gt) = (
            stats_of(metric, &obs.control),
            stats_of(metric, &obs.treatment),
        );
        let diff = gt.ratio() - gc.ratio();
        let variance = gc.ratio_variance() + gt.ratio_variance();
        let tau = if g.margin > 0.0 { g.margin } else { tau };
        let half = recsys_core::stats::sequential::confidence_half_width(variance, tau, alpha);
        metrics.push(MetricResult {
            name: g.name.clone(),
            control: gc.ratio(),
            treatment: gt.ratio(),
            diff,
            ci_low: Some(diff - half),
            ci_high: Some(diff + half),
        });
        guardrails.push(MetricLook {
            name: g.name.clone(),
            diff,
            variance,
            higher_is_better: g.higher_is_better(),
            margin: g.margin,
            tau,
        });
    }

    // Operational guardrails: thresholds, with consecutive breaches carried in status.
    let (operational_block, operational_rollback) =
        operational_guardrails(spec, obs, status, &mut metrics);

    let users = obs.control.n + obs.treatment.n;
    let planned = planned_users(spec);
    let decision = decide(&Look {
        success,
        guardrails,
        srm_p: a.srm_p,
        users,
        planned_users: planned as f64,
        elapsed_secs: durations.elapsed,
        min_duration_secs: durations.min,
        max_duration_secs: durations.max,
        alpha,
        srm_alpha: spec.analysis.srm_alpha,
        min_lift: spec.analysis.min_lift,
    });
    let decision = match decision {
        d @ (Decision::Pause(_) | Decision::Rollback(_)) => d,
        d => match (operational_rollback, operational_block, d) {
            (Some(r), _, _) => Decision::Rollback(r),
            (None, Some(r), Decision::Promote(_)) => {
                Decision::Continue(format!("success metric won; {r}"))
            }
            (None, _, d) => d,
        },
    };

    status.planned_users = Some(planned);
    status.control_users = Some(obs.control.n as u64);
    status.treatment_users = Some(obs.treatment.n as u64);
    status.users = Some(format!("{}/{}", obs.control.n, obs.treatment.n));
    let base = a.comparison.control;
    status.lift = Some(format!(
        "{} [{}, {}]",
        percent(a.comparison.relative),
        percent(a.sequential_ci.0 / base),
        percent(a.sequential_ci.1 / base)
    ));
    // A NaN never replaces a real running minimum (missing numbers must not move it).
    if a.sequential_p.is_finite() {
        status.sequential_p = Some(a.sequential_p);
    }
    status.p_value = Some(p_text(status.sequential_p.unwrap_or(f64::NAN)));
    status.srm_p_value = Some(p_text(a.srm_p));
    status.metrics = metrics;
    status.looks += 1;
    decision
}

/// The threshold guardrails (PromQL queries): each one's values joined to `metrics`, its
/// consecutive breaches counted in `status`; what blocks a promotion, and what forces a
/// rollback.
fn operational_guardrails(
    spec: &ExperimentSpec,
    obs: &Observation,
    status: &mut ExperimentStatus,
    metrics: &mut Vec<MetricResult>,
) -> (Option<String>, Option<String>) {
    let mut operational_block: Option<String> = None;
    let mut operational_rollback: Option<String> = None;
    for g in spec.guardrails.iter().filter(|g| g.query.is_some()) {
        match obs.operational.get(&g.name).copied().flatten() {
            Some((vc, vt)) if vc.is_finite() && vt.is_finite() => {
                let worse_by = if g.higher_is_better() {
                    vc - vt
                } else {
                    vt - vc
                };
                metrics.push(MetricResult {
                    name: g.name.clone(),
                    control: vc,
                    treatment: vt,
                    diff: vt - vc,
                    ci_low: None,
                    ci_high: None,
                });
                let count = status.breaches.entry(g.name.clone()).or_insert(0);
                if worse_by > g.margin {
                    *count += 1;
                    operational_block.get_or_insert(format!(
                        "guardrail {} is worse by {worse_by:.4} (margin {})",
                        g.name, g.margin
                    ));
                    if *count >= g.breach_looks {
                        operational_rollback.get_or_insert(format!(
                            "guardrail {} breached its margin {} looks in a row",
                            g.name, count
                        ));
                    }
                } else {
                    *count = 0;
                }
            }
            // Missing: neither a breach nor a pass; the count stays as it was.
            _ => {
                operational_block.get_or_insert(format!("guardrail {} has no value", g.name));
            }
        }
    }
    (operational_block, operational_rollback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(extra: serde_json::Value) -> ExperimentSpec {
        let mut s = json!({"recModel": "movies", "treatment": {"modelUri": "s3://b/v2"},
            "design": {"alpha": 0.05, "power": 0.8, "baseline": 0.1,
                       "minimumDetectableEffect": 0.1, "minDuration": "1h", "maxDuration": "7d"}});
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(s).unwrap()
    }

    /// n users each with 10 impressions and `clicks` clicks spread as Bernoulli-ish counts.
    fn arm(n: usize, ctr: f64) -> Sums {
        let mut s = Sums::default();
        for i in 0..n {
            // Deterministic spread: users alternate around the mean.
            let y = if i % 2 == 0 {
                10.0 * ctr * 1.5
            } else {
                10.0 * ctr * 0.5
            };
            s.n += 1.0;
            s.sx += 10.0;
            s.sxx += 100.0;
            s.sy += y;
            s.syy += y * y;
            s.sxy += 10.0 * y;
        }
        s
    }

    fn long() -> Durations {
        Durations {
            elapsed: 86_400.0,
            min: 3600.0,
            max: 7.0 * 86_400.0,
        }
    }

    #[test]
    fn a_clear_win_promotes_and_status_says_by_how_much() {
        let s = spec(json!({}));
        let mut status = ExperimentStatus::default();
        let obs = Observation {
            control: arm(20_000, 0.10),
            treatment: arm(20_000, 0.12),
            ..Default::default()
        };
        let d = look(&s, &mut status, &obs, long());
        assert!(matches!(d, Decision::Promote(_)), "{d:?}");
        assert_eq!(status.users.as_deref(), Some("20000/20000"));
        assert!(
            status.lift.as_deref().unwrap().starts_with("+20.0% ["),
            "{:?}",
            status.lift
        );
        assert_eq!(status.p_value.as_deref(), Some("<0.0001"));
        assert_eq!(status.looks, 1);
    }

    #[test]
    fn an_operational_breach_blocks_promotion_then_rolls_back() {
        let s = spec(
            json!({"guardrails": [{"name": "p99", "query": "q{arm=\"$ARM\"}",
                                           "margin": 0.01, "breachLooks": 2}]}),
        );
        let mut status = ExperimentStatus::default();
        let mut obs = Observation {
            control: arm(20_000, 0.10),
            treatment: arm(20_000, 0.12),
            operational: BTreeMap::from([("p99".to_owned(), Some((0.05, 0.09)))]),
        };
        let d = look(&s, &mut status, &obs, long());
        assert!(
            matches!(&d, Decision::Continue(r) if r.contains("p99")),
            "{d:?}"
        );
        assert!(matches!(
            look(&s, &mut status, &obs, long()),
            Decision::Rollback(_)
        ));
        // A missing value neither promotes nor counts as a breach.
        let mut status = ExperimentStatus::default();
        obs.operational.insert("p99".into(), None);
        assert!(matches!(
            look(&s, &mut status, &obs, long()),
            Decision::Continue(_)
        ));
        assert_eq!(status.breaches.get("p99"), None);
    }

    #[test]
    fn empty_arms_continue_without_moving_the_running_p() {
        let s = spec(json!({}));
        let mut status = ExperimentStatus {
            sequential_p: Some(0.2),
            ..Default::default()
        };
        let d = look(&s, &mut status, &Observation::default(), long());
        assert!(matches!(d, Decision::Continue(_)), "{d:?}");
        assert_eq!(status.sequential_p, Some(0.2));
    }

    #[test]
    fn the_plan_grows_with_guardrails_and_an_uneven_split() {
        let even = planned_users(&spec(json!({})));
        let guarded = planned_users(&spec(json!({"guardrails": [
            {"name": "conv", "userMetric": "conversionsPerUser", "margin": 0.01}]})));
        let uneven = planned_users(&spec(json!({"trafficPercent": 10})));
        assert!(guarded > even && uneven > even, "{even} {guarded} {uneven}");
    }
}
