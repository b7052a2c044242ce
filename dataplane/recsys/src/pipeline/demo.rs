//! The main job end to end on MovieLens 100K: load → global time split → two-tower → FAISS →
//! LightGBM → full-catalog evaluation against popularity baselines → versioned artifacts → a gRPC
//! server → one real `Recommend` call.

use super::evaluate::{self, EvalSet, MetricRow, LIST_LENGTH};
use super::labels::relevant_by_user;
use super::{ranking, report, retrieval};
use crate::artifacts::DataWindow;
use crate::data::{locate, movielens, Dataset};
use crate::features::{tower, FeatureSnapshot};
use crate::serving::bundle::{self, BundleParts, Catalog};
use crate::serving::{grpc, Engine};
use anyhow::Context;
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::RecommendRequest;
use recsys_core::{
    baseline, metrics, ranking as rank_util, ItemId, SplitWindows, TimeSplit, UserId,
};
use recsys_models::{AnnIndex, IndexKind, RankerParams};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub struct DemoOptions {
    pub data_dir: Option<PathBuf>,
    pub artifacts_dir: PathBuf,
    pub user: Option<String>,
    pub max_epochs: usize,
    pub split: SplitKind,
}

/// The two splits of the evaluation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitKind {
    /// Train before T−14 d, validation T−14..T−7 d, test the last 7 days (the product default).
    Seed,
    /// Global 80/10/10 by time (more test users, tighter intervals).
    Global,
}

/// What the demo measured, for callers and tests.
pub struct DemoSummary {
    pub rows: Vec<MetricRow>,
    pub ranker_auc: Option<f64>,
    pub ranker_log_loss: f64,
    pub artifact_dir: PathBuf,
    pub recommended_titles: Vec<String>,
}

type Lists = BTreeMap<UserId, Vec<ItemId>>;

/// Weekly windows before validation whose candidates train the ranker.
const RANKER_WINDOWS: usize = 4;

fn lists_from_scores(users: &[UserId], snapshot: &FeatureSnapshot, scores: &[f32]) -> Lists {
    users
        .iter()
        .map(|&u| {
            (
                u,
                rank_util::top_k_dense(scores, LIST_LENGTH, |i| snapshot.has_seen(u, i)),
            )
        })
        .collect()
}

/// Picks the recent-popularity window on validation (fit on train), as the protocol asks.
fn choose_recent_days(data: &Dataset, split: &TimeSplit, windows: SplitWindows) -> i64 {
    let snapshot = FeatureSnapshot::compute(data, &split.train, windows.validation_start);
    let labels = relevant_by_user(&split.validation);
    let users: Vec<UserId> = labels.keys().copied().collect();
    let mut best = (f64::NEG_INFINITY, 7);
    for days in [1, 3, 7, 14, 30, 60] {
        let scores = baseline::recent_popularity_scores(
            &split.train,
            data.items.len(),
            windows.validation_start,
            days,
        );
        let lists = lists_from_scores(&users, &snapshot, &scores);
        let ndcg = users
            .iter()
            .map(|u| metrics::ndcg_at_k(&lists[u], &labels[u], 10))
            .sum::<f64>()
            / users.len().max(1) as f64;
        if ndcg > best.0 {
            best = (ndcg, days);
        }
    }
    best.1
}

