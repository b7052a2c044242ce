//! The main job end to end on MovieLens 100K: load → global time split → two-tower → FAISS →
//! LightGBM → full-catalog evaluation against popularity baselines → versioned artifacts → a gRPC
//! server → one real `Recommend` call.

use super::evaluate::{self, EvalSet, MetricRow, LIST_LENGTH};
use super::labels::{first_event_times, relevant_by_user};
use super::{compare, html_report, mf_baseline, ranking, report, retrieval, tuning};
use crate::artifacts::DataWindow;
use crate::data::{locate, movielens, Dataset};
use crate::features::{tower, FeatureSnapshot};
use crate::serving::bundle::{self, BundleParts, Catalog};
use crate::serving::{grpc, Engine, ServingState};
use anyhow::Context;
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::RecommendRequest;
use recsys_core::features::Context as RequestContext;
use recsys_core::{
    baseline, metrics, ranking as rank_util, ItemId, SplitWindows, TimeSplit, UserId,
};
use recsys_models::{AnnIndex, IndexKind, Objective};
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
    /// Ranker hyper-parameter configurations to try (the first is the default).
    pub ranker_trials: usize,
    /// Which state the published version serves from.
    pub publish_state: PublishState,
}

/// The user histories and item features a published version carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PublishState {
    /// Everything up to the last event (what production serves).
    #[default]
    Latest,
    /// As of the test window's start: the state the test window was evaluated from, so the
    /// served version can be asked by users replaying their held-out interactions (an
    /// experiment simulation, a backtest) without those being already "seen".
    TestStart,
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
    /// Only for the binary objective, whose scores are probabilities.
    pub ranker_log_loss: Option<f64>,
    pub artifact_dir: PathBuf,
    pub verdict: compare::Verdict,
    pub recommended_titles: Vec<String>,
}

type Lists = BTreeMap<UserId, Vec<ItemId>>;

