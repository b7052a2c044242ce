//! How a Job the operator started ended, and the termination message its pod left: the one
//! channel by which a Job's container reports a result without the operator reading
//! object storage.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Running,
    /// Succeeded; the termination message of its successful container, if any.
    Succeeded(Option<String>),
    Failed(String),
}

impl JobOutcome {
    pub fn finished(&self) -> bool {
        !matches!(self, JobOutcome::Running)
    }
}

/// The Job's state from its conditions, and the message from its pods (label-selected, so a
/// pod of another Job is never read).
pub async fn outcome(job: &Job, pods: &Api<Pod>) -> Result<JobOutcome, kube::Error> {
    let status = job.status.clone().unwrap_or_default();
    let failed = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    if let Some(c) = failed {
        let why = match (&c.reason, &c.message) {
            (Some(r), Some(m)) => format!("{r}: {m}"),
            (Some(r), None) => r.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => format!("Job {} failed", job.name_any()),
        };
        return Ok(JobOutcome::Failed(why));
    }
    if status.succeeded.unwrap_or(0) < 1 {
        return Ok(JobOutcome::Running);
    }
    let selector = format!("batch.kubernetes.io/job-name={}", job.name_any());
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    let message = list
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .filter(|t| t.exit_code == 0)
        .find_map(|t| t.message.clone());
    Ok(JobOutcome::Succeeded(message))
}
