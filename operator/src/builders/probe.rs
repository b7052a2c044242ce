//! Health probes and scrape annotations of data-plane containers. Without TLS the kubelet
//! asks `grpc.health.v1` on the gRPC port. Its gRPC probe cannot speak TLS, so with TLS the
//! probes are HTTPS GETs of the HTTP port (the kubelet does not verify a probe's
//! certificate): `/readyz` turns away traffic from SIGTERM on, as gRPC health does, and
//! `/healthz` says the process is alive.

use super::{GRPC_PORT, HTTP_PORT};
use k8s_openapi::api::core::v1::{GRPCAction, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// What a probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Startup and readiness: may this pod get traffic?
    Ready,
    /// Liveness: is the process still answering at all?
    Alive,
}

pub fn probe(tls: bool, check: Check, period: i32, failures: i32) -> Probe {
    let mut probe = Probe {
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    if tls {
        probe.http_get = Some(HTTPGetAction {
            path: Some(
                match check {
                    Check::Ready => "/readyz",
                    Check::Alive => "/healthz",
                }
                .into(),
            ),
            port: IntOrString::String("http".into()),
            scheme: Some("HTTPS".into()),
            ..Default::default()
        });
    } else {
        probe.grpc = Some(GRPCAction {
            port: GRPC_PORT,
            service: None,
            mode: None,
        });
    }
    probe
}

/// The pod annotations annotation-based Prometheus discovery reads; with TLS the scrape is
/// HTTPS (the scrape job's `tls_config` names the CA).
pub fn scrape_annotations(tls: bool) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([
        ("prometheus.io/scrape".into(), "true".into()),
        ("prometheus.io/port".into(), HTTP_PORT.to_string()),
    ]);
    if tls {
        a.insert("prometheus.io/scheme".into(), "https".into());
    }
    a
}
