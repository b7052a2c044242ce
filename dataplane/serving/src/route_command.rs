//! `route` (`recsys route`, `recsys-serve route`): the sticky experiment router, which forwards
//! each user to the arm the routing table assigns.

use crate::front;
use crate::serving::cache::RedisStore;
use crate::serving::experiment_stats::ExperimentStats;
use crate::serving::grpc;
use crate::serving::http;
use crate::serving::router;
use crate::serving::router::RouterState;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct RouteArgs {
    /// The routing table (JSON, as the operator writes it); reloaded when it changes.
    #[arg(long)]
    pub table: PathBuf,
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    /// HTTP address of /metrics (router metrics and each arm's experiment sums), /healthz
    /// and /readyz; with TLS on, HTTPS like the gRPC front.
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// Redis for the experiment sums shared by router replicas (in process without).
    #[arg(long, env = "RECSYS_REDIS_URL")]
    pub redis_url: Option<String>,
    /// PEM bundle of CAs for a rediss:// Redis with a private CA.
    #[arg(long, env = "RECSYS_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// The token the router presents to its arms (first token of the file; a mounted
    /// Secret, re-read on every call's need so rotations reach it).
    #[arg(long, env = "RECSYS_ARM_TOKEN_FILE")]
    pub arm_token_file: Option<PathBuf>,
    /// CA bundle (PEM) that signed the arms' certificates, for https:// arm endpoints.
    #[arg(long, env = "RECSYS_ARM_CA_FILE")]
    pub arm_ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub front: front::FrontArgs,
}

pub async fn run(args: RouteArgs) -> anyhow::Result<()> {
    let RouteArgs {
        table,
        addr,
        http_addr,
        redis_url,
        redis_ca_file,
        arm_token_file,
        arm_ca_file,
        front,
    } = args;
    let redis = redis_url
        .map(|url| {
            RedisStore::tls_client(
                &url,
                std::env::var("RECSYS_REDIS_PASSWORD").ok().as_deref(),
                redis_ca_file.as_deref(),
            )
        })
        .transpose()?;
    let arms = router::ArmCredentials {
        token: arm_token_file
            .as_deref()
            .map(|p| crate::serving::auth::TokenFile::open(p).map(Arc::new))
            .transpose()?,
        ca_pem: arm_ca_file
            .as_deref()
            .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
            .transpose()?,
    };
    front.apply_request_limits()?;
    let (grpc_options, http_options) = front.fronts()?;
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let state = Arc::new(
        RouterState::with_experiment(router::read_table(&table)?, ExperimentStats::new(redis))
            .with_auth(front.auth()?, arms),
    );
    if let Some(http_addr) = http_addr {
        let metrics_state = Arc::clone(&state);
        let (bound, server) = http::bind_metrics(
            http_addr,
            http_options,
            Arc::clone(&ready),
            Arc::new(move || metrics_state.render_metrics()),
        )
        .await?;
        eprintln!("router metrics on http {bound}");
        tokio::spawn(server);
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let bound = router::bind(Arc::clone(&state), addr, &grpc_options, async move {
        let mut rx = stopped;
        let _ = rx.wait_for(|&s| s).await;
    })
    .await?;
    tokio::spawn(router::watch(
        state,
        table,
        std::time::Duration::from_secs(1),
    ));
    eprintln!("routing on {}", bound.addr);
    let server = tokio::spawn(bound.server);
    grpc::termination().await;
    grpc::stop_serving::<router::Service>(&bound.health).await;
    ready.store(false, std::sync::atomic::Ordering::Relaxed);
    eprintln!("stopping: NOT_SERVING; draining for {} s", front.drain_secs);
    tokio::time::sleep(front.drain()).await;
    let _ = stop.send(true);
    server.await??;
    Ok(())
}
