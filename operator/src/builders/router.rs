//! The router in front of the arms: its routing table (a ConfigMap the router reloads when
//! it changes), its Deployment and the RecModel's public Service.

use super::pod::{container_security, pod_security, scratch_volumes};
use super::probe::{probe, scrape_annotations, Check};
use super::serving::{self, Arm};
use super::{child_meta, labels, version_of, GRPC_PORT, HTTP_PORT};
use crate::crd::v1alpha1::RecModel;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, PodSpec, PodTemplateSpec, Service,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;
use recsys_core::routing::{RoutingError, RoutingTable, WeightedArm};
use std::collections::BTreeMap;

pub const TABLE_KEY: &str = "routing.json";
const TABLE_DIR: &str = "/etc/recsys/routing";

pub fn name(rm: &RecModel) -> String {
    format!("{}-router", rm.name_any())
}

pub fn configmap_name(rm: &RecModel) -> String {
    format!("{}-routing", rm.name_any())
}

/// The arms the routing table sends users to: the stable version, and the canary only once
/// its pods are ready (the controller decides; the builder just lays the buckets out).
#[derive(Debug, Clone, PartialEq)]
pub struct Routed<'a> {
    pub stable_uri: &'a str,
    /// The canary's model URI and percent of users.
    pub canary: Option<(&'a str, u32)>,
    /// An experiment's salt while it holds the second arm (fresh users per experiment).
    pub salt: Option<&'a str>,
}

/// Stable gets 100 − w percent of the buckets, the canary w. The salt is the RecModel's uid
/// so that users keep their arm across weight changes of the same canary (buckets are laid
/// out from 0 upwards, so raising w only moves users from stable to canary, never back).
pub fn routing_table(rm: &RecModel, routed: &Routed) -> Result<RoutingTable, RoutingError> {
    let weight = routed.canary.map_or(0, |(_, w)| w);
    // The host is the arm's Service name: the name the router verifies its certificate by.
    let scheme = if rm.spec.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut arms = vec![WeightedArm {
        name: Arm::Stable.as_str().into(),
        endpoint: format!("{scheme}://{}:{GRPC_PORT}", serving::name(rm, Arm::Stable)),
        model_version: version_of(routed.stable_uri),
        weight: 100 - weight,
    }];
    if let Some((uri, w)) = routed.canary.filter(|&(_, w)| w > 0) {
        arms.push(WeightedArm {
            name: Arm::Canary.as_str().into(),
            endpoint: format!("{scheme}://{}:{GRPC_PORT}", serving::name(rm, Arm::Canary)),
            model_version: version_of(uri),
            weight: w,
        });
    }
    let salt = match routed.salt {
        Some(s) if weight > 0 => s.to_owned(),
        _ => rm.uid().unwrap_or_else(|| rm.name_any()),
    };
    RoutingTable::from_weights(&salt, &arms)
}

/// The routing table as the spec asks for it (both arms at their weights).
pub fn requested(rm: &RecModel) -> Routed<'_> {
    Routed {
        stable_uri: &rm.spec.model_uri,
        canary: rm
            .spec
            .canary
            .as_ref()
            .map(|c| (c.model_uri.as_str(), c.weight)),
        salt: None,
    }
}

pub fn configmap(rm: &RecModel, routed: &Routed) -> Result<ConfigMap, RoutingError> {
    let table = routing_table(rm, routed)?;
    let json = serde_json::to_string_pretty(&table).expect("routing tables serialize");
    Ok(ConfigMap {
        metadata: child_meta(rm, configmap_name(rm), labels(&rm.name_any(), "router")),
        data: Some(BTreeMap::from([(TABLE_KEY.to_owned(), json)])),
        ..Default::default()
    })
}

fn selector(rm: &RecModel) -> BTreeMap<String, String> {
    labels(&rm.name_any(), "router")
}

pub fn deployment(rm: &RecModel) -> Deployment {
    let (mut volumes, mut mounts) = scratch_volumes();
    let mut auth_args: Vec<String> = Vec::new();
    if let Some(auth) = &rm.spec.auth {
        let (volume, mount) = super::pod::auth_volume(auth);
        volumes.push(volume);
        mounts.push(mount);
        // One Secret: the tokens clients present, and the one the router presents to arms.
        auth_args = vec![
            "--auth-tokens-file".into(),
            super::pod::AUTH_TOKENS_FILE.into(),
            "--arm-token-file".into(),
            super::pod::AUTH_TOKENS_FILE.into(),
            "--recommend-auth".into(),
            if auth.require_token_for_recommend {
                "token"
            } else {
                "open"
            }
            .into(),
        ];
    }
    let tls = rm.spec.tls.is_some();
    let mut tls_args = Vec::new();
    if let Some(t) = &rm.spec.tls {
        let (volume, mount) = super::pod::tls_volume(t);
        volumes.push(volume);
        mounts.push(mount);
        // Its own certificate for clients; the CA that signed the arms' for the calls to them.
        tls_args = super::pod::tls_args();
        tls_args.extend(["--arm-ca-file".into(), super::pod::TLS_CA_FILE.into()]);
    }
    volumes.push(Volume {
        name: "routing".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: configmap_name(rm),
            ..Default::default()
        }),
        ..Default::default()
    });
    // Mounted as a directory (not subPath) so the kubelet updates the file in place and the
    // router sees new weights without a restart.
    mounts.push(VolumeMount {
        name: "routing".into(),
        mount_path: TABLE_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    });
    let container = Container {
        name: "router".into(),
        image: Some(rm.spec.image.clone()),
        // The lean server binary, as serving pods run it: no libtorch, no training code.
        command: Some(vec![super::pod::SERVE_BINARY.to_owned()]),
        args: Some(
            [
                "route".into(),
                "--table".into(),
                format!("{TABLE_DIR}/{TABLE_KEY}"),
                "--addr".into(),
                format!("0.0.0.0:{GRPC_PORT}"),
                "--http-addr".into(),
                format!("0.0.0.0:{HTTP_PORT}"),
            ]
            .into_iter()
            .chain(auth_args)
            .chain(tls_args)
            .collect(),
        ),
        // Experiment sums are shared by the router replicas through the RecModel's Redis.
        env: Some(serving::redis_env(rm)).filter(|e| !e.is_empty()),
        ports: Some(vec![
            ContainerPort {
                name: Some("grpc".into()),
                container_port: GRPC_PORT,
                ..Default::default()
            },
            ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT,
                ..Default::default()
            },
        ]),
        security_context: Some(container_security()),
        readiness_probe: Some(probe(tls, Check::Ready, 5, 3)),
        liveness_probe: Some(probe(tls, Check::Alive, 10, 3)),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    Deployment {
        metadata: child_meta(rm, name(rm), selector(rm)),
        spec: DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(selector(rm)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector(rm)),
                    // Prometheus scrapes the experiment sums here.
                    annotations: Some(scrape_annotations(tls)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(pod_security()),
                    automount_service_account_token: Some(false),
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        status: None,
    }
}

/// The RecModel's public endpoint: a Service named after it, in front of the router.
pub fn service(rm: &RecModel) -> Service {
    Service {
        metadata: child_meta(rm, rm.name_any(), selector(rm)),
        spec: Some(ServiceSpec {
            selector: Some(selector(rm)),
            ports: Some(
                serving::ports(rm.spec.tls.is_some())
                    .into_iter()
                    .take(1)
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}
