//! Serving Deployments and Services, one pair per arm (stable, and canary when set).

use super::pod::{
    container_security, env_from, node_selector, pod_security, resources, scratch_volumes,
    tolerations,
};
use super::probe::{probe, scrape_annotations, Check};
use super::{child_meta, labels, version_of, GRPC_PORT, HTTP_PORT};
use crate::crd::v1alpha1::RecModel;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, PodTemplateSpec,
    SecretKeySelector, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use std::collections::BTreeMap;

/// Which model version a serving Deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Stable,
    Canary,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Stable => "stable",
            Arm::Canary => "canary",
        }
    }
}

/// The arms a RecModel asks for, with the artifact each one serves.
pub fn arms(rm: &RecModel) -> Vec<(Arm, &str)> {
    let mut out = vec![(Arm::Stable, rm.spec.model_uri.as_str())];
    if let Some(canary) = &rm.spec.canary {
        out.push((Arm::Canary, canary.model_uri.as_str()));
    }
    out
}

pub fn name(rm: &RecModel, arm: Arm) -> String {
    format!("{}-{}", rm.name_any(), arm.as_str())
}

/// Selector labels of an arm's pods.
pub fn selector(rm: &RecModel, arm: Arm) -> BTreeMap<String, String> {
    let mut l = labels(&rm.name_any(), "serving");
    l.insert("recsys.dev/arm".into(), arm.as_str().into());
    l
}

/// Replicas of an arm. Stable: the spec's count, or none at all under autoscaling (the HPA
/// owns the field, and server-side apply must not fight it). Canary: its share of the stable
/// count by weight, at least one pod so a ramp-up never starts cold.
fn replicas(rm: &RecModel, arm: Arm) -> Option<i32> {
    match arm {
        Arm::Stable if rm.spec.autoscaling.is_some() => None,
        Arm::Stable => Some(rm.spec.replicas),
        Arm::Canary => {
            let weight = rm.spec.canary.as_ref().map_or(0, |c| c.weight) as i32;
            let base = rm
                .spec
                .autoscaling
                .as_ref()
                .map_or(rm.spec.replicas, |a| a.min_replicas);
            Some(((base * weight + 99) / 100).max(1))
        }
    }
}

/// Where the pod buffers accepted feedback: the cache volume survives container restarts.
pub const FEEDBACK_WAL_DIR: &str = "/var/cache/recsys/feedback";

fn feedback_args(rm: &RecModel) -> Vec<String> {
    let Some(f) = &rm.spec.feedback else {
        return Vec::new();
    };
    vec![
        "--feedback-wal-dir".into(),
        FEEDBACK_WAL_DIR.into(),
        "--feedback-sink".into(),
        f.uri.clone(),
        "--feedback-flush-secs".into(),
        f.flush_seconds.to_string(),
    ]
}

