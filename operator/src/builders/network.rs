//! NetworkPolicies of a RecModel's data plane: only its router reaches the serving arms'
//! gRPC port; only the metrics scraper's namespace reaches any pod's metrics port; the
//! router's gRPC port is the RecModel's public entry; Redis pods the spec names admit only the
//! arms and the router. Ingress only: what the pods themselves reach (object storage) is the
//! cluster's egress policy to decide. Kubelet probes
//! come from the node and are not subject to these policies on the common CNIs.

use super::{child_meta, labels, GRPC_PORT, HTTP_PORT};
use crate::crd::v1alpha1::RecModel;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use std::collections::BTreeMap;

/// The label every namespace carries with its own name (set by the API server).
const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// Pods of one component of the RecModel (its instance and component labels).
fn component(rm: &RecModel, component: &str) -> LabelSelector {
    let all = labels(&rm.name_any(), component);
    let keep = ["app.kubernetes.io/instance", "app.kubernetes.io/component"];
    LabelSelector {
        match_labels: Some(
            all.into_iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn port(n: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(n)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn scraper(metrics_namespace: &str) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAMESPACE_NAME.to_owned(),
                    metrics_namespace.to_owned(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ports: Some(vec![port(HTTP_PORT)]),
    }
}

fn policy(
    rm: &RecModel,
    name: String,
    pods: LabelSelector,
    ingress: Vec<NetworkPolicyIngressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: child_meta(rm, name, labels(&rm.name_any(), "network-policy")),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            ..Default::default()
        }),
    }
}

pub fn serving_name(rm: &RecModel) -> String {
    format!("{}-serving", rm.name_any())
}

pub fn router_name(rm: &RecModel) -> String {
    format!("{}-router", rm.name_any())
}

pub fn redis_name(rm: &RecModel) -> String {
    format!("{}-redis", rm.name_any())
}

/// The Redis pods the spec names admit this RecModel's arms and router on the Redis port,
/// and nothing else (as far as this policy goes: policies add up).
pub fn redis_policy(rm: &RecModel) -> Option<NetworkPolicy> {
    let declared = rm.spec.redis.as_ref()?.network_policy.as_ref()?;
    // Never an empty selector: it would cut off every pod of the namespace.
    if declared.pod_selector.is_empty() {
        return None;
    }
    let clients = ["serving", "router"].map(|c| NetworkPolicyPeer {
        pod_selector: Some(component(rm, c)),
        ..Default::default()
    });
    Some(policy(
        rm,
        redis_name(rm),
        LabelSelector {
            match_labels: Some(declared.pod_selector.clone()),
            ..Default::default()
        },
        vec![NetworkPolicyIngressRule {
            from: Some(clients.to_vec()),
            ports: Some(vec![port(declared.port)]),
        }],
    ))
}

/// Both policies, for the scraper in `metrics_namespace`, and Redis's when the spec asks.
pub fn policies(rm: &RecModel, metrics_namespace: &str) -> Vec<NetworkPolicy> {
    let from_router = NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(component(rm, "router")),
            ..Default::default()
        }]),
        ports: Some(vec![port(GRPC_PORT)]),
    };
    let anyone_grpc = NetworkPolicyIngressRule {
        from: None,
        ports: Some(vec![port(GRPC_PORT)]),
    };
    vec![
        policy(
            rm,
            serving_name(rm),
            component(rm, "serving"),
            vec![from_router, scraper(metrics_namespace)],
        ),
        policy(
            rm,
            router_name(rm),
            component(rm, "router"),
            vec![anyone_grpc, scraper(metrics_namespace)],
        ),
    ]
    .into_iter()
    .chain(redis_policy(rm))
    .collect()
}
