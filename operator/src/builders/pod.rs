//! Pod-level settings every workload shares: the restricted Pod Security Standard, resources
//! (GPUs included), placement, and object-storage credentials by Secret reference.

use crate::crd::v1alpha1::{AuthSpec, Placement, ResourceSpec, TlsSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, EnvFromSource, KeyToPath, PodSecurityContext, ResourceRequirements,
    SeccompProfile, SecretEnvSource, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// Mount path of the model cache volume (an emptyDir): remote versions and indexes land here.
pub const MODEL_CACHE_DIR: &str = "/var/cache/recsys";

/// The server alone in the data-plane image: `recsys serve`'s flags (and `route` with `recsys
/// route`'s) without libtorch or any other training-only library. Serving and router pods run
/// it; jobs run the image's entrypoint, `recsys`.
pub const SERVE_BINARY: &str = "/usr/local/bin/recsys-serve";

/// UID/GID of the distroless "nonroot" user.
pub const NON_ROOT_ID: i64 = 65_532;

/// Pod security that passes the `restricted` Pod Security Standard.
pub fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT_ID),
        run_as_group: Some(NON_ROOT_ID),
        fs_group: Some(NON_ROOT_ID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Container security: no privilege escalation, no capabilities, read-only root filesystem.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Requests and limits. Memory limit = request (no overcommit for a latency-bound server);
/// no CPU limit (throttling hurts tail latency); GPUs as `nvidia.com/gpu` limits, which is
/// how the device plugin schedules them.
pub fn resources(spec: &ResourceSpec) -> ResourceRequirements {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if let Some(cpu) = &spec.cpu {
        requests.insert("cpu".to_owned(), Quantity(cpu.clone()));
    }
    if let Some(memory) = &spec.memory {
        requests.insert("memory".to_owned(), Quantity(memory.clone()));
        limits.insert("memory".to_owned(), Quantity(memory.clone()));
    }
    if let Some(gpus) = spec.gpus.filter(|&g| g > 0) {
        limits.insert("nvidia.com/gpu".to_owned(), Quantity(gpus.to_string()));
    }
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    }
}

/// A GPU pod must be able to land on tainted GPU nodes: add the conventional toleration
/// unless the user already tolerates that key.
pub fn tolerations(
    placement: &Placement,
    spec: &ResourceSpec,
) -> Option<Vec<k8s_openapi::api::core::v1::Toleration>> {
    let mut out = placement.tolerations.clone();
    if spec.gpus.unwrap_or(0) > 0
        && !out
            .iter()
            .any(|t| t.key.as_deref() == Some("nvidia.com/gpu"))
    {
        out.push(k8s_openapi::api::core::v1::Toleration {
            key: Some("nvidia.com/gpu".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        });
    }
    (!out.is_empty()).then_some(out)
}

pub fn node_selector(placement: &Placement) -> Option<BTreeMap<String, String>> {
    (!placement.node_selector.is_empty()).then(|| placement.node_selector.clone())
}

/// Environment from the storage Secret, when one is named.
pub fn env_from(secret: Option<&String>) -> Option<Vec<EnvFromSource>> {
    secret.map(|name| {
        vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: name.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }]
    })
}

/// Where the tokens Secret is mounted, and the file in it.
pub const AUTH_DIR: &str = "/var/run/secrets/recsys/auth";
pub const AUTH_TOKENS_FILE: &str = "/var/run/secrets/recsys/auth/tokens";

/// The tokens Secret as a read-only volume (a directory, not subPath, so rotations arrive).
pub fn auth_volume(auth: &AuthSpec) -> (Volume, VolumeMount) {
    (
        Volume {
            name: "auth-tokens".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(auth.token_secret_name.clone()),
                items: Some(vec![KeyToPath {
                    key: "tokens".into(),
                    path: "tokens".into(),
                    ..Default::default()
                }]),
                default_mode: Some(0o440),
                optional: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeMount {
            name: "auth-tokens".into(),
            mount_path: AUTH_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    )
}

/// Where the TLS Secret is mounted, and the files in it (cert-manager's key names).
pub const TLS_DIR: &str = "/var/run/secrets/recsys/tls";
pub const TLS_CERT_FILE: &str = "/var/run/secrets/recsys/tls/tls.crt";
pub const TLS_KEY_FILE: &str = "/var/run/secrets/recsys/tls/tls.key";
pub const TLS_CA_FILE: &str = "/var/run/secrets/recsys/tls/ca.crt";

/// The TLS Secret as a read-only volume (a directory, not subPath: the data plane re-reads
/// the files when cert-manager renews them).
pub fn tls_volume(tls: &TlsSpec) -> (Volume, VolumeMount) {
    let key = |k: &str| KeyToPath {
        key: k.into(),
        path: k.into(),
        ..Default::default()
    };
    (
        Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret_name.clone()),
                items: Some(vec![key("tls.crt"), key("tls.key"), key("ca.crt")]),
                default_mode: Some(0o440),
                optional: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeMount {
            name: "tls".into(),
            mount_path: TLS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    )
}

/// The flags that make both fronts of `serve` or `route` speak TLS with the mounted
/// certificate.
pub fn tls_args() -> Vec<String> {
    vec![
        "--tls-cert".into(),
        TLS_CERT_FILE.into(),
        "--tls-key".into(),
        TLS_KEY_FILE.into(),
    ]
}

/// Writable scratch space: with a read-only root filesystem, /tmp and the model cache are
/// emptyDir volumes.
pub fn scratch_volumes() -> (Vec<Volume>, Vec<VolumeMount>) {
    let volume = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(Default::default()),
        ..Default::default()
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    };
    (
        vec![volume("tmp"), volume("model-cache")],
        vec![mount("tmp", "/tmp"), mount("model-cache", MODEL_CACHE_DIR)],
    )
}
