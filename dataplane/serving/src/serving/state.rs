//! What a serving process holds: the live model version (swappable), metrics, the
//! recently-seen store and the feedback log; and the request logic both fronts (gRPC, HTTP)
//! share.

use super::cache::{CacheStore, InProcessStore};
use super::engine::{release_freed_memory, Engine, EngineOptions};
use super::errors::ServingError;
use super::feedback::{self, EventLog};
use super::feedback_wal::Wal;
use super::limits;
use super::metrics::ServingMetrics;
use super::recent::RecentItems;
use super::trending::{self, Trending};
use recsys_api::v1::{FeedbackRequest, FeedbackResponse, RecommendRequest};
use recsys_version::fetch;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Largest `num_items` a caller may ask for.
pub const MAX_ITEMS: u32 = 100;
pub const PLACEMENTS: [&str; 3] = ["home", "detail", "search"];
pub use recsys_version::fetch::CURRENT_FILE;

pub struct ServingState {
    engine: RwLock<Arc<Engine>>,
    pub metrics: ServingMetrics,
    pub recent: RecentItems,
    pub log: Option<EventLog>,
    /// The durable buffer accepted feedback is written to before it is acknowledged.
    pub wal: Option<Arc<Wal>>,
    /// User embeddings: Redis when configured, in-process otherwise.
    pub cache: Arc<dyn CacheStore>,
    /// False while starting and once shutdown begins: `/readyz` turns traffic away.
    pub ready: AtomicBool,
    /// The popular list that follows feedback, for unknown users.
    pub trending: Trending,
    /// Requests computed at once. Beyond a few per core, more only time-slice the cores and
    /// slow every request in flight; the rest wait their turn in arrival order.
    compute: Arc<tokio::sync::Semaphore>,
    limits: RequestLimits,
    /// Requests waiting for a compute permit now.
    waiting: AtomicUsize,
}

/// How long a request may take and how many may wait; beyond either the server answers at
/// once (DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) instead of late.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// The server's deadline for one Recommend; a caller's shorter `grpc-timeout` wins.
    pub timeout: Duration,
    /// Requests that may wait for a compute permit; the next one is shed.
    pub max_queue: usize,
}

/// One second: two hundred times a 1M-item request's p99 at the benchmark's load.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            timeout: REQUEST_TIMEOUT,
            max_queue: 16 * default_max_in_flight(),
        }
    }
}

