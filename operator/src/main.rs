//! `recsys-operator`: elects a leader, then runs the RecModel, ItemIndex, Experiment and
//! RetrainSchedule controllers until SIGTERM; serves `/metrics`, `/healthz` and `/readyz` throughout.

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};
use recsys_operator::builders::managed_selector;
use recsys_operator::controllers::policy::Policy;
use recsys_operator::controllers::{experiment, item_index, rec_model, retrain, Context};
use recsys_operator::crd::v1alpha1::{Experiment, ItemIndex, RecModel, RetrainSchedule};
use recsys_operator::runtime::http::{self, Health};
use recsys_operator::runtime::leader::{LeaderElection, Timing};
use recsys_operator::runtime::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(version, about = "Reconciles recsys.dev custom resources")]
struct Args {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Data-plane image for index-build Jobs.
    #[arg(
        long,
        env = "RECSYS_DATAPLANE_IMAGE",
        default_value = "ghcr.io/recsys/dataplane:0.1.0"
    )]
    dataplane_image: String,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "recsys-system")]
    lease_namespace: String,
    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME", default_value = "recsys-operator-local")]
    identity: String,
    /// Seconds routers need to pick up a new routing table (kubelet ConfigMap sync plus the
    /// router's poll): a canary leaves the table this long before its pods are removed.
    #[arg(long, default_value_t = 90)]
    router_reload_secs: u64,
    /// Prometheus base URL for Experiments whose spec names none.
    #[arg(long, env = "RECSYS_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Namespace of the metrics scraper (Prometheus): with one, every RecModel gets
    /// NetworkPolicies so that only its router reaches the arms' gRPC port and only this
    /// namespace the metrics ports. Empty: no NetworkPolicies.
    #[arg(
        long,
        env = "RECSYS_NETWORK_POLICY_METRICS_NAMESPACE",
        default_value = ""
    )]
    network_policy_metrics_namespace: String,
    /// Log as JSON lines (for log collectors) instead of human-readable text.
    #[arg(long, env = "RECSYS_LOG_JSON")]
    log_json: bool,
    /// Watch and manage only this namespace (the chart then grants a Role there instead of
    /// a ClusterRole); all namespaces when empty.
    #[arg(long, env = "RECSYS_WATCH_NAMESPACE", default_value = "")]
    watch_namespace: String,
    /// Comma-separated image prefixes a RecModel may run; any image when empty.
    #[arg(long, env = "RECSYS_ALLOWED_IMAGES", default_value = "")]
    allowed_images: String,
    /// `key=value` label every Secret a RecModel names must carry; any Secret when empty.
    #[arg(long, env = "RECSYS_SECRET_LABEL", default_value = "")]
    secret_label: String,
}

/// The cluster, or one namespace of it.
fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    init_logging(args.log_json);
    let policy = policy_of(&args)?;
    let namespace = Some(args.watch_namespace.clone()).filter(|n| !n.is_empty());
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    tokio::spawn(http::serve(
        args.metrics_addr,
        Arc::clone(&metrics),
        Arc::clone(&health),
    ));

    let client = Client::try_default().await?;
    health.ready.store(true, Ordering::Relaxed);
    let election = LeaderElection::new(
        Api::<Lease>::namespaced(client.clone(), &args.lease_namespace),
        "recsys-operator",
        &args.identity,
        Timing::default(),
    );
    tokio::select! {
        _ = election.acquire() => {}
        _ = shutdown_signal() => return Ok(()),
    }
    tracing::info!(identity = %args.identity, "became leader");

    let context = context_of(&client, metrics, args, policy);
    let controllers = futures::future::join4(
        rec_models(&client, &namespace, &context),
        item_indexes(&client, &namespace, &context),
        experiments(&client, &namespace, &context),
        schedules(&client, &namespace, &context),
    );
    tokio::select! {
        _ = controllers => tracing::info!("controllers stopped"),
        _ = election.hold() => {
            tracing::error!("lost the leader lease; exiting so another replica can lead");
            std::process::exit(1);
        }
    }
    // Stopped by SIGTERM: hand the lease over now rather than after a lease duration.
    match election.release().await {
        Ok(true) => tracing::info!("released the leader lease"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "could not release the leader lease"),
    }
    Ok(())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

fn policy_of(args: &Args) -> Result<Policy, Box<dyn std::error::Error>> {
    Ok(Policy {
        allowed_images: args
            .allowed_images
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        secret_label: Policy::parse_label(&args.secret_label)?,
    })
}

