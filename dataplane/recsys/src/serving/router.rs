//! `recsys route`: the sticky experiment router. Every request's user goes to the arm owning
//! `hash(salt, user_id) mod 10000` in the routing table (the operator's ConfigMap, a file
//! here), which is reloaded when it changes — a bad table is refused and the old one kept.

use super::experiment_stats::{Counter, ExperimentStats};
use super::metrics::ServingMetrics;
use super::state::validate;
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::recommender_server::Recommender;
use recsys_api::v1::{FeedbackRequest, FeedbackResponse, RecommendRequest, RecommendResponse};
use recsys_core::routing::{bucket, RoutingTable};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// One experiment update: arm, user, and what to add (none: an exposure only).
type Update = (String, String, Option<(Counter, f64)>);

pub struct RouterState {
    table: RwLock<Arc<RoutingTable>>,
    clients: Mutex<HashMap<String, RecommenderClient<Channel>>>,
    pub metrics: ServingMetrics,
    /// Exposures and per-user outcomes by the arm the table assigns (shared via Redis).
    pub experiment: Arc<ExperimentStats>,
}

/// Reads and checks a routing table file.
pub fn read_table(path: &Path) -> anyhow::Result<RoutingTable> {
    let table: RoutingTable = serde_json::from_slice(&std::fs::read(path)?)?;
    table.validate()?;
    Ok(table)
}

impl RouterState {
    pub fn new(table: RoutingTable) -> Self {
        Self::with_experiment(table, ExperimentStats::new(None))
    }

    pub fn with_experiment(table: RoutingTable, experiment: ExperimentStats) -> Self {
        Self {
            table: RwLock::new(Arc::new(table)),
            clients: Mutex::new(HashMap::new()),
            metrics: ServingMetrics::default(),
            experiment: Arc::new(experiment),
        }
    }

    /// Records in the background; a failure costs a log line and a metric, never a request.
    fn record(&self, salt: &str, updates: Vec<Update>) {
        if updates.is_empty() {
            return;
        }
        let stats = Arc::clone(&self.experiment);
        let errors = self
            .metrics
            .cache
            .with_label_values(&["experiment_stats", "error"]);
        let salt = salt.to_owned();
        tokio::task::spawn_blocking(move || {
            for (arm, user, counter) in updates {
                if let Err(e) = stats.record(&salt, &arm, &user, counter) {
                    errors.inc();
                    tracing::warn!(error = %e, "experiment statistics not recorded");
                    return;
                }
            }
        });
    }

    /// Prometheus text of the router's own metrics and every arm's experiment sums, labelled
    /// by the arms of the routing table and its salt (one per table: the labels stay bounded,
    /// and numbers of an earlier table's salt are never mistaken for the current one's).
    pub fn render_metrics(&self) -> String {
        let mut out = self.metrics.render();
        let table = self.table();
        out.push_str("# HELP recsys_experiment_users Users assigned to each arm by the routing table (exposures).\n# TYPE recsys_experiment_users gauge\n");
        let mut sums_text = String::from("# HELP recsys_experiment_sum Sufficient statistics of per-user impressions (x), clicks (y) and conversions (c) of each arm's users: sx, sy, sc, sxx, syy, scc, sxy.\n# TYPE recsys_experiment_sum gauge\n");
        for arm in &table.arms {
            let Ok(sums) = self.experiment.sums(&table.salt, &arm.name) else {
                continue;
            };
            out.push_str(&format!(
                "recsys_experiment_users{{arm=\"{}\",salt=\"{}\"}} {}\n",
                arm.name, table.salt, sums.n
            ));
            for (field, v) in sums.fields().into_iter().skip(1) {
                sums_text.push_str(&format!(
                    "recsys_experiment_sum{{arm=\"{}\",salt=\"{}\",sum=\"{field}\"}} {v}\n",
                    arm.name, table.salt
                ));
            }
        }
        out.push_str(&sums_text);
        out
    }

