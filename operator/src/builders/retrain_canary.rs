//! The record of a canary a RetrainSchedule started (`onPass: Canary`): a ConfigMap owned by
//! the RecModel, read by its controller as the second arm while the spec has no canary of
//! its own, no Experiment holds the arm, and the live version is the one the run beat.

use super::{child_meta, labels};
use crate::crd::v1alpha1::RecModel;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use std::collections::BTreeMap;

const MODEL_URI: &str = "modelUri";
const WEIGHT: &str = "weight";
const AGAINST: &str = "comparedWith";
const SCHEDULE: &str = "retrainSchedule";
const VERSION: &str = "version";
const AT: &str = "startedAt";

pub fn name(rm: &RecModel) -> String {
    format!("{}-retrain-canary", rm.name_any())
}

/// `model_uri` passed the gates of `schedule` against `against`, the live version then; it
/// serves `weight` % of users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrainCanary {
    pub model_uri: String,
    pub weight: u32,
    pub against: String,
    pub schedule: String,
    pub version: String,
    pub at: String,
}

impl RetrainCanary {
    /// Whether the record still applies to a RecModel whose stable arm should run
    /// `stable_uri`: only against the version the run was compared with, and never the
    /// stable version itself (Git promoted it).
    pub fn applies_to(&self, stable_uri: &str) -> bool {
        self.against == stable_uri && self.model_uri != stable_uri
    }
}

pub fn configmap(rm: &RecModel, c: &RetrainCanary) -> ConfigMap {
    ConfigMap {
        metadata: child_meta(rm, name(rm), labels(&rm.name_any(), "retrain-canary")),
        data: Some(BTreeMap::from([
            (MODEL_URI.to_owned(), c.model_uri.clone()),
            (WEIGHT.to_owned(), c.weight.to_string()),
            (AGAINST.to_owned(), c.against.clone()),
            (SCHEDULE.to_owned(), c.schedule.clone()),
            (VERSION.to_owned(), c.version.clone()),
            (AT.to_owned(), c.at.clone()),
        ])),
        ..Default::default()
    }
}

/// The record, or `None` when a key is missing or the weight is outside 1..=50 (a record
/// edited by hand is ignored rather than trusted).
pub fn read(cm: &ConfigMap) -> Option<RetrainCanary> {
    let data = cm.data.as_ref()?;
    let weight: u32 = data.get(WEIGHT)?.parse().ok()?;
    if !(1..=50).contains(&weight) {
        return None;
    }
    Some(RetrainCanary {
        model_uri: data.get(MODEL_URI)?.clone(),
        weight,
        against: data.get(AGAINST)?.clone(),
        schedule: data.get(SCHEDULE)?.clone(),
        version: data.get(VERSION).cloned().unwrap_or_default(),
        at: data.get(AT).cloned().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rm() -> RecModel {
        serde_json::from_value(json!({
            "apiVersion": "recsys.dev/v1alpha1", "kind": "RecModel",
            "metadata": {"name": "movies", "namespace": "ns", "uid": "rm-uid"},
            "spec": {"modelUri": "s3://b/v1", "itemIndexRef": "ii"}
        }))
        .unwrap()
    }

    fn record() -> RetrainCanary {
        RetrainCanary {
            model_uri: "s3://b/v2".into(),
            weight: 10,
            against: "s3://b/v1".into(),
            schedule: "nightly".into(),
            version: "v2".into(),
            at: "2026-05-01T00:40:00Z".into(),
        }
    }

    #[test]
    fn a_record_round_trips_owned_by_the_recmodel() {
        let cm = configmap(&rm(), &record());
        assert_eq!(cm.metadata.name.as_deref(), Some("movies-retrain-canary"));
        assert_eq!(
            cm.metadata.owner_references.as_ref().unwrap()[0].uid,
            "rm-uid"
        );
        assert_eq!(read(&cm), Some(record()));
    }

    #[test]
    fn a_hand_edited_weight_or_a_missing_key_is_ignored() {
        for (key, value) in [
            (WEIGHT, Some("0")),
            (WEIGHT, Some("90")),
            (WEIGHT, Some("x")),
        ] {
            let mut cm = configmap(&rm(), &record());
            cm.data
                .as_mut()
                .unwrap()
                .insert(key.into(), value.unwrap().into());
            assert_eq!(read(&cm), None, "{key}={value:?}");
        }
        let mut cm = configmap(&rm(), &record());
        cm.data.as_mut().unwrap().remove(AGAINST);
        assert_eq!(read(&cm), None);
    }

    #[test]
    fn it_applies_only_against_the_version_it_beat() {
        let r = record();
        assert!(r.applies_to("s3://b/v1"));
        assert!(!r.applies_to("s3://b/v2"), "Git promoted it");
        assert!(!r.applies_to("s3://b/v3"), "the live version moved on");
    }
}