fn context_of(client: &Client, metrics: Arc<Metrics>, args: Args, policy: Policy) -> Arc<Context> {
    let reporter = Reporter {
        controller: "recsys-operator".into(),
        instance: Some(args.identity.clone()),
    };
    Arc::new(Context {
        client: client.clone(),
        metrics,
        recorder: Some(Recorder::new(client.clone(), reporter)),
        dataplane_image: args.dataplane_image,
        router_reload: Duration::from_secs(args.router_reload_secs),
        prometheus_url: args.prometheus_url,
        network_policy_metrics_namespace: Some(args.network_policy_metrics_namespace)
            .filter(|ns| !ns.is_empty()),
        policy,
    })
}

/// Child kinds: only what the operator made (labelled), not every object in the cluster.
fn owned_children() -> watcher::Config {
    watcher::Config::default().labels(&managed_selector())
}

/// Logs a controller's failed reconciles at debug level (the error policy already counts them).
async fn drain<T, E: std::fmt::Display>(
    results: impl futures::Stream<Item = Result<T, E>>,
    kind: &'static str,
) {
    results
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "{kind} controller event");
            }
        })
        .await
}

fn rec_models(
    client: &Client,
    namespace: &Option<String>,
    context: &Arc<Context>,
) -> impl std::future::Future<Output = ()> {
    let config = watcher::Config::default();
    let owned = owned_children();
    let controller = Controller::new(scoped::<RecModel>(client, namespace), config.clone());
    let store = controller.store();
    let results = controller
        // An Experiment starting or concluding changes what its RecModel serves.
        .watches(
            scoped::<Experiment>(client, namespace),
            config.clone(),
            |exp| {
                Some(
                    ObjectRef::<RecModel>::new(&exp.spec.rec_model)
                        .within(&exp.namespace().unwrap_or_default()),
                )
            },
        )
        .owns(scoped::<Deployment>(client, namespace), owned.clone())
        .owns(scoped::<Service>(client, namespace), owned.clone())
        .owns(scoped::<ConfigMap>(client, namespace), owned.clone())
        .owns(scoped::<NetworkPolicy>(client, namespace), owned)
        // Its own per-version indexes, and an index it refers to, wake a RecModel.
        .owns(scoped::<ItemIndex>(client, namespace), config.clone())
        .watches(
            scoped::<ItemIndex>(client, namespace),
            config,
            move |index| {
                let ns = index.namespace();
                store
                    .state()
                    .into_iter()
                    .filter(|rm| rm.namespace() == ns && rm.spec.item_index_ref == index.name_any())
                    .map(|rm| ObjectRef::from_obj(&*rm))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown_signal())
        .run(
            rec_model::reconcile,
            rec_model::error_policy,
            Arc::clone(context),
        );
    drain(results, "recmodel")
}

fn experiments(
    client: &Client,
    namespace: &Option<String>,
    context: &Arc<Context>,
) -> impl std::future::Future<Output = ()> {
    let config = watcher::Config::default();
    let controller = Controller::new(scoped::<Experiment>(client, namespace), config.clone());
    let store = controller.store();
    let results = controller
        // The RecModel's status says when the treatment is routed and what the control runs.
        .watches(scoped::<RecModel>(client, namespace), config, move |rm| {
            let ns = rm.namespace();
            store
                .state()
                .into_iter()
                .filter(|e| e.namespace() == ns && e.spec.rec_model == rm.name_any())
                .map(|e| ObjectRef::from_obj(&*e))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown_signal())
        .run(
            experiment::reconcile,
            experiment::error_policy,
            Arc::clone(context),
        );
    drain(results, "experiment")
}

fn schedules(
    client: &Client,
    namespace: &Option<String>,
    context: &Arc<Context>,
) -> impl std::future::Future<Output = ()> {
    let results = Controller::new(
        scoped::<RetrainSchedule>(client, namespace),
        watcher::Config::default(),
    )
    // A training Job finishing is judged at once, not at the next poll.
    .owns(scoped::<Job>(client, namespace), owned_children())
    .graceful_shutdown_on(shutdown_signal())
    .run(
        retrain::reconcile,
        retrain::error_policy,
        Arc::clone(context),
    );
    drain(results, "retrainschedule")
}

fn item_indexes(
    client: &Client,
    namespace: &Option<String>,
    context: &Arc<Context>,
) -> impl std::future::Future<Output = ()> {
    let results = Controller::new(
        scoped::<ItemIndex>(client, namespace),
        watcher::Config::default(),
    )
    .owns(scoped::<Job>(client, namespace), owned_children())
    .graceful_shutdown_on(shutdown_signal())
    .run(
        item_index::reconcile,
        item_index::error_policy,
        Arc::clone(context),
    );
    drain(results, "itemindex")
}