/// Decrements the waiting count however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Four requests in flight per core: enough to keep the cores busy while others wait on the
/// network or a lock (docs/benchmarks.md compares 1, 2 and 4 per core).
pub fn default_max_in_flight() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl ServingState {
    pub fn new(engine: Engine, log: Option<EventLog>) -> Self {
        Self::with_cache(engine, log, Arc::new(InProcessStore::default()))
    }

    pub fn with_cache(engine: Engine, log: Option<EventLog>, cache: Arc<dyn CacheStore>) -> Self {
        let metrics = ServingMetrics::default();
        metrics.set_model(engine.version(), engine.variant());
        metrics.reloads.with_label_values(&["loaded"]).inc();
        Self {
            engine: RwLock::new(Arc::new(engine)),
            metrics,
            recent: RecentItems::default(),
            log,
            wal: None,
            cache,
            ready: AtomicBool::new(true),
            trending: Trending::default(),
            compute: Arc::new(tokio::sync::Semaphore::new(default_max_in_flight())),
            limits: RequestLimits::default(),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Accepted feedback goes to `wal` (and from there to the training data) before a
    /// Feedback call is answered.
    pub fn with_wal(mut self, wal: Arc<Wal>) -> Self {
        self.wal = Some(wal);
        self
    }

    /// At most `n` requests computed at once (at least one); the rest wait in arrival order.
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.compute = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        self
    }

    /// The request deadline and queue bound.
    pub fn with_limits(mut self, limits: RequestLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Waits for a compute permit, unless `max_queue` requests already wait or `deadline`
    /// passes first.
    pub(super) async fn permit(
        &self,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ServingError> {
        match Arc::clone(&self.compute).try_acquire_owned() {
            Ok(p) => return Ok(p),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(ServingError::ShuttingDown),
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        let before = self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        if before >= self.limits.max_queue {
            self.metrics.shed.inc();
            return Err(ServingError::Overloaded(before));
        }
        match tokio::time::timeout_at(deadline, Arc::clone(&self.compute).acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(ServingError::ShuttingDown),
            Err(_) => Err(ServingError::DeadlineExceeded(budget)),
        }
    }

    pub(super) fn limits(&self) -> RequestLimits {
        self.limits
    }

    /// The version serving right now; requests keep the one they started with.
    pub fn engine(&self) -> Arc<Engine> {
        Arc::clone(&self.engine.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the live version in one step; in-flight requests finish on the old one.
    pub fn swap(&self, engine: Engine) {
        self.metrics.set_model(engine.version(), engine.variant());
        *self.engine.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(engine);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Counts a finished request by method and code, with its latency.
    pub fn observe<T>(&self, method: &str, started: Instant, result: &Result<T, ServingError>) {
        let code = result
            .as_ref()
            .map_or_else(ServingError::code, |_| tonic::Code::Ok);
        self.metrics.observe(method, started, code);
    }

    pub async fn feedback(
        self: &Arc<Self>,
        req: FeedbackRequest,
    ) -> Result<FeedbackResponse, ServingError> {
        if req.events.is_empty() {
            return Err(ServingError::InvalidArgument("no events".into()));
        }
        limits::check_count(
            "events",
            req.events.len(),
            limits::current().max_feedback_events,
        )
        .map_err(ServingError::InvalidArgument)?;
        let state = Arc::clone(self);
        let now = chrono::Utc::now().timestamp();
        let (accepted, rejected) = tokio::task::spawn_blocking(move || {
            // Only items the live version knows count: ids from elsewhere would grow the lists
            // without ever being shown.
            let engine = state.engine();
            let result = feedback::accept(
                &req.events,
                now,
                &state.metrics,
                &state.recent,
                state.log.as_ref(),
                state.wal.as_deref(),
                |id| engine.item_by_external_id(id).is_some(),
            )?;
            let engaged: Vec<(&str, f64)> = req
                .events
                .iter()
                .filter(|e| {
                    feedback::is_valid(e) && engine.item_by_external_id(&e.item_id).is_some()
                })
                .filter_map(|e| Some((e.item_id.as_str(), trending::weight(&e.event_type)?)))
                .collect();
            state.trending.record(state.cache.as_ref(), &engaged, now);
            Ok::<_, std::io::Error>(result)
        })
        .await
        .map_err(|e| ServingError::Worker(e.to_string()))?
        .map_err(ServingError::EventLog)?;
        Ok(FeedbackResponse { accepted, rejected })
    }
}

/// Remakes the popular list every `period` (the seed's 15 minutes), first at start-up.
pub async fn refresh_trending(state: Arc<ServingState>, period: std::time::Duration) {
    loop {
        let worker = Arc::clone(&state);
        let refreshed = tokio::task::spawn_blocking(move || {
            let now = chrono::Utc::now().timestamp();
            worker.trending.refresh(worker.cache.as_ref(), now, period)
        })
        .await;
        if let Ok(items) = refreshed {
            tracing::debug!(items, "popular list refreshed");
        }
        tokio::time::sleep(period).await;
    }
}

/// Every `slot`, closes the served version's drift slot and publishes its PSI per feature
/// (`recsys_feature_psi`); a swapped-in version starts its own window.
pub async fn publish_drift(state: Arc<ServingState>, slot: std::time::Duration) {
    let mut ticks = tokio::time::interval(slot);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let engine = state.engine();
        let values: Vec<(String, f64)> = engine
            .drift()
            .map(|d| d.rotate())
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.feature, p.psi))
            .collect();
        if let Some(worst) = values.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            tracing::debug!(feature = %worst.0, psi = worst.1, "drift");
        }
        state.metrics.set_drift(engine.version(), &values);
    }
}

pub fn validate(req: &RecommendRequest) -> Result<(), ServingError> {
    if req.user_id.trim().is_empty() {
        return Err(ServingError::InvalidArgument("user_id is required".into()));
    }
    let bounded = || -> Result<(), String> {
        limits::check_id("user_id", &req.user_id)?;
        limits::check_count(
            "exclude_item_ids",
            req.exclude_item_ids.len(),
            limits::current().max_excluded_items,
        )?;
        for id in &req.exclude_item_ids {
            limits::check_id("an excluded item id", id)?;
        }
        if let Some(f) = &req.filters {
            limits::check_count(
                "filters.categories",
                f.categories.len(),
                limits::current().max_categories,
            )?;
            for c in &f.categories {
                limits::check_id("a category", c)?;
            }
        }
        Ok(())
    };
    bounded().map_err(ServingError::InvalidArgument)?;
    if req.num_items == 0 || req.num_items > MAX_ITEMS {
        return Err(ServingError::InvalidArgument(format!(
            "num_items must be in 1..={MAX_ITEMS}, got {}",
            req.num_items
        )));
    }
    if !req.placement.is_empty() && !PLACEMENTS.contains(&req.placement.as_str()) {
        return Err(ServingError::InvalidArgument(format!(
            "unknown placement {:?}; known: {PLACEMENTS:?}",
            req.placement
        )));
    }
    Ok(())
}

/// Where the served versions come from: a version or a model root, local or in object
/// storage; remote versions are copied into `cache` and verified before they load.
#[derive(Debug, Clone)]
pub struct ModelSource {
    pub location: String,
    pub cache: PathBuf,
}

impl ModelSource {
    /// The version to serve now, and whether it came from a root's `CURRENT`.
    pub fn current(&self) -> anyhow::Result<(String, bool)> {
        fetch::resolve(&self.location)
    }

    /// A local, verified directory of `version` (a location [`Self::current`] returned).
    pub fn local_copy(&self, version: &str) -> anyhow::Result<PathBuf> {
        fetch::fetch_version(version, &self.cache)
    }
}

/// Polls the root's `CURRENT` (local or remote); when it names another version than `live`
/// (the one loaded at start-up: re-reading CURRENT here could miss a change made meanwhile),
/// copies and verifies that version, loads it beside the live one and swaps it in. A version
/// that fails to download, verify or load is refused, counted and logged; the live one keeps
/// serving.
pub async fn watch(
    state: Arc<ServingState>,
    source: ModelSource,
    options: EngineOptions,
    period: std::time::Duration,
    live: String,
) {
    let mut live = Some(live);
    let mut last_refused: Option<String> = None;
    loop {
        tokio::time::sleep(period).await;
        let probe = source.clone();
        let Ok(Ok((version, _))) = tokio::task::spawn_blocking(move || probe.current()).await
        else {
            continue;
        };
        if live.as_ref() == Some(&version) || last_refused.as_ref() == Some(&version) {
            continue;
        }
        let old = state.engine();
        let options = options.clone();
        let loader = source.clone();
        let target = version.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let dir = loader.local_copy(&target)?;
            let engine = Engine::load_with(&dir, options)?;
            Ok::<_, anyhow::Error>((engine, dir))
        })
        .await;
        match loaded {
            Ok(Ok((engine, dir))) => {
                tracing::info!(from = old.version(), to = engine.version(), "model swapped");
                state.metrics.reloads.with_label_values(&["loaded"]).inc();
                state.swap(engine);
                live = Some(version);
                last_refused = None;
                fetch::prune(&source.cache, "models", &[dir.as_path()]);
                // Requests still on the old version finish within seconds; then its memory
                // goes back to the system instead of staying in the allocator.
                drop(old);
                tokio::task::spawn_blocking(|| {
                    std::thread::sleep(std::time::Duration::from_secs(10));
                    release_freed_memory();
                });
            }
            Ok(Err(e)) => {
                tracing::error!(%version, error = %format!("{e:#}"), "refused a model version; the live one keeps serving");
                state.metrics.reloads.with_label_values(&["refused"]).inc();
                last_refused = Some(version);
            }
            Err(e) => tracing::error!(error = %e, "model loader failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_api::v1::Filters;

    fn request(user: &str) -> RecommendRequest {
        RecommendRequest {
            user_id: user.into(),
            num_items: 10,
            ..Default::default()
        }
    }

    #[test]
    fn oversized_requests_are_refused_with_the_bound_they_broke() {
        assert!(validate(&request("416")).is_ok());
        let e = validate(&request(&"u".repeat(1 << 20))).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.to_string().contains("user_id is 1048576 bytes"), "{e}");
        let mut r = request("416");
        r.exclude_item_ids = (0..5000).map(|i| i.to_string()).collect();
        let e = validate(&r).unwrap_err();
        assert!(e.to_string().contains("exclude_item_ids has 5000"), "{e}");
        let mut r = request("416");
        r.filters = Some(Filters {
            categories: vec!["c".repeat(300)],
            ..Default::default()
        });
        assert!(validate(&r).is_err());
    }
}
