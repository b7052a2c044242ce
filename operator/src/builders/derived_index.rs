//! Per-version indexes. A RecModel's `itemIndexRef` names the index settings (type, lists,
//! recall target) and the version it was built from; every other version a RecModel serves
//! (a new stable version, the canary) gets an ItemIndex of the same settings over its own item
//! vectors, owned by the RecModel. An index built from one version's vectors is never served
//! with another version's towers.

use super::{child_meta, labels};
use crate::crd::v1alpha1::{ItemIndex, ItemIndexSpec, RecModel};
use kube::ResourceExt;

/// Label naming the RecModel a derived index belongs to (for listing them).
pub const RECMODEL_LABEL: &str = "recsys.dev/recmodel";

/// FNV-1a of the model URI: a short, stable name part per version.
fn uri_digest(uri: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uri.trim_end_matches('/').bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", h >> 32)
}

pub fn name(rm: &RecModel, model_uri: &str) -> String {
    format!("{}-index-{}", rm.name_any(), uri_digest(model_uri))
}

/// Whether the referenced index itself covers `model_uri` (else a derived one does).
pub fn referenced_covers(template: &ItemIndex, model_uri: &str) -> bool {
    template.spec.model_uri.trim_end_matches('/') == model_uri.trim_end_matches('/')
}

/// The ItemIndex for `model_uri` with the settings of `template`.
pub fn item_index(rm: &RecModel, template: &ItemIndex, model_uri: &str) -> ItemIndex {
    let mut l = labels(&rm.name_any(), "index");
    l.insert(RECMODEL_LABEL.into(), rm.name_any());
    let spec = ItemIndexSpec {
        model_uri: model_uri.to_owned(),
        ..template.spec.clone()
    };
    let mut ii = ItemIndex::new(&name(rm, model_uri), spec);
    ii.metadata = child_meta(rm, name(rm, model_uri), l);
    ii
}

/// The published index of `index` when it holds `model_uri`'s vectors.
pub fn servable(index: &ItemIndex, model_uri: &str) -> Option<String> {
    let status = index.status.as_ref()?;
    let built_from = status.artifact_model_uri.as_deref()?;
    (built_from.trim_end_matches('/') == model_uri.trim_end_matches('/'))
        .then(|| status.artifact_uri.clone())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_per_version_and_differ_between_versions() {
        let rm: RecModel = serde_json::from_value(serde_json::json!({
            "apiVersion": "recsys.dev/v1alpha1", "kind": "RecModel",
            "metadata": {"name": "movies", "namespace": "ns", "uid": "u"},
            "spec": {"modelUri": "s3://b/v1", "itemIndexRef": "idx"}
        }))
        .unwrap();
        assert_eq!(name(&rm, "s3://b/v2"), name(&rm, "s3://b/v2/"));
        assert_ne!(name(&rm, "s3://b/v2"), name(&rm, "s3://b/v3"));
        assert!(name(&rm, "s3://b/v2").starts_with("movies-index-"));
    }
}
