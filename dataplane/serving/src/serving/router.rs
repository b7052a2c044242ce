//! `recsys route`: the sticky experiment router. Every request's user goes to the arm owning
//! `hash(salt, user_id) mod 10000` in the routing table (the operator's ConfigMap, a file
//! here), which is reloaded when it changes — a bad table is refused and the old one kept.

use super::auth::{AuthPolicy, TokenFile};
use super::experiment_stats::{Counter, ExperimentStats};
use super::grpc::{authorization, GrpcOptions};
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
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Request, Response, Status};

/// One experiment update: arm, user, and what to add (none: an exposure only).
type Update = (String, String, Option<(Counter, f64)>);

pub struct RouterState {
    table: RwLock<Arc<RoutingTable>>,
    clients: Mutex<HashMap<String, RecommenderClient<Channel>>>,
    pub metrics: ServingMetrics,
    /// Exposures and per-user outcomes by the arm the table assigns (shared via Redis).
    pub experiment: Arc<ExperimentStats>,
    /// Who may call the router (its Feedback needs a token unless configured open).
    pub auth: AuthPolicy,
    pub arms: ArmCredentials,
}

/// How the router proves itself to the arms: a bearer token on every call, and the CA that
/// signed their certificates for `https://` endpoints.
#[derive(Clone, Default)]
pub struct ArmCredentials {
    pub token: Option<Arc<TokenFile>>,
    pub ca_pem: Option<Vec<u8>>,
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
            auth: AuthPolicy::open(),
            arms: ArmCredentials::default(),
        }
    }

    /// Who may call the router, and how it authenticates to the arms.
    pub fn with_auth(mut self, auth: AuthPolicy, arms: ArmCredentials) -> Self {
        self.auth = auth;
        self.arms = arms;
        self
    }

    /// Refuses a call whose credentials `access` does not accept, counted under `method`.
    fn authorize<T>(
        &self,
        access: &super::auth::Access,
        method: &str,
        started: Instant,
        request: &Request<T>,
    ) -> Result<(), Status> {
        access.check(authorization(request)).map_err(|e| {
            let status = Status::from(e);
            self.metrics.observe(method, started, status.code());
            status
        })
    }

    /// `message` as a request to an arm, carrying the router's token.
    fn to_arm<T>(&self, message: T) -> Result<Request<T>, Status> {
        let mut request = Request::new(message);
        if let Some(token) = &self.arms.token {
            let token = token.first_token();
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("the router's token is not a valid header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
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
        let mut channel = Channel::from_shared(endpoint.to_owned())
            .map_err(|e| Status::internal(format!("bad arm endpoint {endpoint}: {e}")))?;
        if endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.arms.ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            channel = channel
                .tls_config(tls)
                .map_err(|e| Status::internal(format!("TLS for arm {endpoint}: {e}")))?;
        }
        let channel = channel.connect_lazy();
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
        self.state
            .authorize(&self.state.auth.recommend, "Recommend", started, &request)?;
        let req = request.into_inner();
        if let Err(e) = validate(&req) {
            self.state.metrics.observe("Recommend", started, e.code());
            return Err(e.into());
        }
        let table = self.state.table();
        let arm = table.assign(&req.user_id).clone();
        let user = req.user_id.clone();
        let result = self
            .state
            .client(&arm.endpoint)?
            .recommend(self.state.to_arm(req)?)
            .await;
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
        self.state
            .authorize(&self.state.auth.feedback, "Feedback", started, &request)?;
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
                .feedback(self.state.to_arm(batch)?)
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
    options: &GrpcOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<super::grpc::Bound<impl Future<Output = Result<(), tonic::transport::Error>>>> {
    super::grpc::serve(RouterService { state }, addr, options, shutdown).await
}

/// The router's service type, for its health reporter.
pub type Service = RouterService;