pub const REPORT_FILE: &str = "report.html";

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
    // Candidate blocks, oldest first: four weekly windows before validation, then validation.
    let mut blocks = ranking::rolling_window_rows(
        &data,
        &split.train,
        windows.validation_start,
        RANKER_WINDOWS,
        epochs,
    )?;
    blocks.push(ranking::candidate_rows(
        &selection,
        &snapshot_val,
        &split.validation,
    )?);
    let tuning = tuning::search(&blocks, options.ranker_trials, 7)?;
    let ranker = tuning::refit(&blocks, &tuning)?;
    let importance = ranker.feature_importance()?;
    let best_cv = tuning
        .trials
        .iter()
        .map(|t| t.mean_ndcg)
        .fold(f64::NEG_INFINITY, f64::max);
    println!(
        "ranker    LightGBM {:?}, {} trees, chosen from {} configurations by {}-fold time CV (NDCG@10 {best_cv:.4}); {} candidate rows ({} positive) in {} weekly blocks; top features: {}",
        tuning.best.objective,
        ranker.num_trees(),
        tuning.trials.len(),
        tuning.folds,
        blocks.iter().map(|b| b.len()).sum::<usize>(),
        blocks.iter().map(|b| b.positives()).sum::<usize>(),
        blocks.len(),
        importance
            .iter()
            .take(4)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (mf_params, mf_validation) =
        mf_baseline::tune(&snapshot_val, &split.train, &split.validation)?;
    println!(
        "MF        implicit ALS, {} factors, λ {}, α {} (validation NDCG@10 {mf_validation:.4})",
        mf_params.factors, mf_params.regularization, mf_params.alpha
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
    // Each test user's ranking context: the time they came back (as a request would carry).
    let request_times = first_event_times(&split.test);
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
    let mf = mf_baseline::fit(&snapshot_test, &history, mf_params)?;
    let matrix_factorization =
        mf_baseline::lists(&mf, &snapshot_test, &users, &popular_scores, LIST_LENGTH);
    let mut two_tower = Lists::new();
    let mut two_stage = Lists::new();
    let (mut auc_scores, mut auc_labels) = (Vec::new(), Vec::new());
    for &u in &users {
        let candidates = final_retrieval.retrieve(&snapshot_test, u, ranking::CANDIDATES)?;
        two_tower.insert(
            u,
            candidates.iter().take(LIST_LENGTH).map(|c| c.0).collect(),
        );
        let ctx = RequestContext {
            timestamp: request_times[&u],
            ..RequestContext::default()
        };
        let ranked = ranking::rerank(&ranker, &snapshot_test, u, &candidates, &ctx)?;
        for &(item, score) in &ranked {
            auc_scores.push(score);
            auc_labels.push(relevant[&u].contains(&item));
        }
        two_stage.insert(u, ranked.iter().take(LIST_LENGTH).map(|c| c.0).collect());
    }
    let ranker_auc = metrics::auc(&auc_scores, &auc_labels);
    let probabilities = tuning.best.objective == Objective::Binary;
    let ranker_log_loss = probabilities.then(|| metrics::log_loss(&auc_scores, &auc_labels));

    let mut rows = Vec::new();
    let recent_name = format!("recent-popular({recent_days}d)");
    let systems = [
        ("most-popular", &most_popular),
        (recent_name.as_str(), &recent_popular),
        ("MF (ALS)", &matrix_factorization),
        ("two-tower", &two_tower),
        ("two-tower+ranker", &two_stage),
    ];
    for (name, lists) in systems {
        rows.extend(evaluate::evaluate(name, lists, &set));
    }
    rows.sort_by_key(|r| r.subset != "all");
    let lift = evaluate::paired_ndcg_difference(&two_stage, &most_popular, &relevant);
    let lift_mf = evaluate::paired_ndcg_difference(&two_stage, &matrix_factorization, &relevant);

    println!(
        "\nTest window ({} evaluated users, {} warm), full catalog, seen items excluded:",
        users.len(),
        warm.len()
    );
    print!("{}", report::metrics_table(&rows));
    println!(
        "ranker on test candidates: AUC {} LogLoss {}",
        ranker_auc.map_or("n/a".into(), |a| format!("{a:.4}")),
        ranker_log_loss.map_or("n/a (lambdarank scores)".into(), |l| format!("{l:.4}")),
    );
    for (baseline, d) in [("most-popular", lift), ("MF (ALS)", lift_mf)] {
        println!(
            "NDCG@10 two-tower+ranker − {baseline} = {:+.4} [{:+.4}, {:+.4}] (paired 95% CI)",
            d.mean, d.low, d.high
        );
    }

    // Publish: the evaluated model, its item index rebuilt over features as of now.
    let snapshot_now = match options.publish_state {
        PublishState::Latest => FeatureSnapshot::compute(&data, &data.interactions, last + 1),
        PublishState::TestStart => snapshot_test.clone(),
    };
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
    let split_name = format!("{:?}", options.split).to_lowercase();
    let record = compare::EvaluationRecord {
        model_version: version.clone(),
        split: split_name.clone(),
        test_start: windows.test_start,
        system: "two-tower+ranker".into(),
        ndcg_at_10: rows
            .iter()
            .find(|r| r.system == "two-tower+ranker" && r.subset == "all")
            .map_or(0.0, |r| r.ndcg_at_10.mean),
        per_user_ndcg: evaluate::per_user_ndcg(&two_stage, &relevant)
            .into_iter()
            .map(|(u, v)| (data.users[u as usize].external_id.clone(), v))
            .collect(),
    };
    let previous = compare::find_previous(
        &options.artifacts_dir,
        &version,
        &split_name,
        windows.test_start,
    );
    let verdict = compare::verdict(&record, previous.as_ref().map(|p| &p.1));
    println!("verdict   {}", verdict.decision);
    let recall_curves: Vec<(String, Vec<f64>)> = systems
        .iter()
        .map(|(name, lists)| {
            (
                (*name).to_owned(),
                evaluate::recall_curve(lists, &relevant, LIST_LENGTH),
            )
        })
        .collect();
    let page = html_report::render(&html_report::ReportInput {
        title: &format!("recsys evaluation — {version} ({split_name} split)"),
        rows: &rows,
        recall_curves: &recall_curves,
        ranker_scores: &auc_scores,
        ranker_labels: &auc_labels,
        probabilities,
        importance: &importance,
        tuning: &tuning,
        verdict: &verdict,
    })
    .map_err(|e| anyhow::anyhow!("rendering the report: {e}"))?;
    std::fs::create_dir_all(&artifact_dir)?;
    std::fs::write(artifact_dir.join(REPORT_FILE), page)?;
    std::fs::write(
        artifact_dir.join(compare::EVALUATION_FILE),
        serde_json::to_vec_pretty(&json!({
            "record": &record,
            "rows": &rows,
            "ranker_auc": ranker_auc,
            "ranker_log_loss": ranker_log_loss,
            "tuning": &tuning,
            "verdict": &verdict,
            "mf": mf_params,
        }))?,
    )?;
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
                "ranker": tuning.best,
                "mf": mf_params,
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
    let state = Arc::new(ServingState::new(Engine::load(&artifact_dir)?, None));
    let (addr, server) = grpc::bind(state, "127.0.0.1:0".parse()?, std::future::pending()).await?;
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
        "\nartifacts {} ({} files, manifest.json with checksums); report {}",
        artifact_dir.display(),
        manifest.files.len(),
        artifact_dir.join(REPORT_FILE).display()
    );
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());

    Ok(DemoSummary {
        rows,
        ranker_auc,
        ranker_log_loss,
        artifact_dir,
        verdict,
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
