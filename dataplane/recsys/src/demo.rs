//! The main job end to end on MovieLens 100K: the MovieLens files read natively, then the same
//! `recsys train` pipeline any dataset goes through (with MovieLens's label policy, ratings of
//! 4 or more), then the published version served over gRPC and asked for one real user.

use crate::pipeline::compare;
use crate::pipeline::evaluate::MetricRow;
use crate::pipeline::train::{self, TrainOptions, WindowConfig};
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::RecommendRequest;
use recsys_core::labels::LabelPolicy;
use recsys_data::{locate, movielens};
use recsys_serving::serving::{grpc, Engine, ServingState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use crate::pipeline::train::{PublishState, SplitKind, REPORT_FILE};

pub struct DemoOptions {
    pub data_dir: Option<PathBuf>,
    pub artifacts_dir: PathBuf,
    pub user: Option<String>,
    pub max_epochs: usize,
    pub split: SplitKind,
    /// Ranker hyper-parameter configurations to try (the first is the default).
    pub ranker_trials: usize,
    /// Which state the published version serves from.
    pub publish_state: PublishState,
    pub seed: u64,
}

/// What the demo measured, for callers and tests.
pub struct DemoSummary {
    pub rows: Vec<MetricRow>,
    pub ranker_auc: Option<f64>,
    /// Only for the binary objective, whose scores are probabilities.
    pub ranker_log_loss: Option<f64>,
    pub artifact_dir: PathBuf,
    pub verdict: compare::Verdict,
    pub recommended_titles: Vec<String>,
}

/// The MovieLens protocol's relevance: a rating of 4 or more.
pub fn movielens_labels() -> LabelPolicy {
    LabelPolicy::ratings_at_least(4.0)
}

/// The demo's training settings for `split` (what `recsys train` gets from its defaults).
pub fn train_options(options: &DemoOptions, version: String) -> TrainOptions {
    TrainOptions {
        labels: movielens_labels(),
        windows: WindowConfig {
            split: options.split,
            ..WindowConfig::default()
        },
        max_epochs: options.max_epochs,
        recency_candidates: crate::pipeline::recency::default_candidates(),
        ranker_trials: options.ranker_trials,
        seed: options.seed,
        with_mf: true,
        publish_state: options.publish_state,
        out_root: options.artifacts_dir.clone(),
        version,
        live: None,
        source: "ml-100k".into(),
    }
}

pub async fn run(options: DemoOptions) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    let dir = locate::find_movielens(options.data_dir.as_deref())?;
    let data = movielens::load(&dir)?;
    println!("data      {}", dir.display());
    let version = format!("ml100k-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let trained = train::run(data, &train_options(&options, version))?;
    let artifact_dir = trained.artifact_dir.clone();
    let manifest = recsys_version::verify(&artifact_dir, None)?;

    // Serve it and ask for one real user's recommendations over gRPC.
    let state = Arc::new(ServingState::new(Engine::load(&artifact_dir)?, None));
    let (addr, server) = grpc::bind(state, "127.0.0.1:0".parse()?, std::future::pending()).await?;
    let server_task = tokio::spawn(server);
    let user = options.user.unwrap_or(trained.example_user);
    let mut client = RecommenderClient::connect(format!("http://{addr}")).await?;
    let response = client
        .recommend(RecommendRequest {
            user_id: user.clone(),
            num_items: 10,
            explain: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    server_task.abort();

    println!(
        "\nRecommend(user_id={user}, num_items=10) via gRPC at {addr} → model {}:",
        response.model_version
    );
    for item in &response.items {
        println!(
            "  {:>2}. {:<55} score {:.4}  [{}]",
            item.rank, item.title, item.score, item.category
        );
    }
    let timings: Vec<String> = response
        .timings
        .iter()
        .map(|t| format!("{} {:.2} ms", t.stage, t.millis))
        .collect();
    println!("  stages: {}", timings.join(", "));
    println!(
        "\nartifacts {} ({} files, manifest.json with checksums); report {}",
        artifact_dir.display(),
        manifest.files.len(),
        artifact_dir.join(REPORT_FILE).display()
    );
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());

    Ok(DemoSummary {
        rows: trained.rows,
        ranker_auc: trained.ranker_auc,
        ranker_log_loss: trained.ranker_log_loss,
        artifact_dir,
        verdict: trained.verdict,
        recommended_titles: response.items.into_iter().map(|i| i.title).collect(),
    })
}
