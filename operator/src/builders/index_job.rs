//! The index-build Job of an ItemIndex and the result it reports back. The Job's container
//! writes one JSON line to its termination message; the controller reads it from the pod and
//! copies it into the ItemIndex status.

use super::pod::{
    container_security, env_from, node_selector, pod_security, resources, scratch_volumes,
};
use super::{child_meta, labels};
use crate::crd::v1alpha1::{IndexType, ItemIndex, Placement};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

/// What a finished build reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildResult {
    pub items: i64,
    /// Mean recall@k against exact search on a sample of queries.
    pub recall: f64,
    pub artifact_uri: String,
    pub build_seconds: f64,
}

/// Parses the termination message of a build container.
pub fn parse_result(message: &str) -> Result<BuildResult, String> {
    let line = message
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("no JSON result in the termination message {message:?}"))?;
    let result: BuildResult =
        serde_json::from_str(line).map_err(|e| format!("unreadable build result: {e}"))?;
    if !(0.0..=1.0).contains(&result.recall) || result.items < 0 {
        return Err(format!("implausible build result {line}"));
    }
    Ok(result)
}

fn type_arg(t: IndexType) -> &'static str {
    match t {
        IndexType::Flat => "flat",
        IndexType::Ivf => "ivf",
        IndexType::Hnsw => "hnsw",
        IndexType::IvfPq => "ivfpq",
        IndexType::IvfSq8 => "ivfsq8",
    }
}

/// A short, stable digest of the spec: a changed spec gets a new Job (Job templates are
/// immutable), an unchanged one finds the Job it already made.
pub fn spec_digest(ii: &ItemIndex) -> String {
    // FNV-1a: tiny, and stable across releases (a new hash would rebuild every index).
    let text = serde_json::to_string(&ii.spec).expect("specs serialize");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", h >> 32)
}

pub fn job_name(ii: &ItemIndex) -> String {
    format!("{}-build-{}", ii.name_any(), spec_digest(ii))
}

/// Where the build publishes the index: beside the model, one directory per ItemIndex.
pub fn output_uri(ii: &ItemIndex) -> String {
    format!(
        "{}/index/{}-{}",
        ii.spec.model_uri.trim_end_matches('/'),
        ii.name_any(),
        spec_digest(ii)
    )
}

pub fn job(ii: &ItemIndex, image: &str) -> Job {
    let spec = &ii.spec;
    let mut args = vec![
        "build-index".to_owned(),
        "--model-dir".into(),
        spec.model_uri.clone(),
        "--output".into(),
        output_uri(ii),
        "--type".into(),
        type_arg(spec.index_type).into(),
        "--recall-target".into(),
        spec.recall_target.to_string(),
        "--recall-k".into(),
        spec.recall_k.to_string(),
        "--result-file".into(),
        "/dev/termination-log".into(),
    ];
    for (flag, value) in [
        ("--nlist", spec.nlist),
        ("--nprobe", spec.nprobe),
        ("--m", spec.hnsw_m.or(spec.pq_m)),
        ("--ef-search", spec.ef_search),
    ] {
        if let Some(v) = value {
            args.extend([flag.to_owned(), v.to_string()]);
        }
    }
    let (volumes, mounts) = scratch_volumes();
    let job_labels = labels(&ii.name_any(), "index-build");
    let no_placement = Placement::default();
    Job {
        metadata: child_meta(ii, job_name(ii), job_labels.clone()),
        spec: Some(JobSpec {
            backoff_limit: Some(2),
            active_deadline_seconds: Some(6 * 3600),
            // Kept a day for inspection; the status already holds the result by then.
            ttl_seconds_after_finished: Some(86_400),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "build".into(),
                        image: Some(image.to_owned()),
                        args: Some(args),
                        env_from: env_from(spec.storage_secret_name.as_ref()),
                        resources: Some(resources(&spec.resources)),
                        security_context: Some(container_security()),
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
                        volume_mounts: Some(mounts),
                        ..Default::default()
                    }],
                    security_context: Some(pod_security()),
                    automount_service_account_token: Some(false),
                    node_selector: node_selector(&no_placement),
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}
