//! `recsys train`: one pipeline for any dataset. Labels by the declared policy → global time
//! split → two-tower with early stopping on validation → ranker searched by time-based CV →
//! cold-start policy chosen on validation → refit on train + validation → full-catalog test
//! evaluation beside most-popular, recent popularity, MF and (optionally) the live version →
//! refit on all data → a sealed version with `evaluation.json` and `report.html`.

use super::evaluate::{self, EvalSet, MetricRow, LIST_LENGTH};
use super::labels::{first_event_times, relevant_by_user};
use super::{cold_start, cold_track_plot, cold_track_record};
use super::{
    compare, drift, html_report, live, mf_baseline, ranking, recency, report, retrieval, tuning,
};
use crate::artifacts::bundle::Catalog;
use crate::artifacts::DataWindow;
use crate::data::Dataset;
use crate::features::{tower, FeatureSnapshot};
use crate::pipeline::bundle_writer::{self, BundleParts};
use crate::scoring::{retrieval_rule_score, rule_candidate, rule_score};
use anyhow::{ensure, Context};
use recsys_core::features::Context as RequestContext;
use recsys_core::labels::LabelPolicy;
use recsys_core::rules::{finish, RuleConfig};
use recsys_core::{
    baseline, metrics, ranking as rank_util, ItemId, SplitWindows, TimeSplit, UserId,
};
use recsys_models::{AnnIndex, IndexKind, Objective};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

const DAY: i64 = 86_400;
pub const REPORT_FILE: &str = "report.html";

/// The user histories and item features a published version carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishState {
    /// Models refit on every event, state up to the last event (what production serves).
    #[default]
    Latest,
    /// The evaluated models with the state as of the test window's start, so the served
    /// version can be asked by users replaying their held-out interactions (an experiment
    /// simulation, a backtest) without those being already "seen".
    TestStart,
}

/// The two splits of the evaluation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitKind {
    /// Trailing windows: validation and test are the last days (the product default: 7 + 7).
    Seed,
    /// Global fractions by time (80/10/10 by default: more test users, tighter intervals).
    Global,
}

/// Where the cut-offs fall.
#[derive(Debug, Clone, Serialize)]
pub struct WindowConfig {
    pub split: SplitKind,
    /// Seed split: validation starts this many days before the last event…
    pub validation_days: i64,
    /// …and test this many.
    pub test_days: i64,
    /// Global split: the shares of rows before validation and before test.
    pub train_fraction: f64,
    pub validation_fraction: f64,
    /// Length of each rolling window whose candidates train the ranker…
    pub ranker_window_days: i64,
    /// …and how many of them: each count is tried by the ranker's time-CV (the most are built).
    pub ranker_windows: Vec<usize>,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            split: SplitKind::Seed,
            validation_days: 14,
            test_days: 7,
            train_fraction: 0.8,
            validation_fraction: 0.1,
            ranker_window_days: 7,
            ranker_windows: vec![4],
        }
    }
}

