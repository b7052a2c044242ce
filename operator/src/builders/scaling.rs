//! Capacity objects: the stable arm's HorizontalPodAutoscaler and PodDisruptionBudgets.

use super::serving::{self, Arm};
use super::{child_meta, labels, router};
use crate::crd::v1alpha1::RecModel;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use std::collections::BTreeMap;

/// CPU-based autoscaling of the stable arm, when the spec asks for it.
pub fn hpa(rm: &RecModel) -> Option<HorizontalPodAutoscaler> {
    let auto = rm.spec.autoscaling.as_ref()?;
    let name = serving::name(rm, Arm::Stable);
    Some(HorizontalPodAutoscaler {
        metadata: child_meta(rm, name.clone(), serving::selector(rm, Arm::Stable)),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name,
            },
            min_replicas: Some(auto.min_replicas),
            max_replicas: auto.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(auto.target_cpu_percent),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        },
        status: None,
    })
}

fn pdb(rm: &RecModel, name: String, selector: BTreeMap<String, String>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: child_meta(rm, name, selector.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// Voluntary disruptions (node drains) take at most one pod at a time from the stable arm —
/// only when it has more than one pod, or a drain could never finish — and from the router.
pub fn pdbs(rm: &RecModel) -> Vec<PodDisruptionBudget> {
    let stable_min = rm
        .spec
        .autoscaling
        .as_ref()
        .map_or(rm.spec.replicas, |a| a.min_replicas);
    let mut out = Vec::new();
    if stable_min > 1 {
        out.push(pdb(
            rm,
            serving::name(rm, Arm::Stable),
            serving::selector(rm, Arm::Stable),
        ));
    }
    out.push(pdb(rm, router::name(rm), labels(&rm.name_any(), "router")));
    out
}
