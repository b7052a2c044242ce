//! What an Experiment means for its RecModel, without a client: which experiment holds the
//! RecModel's second arm, the salt it routes by, and the operator-owned record of a promotion.

use super::{child_meta, labels};
use crate::crd::v1alpha1::{phase, Experiment, RecModel};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use std::collections::BTreeMap;

/// Keys of the promotion ConfigMap.
pub const PROMOTED_FROM: &str = "promotedFrom";
pub const PROMOTED_TO: &str = "modelUri";
pub const PROMOTED_BY: &str = "experiment";
pub const PROMOTED_AT: &str = "promotedAt";

/// The experiment that holds `rm`'s second arm: the oldest one naming it that has not
/// concluded and is not being deleted (ties broken by name, so every reader agrees).
pub fn active_for<'a>(rm: &str, experiments: &'a [Experiment]) -> Option<&'a Experiment> {
    experiments
        .iter()
        .filter(|e| e.spec.rec_model == rm && e.metadata.deletion_timestamp.is_none())
        .filter(|e| e.status.as_ref().and_then(|s| s.phase.as_deref()) != Some(phase::CONCLUDED))
        .min_by(|a, b| {
            let key = |e: &Experiment| {
                (
                    e.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    e.name_any(),
                )
            };
            key(a).cmp(&key(b))
        })
}

/// The salt of the experiment's routing table: its own, else its uid.
pub fn salt(e: &Experiment) -> String {
    e.spec
        .salt
        .clone()
        .or_else(|| e.uid())
        .unwrap_or_else(|| e.name_any())
}

pub fn promotion_name(rm: &RecModel) -> String {
    format!("{}-promotion", rm.name_any())
}

/// A promotion: `experiment` showed `to` better than `from`, the version the RecModel's spec
/// named. Owned by the RecModel (deleted with it), never part of anyone's Git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub from: String,
    pub to: String,
    pub experiment: String,
    pub at: String,
}

pub fn promotion_configmap(rm: &RecModel, p: &Promotion) -> ConfigMap {
    ConfigMap {
        metadata: child_meta(rm, promotion_name(rm), labels(&rm.name_any(), "promotion")),
        data: Some(BTreeMap::from([
            (PROMOTED_FROM.to_owned(), p.from.clone()),
            (PROMOTED_TO.to_owned(), p.to.clone()),
            (PROMOTED_BY.to_owned(), p.experiment.clone()),
            (PROMOTED_AT.to_owned(), p.at.clone()),
        ])),
        ..Default::default()
    }
}

pub fn read_promotion(cm: &ConfigMap) -> Option<Promotion> {
    let data = cm.data.as_ref()?;
    Some(Promotion {
        from: data.get(PROMOTED_FROM)?.clone(),
        to: data.get(PROMOTED_TO)?.clone(),
        experiment: data.get(PROMOTED_BY)?.clone(),
        at: data.get(PROMOTED_AT).cloned().unwrap_or_default(),
    })
}

/// Durations as `90s`, `15m`, `36h`, `7d` (or combined, `1d12h`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "duration {s:?}: unknown unit {c:?} (use s, m, h or d)"
                ))
            }
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("duration {s:?}: a number must precede {c:?}"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(format!(
            "duration {s:?}: expected e.g. 90s, 15m, 36h or 7d, and more than zero"
        ));
    }
    Ok(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exp(name: &str, created: &str, phase: Option<&str>) -> Experiment {
        let mut e: Experiment = serde_json::from_value(json!({
            "apiVersion": "recsys.dev/v1alpha1", "kind": "Experiment",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "creationTimestamp": created},
            "spec": {"recModel": "movies", "treatment": {"modelUri": "s3://b/v2"}}
        }))
        .unwrap();
        if let Some(p) = phase {
            e.status = Some(crate::crd::v1alpha1::ExperimentStatus {
                phase: Some(p.into()),
                ..Default::default()
            });
        }
        e
    }

    #[test]
    fn the_oldest_unconcluded_experiment_holds_the_arm() {
        let list = vec![
            exp("b", "2026-01-02T00:00:00Z", None),
            exp("a", "2026-01-01T00:00:00Z", Some("Concluded")),
            exp("c", "2026-01-02T00:00:00Z", Some("Running")),
        ];
        assert_eq!(active_for("movies", &list).unwrap().name_any(), "b");
        assert!(active_for("other", &list).is_none());
        assert_eq!(salt(&list[0]), "uid-b");
    }

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("1d12h").unwrap().as_secs(), 129_600);
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
