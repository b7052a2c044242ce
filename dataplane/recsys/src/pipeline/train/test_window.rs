//! Step 3 of `train`: the chosen settings refit on train + validation and judged once on the
//! test window over the full catalog (seen items excluded), beside most-popular, recent
//! popularity, MF and the two-tower alone; then the verdict against the live or previous
//! version.

use super::prepare::Prepared;
use super::select::Chosen;
use super::{lists_from_scores, served_list, Clock, Lists, TrainOptions};
use crate::pipeline::cold_track_record::{self, TrackRecord};
use crate::pipeline::evaluate::{self, EvalSet, MetricRow, LIST_LENGTH};
use crate::pipeline::labels::first_event_times;
use crate::pipeline::retrieval::{self, Retrieval};
use crate::pipeline::{cold_start, compare, live, mf_baseline, ranking, report};
use recsys_core::bootstrap::Interval;
use recsys_core::features::Context as RequestContext;
use recsys_core::{baseline, metrics, Interaction, UserId};
use recsys_data::features::FeatureSnapshot;
use recsys_models::Objective;
use recsys_scoring::{retrieval_rule_score, rule_score};
use std::collections::{HashMap, HashSet};

/// Every system's top-10 lists for the test users.
pub(super) struct SystemLists {
    pub most_popular: Lists,
    pub recent_name: String,
    pub recent_popular: Lists,
    pub mf: Option<Lists>,
    pub two_tower: Lists,
    /// The two-tower's own order through the same rules: what serving would show without the
    /// ranker, so the ranker's row is compared like for like.
    pub two_tower_served: Lists,
    pub two_stage: Lists,
}

impl SystemLists {
    pub fn named(&self) -> Vec<(&str, &Lists)> {
        let mut systems: Vec<(&str, &Lists)> = vec![
            ("most-popular", &self.most_popular),
            (self.recent_name.as_str(), &self.recent_popular),
        ];
        if let Some(mf) = &self.mf {
            systems.push(("MF (ALS)", mf));
        }
        systems.extend([
            ("two-tower", &self.two_tower),
            ("two-tower+rules", &self.two_tower_served),
            ("two-tower+ranker", &self.two_stage),
        ]);
        systems
    }
}

/// The ranker's scores of the test candidates and whether each was relevant.
pub(super) struct RankerScores {
    pub scores: Vec<f32>,
    pub labels: Vec<bool>,
    pub auc: Option<f64>,
    /// Only for the binary objective, whose scores are probabilities.
    pub log_loss: Option<f64>,
    pub probabilities: bool,
}

pub(super) struct Tested {
    /// Train + validation: what the test window's models were fit on.
    pub history: Vec<Interaction>,
    pub snapshot: FeatureSnapshot,
    pub retrieval: Retrieval,
    pub request_times: HashMap<UserId, i64>,
    pub warm: HashSet<UserId>,
    pub lists: SystemLists,
    pub ranker: RankerScores,
    pub cold_track: TrackRecord,
    pub rows: Vec<MetricRow>,
    pub versus_popular: Interval,
    pub versus_recent: Interval,
    pub cold_versus_baseline: Option<(String, usize, Interval)>,
    pub record: compare::EvaluationRecord,
}

