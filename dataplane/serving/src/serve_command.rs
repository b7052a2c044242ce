//! `serve`: one model version over gRPC and HTTP/JSON, until SIGTERM drains it. Both the
//! `recsys serve` subcommand and the lean `recsys-serve` binary (which links no libtorch) run
//! exactly this, with the same flags.

use crate::front::FrontArgs;
use crate::serving::cache::{CacheStore, InProcessStore, RedisStore};
use crate::serving::feedback::EventLog;
use crate::serving::feedback_sink::{self, FeedbackSink};
use crate::serving::feedback_wal::Wal;
use crate::serving::{grpc, http, state, Engine, EngineOptions, ServingState};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Slots of the drift window (one rotation each).
pub const DRIFT_SLOTS: usize = 12;

/// The flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A version directory, or a model root whose CURRENT file names the version to serve
    /// (then a change of CURRENT is hot-reloaded): a local path, s3://bucket/key or
    /// file:///path. Remote versions are copied into --cache-dir and verified first.
    #[arg(long)]
    pub model_dir: String,
    /// An ItemIndex build of this version's item vectors to serve instead of the model's
    /// own index (local or remote); one built from another version is refused.
    #[arg(long)]
    pub index_dir: Option<String>,
    /// Where remote versions and indexes are copied (the pod's scratch volume).
    #[arg(long, env = "RECSYS_CACHE_DIR", default_value_os_t = std::env::temp_dir().join("recsys-cache"))]
    pub cache_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    /// HTTP address for /recommend, /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Candidates retrieved before ranking.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub candidates: u32,
    /// Arm reported with every response.
    #[arg(long, default_value = "stable")]
    pub variant: String,
    /// At most this many items of one category in the top 10.
    #[arg(long, default_value_t = 3)]
    pub max_per_category: usize,
    /// Item attribute feed (CSV: item_id,in_stock,regions,age_rating,brand_safe), read
    /// with every model version.
    #[arg(long)]
    pub item_attributes: Option<PathBuf>,
    /// Append feedback events (pipeline schema, CSV) to this file (local runs).
    #[arg(long)]
    pub event_log: Option<PathBuf>,
    /// Durable buffer for accepted feedback: a Feedback call is answered once its events
    /// are fsynced here (a volume that survives the container).
    #[arg(long, requires = "feedback_sink")]
    pub feedback_wal_dir: Option<PathBuf>,
    /// Where buffered feedback goes: a directory or an s3:// / file:// prefix, as Parquet
    /// partitioned date=YYYY-MM-DD/hour=HH (the training data's event schema + event_id).
    #[arg(long, requires = "feedback_wal_dir")]
    pub feedback_sink: Option<String>,
    /// How often buffered feedback is flushed to the sink, seconds (and on SIGTERM).
    #[arg(long, default_value_t = 60)]
    pub feedback_flush_secs: u64,
    /// This process's name in the files it writes (the pod name).
    #[arg(long, env = "POD_NAME", default_value = "recsys")]
    pub instance: String,
    /// Redis (e.g. redis://127.0.0.1:6379/) for user embeddings, predictions and the
    /// online feature store; in-process caches and the version's feature values when
    /// absent. Redis being down never fails a request.
    #[arg(long, env = "RECSYS_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Redis password; only from the environment (a Secret), never a flag, so it shows in
    /// no process listing.
    #[arg(skip = std::env::var("RECSYS_REDIS_PASSWORD").ok())]
    pub redis_password: Option<String>,
    /// How long a computed answer is reused for the same request within its hour (0:
    /// never).
    #[arg(long, default_value_t = 1800)]
    pub prediction_ttl_secs: u64,
    /// How often a model root's CURRENT is checked, seconds.
    #[arg(long, default_value_t = 5)]
    pub reload_secs: u64,
    /// Requests computed at once; the rest queue in arrival order (default: 4 per core).
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// How often the popular list for unknown users is remade from feedback, seconds.
    #[arg(long, default_value_t = 900)]
    pub popular_refresh_secs: u64,
    /// The drift window, seconds: `recsys_feature_psi` compares the requests of this long
    /// with the version's training requests, refreshed every twelfth of it.
    #[arg(long, default_value_t = 3600)]
    pub drift_window_secs: u64,
    /// The server's deadline for one Recommend, milliseconds (a caller's shorter
    /// grpc-timeout wins); past it the answer is DEADLINE_EXCEEDED.
    #[arg(long, default_value_t = state::REQUEST_TIMEOUT.as_millis() as u64)]
    pub request_timeout_ms: u64,
    /// Requests that may wait for compute; the next is shed with RESOURCE_EXHAUSTED
    /// (default: 16 per in-flight slot).
    #[arg(long)]
    pub max_queue: Option<usize>,
    /// PEM bundle of CAs for a rediss:// Redis with a private CA (the system roots
    /// otherwise).
    #[arg(long, env = "RECSYS_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub front: FrontArgs,
}

