//! What the RecModel should serve: its spec, overridden by an operator-owned promotion while
//! the spec still names the version that lost, with an experiment's treatment in the second
//! arm when the spec has no canary of its own.

use crate::builders::experiment::{self, Promotion};
use crate::crd::v1alpha1::{Canary, Experiment, RecModel};
use kube::ResourceExt;

#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    /// The version the stable arm should run.
    pub stable_uri: String,
    /// The second arm: model URI and percent of users.
    pub canary: Option<(String, u32)>,
    /// The experiment holding the second arm, and its salt.
    pub experiment: Option<(String, String)>,
    /// A promotion in force (its `from` is the spec's version).
    pub promotion: Option<Promotion>,
}

/// `promotion` is the stored record, if any; it applies only while the spec still names the
/// version it replaced — once Git names anything else, Git wins.
pub fn intent(rm: &RecModel, experiments: &[Experiment], promotion: Option<Promotion>) -> Intent {
    let promotion = promotion.filter(|p| p.from == rm.spec.model_uri);
    let stable_uri = promotion
        .as_ref()
        .map_or_else(|| rm.spec.model_uri.clone(), |p| p.to.clone());
    if let Some(c) = &rm.spec.canary {
        return Intent {
            stable_uri,
            canary: Some((c.model_uri.clone(), c.weight)),
            experiment: None,
            promotion,
        };
    }
    // An A/A experiment (treatment = the stable version) is allowed: it checks the platform.
    let active = experiment::active_for(&rm.name_any(), experiments);
    Intent {
        canary: active.map(|e| (e.spec.treatment.model_uri.clone(), e.spec.traffic_percent)),
        experiment: active.map(|e| (e.name_any(), experiment::salt(e))),
        stable_uri,
        promotion,
    }
}

/// The RecModel as the builders should see it for the second arm: its spec's canary, or the
/// experiment's treatment in its place (the canary's replicas follow its share of users).
pub fn with_canary(rm: &RecModel, intent: &Intent) -> RecModel {
    let mut sized = rm.clone();
    if sized.spec.canary.is_none() {
        sized.spec.canary = intent.canary.as_ref().map(|(uri, weight)| Canary {
            model_uri: uri.clone(),
            weight: *weight,
        });
    }
    sized
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rm(canary: bool) -> RecModel {
        let mut spec = json!({"modelUri": "s3://b/v1", "itemIndexRef": "ii"});
        if canary {
            spec["canary"] = json!({"modelUri": "s3://b/v9", "weight": 5});
        }
        serde_json::from_value(json!({
            "apiVersion": "recsys.dev/v1alpha1", "kind": "RecModel",
            "metadata": {"name": "movies", "namespace": "ns", "uid": "rm-uid"}, "spec": spec
        }))
        .unwrap()
    }

    fn exp() -> Experiment {
        serde_json::from_value(json!({
            "apiVersion": "recsys.dev/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "v2-test", "namespace": "ns", "uid": "e-uid"},
            "spec": {"recModel": "movies", "treatment": {"modelUri": "s3://b/v2"},
                     "trafficPercent": 20}
        }))
        .unwrap()
    }

    fn promoted(from: &str) -> Promotion {
        Promotion {
            from: from.into(),
            to: "s3://b/v2".into(),
            experiment: "v2-test".into(),
            at: String::new(),
        }
    }

    #[test]
    fn an_experiment_takes_the_second_arm_only_without_a_spec_canary() {
        let i = intent(&rm(false), &[exp()], None);
        assert_eq!(i.canary, Some(("s3://b/v2".into(), 20)));
        assert_eq!(i.experiment, Some(("v2-test".into(), "e-uid".into())));
        // The treatment arm is sized by its share of users, as a spec canary would be.
        let sized = with_canary(&rm(false), &i);
        assert_eq!(sized.spec.canary.as_ref().map(|c| c.weight), Some(20));
        let i = intent(&rm(true), &[exp()], None);
        assert_eq!(i.canary, Some(("s3://b/v9".into(), 5)));
        assert_eq!(i.experiment, None);
    }

    #[test]
    fn a_promotion_holds_while_the_spec_names_the_old_version_and_git_wins_after() {
        let i = intent(&rm(false), &[], Some(promoted("s3://b/v1")));
        assert_eq!(i.stable_uri, "s3://b/v2");
        assert!(i.promotion.is_some());
        // Git moved on (to v2 or to anything else): the record no longer applies.
        let i = intent(&rm(false), &[], Some(promoted("s3://b/v0")));
        assert_eq!(i.stable_uri, "s3://b/v1");
        assert!(i.promotion.is_none());
    }
}
