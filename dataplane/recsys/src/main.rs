//! `recsys`: the data plane's one binary. Pipeline jobs and the server are subcommands so the
//! operator's Jobs and Deployments run the same image.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "recsys",
    version,
    about = "Recommendation data plane: train, evaluate, serve"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process; boxing the big variants would only obscure the flags.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Train, evaluate, publish and serve on MovieLens 100K, then ask for one recommendation.
    Demo(commands::demo::Args),

    /// Train, evaluate and publish a model version from any validated event file (plus
    /// optional user profiles and item metadata), local or in object storage.
    Train(commands::train::Args),

    /// Write train / validation / test event files with the cut-offs `train` uses, so any
    /// other tool can be scored on exactly the same rows.
    Split(commands::split::Args),

    /// Serve a published model version over gRPC (and HTTP/JSON).
    Serve(recsys_serving::serve_command::ServeArgs),

    /// The sticky experiment router: forwards each user to the arm the routing table assigns.
    Route(recsys_serving::route_command::RouteArgs),

    /// Load-test a Recommend endpoint: fixed concurrency (or a fixed rate), Zipf-distributed
    /// users; prints throughput and latency percentiles.
    BenchServe(commands::bench_serve::Args),

    /// Write synthetic events (power-law popularity, taste clusters, daily cycle, bots and
    /// planted defects) as CSV, deterministically from a seed.
    Generate(commands::generate::Args),

    /// Validate an event file (CSV or JSONL): clean rows, quarantined rows with reasons and a
    /// JSON report in --out-dir. Exits non-zero when the quality rate is below the alert level.
    Validate(commands::validate::Args),

    /// Compute the declarative features (core/features.yaml or --spec) as of the end of
    /// --as-of into the offline store: <store>/date=YYYY-MM-DD/{user,item}.parquet.
    Features(commands::features::Args),

    /// The unevaluated fast path for catalogs `train` does not reach yet (the 1M-item serving
    /// benchmark): fixed epochs, one fixed-parameter ranker, no evaluation, empty metrics.
    TrainEvents(commands::train_events::Args),

    /// Copy the newest offline partition into the online store (Redis) with the definition's
    /// TTLs.
    Materialize(commands::materialize::Args),

    /// Publish the catalog feed's display metadata (title, image_url, price, category by
    /// item_id) to Redis for one day, where serving reads it for every response.
    PublishItems(commands::publish_items::Args),

    /// The MovieLens adapter: write ml-100k as the pipeline's files (events.csv, users.csv,
    /// items.csv) for validate, features, split, train and materialize (train with
    /// `--labels 'rating>=4' --category-column genres`).
    ExportMovielens(commands::export_movielens::Args),

    /// Experiment statistics: sample size plans and analyses of per-user counts.
    Ab(commands::ab::Args),

    /// PSI per feature between a reference and a current event window.
    Drift(commands::drift::Args),

    /// Build an ANN index over a model version's items, measure its recall against exact
    /// search, and publish it only at or above the target (the ItemIndex Job).
    BuildIndex(commands::build_index::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A training run's numbers must not depend on the machine's vector width; serving keeps
    // the machine's widest kernels (its scores are compared with training's within a
    // tolerance, and the 1M-item benchmark measures them).
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::BenchServe(_) | Command::Route(_)
    ) {
        recsys_two_tower::pin_cpu_kernels();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    recsys_two_tower::set_torch_threads(2);
    recsys_serving::serving::tls::install_default_provider();
    match cli.command {
        Command::Demo(args) => commands::demo::run(args).await,
        Command::Train(args) => commands::train::run(args).await,
        Command::Split(args) => commands::split::run(args).await,
        Command::Serve(args) => recsys_serving::serve_command::run(args).await,
        Command::Route(args) => recsys_serving::route_command::run(args).await,
        Command::BenchServe(args) => commands::bench_serve::run(args).await,
        Command::Generate(args) => commands::generate::run(args).await,
        Command::Validate(args) => commands::validate::run(args).await,
        Command::Features(args) => commands::features::run(args).await,
        Command::TrainEvents(args) => commands::train_events::run(args).await,
        Command::Materialize(args) => commands::materialize::run(args).await,
        Command::PublishItems(args) => commands::publish_items::run(args).await,
        Command::ExportMovielens(args) => commands::export_movielens::run(args).await,
        Command::Ab(args) => commands::ab::run(args).await,
        Command::Drift(args) => commands::drift::run(args).await,
        Command::BuildIndex(args) => commands::build_index::run(args).await,
    }
}