pub(super) fn evaluate(
    p: &Prepared,
    c: &Chosen,
    options: &TrainOptions,
    clock: &Clock,
) -> anyhow::Result<Tested> {
    let history = p.split.train_and_validation();
    let snapshot = FeatureSnapshot::compute(&p.data, &history, p.windows.test_start);
    let retrieval = retrieval::train(&snapshot, &history, None, &c.tower_training)?;
    let request_times = first_event_times(&p.split.test);
    let users: Vec<UserId> = p.relevant.keys().copied().collect();
    let warm: HashSet<UserId> = users
        .iter()
        .copied()
        .filter(|&u| snapshot.users[u as usize].history_len > 0)
        .collect();
    let cold_track = cold_track_record::compute(
        &c.cold,
        &snapshot,
        &history,
        p.windows.test_start,
        p.windows.test_start - p.windows.validation_start,
    );
    println!("cold      {}", cold_track.summary());
    let (lists, ranker) = system_lists(
        p,
        c,
        &history,
        &snapshot,
        &retrieval,
        &request_times,
        &users,
        &warm,
    )?;
    let counts = snapshot.item_counts();
    let set = EvalSet {
        relevant: &p.relevant,
        warm: &warm,
        item_counts: &counts,
        catalog_size: p.data.items.len(),
    };
    let mut rows = Vec::new();
    for (name, lists) in lists.named() {
        rows.extend(evaluate::evaluate(name, lists, &set));
    }
    rows.sort_by_key(|r| ["all", "warm", "cold"].iter().position(|s| *s == r.subset));
    let versus_popular =
        evaluate::paired_ndcg_difference(&lists.two_stage, &lists.most_popular, &p.relevant);
    let versus_recent =
        evaluate::paired_ndcg_difference(&lists.two_stage, &lists.recent_popular, &p.relevant);
    let cold_versus_baseline = evaluate::cold_versus_better_baseline(
        &rows,
        &p.relevant,
        &warm,
        &lists.two_stage,
        [
            ("most-popular", &lists.most_popular),
            (lists.recent_name.as_str(), &lists.recent_popular),
        ],
    );
    let record = evaluation_record(p, options, &rows, &lists.two_stage);
    let tested = Tested {
        history,
        snapshot,
        retrieval,
        request_times,
        warm,
        lists,
        ranker,
        cold_track,
        rows,
        versus_popular,
        versus_recent,
        cold_versus_baseline,
        record,
    };
    print_test(&tested, users.len(), clock);
    Ok(tested)
}

/// The baselines' lists, then each test user's two-tower, two-tower + rules and two-stage
/// lists (cold users get the chosen cold list from all three, unless the model serves them).
#[allow(clippy::too_many_arguments)]
fn system_lists(
    p: &Prepared,
    c: &Chosen,
    history: &[Interaction],
    snapshot: &FeatureSnapshot,
    retrieval: &Retrieval,
    request_times: &HashMap<UserId, i64>,
    users: &[UserId],
    warm: &HashSet<UserId>,
) -> anyhow::Result<(SystemLists, RankerScores)> {
    let counts = snapshot.item_counts();
    let popular_scores: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
    let most_popular = lists_from_scores(users, snapshot, &popular_scores);
    let recent_scores = baseline::recent_popularity_scores(
        history,
        p.data.items.len(),
        p.windows.test_start,
        c.recent_days,
    );
    let recent_popular = lists_from_scores(users, snapshot, &recent_scores);
    // What serving would hold for users without history, as of the test start.
    let cold_lists = cold_start::list(
        &c.cold,
        snapshot,
        history,
        p.windows.test_start,
        c.model_for_cold,
    );
    let mut two_tower = Lists::new();
    let mut two_tower_served = Lists::new();
    let mut two_stage = Lists::new();
    let (mut auc_scores, mut auc_labels) = (Vec::new(), Vec::new());
    let objective = c.ranker.objective();
    for &u in users {
        if !warm.contains(&u) && !c.model_for_cold {
            let unseen = cold_lists
                .for_user(snapshot, Some(u))
                .iter()
                .copied()
                .filter(|&(i, _)| !snapshot.has_seen(u, i));
            let list = served_list(snapshot, unseen);
            two_tower.insert(u, list.clone());
            two_tower_served.insert(u, list.clone());
            two_stage.insert(u, list);
            continue;
        }
        let candidates = retrieval.retrieve(snapshot, u, ranking::CANDIDATES)?;
        two_tower.insert(
            u,
            candidates.iter().take(LIST_LENGTH).map(|c| c.0).collect(),
        );
        two_tower_served.insert(
            u,
            served_list(
                snapshot,
                candidates
                    .iter()
                    .map(|&(i, s)| (i, retrieval_rule_score(s))),
            ),
        );
        let ctx = RequestContext {
            timestamp: request_times[&u],
            ..RequestContext::default()
        };
        let ranked = ranking::rerank(&c.ranker, snapshot, u, &candidates, &ctx)?;
        for &(item, score) in &ranked {
            auc_scores.push(score);
            auc_labels.push(p.relevant[&u].contains(&item));
        }
        two_stage.insert(
            u,
            served_list(
                snapshot,
                ranked.iter().map(|&(i, s)| (i, rule_score(objective, s))),
            ),
        );
    }
    let probabilities = objective == Objective::Binary;
    let ranker = RankerScores {
        auc: metrics::auc(&auc_scores, &auc_labels),
        log_loss: probabilities.then(|| metrics::log_loss(&auc_scores, &auc_labels)),
        scores: auc_scores,
        labels: auc_labels,
        probabilities,
    };
    let mf = match c.mf_params {
        Some(params) => {
            let mf = mf_baseline::fit(snapshot, history, params)?;
            Some(mf_baseline::lists(
                &mf,
                snapshot,
                users,
                &popular_scores,
                LIST_LENGTH,
            ))
        }
        None => None,
    };
    let lists = SystemLists {
        most_popular,
        recent_name: format!("recent-popular({}d)", c.recent_days),
        recent_popular,
        mf,
        two_tower,
        two_tower_served,
        two_stage,
    };
    Ok((lists, ranker))
}