pub async fn run(options: DemoOptions) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    let dir = locate::find_movielens(options.data_dir.as_deref())?;
    let data = movielens::load(&dir)?;
    let last = data.last_timestamp().context("no interactions")?;
    let windows = match options.split {
        SplitKind::Seed => SplitWindows::seed(last),
        SplitKind::Global => {
            SplitWindows::by_fraction(&data.interactions, 0.8, 0.1).context("no interactions")?
        }
    };
    let split = TimeSplit::new(&data.interactions, windows);
    println!(
        "data      {} — {} users, {} items, {} interactions",
        dir.display(),
        data.users.len(),
        data.items.len(),
        data.interactions.len()
    );
    println!(
        "split     train < {} ≤ validation < {} ≤ test  ({} / {} / {} rows)",
        fmt_time(windows.validation_start),
        fmt_time(windows.test_start),
        split.train.len(),
        split.validation.len(),
        split.test.len()
    );

    // Model selection on validation: two-tower fit on train with early stopping; ranker trained
    // on the validation window's candidates.
    let snapshot_val = FeatureSnapshot::compute(&data, &split.train, windows.validation_start);
    let selection = retrieval::train(
        &snapshot_val,
        &split.train,
        Some(&split.validation),
        options.max_epochs,
    )?;
    println!(
        "two-tower selection: best epoch {} of {} (validation Recall@50 {:.4})",
        selection.report.best_epoch, selection.report.epochs_run, selection.report.best_validation
    );
    let epochs = selection.report.best_epoch.max(1);
    let ranker_train = ranking::rolling_window_rows(
        &data,
        &split.train,
        windows.validation_start,
        RANKER_WINDOWS,
        epochs,
    )?;
    let ranker_valid = ranking::candidate_rows(&selection, &snapshot_val, &split.validation)?;
    let ranker_params = RankerParams::default();
    let ranker = ranking::train_ranker(&ranker_train, &ranker_valid, &ranker_params)?;
    println!(
        "ranker    LightGBM, {} trees; {} weekly windows = {} candidate rows ({} positive), validated on {} rows; top features: {}",
        ranker.num_trees(),
        RANKER_WINDOWS,
        ranker_train.len(),
        ranker_train.positives(),
        ranker_valid.len(),
        ranker
            .feature_importance()?
            .iter()
            .take(4)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let recent_days = choose_recent_days(&data, &split, windows);

    // Refit retrieval on train + validation with the chosen epoch count; evaluate on test.
    let history = split.train_and_validation();
    let snapshot_test = FeatureSnapshot::compute(&data, &history, windows.test_start);
    let final_retrieval = retrieval::train(
        &snapshot_test,
        &history,
        None,
        selection.report.best_epoch.max(1),
    )?;

    let relevant = relevant_by_user(&split.test);
    let users: Vec<UserId> = relevant.keys().copied().collect();
    let warm: HashSet<UserId> = users
        .iter()
        .copied()
        .filter(|&u| snapshot_test.users[u as usize].history_len > 0)
        .collect();
    let counts = snapshot_test.item_counts();
    let set = EvalSet {
        relevant: &relevant,
        warm: &warm,
        item_counts: &counts,
        catalog_size: data.items.len(),
    };

    let popular_scores: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
    let most_popular = lists_from_scores(&users, &snapshot_test, &popular_scores);
    let recent_scores = baseline::recent_popularity_scores(
        &history,
        data.items.len(),
        windows.test_start,
        recent_days,
    );
    let recent_popular = lists_from_scores(&users, &snapshot_test, &recent_scores);
    let mut two_tower = Lists::new();
    let mut two_stage = Lists::new();
    let (mut auc_scores, mut auc_labels) = (Vec::new(), Vec::new());
    for &u in &users {
        let candidates = final_retrieval.retrieve(&snapshot_test, u, ranking::CANDIDATES)?;
        two_tower.insert(
            u,
            candidates.iter().take(LIST_LENGTH).map(|c| c.0).collect(),
        );
        let ranked = ranking::rerank(&ranker, &snapshot_test, u, &candidates)?;
        for &(item, score) in &ranked {
            auc_scores.push(score);
            auc_labels.push(relevant[&u].contains(&item));
        }
        two_stage.insert(u, ranked.iter().take(LIST_LENGTH).map(|c| c.0).collect());
    }
    let ranker_auc = metrics::auc(&auc_scores, &auc_labels);
    let ranker_log_loss = metrics::log_loss(&auc_scores, &auc_labels);

    let mut rows = Vec::new();
    for (name, lists) in [
        ("most-popular", &most_popular),
        (&*format!("recent-popular({recent_days}d)"), &recent_popular),
        ("two-tower", &two_tower),
        ("two-tower+ranker", &two_stage),
    ] {
        rows.extend(evaluate::evaluate(name, lists, &set));
    }
    rows.sort_by_key(|r| r.subset != "all");
    let lift = evaluate::paired_ndcg_difference(&two_stage, &most_popular, &relevant);

    println!(
        "\nTest window ({} evaluated users, {} warm), full catalog, seen items excluded:",
        users.len(),
        warm.len()
    );
    print!("{}", report::metrics_table(&rows));
    println!(
        "ranker on test candidates: AUC {} LogLoss {ranker_log_loss:.4}; NDCG@10 two-tower+ranker − most-popular = {:+.4} [{:+.4}, {:+.4}] (paired 95% CI)",
        ranker_auc.map_or("n/a".into(), |a| format!("{a:.4}")),
        lift.mean,
        lift.low,
        lift.high
    );

    // Publish: the evaluated model, its item index rebuilt over features as of now.
    let snapshot_now = FeatureSnapshot::compute(&data, &data.interactions, last + 1);
    let item_vectors = final_retrieval
        .model
        .embed_items(&tower::all_items(&snapshot_now))?;
    let ann = AnnIndex::build(
        IndexKind::for_catalog(data.items.len()),
        final_retrieval.dim(),
        &item_vectors,
        (0..data.items.len() as u32).collect(),
    )?;
    let serving_retrieval = retrieval::Retrieval {
        ann,
        item_vectors,
        ..final_retrieval
    };
    let version = format!("ml100k-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let artifact_dir = options.artifacts_dir.join(&version);
    let manifest = bundle::write(
        &artifact_dir,
        BundleParts {
            version: &version,
            retrieval: &serving_retrieval,
            ranker: &ranker,
            snapshot: &snapshot_now,
            catalog: &Catalog::from_dataset(&data),
            data_window: DataWindow {
                first_timestamp: data
                    .interactions
                    .iter()
                    .map(|r| r.timestamp)
                    .min()
                    .unwrap_or(0),
                cutoff: windows.test_start,
                rows: history.len(),
            },
            hyper_parameters: json!({
                "two_tower": serving_retrieval.model.config(),
                "ranker": ranker_params,
                "recent_popularity_days": recent_days,
            }),
            metrics: json!({
                "split": format!("{:?}", options.split).to_lowercase(),
                "rows": rows,
                "ranker_auc": ranker_auc,
                "ranker_log_loss": ranker_log_loss,
            }),
        },
    )?;

    // Serve it and ask for one real user's recommendations over gRPC.
    let engine = Arc::new(Engine::load(&artifact_dir)?);
    let (addr, server) = grpc::bind(Arc::clone(&engine), "127.0.0.1:0".parse()?).await?;
    let server_task = tokio::spawn(server);
    let user = options
        .user
        .unwrap_or_else(|| pick_user(&data, &relevant, &warm));
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
        "\nartifacts {} ({} files, manifest.json with checksums)",
        artifact_dir.display(),
        manifest.files.len()
    );
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());

    Ok(DemoSummary {
        rows,
        ranker_auc,
        ranker_log_loss,
        artifact_dir,
        recommended_titles: response.items.into_iter().map(|i| i.title).collect(),
    })
}

/// A warm test user with the most relevant test items: an interesting, real example.
fn pick_user(
    data: &Dataset,
    relevant: &BTreeMap<UserId, HashSet<ItemId>>,
    warm: &HashSet<UserId>,
) -> String {
    relevant
        .iter()
        .filter(|(u, _)| warm.contains(u))
        .max_by_key(|(u, r)| (r.len(), std::cmp::Reverse(**u)))
        .map(|(u, _)| data.users[*u as usize].external_id.clone())
        .unwrap_or_else(|| data.users[0].external_id.clone())
}

fn fmt_time(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0).map_or_else(
        || ts.to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}