fn secret_env(name: &str, key: &crate::crd::v1alpha1::SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: key.name.clone(),
                key: key.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Redis by Secret reference (URL, and password when given).
pub fn redis_env(rm: &RecModel) -> Vec<EnvVar> {
    let mut env = Vec::new();
    if let Some(redis) = &rm.spec.redis {
        env.push(secret_env("RECSYS_REDIS_URL", &redis.url_secret_ref));
        if let Some(p) = &redis.password_secret_ref {
            env.push(secret_env("RECSYS_REDIS_PASSWORD", p));
        }
    }
    env
}

/// The pod's name (feedback files are named after it) and Redis by Secret reference.
fn serving_env(rm: &RecModel) -> Option<Vec<EnvVar>> {
    let mut env = vec![EnvVar {
        name: "POD_NAME".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    env.extend(redis_env(rm));
    Some(env)
}

/// With `spec.auth`, an arm accepts calls only from token holders (the router): Feedback and
/// Recommend alike. Without it, Feedback is refused.
fn auth_args(rm: &RecModel) -> Vec<String> {
    match &rm.spec.auth {
        Some(_) => vec![
            "--auth-tokens-file".into(),
            super::pod::AUTH_TOKENS_FILE.into(),
            "--recommend-auth".into(),
            "token".into(),
        ],
        None => Vec::new(),
    }
}

/// The serving Deployment of one arm.
pub fn deployment(rm: &RecModel, arm: Arm, model_uri: &str, index_uri: &str) -> Deployment {
    let spec = &rm.spec;
    let selector = selector(rm, arm);
    let (mut volumes, mut mounts) = scratch_volumes();
    if let Some(auth) = &spec.auth {
        let (volume, mount) = super::pod::auth_volume(auth);
        volumes.push(volume);
        mounts.push(mount);
    }
    let tls = spec.tls.is_some();
    let mut tls_args = Vec::new();
    if let Some(t) = &spec.tls {
        let (volume, mount) = super::pod::tls_volume(t);
        volumes.push(volume);
        mounts.push(mount);
        tls_args = super::pod::tls_args();
    }
    let serving = &spec.serving;
    let container = Container {
        name: "recsys".into(),
        image: Some(spec.image.clone()),
        command: Some(vec![super::pod::SERVE_BINARY.to_owned()]),
        args: Some(
            vec![
                "--model-dir".to_owned(),
                model_uri.into(),
                "--index-dir".into(),
                index_uri.into(),
                "--addr".into(),
                format!("0.0.0.0:{GRPC_PORT}"),
                "--http-addr".into(),
                format!("0.0.0.0:{HTTP_PORT}"),
                "--candidates".into(),
                serving.candidates.to_string(),
                "--max-per-category".into(),
                serving.max_per_category.to_string(),
                "--variant".into(),
                arm.as_str().into(),
                // Remote versions and indexes are copied here and verified before the pod is ready.
                "--cache-dir".into(),
                super::pod::MODEL_CACHE_DIR.into(),
            ]
            .into_iter()
            .chain(feedback_args(rm))
            .chain(auth_args(rm))
            .chain(tls_args)
            .collect(),
        ),
        env: serving_env(rm),
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
        env_from: env_from(spec.storage_secret_name.as_ref()),
        resources: Some(resources(&spec.resources)),
        security_context: Some(container_security()),
        // Loading a model can take a while; liveness starts only once startup succeeded.
        startup_probe: Some(probe(tls, Check::Ready, 5, 60)),
        readiness_probe: Some(probe(tls, Check::Ready, 5, 2)),
        liveness_probe: Some(probe(tls, Check::Alive, 10, 3)),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let mut pod_labels = selector.clone();
    pod_labels.insert("recsys.dev/model-version".into(), version_of(model_uri));
    Deployment {
        metadata: child_meta(rm, name(rm, arm), pod_labels.clone()),
        spec: DeploymentSpec {
            replicas: replicas(rm, arm),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            // Never drop below the serving capacity during a rollout.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(scrape_annotations(tls)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(pod_security()),
                    automount_service_account_token: Some(false),
                    node_selector: node_selector(&spec.placement),
                    tolerations: tolerations(&spec.placement, &spec.resources),
                    volumes: Some(volumes),
                    termination_grace_period_seconds: Some(30),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        status: None,
    }
}

/// The ClusterIP Service in front of one arm's pods; the router forwards to it.
pub fn service(rm: &RecModel, arm: Arm) -> Service {
    let selector = selector(rm, arm);
    Service {
        metadata: child_meta(rm, name(rm, arm), selector.clone()),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(ports(rm.spec.tls.is_some())),
            ..Default::default()
        }),
        status: None,
    }
}

/// The Service ports of the data plane; gRPC in clear text is marked h2c for meshes and
/// gateways (no standard name exists for gRPC over TLS, so then it stays unmarked).
pub fn ports(tls: bool) -> Vec<ServicePort> {
    vec![
        ServicePort {
            name: Some("grpc".into()),
            port: GRPC_PORT,
            target_port: Some(IntOrString::String("grpc".into())),
            app_protocol: (!tls).then(|| "kubernetes.io/h2c".into()),
            ..Default::default()
        },
        ServicePort {
            name: Some("http".into()),
            port: HTTP_PORT,
            target_port: Some(IntOrString::String("http".into())),
            ..Default::default()
        },
    ]
}
