//! Serving metrics, Prometheus conventions: `_total` counters, `_seconds` histograms, bounded
//! labels (methods, gRPC codes, stages, cache names, validated feedback event types; never a
//! string a client chose).

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct ServingMetrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub stage_seconds: HistogramVec,
    pub fallbacks: IntCounterVec,
    pub feedback: IntCounterVec,
    pub cache: IntCounterVec,
    pub reloads: IntCounterVec,
    pub model_info: IntGaugeVec,
    /// Requests refused at once because the queue was full.
    pub shed: IntCounter,
    /// PSI per declared user feature of the served version (labels: the version's feature
    /// names, a fixed set, and its version).
    pub feature_psi: GaugeVec,
}

const LATENCY_BUCKETS: [f64; 14] = [
    0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
];

impl Default for ServingMetrics {
    fn default() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
            .expect("valid metric")
        };
        let m = Self {
            registry: Registry::new(),
            requests: counter(
                "recsys_requests_total",
                "Requests by method and gRPC status code.",
                &["method", "code"],
            ),
            request_seconds: histogram(
                "recsys_request_duration_seconds",
                "End-to-end request latency by method.",
                &["method"],
            ),
            stage_seconds: histogram(
                "recsys_stage_duration_seconds",
                "Latency of each stage of the recommendation path.",
                &["stage"],
            ),
            fallbacks: counter(
                "recsys_fallbacks_total",
                "Requests answered with popular items, by reason.",
                &["reason"],
            ),
            feedback: counter(
                "recsys_feedback_events_total",
                "Accepted feedback events by event type.",
                &["event_type"],
            ),
            cache: counter(
                "recsys_cache_requests_total",
                "Cache lookups by cache (user_embedding, online_features, predictions, item_metadata) and result (hit, partial, miss, error).",
                &["cache", "result"],
            ),
            reloads: counter(
                "recsys_model_reloads_total",
                "Model version loads by result (loaded, refused).",
                &["result"],
            ),
            model_info: IntGaugeVec::new(
                Opts::new(
                    "recsys_model_info",
                    "The model version being served (value 1).",
                ),
                &["version", "variant"],
            )
            .expect("valid metric"),
            shed: IntCounter::new(
                "recsys_requests_shed_total",
                "Requests answered RESOURCE_EXHAUSTED because the queue for compute was full.",
            )
            .expect("valid metric"),
            feature_psi: GaugeVec::new(
                Opts::new(
                    "recsys_feature_psi",
                    "Population stability index of each declared user feature: this server's requests over the drift window against the version's training requests.",
                ),
                &["feature", "version"],
            )
            .expect("valid metric"),
        };
        for c in [
            Box::new(m.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.request_seconds.clone()),
            Box::new(m.stage_seconds.clone()),
            Box::new(m.fallbacks.clone()),
            Box::new(m.feedback.clone()),
            Box::new(m.cache.clone()),
            Box::new(m.reloads.clone()),
            Box::new(m.model_info.clone()),
            Box::new(m.shed.clone()),
            Box::new(m.feature_psi.clone()),
        ] {
            m.registry.register(c).expect("unique metric names");
        }
        m
    }
}

impl ServingMetrics {
    /// Counts a finished request by method and gRPC code, with its latency.
    pub fn observe(&self, method: &str, started: std::time::Instant, code: tonic::Code) {
        self.requests
            .with_label_values(&[method, &format!("{code:?}")])
            .inc();
        self.request_seconds
            .with_label_values(&[method])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Marks `version` as the one served (and no other).
    pub fn set_model(&self, version: &str, variant: &str) {
        self.model_info.reset();
        self.model_info
            .with_label_values(&[version, variant])
            .set(1);
    }

    /// Publishes the served version's PSI values; other versions' series go.
    pub fn set_drift(&self, version: &str, values: &[(String, f64)]) {
        self.feature_psi.reset();
        for (feature, psi) in values {
            self.feature_psi
                .with_label_values(&[feature.as_str(), version])
                .set(*psi);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_served_version_is_reported() {
        let m = ServingMetrics::default();
        m.set_model("v1", "stable");
        m.set_model("v2", "stable");
        let text = m.render();
        assert!(text.contains("recsys_model_info{variant=\"stable\",version=\"v2\"} 1"));
        assert!(!text.contains("version=\"v1\""));
    }
}
