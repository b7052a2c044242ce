//! Pure builders: a custom resource in, the Kubernetes objects it should own out. No API
//! calls here, so every rule about what we create is unit-tested without a cluster.

pub mod derived_index;
pub mod experiment;
pub mod index_job;
pub mod network;
pub mod pod;
pub mod probe;
pub mod retrain_canary;
pub mod router;
pub mod scaling;
pub mod serving;
pub mod training_job;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use std::collections::BTreeMap;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "recsys-operator";

/// gRPC port of data-plane containers.
pub const GRPC_PORT: i32 = 50051;
/// HTTP port (JSON API, probes' companion and `/metrics`).
pub const HTTP_PORT: i32 = 8080;

/// The label on everything the operator creates; its watches of child kinds select on it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The label selector of the operator's watches of the child kinds it creates.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={FIELD_MANAGER}")
}

/// Recommended labels (app.kubernetes.io/*) for one component of one custom resource.
pub fn labels(instance: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "recsys".into()),
        ("app.kubernetes.io/instance".into(), instance.into()),
        ("app.kubernetes.io/component".into(), component.into()),
        (MANAGED_BY.into(), FIELD_MANAGER.into()),
    ])
}

/// Metadata of a child: same namespace, labels, and a controller owner reference so that
/// deleting the parent lets the garbage collector delete the child.
pub fn child_meta<K: Resource<DynamicType = ()>>(
    owner: &K,
    name: String,
    mut labels: BTreeMap<String, String>,
) -> ObjectMeta {
    // Always: the operator's watches of child kinds only see objects carrying it.
    labels.insert(MANAGED_BY.into(), FIELD_MANAGER.into());
    ObjectMeta {
        name: Some(name),
        namespace: owner.meta().namespace.clone(),
        labels: Some(labels),
        owner_references: owner_reference(owner).map(|r| vec![r]),
        ..Default::default()
    }
}

fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    owner.controller_owner_ref(&())
}

/// The last path segment of an artifact URI: the model version it holds.
pub fn version_of(uri: &str) -> String {
    uri.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(uri)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_child_carries_the_label_the_watches_select_on() {
        let rm: crate::crd::v1alpha1::RecModel = serde_json::from_value(serde_json::json!({
            "apiVersion": "recsys.dev/v1alpha1", "kind": "RecModel",
            "metadata": {"name": "m", "namespace": "ns", "uid": "u"},
            "spec": {"modelUri": "s3://b/v1", "itemIndexRef": "ii"}
        }))
        .unwrap();
        let meta = child_meta(&rm, "x".into(), BTreeMap::new());
        assert_eq!(
            format!("{MANAGED_BY}={}", meta.labels.unwrap()[MANAGED_BY]),
            managed_selector()
        );
    }

    #[test]
    fn version_is_the_last_path_segment() {
        assert_eq!(version_of("s3://b/movies/v42/"), "v42");
        assert_eq!(version_of("/models/v1"), "v1");
    }
}