/// The served two-stage list's NDCG@10, overall and per user: what the verdict compares.
fn evaluation_record(
    p: &Prepared,
    options: &TrainOptions,
    rows: &[MetricRow],
    two_stage: &Lists,
) -> compare::EvaluationRecord {
    compare::EvaluationRecord {
        model_version: options.version.clone(),
        split: options.windows.name().into(),
        test_start: p.windows.test_start,
        system: "two-tower+ranker".into(),
        ndcg_at_10: rows
            .iter()
            .find(|r| r.system == "two-tower+ranker" && r.subset == "all")
            .map_or(0.0, |r| r.ndcg_at_10.mean),
        per_user_ndcg: evaluate::per_user_ndcg(two_stage, &p.relevant)
            .into_iter()
            .map(|(u, v)| (p.data.users[u as usize].external_id.clone(), v))
            .collect(),
    }
}

fn print_test(t: &Tested, users: usize, clock: &Clock) {
    println!(
        "\nTest window ({} evaluated users, {} warm), full catalog, seen items excluded: {}",
        users,
        t.warm.len(),
        clock.elapsed()
    );
    print!("{}", report::metrics_table(&t.rows));
    println!(
        "ranker on test candidates: AUC {} LogLoss {}",
        t.ranker.auc.map_or("n/a".into(), |a| format!("{a:.4}")),
        t.ranker
            .log_loss
            .map_or("n/a (lambdarank scores)".into(), |l| format!("{l:.4}")),
    );
    for (baseline, d) in [
        ("most-popular", t.versus_popular),
        (t.lists.recent_name.as_str(), t.versus_recent),
    ] {
        println!(
            "NDCG@10 two-tower+ranker − {baseline} = {:+.4} [{:+.4}, {:+.4}] (paired 95% CI)",
            d.mean, d.low, d.high
        );
    }
    if let Some((baseline, users, d)) = &t.cold_versus_baseline {
        println!(
            "NDCG@10 two-tower+ranker − {baseline} on the {users} cold users = {:+.4} [{:+.4}, {:+.4}] (paired 95% CI)",
            d.mean, d.low, d.high
        );
    }
}

/// Against the live version when one is named, else the newest comparable one beside it; and
/// whether the live version's data reached into this test window.
pub(super) fn judge(
    p: &Prepared,
    t: &Tested,
    options: &TrainOptions,
) -> anyhow::Result<(compare::Verdict, Option<bool>)> {
    let judged = match &options.live {
        Some(scorer) => {
            let live = scorer.score(&live::Window {
                data: &p.data,
                history: &t.history,
                relevant: &p.relevant,
                request_times: &t.request_times,
                test_start: p.windows.test_start,
                split: options.windows.name(),
            })?;
            if live.saw_test_window {
                tracing::warn!(
                    live = %live.record.model_version,
                    "the live version was trained on data inside this test window; the comparison flatters it"
                );
            }
            (
                compare::verdict(&t.record, Some(&live.record)),
                Some(live.saw_test_window),
            )
        }
        None => {
            let previous = compare::find_previous(
                &options.out_root,
                &options.version,
                options.windows.name(),
                p.windows.test_start,
            );
            (
                compare::verdict(&t.record, previous.as_ref().map(|p| &p.1)),
                None,
            )
        }
    };
    println!("verdict   {}", judged.0.decision);
    Ok(judged)
}
