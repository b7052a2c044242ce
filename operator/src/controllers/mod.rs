//! Controllers: read the world, apply what the builders say should exist, write status.
//! Everything they create goes through server-side apply under one field manager; they never
//! write a user's spec, so GitOps tools see no drift.

pub mod apply;
pub mod conditions;
pub mod experiment;
pub mod item_index;
pub mod job_outcome;
pub mod policy;
pub mod rec_model;
pub mod retrain;

use crate::runtime::metrics::Metrics;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource};
use std::sync::Arc;
use thiserror::Error;

/// What every reconcile gets.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes Events; `None` in tests that do not look at them.
    pub recorder: Option<Recorder>,
    /// Data-plane image for Jobs whose spec does not name one.
    pub dataplane_image: String,
    /// How long routers take to pick up a new routing table (the kubelet's ConfigMap sync
    /// plus the router's poll): a canary leaves the table this long before its pods go.
    pub router_reload: std::time::Duration,
    /// Prometheus base URL for Experiments that do not name one.
    pub prometheus_url: Option<String>,
    /// With a namespace (the metrics scraper's), every RecModel gets NetworkPolicies letting
    /// only its router reach the arms' gRPC and only that namespace the metrics ports.
    pub network_policy_metrics_namespace: Option<String>,
    /// Which images and Secrets a RecModel may use.
    pub policy: policy::Policy,
}

/// The kubelet refreshes mounted ConfigMaps about once a minute (its sync period plus the
/// cache TTL); the router polls its file every second.
pub const DEFAULT_ROUTER_RELOAD: std::time::Duration = std::time::Duration::from_secs(90);

#[derive(Debug, Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{kind} {name} has no namespace")]
    MissingNamespace { kind: &'static str, name: String },
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
}

impl Error {
    /// A bounded label for the error metric.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::MissingNamespace { .. } | Error::InvalidSpec(_) => "spec",
        }
    }
}

impl Context {
    /// Publishes an event about `obj`; failures are logged, never fatal — an event is
    /// a courtesy to humans, not part of the reconcile.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

pub type Shared = Arc<Context>;