/// Serves until SIGTERM, then drains and flushes buffered feedback.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        model_dir,
        index_dir,
        cache_dir,
        addr,
        http_addr,
        candidates,
        variant,
        max_per_category,
        item_attributes,
        event_log,
        feedback_wal_dir,
        feedback_sink,
        feedback_flush_secs,
        instance,
        redis_url,
        redis_password,
        prediction_ttl_secs,
        reload_secs,
        max_in_flight,
        popular_refresh_secs,
        drift_window_secs,
        request_timeout_ms,
        max_queue,
        redis_ca_file,
        front,
    } = args;
    let auth = front.auth()?;
    front.apply_request_limits()?;
    let (grpc_options, http_options) = front.fronts()?;
    let source = state::ModelSource {
        location: model_dir.clone(),
        cache: cache_dir.clone(),
    };
    let index_dir = index_dir
        .map(|uri| recsys_version::fetch::fetch_index(&uri, &cache_dir))
        .transpose()?;
    let options = EngineOptions {
        index_dir,
        candidates: candidates as usize,
        variant,
        max_per_category,
        item_attributes,
        prediction_ttl: std::time::Duration::from_secs(prediction_ttl_secs),
        drift_slots: DRIFT_SLOTS,
    };
    let (version, watching) = source.current()?;
    let version_dir = source.local_copy(&version)?;
    let engine = Engine::load_with(&version_dir, options.clone())?;
    let log = event_log.as_deref().map(EventLog::open).transpose()?;
    let cache: Arc<dyn CacheStore> = match redis_url {
        Some(url) => Arc::new(RedisStore::with_tls(
            &url,
            redis_password.as_deref(),
            redis_ca_file.as_deref(),
        )?),
        None => Arc::new(InProcessStore::default()),
    };
    let in_flight = max_in_flight.unwrap_or_else(state::default_max_in_flight);
    let mut serving = ServingState::with_cache(engine, log, cache)
        .with_max_in_flight(in_flight)
        .with_limits(state::RequestLimits {
            timeout: std::time::Duration::from_millis(request_timeout_ms.max(1)),
            max_queue: max_queue.unwrap_or(16 * in_flight),
        });
    let feedback = match (feedback_wal_dir, feedback_sink) {
        (Some(dir), Some(location)) => {
            let shipping = ship_feedback(&dir, location, instance, feedback_flush_secs)?;
            serving = serving.with_wal(Arc::clone(&shipping.1));
            Some(shipping)
        }
        _ => None,
    };
    let state = Arc::new(serving);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|&s| s).await;
    };
    let grpc_front = grpc::serve(
        grpc::RecommenderService::new(Arc::clone(&state), auth.clone()),
        addr,
        &grpc_options,
        until_stopped(stopped.clone()),
    )
    .await?;
    let (grpc_bound, grpc_server, health) = (grpc_front.addr, grpc_front.server, grpc_front.health);
    let (http_bound, http_server) = http::bind_with(
        Arc::clone(&state),
        http_addr,
        http_options,
        auth.recommend.clone(),
        until_stopped(stopped),
    )
    .await?;
    tokio::spawn(state::refresh_trending(
        Arc::clone(&state),
        std::time::Duration::from_secs(popular_refresh_secs.max(1)),
    ));
    tokio::spawn(state::publish_drift(
        Arc::clone(&state),
        std::time::Duration::from_millis(
            (drift_window_secs.max(1) * 1000 / DRIFT_SLOTS as u64).max(100),
        ),
    ));
    if watching {
        tokio::spawn(state::watch(
            Arc::clone(&state),
            source,
            options,
            std::time::Duration::from_secs(reload_secs.max(1)),
            version.clone(),
        ));
    }
    eprintln!(
        "serving {version} on grpc {grpc_bound}, http {http_bound}{}",
        if watching { " (hot reload on)" } else { "" }
    );
    let grpc_task = tokio::spawn(grpc_server);
    let http_task = tokio::spawn(http_server);
    grpc::termination().await;
    // NOT_SERVING and not ready first, so probes and load balancers stop sending;
    // then a drain window for what is already on its way; then stop accepting and
    // finish what is in flight.
    grpc::stop_serving::<grpc::RecommenderService>(&health).await;
    state
        .ready
        .store(false, std::sync::atomic::Ordering::Relaxed);
    eprintln!("stopping: NOT_SERVING; draining for {} s", front.drain_secs);
    tokio::time::sleep(front.drain()).await;
    let _ = stop.send(true);
    grpc_task.await??;
    http_task.await?;
    // Nothing is accepted any more: move every buffered event before exiting.
    if let Some(shipping) = feedback {
        flush_feedback(shipping).await?;
    }
    eprintln!("drained; bye");
    Ok(())
}

/// The durable feedback buffer in `dir`, shipped to `location` every `flush_secs` by a
/// background task.
fn ship_feedback(
    dir: &std::path::Path,
    location: String,
    instance: String,
    flush_secs: u64,
) -> anyhow::Result<(Arc<FeedbackSink>, Arc<Wal>)> {
    let wal = Arc::new(
        Wal::open(dir, 8 << 20)
            .with_context(|| format!("opening the feedback buffer {}", dir.display()))?,
    );
    let sink = Arc::new(FeedbackSink { location, instance });
    tokio::spawn(feedback_sink::run(
        Arc::clone(&sink),
        Arc::clone(&wal),
        std::time::Duration::from_secs(flush_secs.max(1)),
    ));
    Ok((sink, wal))
}

/// Every buffered event moved to the sink, or kept on disk for the next start.
async fn flush_feedback((sink, wal): (Arc<FeedbackSink>, Arc<Wal>)) -> anyhow::Result<()> {
    let flushed =
        tokio::task::spawn_blocking(move || sink.flush(&wal, std::time::Duration::ZERO)).await?;
    match flushed {
        Ok(f) => eprintln!("feedback flushed: {} events", f.events),
        Err(e) => eprintln!("feedback kept on disk for the next start: {e:#}"),
    }
    Ok(())
}