impl WindowConfig {
    pub fn cut(&self, data: &Dataset) -> anyhow::Result<SplitWindows> {
        let last = data.last_timestamp().context("no interactions")?;
        Ok(match self.split {
            SplitKind::Seed => {
                ensure!(
                    self.validation_days > self.test_days && self.test_days > 0,
                    "windows: validation must start before test ({} d, {} d before the end)",
                    self.validation_days,
                    self.test_days
                );
                SplitWindows::trailing_days(last, self.validation_days, self.test_days)
            }
            SplitKind::Global => {
                ensure!(
                    self.train_fraction > 0.0
                        && self.validation_fraction > 0.0
                        && self.train_fraction + self.validation_fraction < 1.0,
                    "windows: fractions {} + {} must leave a test part",
                    self.train_fraction,
                    self.validation_fraction
                );
                SplitWindows::by_fraction(
                    &data.interactions,
                    self.train_fraction,
                    self.validation_fraction,
                )
                .context("no interactions")?
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self.split {
            SplitKind::Seed => "seed",
            SplitKind::Global => "global",
        }
    }
}

pub struct TrainOptions {
    pub labels: LabelPolicy,
    pub windows: WindowConfig,
    pub max_epochs: usize,
    /// How much the two-tower may favour recent positives; each is tried on validation.
    pub recency_candidates: Vec<recency::Recency>,
    /// Ranker configurations tried (the first is the default).
    pub ranker_trials: usize,
    /// Fixes every model's initialisation and sampling.
    pub seed: u64,
    /// The implicit-ALS baseline (its grid search is the slowest baseline on big catalogs).
    pub with_mf: bool,
    pub publish_state: PublishState,
    pub out_root: PathBuf,
    pub version: String,
    /// The live version, scored on the same test window (see the top-level `live_version` module).
    pub live: Option<Box<dyn live::LiveScorer>>,
    /// Where the data came from, for the manifest.
    pub source: String,
}

/// What a run measured, for callers and tests.
pub struct TrainSummary {
    pub rows: Vec<MetricRow>,
    pub ranker_auc: Option<f64>,
    pub ranker_log_loss: Option<f64>,
    /// Positive candidate rows the ranker learned from.
    pub ranker_positives: usize,
    pub artifact_dir: PathBuf,
    pub verdict: compare::Verdict,
    pub cold: cold_start::ColdChoice,
    /// A warm test user with the most relevant test items: a real example to ask for.
    pub example_user: String,
}

type Lists = BTreeMap<UserId, Vec<ItemId>>;

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

fn mean_ndcg(lists: &Lists, labels: &BTreeMap<UserId, HashSet<ItemId>>, users: &[UserId]) -> f64 {
    users
        .iter()
        .map(|u| metrics::ndcg_at_k(&lists[u], &labels[u], 10))
        .sum::<f64>()
        / users.len().max(1) as f64
}

/// Picks the recent-popularity window on validation (fit on train), as the protocol asks.
fn choose_recent_days(
    snapshot: &FeatureSnapshot,
    train: &[recsys_core::Interaction],
    labels: &BTreeMap<UserId, HashSet<ItemId>>,
) -> i64 {
    let users: Vec<UserId> = labels.keys().copied().collect();
    let mut best = (f64::NEG_INFINITY, 7);
    for days in [1, 3, 7, 14, 30, 60, 90, 180, 365] {
        let scores =
            baseline::recent_popularity_scores(train, snapshot.items.len(), snapshot.cutoff, days);
        let ndcg = mean_ndcg(
            &lists_from_scores(&users, snapshot, &scores),
            labels,
            &users,
        );
        if ndcg > best.0 {
            best = (ndcg, days);
        }
    }
    best.1
}

/// The list serving answers from scored candidates: the business rules (freshness boost, at
/// most 3 per category in the top 10) applied exactly as the engine applies them, so the
/// offline numbers are those of what users are shown.
fn served_list(
    snapshot: &FeatureSnapshot,
    scored: impl Iterator<Item = (ItemId, f32)>,
) -> Vec<ItemId> {
    let candidates = scored
        .map(|(item, score)| rule_candidate(snapshot, item, score))
        .collect();
    finish(candidates, LIST_LENGTH, &RuleConfig::default())
        .into_iter()
        .map(|c| c.item)
        .collect()
}

/// The test window's cold users as the report's cold chart shows them.
fn cold_test_point(rows: &[MetricRow]) -> Option<cold_track_plot::TestPoint> {
    let cold = |system: &str| {
        rows.iter()
            .find(|r| r.system == system && r.subset == "cold")
    };
    let (served, popular) = (cold("two-tower+ranker")?, cold("most-popular")?);
    Some(cold_track_plot::TestPoint {
        users: served.users,
        served: served.ndcg_at_10.mean,
        most_popular: popular.ndcg_at_10.mean,
    })
}

fn fmt_time(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0).map_or_else(
        || ts.to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

pub fn run(mut data: Dataset, options: &TrainOptions) -> anyhow::Result<TrainSummary> {
    let started = Instant::now();
    let elapsed = || format!("[{:.0} s]", started.elapsed().as_secs_f64());
    options.labels.apply(&mut data.interactions);
    // One canonical order (stable by time): the same events in any file order train the same
    // version.
    data.interactions.sort_by_key(|r| r.timestamp);
    let data = data;
    let last = data.last_timestamp().context("no interactions")?;
    let mut windows = options.windows.cut(&data)?;
    // Two versions compare fairly only on events neither trained on: the test window starts
    // no earlier than the live version's data ended.
    if let Some(live) = &options.live {
        if let Some(cutoff) = live.data_cutoff()?.filter(|c| *c > windows.test_start) {
            ensure!(
                cutoff <= last,
                "the live version trained on every event here (its data ends {}, the last event is {}): nothing is left to compare it on",
                fmt_time(cutoff),
                fmt_time(last)
            );
            println!(
                "test      from {}, where the live version's data ended",
                fmt_time(cutoff)
            );
            windows.test_start = cutoff;
        }
    }
    let split = TimeSplit::new(&data.interactions, windows);
    let relevant_rows = data.interactions.iter().filter(|r| r.relevant).count();
    println!(
        "data      {} users, {} items, {} events ({relevant_rows} relevant under `{}`)",
        data.users.len(),
        data.items.len(),
        data.interactions.len(),
        options.labels
    );
    println!(
        "split     {}: train < {} ≤ validation < {} ≤ test  ({} / {} / {} rows)",
        options.windows.name(),
        fmt_time(windows.validation_start),
        fmt_time(windows.test_start),
        split.train.len(),
        split.validation.len(),
        split.test.len()
    );
    let validation_labels = relevant_by_user(&split.validation);
    let relevant = relevant_by_user(&split.test);
    ensure!(
        !split.train.is_empty() && !validation_labels.is_empty() && !relevant.is_empty(),
        "the split leaves no training rows or no relevant validation/test events under `{}`: \
         check the label policy and the windows",
        options.labels
    );

    // Model selection on validation: two-tower fit on train with early stopping; the ranker
    // searched over rolling windows plus the validation window's candidates.
    let snapshot_val = FeatureSnapshot::compute(&data, &split.train, windows.validation_start);
    let (selection, recency) = recency::choose(
        &snapshot_val,
        &split.train,
        &split.validation,
        &options.recency_candidates,
        options.max_epochs,
        options.seed,
    )?;
    let tower_training = recency.training(selection.report.best_epoch.max(1), options.seed);
    println!(
        "two-tower best epoch {} of {} (validation Recall@50 {:.4}), recency half-life {} of {} {}",
        selection.report.best_epoch,
        selection.report.epochs_run,
        selection.report.best_validation,
        match recency.half_life_days {
            Some(days) => format!("{days:.1} days"),
            None => "none".to_owned(),
        },
        recency
            .trials
            .iter()
            .map(|t| format!("{} {:.4}", t.candidate, t.validation_recall_at_50))
            .collect::<Vec<_>>()
            .join(" / "),
        elapsed()
    );
    let window_secs = options.windows.ranker_window_days * DAY;
    let mut blocks = ranking::rolling_window_rows(
        &data,
        &split.train,
        windows.validation_start,
        options
            .windows
            .ranker_windows
            .iter()
            .copied()
            .max()
            .unwrap_or(0),
        window_secs,
        &tower_training,
    )?;
    blocks.push(ranking::candidate_rows(
        &selection,
        &snapshot_val,
        &split.validation,
    )?);
    ensure!(
        blocks.iter().any(|b| b.positives() > 0),
        "no ranker candidate is relevant under `{}`",
        options.labels
    );
    let tuning = tuning::search_windows(
        &blocks,
        &options.windows.ranker_windows,
        options.ranker_trials,
        options.seed,
    )?;
    let ranker = tuning::refit(&blocks, &tuning)?;
    let importance = ranker.feature_importance()?;
    let ranker_positives = tuning
        .used(&blocks)
        .iter()
        .map(|b| b.positives())
        .sum::<usize>();
    let best_cv = tuning.best_ndcg();
    println!(
        "ranker    LightGBM {:?}, {} trees (the mean of {} configurations; sizes tried {}), chosen from {} configurations (and {} reseeded copies of the winner) by {}-fold time CV (NDCG@10 {best_cv:.4}; retrieval order {:.4}; on the {} users with a relevant candidate {:.4} against {:.4}, served after the rules {:.4} against {:.4}); the newest {} rolling windows ({}) and validation: {} candidate rows ({ranker_positives} positive) {}",
        tuning.best.objective,
        ranker.num_trees(),
        tuning.averaged.len(),
        tuning
            .ensemble
            .tried
            .iter()
            .map(|(size, ndcg)| format!("{size}: {ndcg:.4}"))
            .collect::<Vec<_>>()
            .join(", "),
        tuning.sampled(),
        tuning.reseeded(),
        tuning.folds,
        tuning.retrieval_order_ndcg,
        tuning.judged.groups,
        tuning.judged.ranker_ndcg,
        tuning.judged.retrieval_order_ndcg,
        tuning.judged.served_ranker_ndcg,
        tuning.judged.served_retrieval_order_ndcg,
        tuning.windows,
        tuning
            .windows_tried
            .iter()
            .map(|(w, ndcg)| format!("{w}: {ndcg:.4}"))
            .collect::<Vec<_>>()
            .join(", "),
        tuning.used(&blocks).iter().map(|b| b.len()).sum::<usize>(),
        elapsed()
    );
    let mf_params = if options.with_mf {
        let (mut params, score) =
            mf_baseline::tune(&snapshot_val, &split.train, &split.validation)?;
        params.seed = options.seed;
        println!(
            "MF        implicit ALS, {} factors, λ {}, α {} (validation NDCG@10 {score:.4})",
            params.factors, params.regularization, params.alpha
        );
        Some(params)
    } else {
        None
    };
    let recent_days = choose_recent_days(&snapshot_val, &split.train, &validation_labels);
    let cold = cold_start::choose(
        &snapshot_val,
        &split.train,
        &validation_labels,
        windows.test_start - windows.validation_start,
    );
    // Users the version knows but who have no history yet: the model's own answer (profile
    // features, id dropout) competes with the best popularity list on the same users.
    let cold_users: Vec<UserId> = validation_labels
        .keys()
        .copied()
        .filter(|&u| snapshot_val.users[u as usize].history_len == 0)
        .collect();
    let model_for_cold = match cold.validation_cold_ndcg_at_10 {
        Some(list_ndcg) => {
            let mut lists = Lists::new();
            for &u in &cold_users {
                let hits = selection.retrieve(&snapshot_val, u, LIST_LENGTH)?;
                lists.insert(u, hits.into_iter().map(|h| h.0).collect());
            }
            mean_ndcg(&lists, &validation_labels, &cold_users) > list_ndcg
        }
        None => false,
    };
    println!(
        "cold      {} of {}{} (validation NDCG@10 {:.4} on {} {}); known users without history get {}",
        cold.policy,
        cold.counted,
        match cold.profile {
            Some(blend) => format!(
                ", a list per {} (+{} × everyone's)",
                blend.key, blend.weight_of_all
            ),
            None => String::new(),
        },
        cold.validation_ndcg_at_10,
        cold.users,
        match (cold.cold_users_only, cold.windows) {
            (false, _) => "validation users".to_owned(),
            (true, 1) => "cold users".to_owned(),
            (true, w) => format!(
                "newcomers of validation and the {} windows before it",
                w - 1
            ),
        },
        if model_for_cold {
            "the model"
        } else {
            "that list"
        }
    );
    for aside in &cold.set_aside {
        println!(
            "          kept {} over {} (+{:.4} ± {:.4} on validation, within the noise)",
            aside.kept, aside.list, aside.difference, aside.standard_error
        );
    }

    // Refit on train + validation with the chosen settings; evaluate on test.
    let history = split.train_and_validation();
    let snapshot_test = FeatureSnapshot::compute(&data, &history, windows.test_start);
    let final_retrieval = retrieval::train(&snapshot_test, &history, None, &tower_training)?;
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
    // What serving would hold for users without history, as of the test start.
    let cold_lists = cold_start::list(
        &cold,
        &snapshot_test,
        &history,
        windows.test_start,
        model_for_cold,
    );
    let cold_track = cold_track_record::compute(
        &cold,
        &snapshot_test,
        &history,
        windows.test_start,
        windows.test_start - windows.validation_start,
    );
    println!("cold      {}", cold_track.summary());
    let mut two_tower = Lists::new();
    // The two-tower's own order through the same rules: what serving would show without the
    // ranker, so the ranker's row is compared like for like.
    let mut two_tower_served = Lists::new();
    let mut two_stage = Lists::new();
    let (mut auc_scores, mut auc_labels) = (Vec::new(), Vec::new());
    let objective = ranker.objective();
    for &u in &users {
        if !warm.contains(&u) && !model_for_cold {
            let unseen = cold_lists
                .for_user(&snapshot_test, Some(u))
                .iter()
                .copied()
                .filter(|&(i, _)| !snapshot_test.has_seen(u, i));
            let list = served_list(&snapshot_test, unseen);
            two_tower.insert(u, list.clone());
            two_tower_served.insert(u, list.clone());
            two_stage.insert(u, list);
            continue;
        }
        let candidates = final_retrieval.retrieve(&snapshot_test, u, ranking::CANDIDATES)?;
        two_tower.insert(
            u,
            candidates.iter().take(LIST_LENGTH).map(|c| c.0).collect(),
        );
        two_tower_served.insert(
            u,
            served_list(
                &snapshot_test,
                candidates
                    .iter()
                    .map(|&(i, s)| (i, retrieval_rule_score(s))),
            ),
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
        two_stage.insert(
            u,
            served_list(
                &snapshot_test,
                ranked.iter().map(|&(i, s)| (i, rule_score(objective, s))),
            ),
        );
    }
    let ranker_auc = metrics::auc(&auc_scores, &auc_labels);
    let probabilities = objective == Objective::Binary;
    let ranker_log_loss = probabilities.then(|| metrics::log_loss(&auc_scores, &auc_labels));

    let mf_lists = match mf_params {
        Some(params) => {
            let mf = mf_baseline::fit(&snapshot_test, &history, params)?;
            Some(mf_baseline::lists(
                &mf,
                &snapshot_test,
                &users,
                &popular_scores,
                LIST_LENGTH,
            ))
        }
        None => None,
    };
    let recent_name = format!("recent-popular({recent_days}d)");
    let mut systems: Vec<(&str, &Lists)> = vec![
        ("most-popular", &most_popular),
        (recent_name.as_str(), &recent_popular),
    ];
    if let Some(mf) = &mf_lists {
        systems.push(("MF (ALS)", mf));
    }
    systems.extend([
        ("two-tower", &two_tower),
        ("two-tower+rules", &two_tower_served),
        ("two-tower+ranker", &two_stage),
    ]);
    let mut rows = Vec::new();
    for (name, lists) in &systems {
        rows.extend(evaluate::evaluate(name, lists, &set));
    }
    rows.sort_by_key(|r| ["all", "warm", "cold"].iter().position(|s| *s == r.subset));
    let versus_popular = evaluate::paired_ndcg_difference(&two_stage, &most_popular, &relevant);
    let versus_recent = evaluate::paired_ndcg_difference(&two_stage, &recent_popular, &relevant);
    println!(
        "\nTest window ({} evaluated users, {} warm), full catalog, seen items excluded: {}",
        users.len(),
        warm.len(),
        elapsed()
    );
    print!("{}", report::metrics_table(&rows));
    println!(
        "ranker on test candidates: AUC {} LogLoss {}",
        ranker_auc.map_or("n/a".into(), |a| format!("{a:.4}")),
        ranker_log_loss.map_or("n/a (lambdarank scores)".into(), |l| format!("{l:.4}")),
    );
    for (baseline, d) in [
        ("most-popular", versus_popular),
        (recent_name.as_str(), versus_recent),
    ] {
        println!(
            "NDCG@10 two-tower+ranker − {baseline} = {:+.4} [{:+.4}, {:+.4}] (paired 95% CI)",
            d.mean, d.low, d.high
        );
    }
    let cold_versus_baseline = evaluate::cold_versus_better_baseline(
        &rows,
        &relevant,
        &warm,
        &two_stage,
        [
            ("most-popular", &most_popular),
            (recent_name.as_str(), &recent_popular),
        ],
    );
    if let Some((baseline, users, d)) = &cold_versus_baseline {
        println!(
            "NDCG@10 two-tower+ranker − {baseline} on the {users} cold users = {:+.4} [{:+.4}, {:+.4}] (paired 95% CI)",
            d.mean, d.low, d.high
        );
    }

    let record = compare::EvaluationRecord {
        model_version: options.version.clone(),
        split: options.windows.name().into(),
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
    // Against the live version when one is named, else the newest comparable one beside it.
    let (verdict, live_saw_test) = match &options.live {
        Some(scorer) => {
            let live = scorer.score(&live::Window {
                data: &data,
                history: &history,
                relevant: &relevant,
                request_times: &request_times,
                test_start: windows.test_start,
                split: options.windows.name(),
            })?;
            if live.saw_test_window {
                tracing::warn!(
                    live = %live.record.model_version,
                    "the live version was trained on data inside this test window; the comparison flatters it"
                );
            }
            (
                compare::verdict(&record, Some(&live.record)),
                Some(live.saw_test_window),
            )
        }
        None => {
            let previous = compare::find_previous(
                &options.out_root,
                &options.version,
                options.windows.name(),
                windows.test_start,
            );
            (
                compare::verdict(&record, previous.as_ref().map(|p| &p.1)),
                None,
            )
        }
    };
    println!("verdict   {}", verdict.decision);

    // Publish: refit on everything (or keep the evaluated models at the test start).
    let (snapshot_pub, retrieval_pub, ranker_pub, cutoff, rows_used) = match options.publish_state {
        PublishState::TestStart => (
            snapshot_test.clone(),
            final_retrieval,
            ranker,
            windows.test_start,
            history.len(),
        ),
        PublishState::Latest => {
            let snapshot_now = FeatureSnapshot::compute(&data, &data.interactions, last + 1);
            let retrieval_now =
                retrieval::train(&snapshot_now, &data.interactions, None, &tower_training)?;
            blocks.push(ranking::candidate_rows(
                &final_retrieval,
                &snapshot_test,
                &split.test,
            )?);
            let ranker_now = tuning::refit(&blocks, &tuning)?;
            (
                snapshot_now,
                retrieval_now,
                ranker_now,
                last + 1,
                data.interactions.len(),
            )
        }
    };
    let item_vectors = retrieval_pub
        .model
        .embed_items(&tower::all_items(&snapshot_pub))?;
    let ann = AnnIndex::build(
        IndexKind::for_catalog(data.items.len()),
        retrieval_pub.dim(),
        &item_vectors,
        (0..data.items.len() as u32).collect(),
    )?;
    let retrieval_pub = retrieval::Retrieval {
        ann,
        item_vectors,
        ..retrieval_pub
    };
    let cold_list = cold_start::list(
        &cold,
        &snapshot_pub,
        if options.publish_state == PublishState::Latest {
            &data.interactions
        } else {
            &history
        },
        cutoff,
        model_for_cold,
    );
    let artifact_dir = options.out_root.join(&options.version);
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
        title: &format!(
            "recsys evaluation — {} ({} split)",
            options.version,
            options.windows.name()
        ),
        rows: &rows,
        recall_curves: &recall_curves,
        ranker_scores: &auc_scores,
        ranker_labels: &auc_labels,
        probabilities,
        importance: &importance,
        tuning: &tuning,
        verdict: &verdict,
        cold_track: &cold_track,
        cold_test: cold_test_point(&rows),
    })
    .map_err(|e| anyhow::anyhow!("rendering the report: {e}"))?;
    if best_cv <= tuning.retrieval_order_ndcg
        || !tuning.judged.ranker_wins()
        || !tuning.judged.served_ranker_wins()
    {
        tracing::warn!(
            ranker = best_cv,
            retrieval_order = tuning.retrieval_order_ndcg,
            ranker_on_judged_users = tuning.judged.ranker_ndcg,
            retrieval_order_on_judged_users = tuning.judged.retrieval_order_ndcg,
            ranker_served = tuning.judged.served_ranker_ndcg,
            retrieval_order_served = tuning.judged.served_retrieval_order_ndcg,
            "the ranker does not beat its candidates' retrieval order on the time folds"
        );
    }
    let gates = json!({
        "ndcg_at_10": record.ndcg_at_10,
        "ranker_auc": ranker_auc,
        "ranker_time_cv_ndcg_at_10": best_cv,
        "retrieval_order_time_cv_ndcg_at_10": tuning.retrieval_order_ndcg,
        "ranker_time_cv_ndcg_at_10_judged_users": tuning.judged.ranker_ndcg,
        "retrieval_order_time_cv_ndcg_at_10_judged_users": tuning.judged.retrieval_order_ndcg,
        "ranker_time_cv_ndcg_at_10_served_judged_users": tuning.judged.served_ranker_ndcg,
        "retrieval_order_time_cv_ndcg_at_10_served_judged_users":
            tuning.judged.served_retrieval_order_ndcg,
        "versus_recent_popularity": versus_recent,
        "versus_live": verdict.difference,
        "live_version": verdict.previous_version,
        "live_saw_test_window": live_saw_test,
    });
    let evaluation = json!({
        "record": &record,
        "labels": options.labels.to_string(),
        "windows": options.windows,
        "cutoffs": windows,
        "seed": options.seed,
        "rows": &rows,
        "ranker_auc": ranker_auc,
        "ranker_log_loss": ranker_log_loss,
        "ranker_positives": ranker_positives,
        "tuning": &tuning,
        "two_tower_recency": &recency,
        "cold_start": &cold,
        "cold_track_record": &cold_track,
        "model_for_known_cold_users": model_for_cold,
        "recent_popularity_days": recent_days,
        "versus_most_popular": versus_popular,
        "cold_versus_better_baseline": cold_versus_baseline.as_ref().map(|(baseline, users, d)| {
            json!({ "baseline": baseline, "users": users, "difference": d })
        }),
        "verdict": &verdict,
        "gates": &gates,
        "mf": mf_params,
    });
    std::fs::create_dir_all(&artifact_dir)?;
    std::fs::write(artifact_dir.join(REPORT_FILE), page)?;
    std::fs::write(
        artifact_dir.join(compare::EVALUATION_FILE),
        serde_json::to_vec_pretty(&evaluation)?,
    )?;
    bundle_writer::write(
        &artifact_dir,
        BundleParts {
            version: &options.version,
            model: &retrieval_pub.model,
            ann: &retrieval_pub.ann,
            ranker: &ranker_pub,
            snapshot: &snapshot_pub,
            catalog: &Catalog::from_dataset(&data),
            data_window: DataWindow {
                first_timestamp: data.first_timestamp().unwrap_or(0),
                cutoff,
                rows: rows_used,
            },
            hyper_parameters: json!({
                "source": options.source,
                "labels": options.labels.to_string(),
                "seed": options.seed,
                "two_tower": retrieval_pub.model.config(),
                "two_tower_recency_half_life_days": recency.half_life_days,
                "ranker": tuning.best,
                "ranker_averaged": tuning.averaged,
                "mf": mf_params,
                "recent_popularity_days": recent_days,
                "cold_start": cold.policy,
                "cold_start_counted": cold.counted,
                "cold_start_profile": cold.profile,
                "publish_state": options.publish_state,
            }),
            metrics: json!({
                "split": options.windows.name(),
                "rows": rows,
                "ranker_auc": ranker_auc,
                "ranker_log_loss": ranker_log_loss,
                "gates": gates,
            }),
            cold_start: Some(&cold_list),
            drift_reference: drift::reference_for(
                &snapshot_pub,
                if options.publish_state == PublishState::Latest {
                    &data.interactions
                } else {
                    &history
                },
                cutoff,
            )
            .as_ref(),
        },
    )?;
    println!("wrote     {} {}", artifact_dir.display(), elapsed());
    let example_user = relevant
        .iter()
        .filter(|(u, _)| warm.contains(u))
        .max_by_key(|(u, r)| (r.len(), std::cmp::Reverse(**u)))
        .map(|(u, _)| data.users[*u as usize].external_id.clone())
        .unwrap_or_else(|| data.users[0].external_id.clone());
    Ok(TrainSummary {
        rows,
        ranker_auc,
        ranker_log_loss,
        ranker_positives,
        artifact_dir,
        verdict,
        cold,
        example_user,
    })
}
