//! The RecModel's decisions, without a client: how far a Deployment has rolled out, what each
//! arm should run, and when the canary may be routed, drained or removed.

use crate::crd::v1alpha1::AppliedArm;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Pod-template label carrying the model version a Deployment runs.
pub const VERSION_LABEL: &str = "recsys.dev/model-version";

/// How far one Deployment's rollout has come, read from what the API server returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rollout {
    /// The Deployment controller has seen the newest spec and every pod is of it and ready:
    /// `observedGeneration ≥ generation` and updated = ready = available = total = desired.
    pub caught_up: bool,
    pub ready: i32,
    pub desired: i32,
    /// The model version of the pod template (`recsys.dev/model-version`).
    pub version: Option<String>,
}

pub fn rollout(d: &Deployment) -> Rollout {
    let desired = d.spec.replicas.unwrap_or(1);
    let version = d
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref()?.get(VERSION_LABEL))
        .cloned();
    let Some(status) = d.status.as_ref() else {
        return Rollout {
            desired,
            version,
            ..Default::default()
        };
    };
    let observed = match (status.observed_generation, d.metadata.generation) {
        (Some(seen), Some(current)) => seen >= current,
        _ => false,
    };
    let ready = status.ready_replicas.unwrap_or(0);
    let all = |n: Option<i32>| n.unwrap_or(0) == desired;
    Rollout {
        caught_up: observed
            && all(status.updated_replicas)
            && all(status.ready_replicas)
            && all(status.available_replicas)
            && all(status.replicas),
        ready,
        desired,
        version,
    }
}

/// What the stable arm should run.
#[derive(Debug, Clone, PartialEq)]
pub enum StablePlan {
    /// The spec's version, with its own index.
    Wanted(AppliedArm),
    /// The spec's version has no index yet; keep running what was applied before.
    Keep(AppliedArm),
    /// Nothing servable yet and nothing running: deploy nothing.
    Wait,
}

pub fn stable_plan(wanted: Option<AppliedArm>, applied: Option<&AppliedArm>) -> StablePlan {
    match (wanted, applied) {
        (Some(w), _) => StablePlan::Wanted(w),
        (None, Some(a)) => StablePlan::Keep(a.clone()),
        (None, None) => StablePlan::Wait,
    }
}

/// What happens to the canary arm in this reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryPlan {
    /// No canary wanted and none running.
    Absent,
    /// Wanted, but its version has no index yet; nothing runs.
    WaitForIndex,
    /// Apply this canary; it is routed once its pods have rolled out.
    Apply(AppliedArm),
    /// The running canary is no longer wanted (removed or replaced): it stays out of the
    /// routing table, untouched, until the routers have reloaded (since the given time).
    Drain { since: Timestamp },
    /// Drained: delete the old canary's pods (a replacement, if any, comes next reconcile).
    Remove,
}

/// Inputs of the canary decision.
pub struct CanaryInputs<'a> {
    /// The spec's canary: `Some(Some(arm))` with a servable index, `Some(None)` without one.
    pub wanted: Option<Option<AppliedArm>>,
    /// What the canary Deployment was last applied with.
    pub applied: Option<&'a AppliedArm>,
    /// Percent of users the routing table last sent to the canary.
    pub routed_weight: u32,
    pub draining_since: Option<Timestamp>,
    pub now: Timestamp,
    /// How long routers need to pick up a new routing table.
    pub drain: std::time::Duration,
}

