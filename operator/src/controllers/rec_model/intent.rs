//! What the RecModel should serve: its spec, overridden by an operator-owned promotion while
//! the spec still names the version that lost, with an experiment's treatment in the second
//! arm when the spec has no canary of its own, else a RetrainSchedule's canary.

use crate::builders::experiment::{self, Promotion};
use crate::builders::retrain_canary::RetrainCanary;
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
    /// The RetrainSchedule whose canary record holds the second arm.
    pub canary_by: Option<String>,
    /// A canary record exists that no longer applies (Git set a canary or named another
    /// version, or the live version moved on): it is deleted.
    pub stale_retrain_canary: bool,
}

/// `promotion` is the stored record, if any; it applies only while the spec still names the
/// version it replaced — once Git names anything else, Git wins. `retrain_canary` (a
/// RetrainSchedule's `onPass: Canary`) takes the second arm last: after the spec's canary
/// and an active Experiment, and only while the stable arm runs the version it beat.
pub fn intent(
    rm: &RecModel,
    experiments: &[Experiment],
    promotion: Option<Promotion>,
    retrain_canary: Option<RetrainCanary>,
) -> Intent {
    let promotion = promotion.filter(|p| p.from == rm.spec.model_uri);
    let stable_uri = promotion
        .as_ref()
        .map_or_else(|| rm.spec.model_uri.clone(), |p| p.to.clone());
    let has_record = retrain_canary.is_some();
    if let Some(c) = &rm.spec.canary {
        return Intent {
            stable_uri,
            canary: Some((c.model_uri.clone(), c.weight)),
            experiment: None,
            promotion,
            canary_by: None,
            stale_retrain_canary: has_record,
        };
    }
    // An A/A experiment (treatment = the stable version) is allowed: it checks the platform.
    if let Some(e) = experiment::active_for(&rm.name_any(), experiments) {
        // The record waits (kept while it still applies) until the experiment concludes.
        let stale = retrain_canary
            .as_ref()
            .is_some_and(|c| !c.applies_to(&stable_uri));
        return Intent {
            canary: Some((e.spec.treatment.model_uri.clone(), e.spec.traffic_percent)),
            experiment: Some((e.name_any(), experiment::salt(e))),
            stable_uri,
            promotion,
            canary_by: None,
            stale_retrain_canary: stale,
        };
    }
    let applying = retrain_canary.filter(|c| c.applies_to(&stable_uri));
    Intent {
        canary: applying.as_ref().map(|c| (c.model_uri.clone(), c.weight)),
        experiment: None,
        canary_by: applying.as_ref().map(|c| c.schedule.clone()),
        stale_retrain_canary: has_record && applying.is_none(),
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
        let i = intent(&rm(false), &[exp()], None, None);
        assert_eq!(i.canary, Some(("s3://b/v2".into(), 20)));
        assert_eq!(i.experiment, Some(("v2-test".into(), "e-uid".into())));
        // The treatment arm is sized by its share of users, as a spec canary would be.
        let sized = with_canary(&rm(false), &i);
        assert_eq!(sized.spec.canary.as_ref().map(|c| c.weight), Some(20));
        let i = intent(&rm(true), &[exp()], None, None);
        assert_eq!(i.canary, Some(("s3://b/v9".into(), 5)));
        assert_eq!(i.experiment, None);
    }

    #[test]
    fn a_promotion_holds_while_the_spec_names_the_old_version_and_git_wins_after() {
        let i = intent(&rm(false), &[], Some(promoted("s3://b/v1")), None);
        assert_eq!(i.stable_uri, "s3://b/v2");
        assert!(i.promotion.is_some());
        // Git moved on (to v2 or to anything else): the record no longer applies.
        let i = intent(&rm(false), &[], Some(promoted("s3://b/v0")), None);
        assert_eq!(i.stable_uri, "s3://b/v1");
        assert!(i.promotion.is_none());
    }

    fn retrain_canary(against: &str) -> RetrainCanary {
        RetrainCanary {
            model_uri: "s3://b/v3".into(),
            weight: 10,
            against: against.into(),
            schedule: "nightly".into(),
            version: "v3".into(),
            at: String::new(),
        }
    }

    #[test]
    fn a_retrain_canary_comes_after_the_spec_and_an_experiment_and_only_against_its_rival() {
        let i = intent(&rm(false), &[], None, Some(retrain_canary("s3://b/v1")));
        assert_eq!(i.canary, Some(("s3://b/v3".into(), 10)));
        assert_eq!(i.canary_by.as_deref(), Some("nightly"));
        assert_eq!(i.experiment, None);
        assert!(!i.stale_retrain_canary);
        // Git's canary wins and the record goes.
        let i = intent(&rm(true), &[], None, Some(retrain_canary("s3://b/v1")));
        assert_eq!(i.canary, Some(("s3://b/v9".into(), 5)));
        assert!(i.stale_retrain_canary);
        // An experiment holds the arm; the record waits.
        let i = intent(
            &rm(false),
            &[exp()],
            None,
            Some(retrain_canary("s3://b/v1")),
        );
        assert_eq!(i.canary, Some(("s3://b/v2".into(), 20)));
        assert_eq!(i.canary_by, None);
        assert!(!i.stale_retrain_canary);
        // The live version is not the one the run beat: no canary, and the record goes.
        let i = intent(&rm(false), &[], None, Some(retrain_canary("s3://b/v0")));
        assert_eq!(i.canary, None);
        assert!(i.stale_retrain_canary);
    }
}
