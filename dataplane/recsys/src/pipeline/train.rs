//! `recsys train`: one pipeline for any dataset. Labels by the declared policy → global time
//! split → two-tower with early stopping on validation → ranker searched by time-based CV →
//! cold-start policy chosen on validation → refit on train + validation → full-catalog test
//! evaluation beside most-popular, recent popularity, MF and (optionally) the live version →
//! refit on all data → a sealed version with `evaluation.json` and `report.html`.

mod prepare;
mod publish;
mod select;
mod test_window;

use super::evaluate::{MetricRow, LIST_LENGTH};
use super::{cold_start, cold_track_plot, compare, live, recency};
use anyhow::{ensure, Context};
use recsys_core::labels::LabelPolicy;
use recsys_core::rules::{finish, RuleConfig};
use recsys_core::{baseline, metrics, ranking as rank_util, ItemId, SplitWindows, UserId};
use recsys_data::features::FeatureSnapshot;
use recsys_data::Dataset;
use recsys_scoring::rule_candidate;
use serde::Serialize;
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
/// Relevant items per user in one window.
type Labels = BTreeMap<UserId, HashSet<ItemId>>;

/// Wall time since the run started, for the log lines.
struct Clock(Instant);

impl Clock {
    fn elapsed(&self) -> String {
        format!("[{:.0} s]", self.0.elapsed().as_secs_f64())
    }
}

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

/// The whole pipeline as named steps: prepare the windows → choose every setting on
/// validation → judge the choice once on the test window → publish the version.
pub fn run(data: Dataset, options: &TrainOptions) -> anyhow::Result<TrainSummary> {
    let clock = Clock(Instant::now());
    let prepared = prepare::prepare(data, options)?;
    let chosen = select::on_validation(&prepared, options, &clock)?;
    let tested = test_window::evaluate(&prepared, &chosen, options, &clock)?;
    let judged = test_window::judge(&prepared, &tested, options)?;
    publish::publish(prepared, chosen, tested, judged, options, &clock)
}