    pub fn table(&self) -> Arc<RoutingTable> {
        Arc::clone(&self.table.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// A client for an arm's endpoint; connections are made lazily and reused.
    fn client(&self, endpoint: &str) -> Result<RecommenderClient<Channel>, Status> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(endpoint) {
            return Ok(c.clone());
        }
        let channel = Channel::from_shared(endpoint.to_owned())
            .map_err(|e| Status::internal(format!("bad arm endpoint {endpoint}: {e}")))?
            .connect_lazy();
        let client = RecommenderClient::new(channel);
        clients.insert(endpoint.to_owned(), client.clone());
        Ok(client)
    }
}

pub struct RouterService {
    state: Arc<RouterState>,
}

#[tonic::async_trait]
impl Recommender for RouterService {
    async fn recommend(
        &self,
        request: Request<RecommendRequest>,
    ) -> Result<Response<RecommendResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        if let Err(status) = validate(&req) {
            self.state
                .metrics
                .observe("Recommend", started, status.code());
            return Err(status);
        }
        let table = self.state.table();
        let arm = table.assign(&req.user_id).clone();
        let user = req.user_id.clone();
        let result = self.state.client(&arm.endpoint)?.recommend(req).await;
        if result.is_ok() {
            // Exposed: the user is in this arm's population from now on.
            self.state
                .record(&table.salt, vec![(arm.name.clone(), user.clone(), None)]);
        }
        let code = result
            .as_ref()
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        self.state.metrics.observe("Recommend", started, code);
        let mut response = result?.into_inner();
        response.variant = arm.name.clone();
        // The assignment, logged with every response: the experiment's analysis joins on it.
        tracing::info!(
            request_id = response.request_id,
            user,
            bucket = bucket(&table.salt, &user),
            arm = arm.name,
            model_version = response.model_version,
            "routed"
        );
        Ok(Response::new(response))
    }

    async fn feedback(
        &self,
        request: Request<FeedbackRequest>,
    ) -> Result<Response<FeedbackResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        // Each event goes to the arm its user is assigned to, keeping its index for errors.
        let table = self.state.table();
        let mut by_arm: HashMap<String, Vec<(u32, recsys_api::v1::FeedbackEvent)>> = HashMap::new();
        // The arm comes from the table, whatever the client says its variant was.
        let mut counted: Vec<Option<Update>> = Vec::new();
        for (i, e) in req.events.into_iter().enumerate() {
            let arm = table.assign(&e.user_id);
            counted.push(
                Counter::of_feedback(&e.event_type)
                    .map(|c| (arm.name.clone(), e.user_id.clone(), Some((c, 1.0)))),
            );
            by_arm
                .entry(arm.endpoint.clone())
                .or_default()
                .push((i as u32, e));
        }
        let mut out = FeedbackResponse::default();
        for (endpoint, events) in by_arm {
            let indexes: Vec<u32> = events.iter().map(|e| e.0).collect();
            let batch = FeedbackRequest {
                events: events.into_iter().map(|e| e.1).collect(),
            };
            let answer = self
                .state
                .client(&endpoint)?
                .feedback(batch)
                .await?
                .into_inner();
            out.accepted += answer.accepted;
            out.rejected
                .extend(answer.rejected.into_iter().map(|mut r| {
                    r.index = indexes[r.index as usize];
                    r
                }));
        }
        // Only what the arms accepted counts.
        for r in &out.rejected {
            if let Some(slot) = counted.get_mut(r.index as usize) {
                *slot = None;
            }
        }
        self.state
            .record(&table.salt, counted.into_iter().flatten().collect());
        self.state
            .metrics
            .observe("Feedback", started, tonic::Code::Ok);
        Ok(Response::new(out))
    }
}

/// Polls the table file; a changed, valid table replaces the live one.
pub async fn watch(state: Arc<RouterState>, path: PathBuf, period: std::time::Duration) {
    let mut last = std::fs::read(&path).ok();
    loop {
        tokio::time::sleep(period).await;
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if last.as_ref() == Some(&bytes) {
            continue;
        }
        last = Some(bytes);
        match read_table(&path) {
            Ok(table) => {
                tracing::info!(arms = table.arms.len(), "routing table reloaded");
                state.metrics.reloads.with_label_values(&["loaded"]).inc();
                *state.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
            }
            Err(e) => {
                tracing::error!(error = %e, "refused a routing table; the old one stays");
                state.metrics.reloads.with_label_values(&["refused"]).inc();
            }
        }
    }
}

/// Binds the router's gRPC server (health and reflection included).
pub async fn bind(
    state: Arc<RouterState>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(
    SocketAddr,
    impl Future<Output = Result<(), tonic::transport::Error>>,
)> {
    super::grpc::serve(RouterService { state }, addr, shutdown).await
}