pub fn canary_plan(i: &CanaryInputs) -> CanaryPlan {
    let target = i.wanted.clone().flatten();
    match i.applied {
        Some(running) if Some(running) != target.as_ref() => {
            if i.routed_weight > 0 {
                return CanaryPlan::Drain { since: i.now };
            }
            let drained = i.draining_since.is_none_or(|since| {
                i.now.duration_since(since)
                    >= SignedDuration::try_from(i.drain).unwrap_or(SignedDuration::MAX)
            });
            if drained {
                CanaryPlan::Remove
            } else {
                CanaryPlan::Drain {
                    since: i.draining_since.unwrap_or(i.now),
                }
            }
        }
        _ => match (target, &i.wanted) {
            (Some(arm), _) => CanaryPlan::Apply(arm),
            (None, Some(None)) => CanaryPlan::WaitForIndex,
            (None, _) => CanaryPlan::Absent,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn arm(v: &str) -> AppliedArm {
        AppliedArm {
            model_uri: format!("s3://b/{v}"),
            index_uri: format!("s3://b/{v}/index"),
        }
    }

    fn inputs(
        wanted: Option<Option<AppliedArm>>,
        applied: Option<&AppliedArm>,
        routed_weight: u32,
        draining_since: Option<Timestamp>,
    ) -> CanaryInputs<'_> {
        CanaryInputs {
            wanted,
            applied,
            routed_weight,
            draining_since,
            now: Timestamp::from_second(1_000).unwrap(),
            drain: Duration::from_secs(90),
        }
    }

    #[test]
    fn a_routed_canary_that_is_no_longer_wanted_drains_before_removal() {
        let v2 = arm("v2");
        // Removed from the spec while 10 % of users are on it: unroute first.
        let p = canary_plan(&inputs(None, Some(&v2), 10, None));
        assert_eq!(
            p,
            CanaryPlan::Drain {
                since: Timestamp::from_second(1_000).unwrap()
            }
        );
        // Unrouted 30 s ago: still draining.
        let since = Timestamp::from_second(970).unwrap();
        assert_eq!(
            canary_plan(&inputs(None, Some(&v2), 0, Some(since))),
            CanaryPlan::Drain { since }
        );
        // Unrouted 100 s ago: remove.
        let since = Timestamp::from_second(900).unwrap();
        assert_eq!(
            canary_plan(&inputs(None, Some(&v2), 0, Some(since))),
            CanaryPlan::Remove
        );
        // Replaced by v3: the same drain, then removal, then v3 is applied.
        let p = canary_plan(&inputs(Some(Some(arm("v3"))), Some(&v2), 10, None));
        assert!(matches!(p, CanaryPlan::Drain { .. }));
        assert_eq!(
            canary_plan(&inputs(Some(Some(arm("v3"))), None, 0, None)),
            CanaryPlan::Apply(arm("v3"))
        );
    }

    #[test]
    fn a_wanted_canary_waits_for_its_own_index() {
        assert_eq!(
            canary_plan(&inputs(Some(None), None, 0, None)),
            CanaryPlan::WaitForIndex
        );
        assert_eq!(
            canary_plan(&inputs(None, None, 0, None)),
            CanaryPlan::Absent
        );
        let v2 = arm("v2");
        assert_eq!(
            canary_plan(&inputs(Some(Some(v2.clone())), Some(&v2), 10, None)),
            CanaryPlan::Apply(v2)
        );
    }

    #[test]
    fn stable_keeps_its_version_while_the_new_index_builds() {
        let v1 = arm("v1");
        assert_eq!(stable_plan(None, Some(&v1)), StablePlan::Keep(v1.clone()));
        assert_eq!(
            stable_plan(Some(arm("v2")), Some(&v1)),
            StablePlan::Wanted(arm("v2"))
        );
        assert_eq!(stable_plan(None, None), StablePlan::Wait);
    }

    #[test]
    fn a_rollout_is_caught_up_only_when_every_count_and_the_generation_agree() {
        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d", "generation": 3},
            "spec": {"replicas": 2, "selector": {},
                     "template": {"metadata": {"labels": {VERSION_LABEL: "v2"}}}},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                       "readyReplicas": 2, "availableReplicas": 2}
        }))
        .unwrap();
        assert!(
            !rollout(&d).caught_up,
            "the controller has not seen generation 3"
        );
        let status = d.status.as_mut().unwrap();
        status.observed_generation = Some(3);
        status.updated_replicas = Some(1);
        status.replicas = Some(3);
        assert!(!rollout(&d).caught_up, "an old pod still runs");
        let status = d.status.as_mut().unwrap();
        status.updated_replicas = Some(2);
        status.replicas = Some(2);
        let r = rollout(&d);
        assert!(r.caught_up);
        assert_eq!(r.version.as_deref(), Some("v2"));
    }
}
