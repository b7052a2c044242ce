//! `recsys`: the data plane's one binary. Pipeline jobs and the server are subcommands so the
//! operator's Jobs and Deployments run the same image.

use recsys_serving::front;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use recsys::data::remote;
use recsys::data::synthetic::{self, GeneratorConfig};
use recsys::demo::{self, DemoOptions, SplitKind};
use recsys::pipeline::index_build::{self, IndexBuildOptions};
use recsys::pipeline::{drift, events_model, feature_job, validate};
use recsys::serving::cache::RedisStore;
use recsys::serving::experiment_stats::ExperimentStats;
use recsys::serving::router::{self, RouterState};
use recsys::serving::{grpc, http, load};
use recsys_core::validation::ValidationConfig;
use recsys_models::IndexKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

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
    Demo {
        /// Directory with ml-100k.{inter,item,user}; found automatically when omitted.
        #[arg(long, env = "RECSYS_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Where versioned artifact directories are written.
        #[arg(long, default_value = "artifacts")]
        artifacts_dir: PathBuf,
        /// External user id to recommend for (default: a warm test user).
        #[arg(long)]
        user: Option<String>,
        /// Upper bound on two-tower epochs (early stopping usually ends sooner).
        #[arg(long, default_value_t = 30)]
        max_epochs: usize,
        /// Ranker hyper-parameter configurations to try (time-based cross-validation).
        #[arg(long, default_value_t = 12)]
        ranker_trials: usize,
        /// Which evaluation split to use.
        #[arg(long, value_enum, default_value = "seed")]
        split: SplitKind,
        /// State the published version serves from: the latest, or as of the test window's
        /// start (for replaying the test window against the served version).
        #[arg(long, value_enum, default_value = "latest")]
        publish_state: demo::PublishState,
        /// Seed of every model's initialisation and sampling.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Train, evaluate and publish a model version from any validated event file (plus
    /// optional user profiles and item metadata), local or in object storage.
    Train {
        /// Events in the pipeline schema (CSV, JSONL or Parquet): a path or a URI.
        #[arg(long)]
        events: String,
        #[command(flatten)]
        entity_files: EntityFileArgs,
        #[command(flatten)]
        data: DatasetArgs,
        /// Which events count as relevant: comma-separated event types, or `<type>>=<value>`
        /// (`rating>=4` for MovieLens, `purchase,add_to_cart` for a shop).
        #[arg(long)]
        labels: recsys_core::labels::LabelPolicy,
        #[command(flatten)]
        windows: WindowArgs,
        /// Model root (a path or a URI); the version is written to <out>/<version>.
        #[arg(long)]
        out: String,
        /// Version name (default: v<UTC time>).
        #[arg(long)]
        version: Option<String>,
        /// The live version (a directory or a URI): scored on the same test window, and the
        /// verdict is against it.
        #[arg(long)]
        compare_to: Option<String>,
        /// Train on the events of the last N days before the newest one only.
        #[arg(long)]
        window_days: Option<u32>,
        /// Feedback the serving pods wrote (a directory or prefix of `date=…/hour=…/`
        /// partitions): read with the events and validated with them.
        #[arg(long)]
        feedback: Option<String>,
        /// Validate events (and feedback) in one pass before training: malformed, too old or
        /// future rows, bots, outliers and duplicate event ids are quarantined. On whenever
        /// --feedback is given.
        #[arg(long)]
        validate: bool,
        /// Also write the gate numbers as one JSON line here (a Job's termination log).
        #[arg(long)]
        result_file: Option<PathBuf>,
        #[arg(long, default_value_t = 30)]
        max_epochs: usize,
        /// How much the two-tower may favour recent positives, each tried on validation:
        /// `none`, or half-lives as shares of the training window's span.
        #[arg(long, value_delimiter = ',', default_values_t = recsys::pipeline::recency::default_candidates())]
        recency: Vec<recsys::pipeline::recency::Recency>,
        #[arg(long, default_value_t = 12)]
        ranker_trials: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Skip the implicit-ALS baseline (slow on large catalogs).
        #[arg(long)]
        no_mf: bool,
        #[arg(long, value_enum, default_value = "latest")]
        publish_state: demo::PublishState,
        /// Where remote inputs are copied.
        #[arg(long, env = "RECSYS_CACHE_DIR", default_value_os_t = std::env::temp_dir().join("recsys-cache"))]
        cache_dir: PathBuf,
    },
    /// Write train / validation / test event files with the cut-offs `train` uses, so any
    /// other tool can be scored on exactly the same rows.
    Split {
        #[arg(long)]
        events: String,
        #[command(flatten)]
        entity_files: EntityFileArgs,
        #[command(flatten)]
        data: DatasetArgs,
        #[command(flatten)]
        windows: WindowArgs,
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve a published model version over gRPC (and HTTP/JSON).
    Serve(recsys_serving::serve_command::ServeArgs),
    /// The sticky experiment router: forwards each user to the arm the routing table assigns.
    Route {
        /// The routing table (JSON, as the operator writes it); reloaded when it changes.
        #[arg(long)]
        table: PathBuf,
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: SocketAddr,
        /// HTTP address of /metrics (router metrics and each arm's experiment sums), /healthz
        /// and /readyz; with TLS on, HTTPS like the gRPC front.
        #[arg(long)]
        http_addr: Option<SocketAddr>,
        /// Redis for the experiment sums shared by router replicas (in process without).
        #[arg(long, env = "RECSYS_REDIS_URL")]
        redis_url: Option<String>,
        /// PEM bundle of CAs for a rediss:// Redis with a private CA.
        #[arg(long, env = "RECSYS_REDIS_CA_FILE")]
        redis_ca_file: Option<PathBuf>,
        /// The token the router presents to its arms (first token of the file; a mounted
        /// Secret, re-read on every call's need so rotations reach it).
        #[arg(long, env = "RECSYS_ARM_TOKEN_FILE")]
        arm_token_file: Option<PathBuf>,
        /// CA bundle (PEM) that signed the arms' certificates, for https:// arm endpoints.
        #[arg(long, env = "RECSYS_ARM_CA_FILE")]
        arm_ca_file: Option<PathBuf>,
        #[command(flatten)]
        front: front::FrontArgs,
    },
    /// Load-test a Recommend endpoint: fixed concurrency (or a fixed rate), Zipf-distributed
    /// users; prints throughput and latency percentiles.
    BenchServe {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        target: String,
        /// Comma-separated concurrency levels, run one after another.
        #[arg(long, default_value = "1,4,16")]
        concurrency: String,
        /// Total requests per second (default: closed loop, as fast as answers come).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// A model version directory whose catalog.json supplies the user ids.
        #[arg(long)]
        users_from: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        num_items: u32,
    },
    /// Write synthetic events (power-law popularity, taste clusters, daily cycle, bots and
    /// planted defects) as CSV, deterministically from a seed.
    Generate {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long)]
        users: Option<u32>,
        #[arg(long)]
        items: Option<u32>,
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Share of rows turned into defects.
        #[arg(long, default_value_t = 0.005)]
        bad_fraction: f64,
        /// Share of users who sign up after the first day (no events before their sign-up).
        #[arg(long, default_value_t = 0.25)]
        newcomer_fraction: f64,
        #[arg(long)]
        out: PathBuf,
        /// Also write the users' profiles here (CSV: user_id, age, gender).
        #[arg(long)]
        users_out: Option<PathBuf>,
        /// Also write the items' metadata here (CSV: item_id, title, category, price, year).
        #[arg(long)]
        items_out: Option<PathBuf>,
    },
    /// Validate an event file (CSV or JSONL): clean rows, quarantined rows with reasons and a
    /// JSON report in --out-dir. Exits non-zero when the quality rate is below the alert level.
    Validate {
        /// A local path or an object-storage URI (s3://bucket/key, file:///path).
        #[arg(long)]
        input: String,
        /// A local directory or an object-storage prefix.
        #[arg(long)]
        out_dir: String,
        /// "Now" for future/too-old checks, unix seconds (default: the current time).
        #[arg(long)]
        now: Option<i64>,
        #[arg(long, default_value_t = 1000)]
        bot_events_per_day: u32,
        #[arg(long, default_value_t = 0.95)]
        quality_alert_below: f64,
        /// Also compute the declarative features as of the end of this UTC date from the
        /// clean rows, in the same pass, into --feature-store.
        #[arg(long, requires = "feature_store")]
        features_as_of: Option<chrono::NaiveDate>,
        /// The offline feature store (a directory or an object-storage prefix).
        #[arg(long)]
        feature_store: Option<String>,
        #[arg(long)]
        feature_spec: Option<PathBuf>,
        #[command(flatten)]
        entity_files: EntityFileArgs,
    },
    /// Compute the declarative features (core/features.yaml or --spec) as of the end of
    /// --as-of into the offline store: <store>/date=YYYY-MM-DD/{user,item}.parquet.
    Features {
        /// Events (CSV, JSONL or Parquet; a path or an s3:// / file:// URI), normally
        /// `recsys validate`'s clean output.
        #[arg(long)]
        input: String,
        /// UTC date, YYYY-MM-DD: events before the following midnight count.
        #[arg(long)]
        as_of: chrono::NaiveDate,
        /// The offline store: a directory or an object-storage prefix.
        #[arg(long)]
        store: String,
        #[arg(long)]
        spec: Option<PathBuf>,
        #[command(flatten)]
        entity_files: EntityFileArgs,
    },
    /// The unevaluated fast path for catalogs `train` does not reach yet (the 1M-item serving
    /// benchmark): fixed epochs, one fixed-parameter ranker, no evaluation, empty metrics.
    TrainEvents {
        #[arg(long)]
        input: String,
        /// Model root; the version is written to <out>/<version>.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "v1")]
        version: String,
        #[command(flatten)]
        data: DatasetArgs,
        #[arg(long, default_value_t = 7)]
        holdout_days: i64,
        #[arg(long, default_value_t = 1)]
        epochs: usize,
        #[arg(long, default_value_t = 2000)]
        ranker_users: usize,
        #[arg(long, default_value_t = 200)]
        ranker_trees: u32,
        /// Which events count as relevant (see `train --labels`).
        #[arg(long)]
        labels: recsys_core::labels::LabelPolicy,
        #[command(flatten)]
        entity_files: EntityFileArgs,
    },
    /// Copy the newest offline partition into the online store (Redis) with the definition's
    /// TTLs.
    Materialize {
        /// The offline store: a directory or an object-storage prefix.
        #[arg(long)]
        store: String,
        #[arg(long, env = "RECSYS_REDIS_URL")]
        redis_url: String,
        #[arg(long)]
        spec: Option<PathBuf>,
    },
    /// Publish the catalog feed's display metadata (title, image_url, price, category by
    /// item_id) to Redis for one day, where serving reads it for every response.
    PublishItems {
        /// CSV, JSON lines or Parquet with an `item_id` column: a path or a URI.
        #[arg(long)]
        items: String,
        #[arg(long, env = "RECSYS_REDIS_URL")]
        redis_url: String,
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
    /// The MovieLens adapter: write ml-100k as the pipeline's files (events.csv, users.csv,
    /// items.csv) for validate, features, split, train and materialize (train with
    /// `--labels 'rating>=4' --category-column genres`).
    ExportMovielens {
        /// The ml-100k directory (default: the usual places, as for `demo`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Experiment statistics: sample size plans and analyses of per-user counts.
    Ab {
        #[command(subcommand)]
        command: AbCommand,
    },
    /// PSI per feature between a reference and a current event window.
    Drift {
        #[arg(long)]
        reference: String,
        #[arg(long)]
        current: String,
    },
    /// Build an ANN index over a model version's items, measure its recall against exact
    /// search, and publish it only at or above the target (the ItemIndex Job).
    BuildIndex {
        /// The model version whose item vectors are indexed: a path or an s3:// / file://
        /// URI.
        #[arg(long)]
        model_dir: String,
        /// Where the index and its manifest are published: a directory or a URI.
        #[arg(long)]
        output: String,
        /// flat, ivf, ivfsq8, hnsw or ivfpq.
        #[arg(long = "type", default_value = "flat")]
        index_type: String,
        #[arg(long)]
        nlist: Option<u32>,
        /// Lists probed per query (IVF kinds); without it, the fewest that reach the recall
        /// target are found and kept.
        #[arg(long)]
        nprobe: Option<u32>,
        /// HNSW links per node, or PQ sub-quantizers for ivfpq.
        #[arg(long)]
        m: Option<u32>,
        #[arg(long)]
        ef_search: Option<u32>,
        #[arg(long, default_value_t = 500)]
        recall_k: usize,
        #[arg(long, default_value_t = 0.95)]
        recall_target: f64,
        #[arg(long, default_value_t = 1000)]
        sample_queries: usize,
        /// Also write the result line here (the pod's termination message).
        #[arg(long)]
        result_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AbCommand {
    /// Users per arm to detect a relative lift `--mde` on a conversion-like `--baseline`,
    /// with the power corrected for `--guardrails` non-inferiority tests.
    Plan {
        #[arg(long)]
        baseline: f64,
        /// Relative minimum detectable effect (0.05 = +5 %).
        #[arg(long)]
        mde: f64,
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        #[arg(long, default_value_t = 0.8)]
        power: f64,
        #[arg(long, default_value_t = 0)]
        guardrails: usize,
    },
    /// Analyses per-user counts (CSV arm,user_id,x,y): lift with CI, p-value, always-valid
    /// p-value and interval, SRM p-value. Prints JSON.
    Analyze {
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value = "control")]
        control: String,
        #[arg(long, default_value = "treatment")]
        treatment: String,
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Planned percent of users in the treatment arm (for the SRM check).
        #[arg(long, default_value_t = 50.0)]
        treatment_percent: f64,
        /// mSPRT mixing scale in the metric's units (the planned absolute MDE).
        #[arg(long)]
        tau: f64,
    },
}

fn index_kind(
    index_type: &str,
    nlist: Option<u32>,
    nprobe: Option<u32>,
    m: Option<u32>,
    ef_search: Option<u32>,
) -> anyhow::Result<IndexKind> {
    let need = |v: Option<u32>, what: &str| {
        v.ok_or_else(|| anyhow::anyhow!("--type {index_type} needs --{what}"))
    };
    Ok(match index_type {
        "flat" => IndexKind::Flat,
        "ivf" => IndexKind::Ivf {
            nlist: need(nlist, "nlist")?,
            nprobe: nprobe.unwrap_or(1),
        },
        "ivfpq" => IndexKind::IvfPq {
            nlist: need(nlist, "nlist")?,
            nprobe: nprobe.unwrap_or(1),
            m: need(m, "m")?,
            nbits: 8,
        },
        "ivfsq8" => IndexKind::IvfSq8 {
            nlist: need(nlist, "nlist")?,
            nprobe: nprobe.unwrap_or(1),
        },
        "hnsw" => IndexKind::Hnsw {
            m: m.unwrap_or(32),
            ef_search: ef_search.unwrap_or(256),
        },
        other => anyhow::bail!("unknown index type {other:?}: flat, ivf, ivfsq8, hnsw or ivfpq"),
    })
}

/// The profile and metadata files behind the feature definition's attribute columns.
#[derive(clap::Args, Debug)]
struct DatasetArgs {
    /// The item metadata column holding categories (several separated by `|`).
    #[arg(long, default_value = "category")]
    category_column: String,
}

/// The events `train` reads: the history alone, or the history and the feedback partitions
/// side by side; validated in one pass (into the scratch directory) when asked or when
/// feedback is part of it.
fn training_input(
    events: &str,
    feedback: Option<&str>,
    validate_first: bool,
    scratch: &remote::Scratch,
) -> anyhow::Result<(PathBuf, Option<validate::ValidationReport>)> {
    let history = remote::fetch(events, &scratch.path().join("events"))?;
    let input = match feedback {
        None => history,
        Some(location) => {
            let Some(served) = remote::fetch_prefix(location, &scratch.path().join("feedback"))?
            else {
                println!("feedback  none yet under {location}");
                return validated(history, true, scratch);
            };
            let both = scratch.path().join("history-and-feedback");
            std::fs::create_dir_all(&both)?;
            for (name, path) in [("history", &history), ("feedback", &served)] {
                let link = both.join(name);
                let target = std::fs::canonicalize(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                if target.is_dir() {
                    std::os::unix::fs::symlink(&target, &link)?;
                } else {
                    std::fs::create_dir_all(&link)?;
                    let file = target.file_name().context("an event file has a name")?;
                    std::os::unix::fs::symlink(&target, link.join(file))?;
                }
            }
            both
        }
    };
    validated(input, validate_first || feedback.is_some(), scratch)
}

/// `input` itself, or its clean rows after one validation pass when `validate_first`.
fn validated(
    input: PathBuf,
    validate_first: bool,
    scratch: &remote::Scratch,
) -> anyhow::Result<(PathBuf, Option<validate::ValidationReport>)> {
    if !validate_first {
        return Ok((input, None));
    }
    let out = scratch.path().join("validated");
    let config = ValidationConfig::new(chrono::Utc::now().timestamp());
    let report = validate::run(&input, &out, &config)?;
    println!("validated {}", report.summary());
    Ok((out.join(validate::CLEAN_FILE), Some(report)))
}

impl DatasetArgs {
    fn load_local(
        &self,
        events: &std::path::Path,
        files: &EntityFileArgs,
        scratch: &remote::Scratch,
    ) -> anyhow::Result<recsys::data::Dataset> {
        let files = files.load(scratch)?;
        recsys::data::event_dataset::load(events, &files, &self.columns())
    }

    fn load(
        &self,
        events: &str,
        files: &EntityFileArgs,
        scratch: &remote::Scratch,
    ) -> anyhow::Result<recsys::data::Dataset> {
        let events = remote::fetch(events, &scratch.path().join("events"))?;
        let files = files.load(scratch)?;
        recsys::data::event_dataset::load(&events, &files, &self.columns())
    }

    fn columns(&self) -> recsys::data::event_dataset::MetadataColumns {
        recsys::data::event_dataset::MetadataColumns {
            category: self.category_column.clone(),
            ..Default::default()
        }
    }
}

#[derive(clap::Args, Debug)]
struct WindowArgs {
    /// `seed`: trailing validation and test windows; `global`: fractions of rows by time.
    #[arg(long, value_enum, default_value = "seed")]
    split: SplitKind,
    /// Seed split: validation starts this many days before the last event…
    #[arg(long, default_value_t = 14)]
    validation_days: i64,
    /// …and test this many.
    #[arg(long, default_value_t = 7)]
    test_days: i64,
    /// Global split: share of rows before validation…
    #[arg(long, default_value_t = 0.8)]
    train_fraction: f64,
    /// …and of validation rows.
    #[arg(long, default_value_t = 0.1)]
    validation_fraction: f64,
    /// Length and number of the rolling windows before validation whose candidates train
    /// the ranker.
    #[arg(long, default_value_t = 7)]
    ranker_window_days: i64,
    /// Window counts the ranker's time-CV chooses from (the most are built), e.g. `4,8`.
    #[arg(long, value_delimiter = ',', default_values_t = [4], value_parser = clap::value_parser!(u16).range(1..))]
    ranker_windows: Vec<u16>,
}

impl WindowArgs {
    fn config(&self) -> recsys::pipeline::train::WindowConfig {
        recsys::pipeline::train::WindowConfig {
            split: self.split,
            validation_days: self.validation_days,
            test_days: self.test_days,
            train_fraction: self.train_fraction,
            validation_fraction: self.validation_fraction,
            ranker_window_days: self.ranker_window_days,
            ranker_windows: self
                .ranker_windows
                .iter()
                .map(|&w| usize::from(w))
                .collect(),
        }
    }
}

#[derive(clap::Args, Debug)]
struct EntityFileArgs {
    /// User profiles (CSV, JSONL or Parquet with a `user_id` column; a path or a URI).
    #[arg(long)]
    users: Option<String>,
    /// Item metadata (CSV, JSONL or Parquet with an `item_id` column; a path or a URI).
    #[arg(long)]
    items: Option<String>,
}

impl EntityFileArgs {
    fn load(&self, scratch: &remote::Scratch) -> anyhow::Result<feature_job::EntityFiles> {
        let fetch = |location: &Option<String>, name: &str| {
            location
                .as_deref()
                .map(|l| remote::fetch(l, &scratch.path().join(name)))
                .transpose()
        };
        let users = fetch(&self.users, "users")?;
        let items = fetch(&self.items, "items")?;
        feature_job::EntityFiles::load(users.as_deref(), items.as_deref())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A training run's numbers must not depend on the machine's vector width; serving keeps
    // the machine's widest kernels (its scores are compared with training's within a
    // tolerance, and the 1M-item benchmark measures them).
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::BenchServe { .. } | Command::Route { .. }
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
    recsys::serving::tls::install_default_provider();
    match cli.command {
        Command::Demo {
            data_dir,
            artifacts_dir,
            user,
            max_epochs,
            ranker_trials,
            split,
            publish_state,
            seed,
        } => {
            demo::run(DemoOptions {
                data_dir,
                artifacts_dir,
                user,
                max_epochs,
                split,
                ranker_trials,
                publish_state,
                seed,
            })
            .await?;
        }
        Command::Train {
            events,
            entity_files,
            data,
            labels,
            windows,
            out,
            version,
            compare_to,
            window_days,
            feedback,
            validate,
            result_file,
            max_epochs,
            recency,
            ranker_trials,
            seed,
            no_mf,
            publish_state,
            cache_dir,
        } => {
            let scratch = remote::Scratch::new("train")?;
            let (input, validation) =
                training_input(&events, feedback.as_deref(), validate, &scratch)?;
            let mut dataset = data.load_local(&input, &entity_files, &scratch)?;
            if let Some(days) = window_days {
                let dropped = dataset.keep_last_days(days);
                println!(
                    "window    last {days} days: {} events kept, {dropped} older dropped",
                    dataset.interactions.len()
                );
            }
            let rows = dataset.interactions.len();
            let live = compare_to
                .map(|uri| recsys::artifacts::fetch::fetch_version(&uri, &cache_dir))
                .transpose()?
                .map(|dir| {
                    Box::new(recsys::live_version::ServedVersion(dir))
                        as Box<dyn recsys::pipeline::live::LiveScorer>
                });
            let output = remote::Output::new(&out, &scratch);
            let version = version
                .unwrap_or_else(|| format!("v{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
            let summary = recsys::pipeline::train::run(
                dataset,
                &recsys::pipeline::train::TrainOptions {
                    labels,
                    windows: windows.config(),
                    max_epochs,
                    recency_candidates: recency,
                    ranker_trials,
                    seed,
                    with_mf: !no_mf,
                    publish_state,
                    out_root: output.local().to_path_buf(),
                    version: version.clone(),
                    live,
                    source: recsys_core::redact::url(&events),
                },
            )?;
            if let Some(report) = &validation {
                std::fs::write(
                    summary.artifact_dir.join(validate::REPORT_FILE),
                    serde_json::to_vec_pretty(report)?,
                )?;
                // The report is part of the version: reseal so its digest covers it.
                let manifest = recsys::artifacts::verify(&summary.artifact_dir, None)?;
                recsys::artifacts::seal(&summary.artifact_dir, manifest)?;
            }
            output.publish(&version)?;
            if let Some(file) = &result_file {
                let line = recsys::pipeline::run_result::from_evaluation(
                    &summary.artifact_dir,
                    &remote::join(&out, &version),
                    rows,
                )?;
                recsys::pipeline::run_result::write(file, &line)?;
            }
            println!(
                "version   {} ({} ranker positives; verdict: {})",
                remote::join(&out, &version),
                summary.ranker_positives,
                summary.verdict.decision
            );
        }
        Command::Split {
            events,
            entity_files,
            data,
            windows,
            out,
        } => {
            let scratch = remote::Scratch::new("split")?;
            let dataset = data.load(&events, &entity_files, &scratch)?;
            let cut = windows.config().cut(&dataset)?;
            recsys::data::export::write_split(&dataset, cut, &out)?;
            println!(
                "wrote     {}/{{train,validation,test}}.csv and cutoffs.json (validation from {}, test from {})",
                out.display(),
                cut.validation_start,
                cut.test_start
            );
        }
        Command::Serve(args) => recsys_serving::serve_command::run(args).await?,
        Command::Route {
            table,
            addr,
            http_addr,
            redis_url,
            redis_ca_file,
            arm_token_file,
            arm_ca_file,
            front,
        } => {
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
                    .map(|p| recsys::serving::auth::TokenFile::open(p).map(Arc::new))
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
                RouterState::with_experiment(
                    router::read_table(&table)?,
                    ExperimentStats::new(redis),
                )
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
        }
        Command::BenchServe {
            target,
            concurrency,
            rate,
            duration_secs,
            users_from,
            num_items,
        } => {
            let users: Vec<String> = match users_from {
                Some(dir) => {
                    let catalog: recsys::artifacts::bundle::Catalog = serde_json::from_slice(
                        &std::fs::read(dir.join(recsys::artifacts::bundle::CATALOG_FILE))?,
                    )?;
                    catalog.user_ids
                }
                None => (1..=1000).map(|u| u.to_string()).collect(),
            };
            for level in concurrency.split(',') {
                let report = load::run(load::LoadOptions {
                    target: target.clone(),
                    concurrency: level.trim().parse()?,
                    rate,
                    duration: std::time::Duration::from_secs(duration_secs),
                    users: users.clone(),
                    num_items,
                })
                .await?;
                println!("concurrency {:>3}: {report}", level.trim());
            }
        }
        Command::Generate {
            events,
            users,
            items,
            days,
            seed,
            bad_fraction,
            newcomer_fraction,
            out,
            users_out,
            items_out,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&newcomer_fraction),
                "--newcomer-fraction must be within 0..=1, got {newcomer_fraction}"
            );
            let now = chrono::Utc::now().timestamp();
            let start = now - now.rem_euclid(86_400) - i64::from(days) * 86_400;
            let defaults = GeneratorConfig::new(events, start);
            let config = GeneratorConfig {
                users: users.unwrap_or(defaults.users),
                items: items.unwrap_or(defaults.items),
                days,
                seed,
                bad_fraction,
                newcomer_fraction,
                ..defaults
            };
            let t = std::time::Instant::now();
            let generated = synthetic::generate(&out, &config)?;
            if let (Some(users), Some(items)) = (&users_out, &items_out) {
                synthetic::write_catalog(&config, users, items)?;
            } else if users_out.is_some() || items_out.is_some() {
                anyhow::bail!("--users-out and --items-out go together");
            }
            eprintln!(
                "wrote {} rows ({} planted defects) to {} in {:.1} s",
                generated.rows,
                generated.planted.len(),
                out.display(),
                t.elapsed().as_secs_f64()
            );
        }
        Command::Validate {
            input,
            out_dir,
            now,
            bot_events_per_day,
            quality_alert_below,
            features_as_of,
            feature_store,
            feature_spec,
            entity_files,
        } => {
            let started = std::time::Instant::now();
            let config = ValidationConfig {
                bot_events_per_day,
                quality_alert_below,
                ..ValidationConfig::new(now.unwrap_or_else(|| chrono::Utc::now().timestamp()))
            };
            let scratch = remote::Scratch::new("validate")?;
            let input = remote::fetch(&input, &scratch.path().join("input"))?;
            let out = remote::Output::new(&out_dir, &scratch);
            let spec = feature_job::load_spec(feature_spec.as_deref())?;
            let mut engine = features_as_of.map(|date| {
                recsys_core::features::FeatureEngine::new(&spec, feature_job::as_of_for(date))
            });
            let report = validate::run_with(&input, out.local(), &config, &mut |event| {
                if let Some(engine) = engine.as_mut() {
                    engine.observe(event);
                }
            })?;
            out.publish("")?;
            println!("{}", report.summary());
            if let (Some(engine), Some(date), Some(store)) = (engine, features_as_of, feature_store)
            {
                let store_scratch = remote::Scratch::new("validate-features")?;
                let store_out = remote::Output::new(&store, &store_scratch);
                let files = entity_files.load(&store_scratch)?;
                let (dir, m) = feature_job::write_engine(
                    engine,
                    date,
                    &spec,
                    store_out.local(),
                    report.tally.quarantined,
                    &files,
                )?;
                store_out.publish(&format!("date={}", m.date))?;
                println!(
                    "{}: {} users, {} items from {} clean events ({} at or after the as-of time ignored); {:.1} s in all",
                    dir.display(),
                    m.users,
                    m.items,
                    m.events_used,
                    m.events_after_as_of,
                    started.elapsed().as_secs_f64()
                );
            }
            if report.alert {
                std::process::exit(3);
            }
        }
        Command::Features {
            input,
            as_of,
            store,
            spec,
            entity_files,
        } => {
            let spec = feature_job::load_spec(spec.as_deref())?;
            let scratch = remote::Scratch::new("features")?;
            let input = remote::fetch(&input, &scratch.path().join("input"))?;
            let files = entity_files.load(&scratch)?;
            let out = remote::Output::new(&store, &scratch);
            let (dir, m, rate) = feature_job::compute(&input, as_of, &spec, out.local(), &files)?;
            out.publish(&format!("date={}", m.date))?;
            println!(
                "{}: {} users, {} items from {} events ({} at or after the as-of time ignored, {} unreadable rows skipped); schema {}; {rate:.0} rows/s",
                dir.display(),
                m.users,
                m.items,
                m.events_used,
                m.events_after_as_of,
                m.rows_rejected,
                m.schema_hash
            );
        }
        Command::TrainEvents {
            input,
            out,
            version,
            data,
            holdout_days,
            epochs,
            ranker_users,
            ranker_trees,
            labels,
            entity_files,
        } => {
            let scratch = remote::Scratch::new("train-events")?;
            let input = remote::fetch(&input, &scratch.path().join("input"))?;
            let files = entity_files.load(&scratch)?;
            let options = events_model::EventsModelOptions {
                holdout_days,
                epochs,
                ranker_users,
                ranker_trees,
                version,
                files,
                columns: data.columns(),
                labels,
            };
            events_model::train(&input, &out, &options)?;
        }
        Command::Materialize {
            store,
            redis_url,
            spec,
        } => {
            let spec = feature_job::load_spec(spec.as_deref())?;
            let scratch = remote::Scratch::new("materialize")?;
            let local = if remote::is_remote(&store) {
                let dates = remote::complete_partitions(&store)?;
                let latest = dates
                    .last()
                    .with_context(|| format!("{store}: no complete date=… partition"))?;
                let local = scratch.path().join("store");
                remote::download_prefix(
                    &format!("{}/{latest}", store.trim_end_matches('/')),
                    &local.join(latest),
                )?;
                local
            } else {
                PathBuf::from(&store)
            };
            let done = feature_job::materialize(&local, &redis_url, &spec)?;
            println!(
                "{} → {}: {} keys in {:.1} s",
                done.partition.display(),
                recsys_core::redact::url(&redis_url),
                done.keys,
                done.seconds
            );
        }
        Command::PublishItems {
            items,
            redis_url,
            ttl_hours,
        } => {
            let scratch = remote::Scratch::new("publish-items")?;
            let local = remote::fetch(&items, scratch.path())?;
            let feed = recsys::serving::item_display::read_feed(&local)?;
            let progress = indicatif::ProgressBar::new(feed.len() as u64);
            let written = recsys::serving::item_display::publish(
                &redis_url,
                &feed,
                std::time::Duration::from_secs(ttl_hours.max(1) * 3600),
                &|n| progress.set_position(n),
            )?;
            progress.finish_and_clear();
            println!(
                "{items} → {}: {written} items, {ttl_hours} h",
                recsys_core::redact::url(&redis_url)
            );
        }
        Command::ExportMovielens { data_dir, out } => {
            let data = recsys::data::movielens::load(&recsys::data::locate::find_movielens(
                data_dir.as_deref(),
            )?)?;
            std::fs::create_dir_all(&out)?;
            recsys::data::movielens::write_events(&data, &out.join("events.csv"))?;
            let write = recsys::data::entity_files::write_csv;
            if let (Some(profiles), Some(metadata)) = (&data.profiles, &data.metadata) {
                write(profiles, "user_id", &out.join("users.csv"))?;
                write(metadata, "item_id", &out.join("items.csv"))?;
            }
            println!(
                "{}: events.csv ({} ratings), users.csv ({} users), items.csv ({} items)",
                out.display(),
                data.interactions.len(),
                data.users.len(),
                data.items.len()
            );
        }
        Command::Ab { command } => match command {
            AbCommand::Plan {
                baseline,
                mde,
                alpha,
                power,
                guardrails,
            } => {
                anyhow::ensure!(
                    (0.0..1.0).contains(&baseline) && baseline > 0.0,
                    "--baseline must be in (0, 1)"
                );
                anyhow::ensure!(
                    mde > 0.0 && baseline * (1.0 + mde) < 1.0,
                    "--mde must be > 0 and keep the rate below 1"
                );
                let plan = recsys_core::stats::power::plan(baseline, mde, alpha, power, guardrails);
                println!("{}", serde_json::to_string_pretty(&plan)?);
            }
            AbCommand::Analyze {
                input,
                control,
                treatment,
                alpha,
                treatment_percent,
                tau,
            } => {
                anyhow::ensure!(tau > 0.0, "--tau must be positive");
                let settings = recsys_core::stats::analysis::Settings {
                    alpha,
                    expected_split: (100.0 - treatment_percent, treatment_percent),
                    tau,
                };
                let analysis =
                    recsys::pipeline::ab::run_analyze(&input, &control, &treatment, &settings)?;
                println!("{}", serde_json::to_string_pretty(&analysis)?);
            }
        },
        Command::Drift { reference, current } => {
            let scratch = remote::Scratch::new("drift")?;
            let reference = remote::fetch(&reference, &scratch.path().join("reference"))?;
            let current = remote::fetch(&current, &scratch.path().join("current"))?;
            for f in drift::compare(&reference, &current)? {
                println!("{:<12} PSI {:>8.4}  {:?}", f.feature, f.psi, f.level);
            }
        }
        Command::BuildIndex {
            model_dir,
            output,
            index_type,
            nlist,
            nprobe,
            m,
            ef_search,
            recall_k,
            recall_target,
            sample_queries,
            result_file,
        } => {
            let kind = index_kind(&index_type, nlist, nprobe, m, ef_search)?;
            index_build::run(&IndexBuildOptions {
                model_dir,
                output,
                kind,
                tune_probes: nprobe.is_none(),
                recall_k,
                recall_target,
                sample_queries,
                result_file,
            })?;
        }
    }
    Ok(())
}
