//! Step 4 of `train`: the published version — refit on everything (or the evaluated models at
//! the test start), its items indexed, the report and `evaluation.json` beside the sealed
//! bundle.

use super::prepare::Prepared;
use super::select::Chosen;
use super::test_window::Tested;
use super::{cold_test_point, Clock, PublishState, TrainOptions, TrainSummary, REPORT_FILE};
use crate::pipeline::evaluate::{self, LIST_LENGTH};
use crate::pipeline::retrieval::{self, Retrieval};
use crate::pipeline::{cold_start, compare, drift, html_report, ranking, tuning};
use recsys_core::Interaction;
use recsys_data::features::{tower, FeatureSnapshot};
use recsys_models::ranker::Ranker;
use recsys_models::{AnnIndex, IndexKind};
use recsys_version::bundle::Catalog;
use recsys_version::writer::{self, BundleParts};
use recsys_version::DataWindow;
use serde_json::{json, Value};

/// The models and state a version serves from.
struct Published {
    snapshot: FeatureSnapshot,
    retrieval: Retrieval,
    /// The ranker refit with the test window's candidates too; `None` keeps the evaluated one.
    refit_ranker: Option<Ranker>,
    /// Events before this time are the version's state.
    cutoff: i64,
    rows_used: usize,
}

impl Published {
    fn ranker<'a>(&'a self, c: &'a Chosen) -> &'a Ranker {
        self.refit_ranker.as_ref().unwrap_or(&c.ranker)
    }
}

pub(super) fn publish(
    p: Prepared,
    mut c: Chosen,
    t: Tested,
    judged: (compare::Verdict, Option<bool>),
    options: &TrainOptions,
    clock: &Clock,
) -> anyhow::Result<TrainSummary> {
    let (verdict, live_saw_test) = judged;
    let artifact_dir = options.out_root.join(&options.version);
    let page = render_report(&p, &c, &t, &verdict, options)?;
    warn_if_ranker_loses(&c);
    let gates = gates(&c, &t, &verdict, live_saw_test);
    let evaluation = evaluation(&p, &c, &t, &verdict, &gates, options);
    let metrics = json!({
        "split": options.windows.name(),
        "rows": t.rows,
        "ranker_auc": t.ranker.auc,
        "ranker_log_loss": t.ranker.log_loss,
        "gates": gates,
    });
    let example_user = example_user(&p, &t);
    let published = match options.publish_state {
        PublishState::TestStart => Published {
            snapshot: t.snapshot,
            retrieval: t.retrieval,
            refit_ranker: None,
            cutoff: p.windows.test_start,
            rows_used: t.history.len(),
        },
        PublishState::Latest => refit_on_everything(&p, &mut c, &t.snapshot, &t.retrieval)?,
    };
    let published = Published {
        retrieval: index_items(published.retrieval, &published.snapshot, p.data.items.len())?,
        ..published
    };
    std::fs::create_dir_all(&artifact_dir)?;
    std::fs::write(artifact_dir.join(REPORT_FILE), page)?;
    std::fs::write(
        artifact_dir.join(compare::EVALUATION_FILE),
        serde_json::to_vec_pretty(&evaluation)?,
    )?;
    let rows = published_rows(&p, &t.history, options);
    write_bundle(&p, &c, rows, &published, metrics, options, &artifact_dir)?;
    println!("wrote     {} {}", artifact_dir.display(), clock.elapsed());
    Ok(TrainSummary {
        rows: t.rows,
        ranker_auc: t.ranker.auc,
        ranker_log_loss: t.ranker.log_loss,
        ranker_positives: c.ranker_positives,
        artifact_dir,
        verdict,
        cold: c.cold,
        example_user,
    })
}

/// Models and state refit on every event; the ranker also learns from the test window's
/// candidates.
fn refit_on_everything(
    p: &Prepared,
    c: &mut Chosen,
    snapshot_test: &FeatureSnapshot,
    retrieval_test: &Retrieval,
) -> anyhow::Result<Published> {
    let snapshot = FeatureSnapshot::compute(&p.data, &p.data.interactions, p.last + 1);
    let retrieval = retrieval::train(&snapshot, &p.data.interactions, None, &c.tower_training)?;
    c.blocks.push(ranking::candidate_rows(
        retrieval_test,
        snapshot_test,
        &p.split.test,
    )?);
    Ok(Published {
        snapshot,
        retrieval,
        refit_ranker: Some(tuning::refit(&c.blocks, &c.tuning)?),
        cutoff: p.last + 1,
        rows_used: p.data.interactions.len(),
    })
}

/// Every item's vector in the index serving searches.
fn index_items(
    retrieval: Retrieval,
    snapshot: &FeatureSnapshot,
    items: usize,
) -> anyhow::Result<Retrieval> {
    let item_vectors = retrieval.model.embed_items(&tower::all_items(snapshot))?;
    let ann = AnnIndex::build(
        IndexKind::for_catalog(items),
        retrieval.dim(),
        &item_vectors,
        (0..items as u32).collect(),
    )?;
    Ok(Retrieval {
        ann,
        item_vectors,
        ..retrieval
    })
}

/// The events the published state is built from.
fn published_rows<'a>(
    p: &'a Prepared,
    history: &'a [Interaction],
    options: &TrainOptions,
) -> &'a [Interaction] {
    if options.publish_state == PublishState::Latest {
        &p.data.interactions
    } else {
        history
    }
}

fn render_report(
    p: &Prepared,
    c: &Chosen,
    t: &Tested,
    verdict: &compare::Verdict,
    options: &TrainOptions,
) -> anyhow::Result<String> {
    let systems = t.lists.named();
    let recall_curves: Vec<(String, Vec<f64>)> = systems
        .iter()
        .map(|(name, lists)| {
            (
                (*name).to_owned(),
                evaluate::recall_curve(lists, &p.relevant, LIST_LENGTH),
            )
        })
        .collect();
    html_report::render(&html_report::ReportInput {
        title: &format!(
            "recsys evaluation — {} ({} split)",
            options.version,
            options.windows.name()
        ),
        rows: &t.rows,
        recall_curves: &recall_curves,
        ranker_scores: &t.ranker.scores,
        ranker_labels: &t.ranker.labels,
        probabilities: t.ranker.probabilities,
        importance: &c.importance,
        tuning: &c.tuning,
        verdict,
        cold_track: &t.cold_track,
        cold_test: cold_test_point(&t.rows),
    })
    .map_err(|e| anyhow::anyhow!("rendering the report: {e}"))
}

fn warn_if_ranker_loses(c: &Chosen) {
    let tuning = &c.tuning;
    if c.best_cv <= tuning.retrieval_order_ndcg
        || !tuning.judged.ranker_wins()
        || !tuning.judged.served_ranker_wins()
    {
        tracing::warn!(
            ranker = c.best_cv,
            retrieval_order = tuning.retrieval_order_ndcg,
            ranker_on_judged_users = tuning.judged.ranker_ndcg,
            retrieval_order_on_judged_users = tuning.judged.retrieval_order_ndcg,
            ranker_served = tuning.judged.served_ranker_ndcg,
            retrieval_order_served = tuning.judged.served_retrieval_order_ndcg,
            "the ranker does not beat its candidates' retrieval order on the time folds"
        );
    }
}

/// What RetrainSchedule's gates read.
fn gates(c: &Chosen, t: &Tested, verdict: &compare::Verdict, live_saw_test: Option<bool>) -> Value {
    let tuning = &c.tuning;
    json!({
        "ndcg_at_10": t.record.ndcg_at_10,
        "ranker_auc": t.ranker.auc,
        "ranker_time_cv_ndcg_at_10": c.best_cv,
        "retrieval_order_time_cv_ndcg_at_10": tuning.retrieval_order_ndcg,
        "ranker_time_cv_ndcg_at_10_judged_users": tuning.judged.ranker_ndcg,
        "retrieval_order_time_cv_ndcg_at_10_judged_users": tuning.judged.retrieval_order_ndcg,
        "ranker_time_cv_ndcg_at_10_served_judged_users": tuning.judged.served_ranker_ndcg,
        "retrieval_order_time_cv_ndcg_at_10_served_judged_users":
            tuning.judged.served_retrieval_order_ndcg,
        "versus_recent_popularity": t.versus_recent,
        "versus_live": verdict.difference,
        "live_version": verdict.previous_version,
        "live_saw_test_window": live_saw_test,
    })
}

/// `evaluation.json`: everything the run measured and chose.
fn evaluation(
    p: &Prepared,
    c: &Chosen,
    t: &Tested,
    verdict: &compare::Verdict,
    gates: &Value,
    options: &TrainOptions,
) -> Value {
    json!({
        "record": &t.record,
        "labels": options.labels.to_string(),
        "windows": options.windows,
        "cutoffs": p.windows,
        "seed": options.seed,
        "rows": &t.rows,
        "ranker_auc": t.ranker.auc,
        "ranker_log_loss": t.ranker.log_loss,
        "ranker_positives": c.ranker_positives,
        "tuning": &c.tuning,
        "two_tower_recency": &c.recency,
        "cold_start": &c.cold,
        "cold_track_record": &t.cold_track,
        "model_for_known_cold_users": c.model_for_cold,
        "recent_popularity_days": c.recent_days,
        "versus_most_popular": t.versus_popular,
        "cold_versus_better_baseline": t.cold_versus_baseline.as_ref().map(|(baseline, users, d)| {
            json!({ "baseline": baseline, "users": users, "difference": d })
        }),
        "verdict": verdict,
        "gates": gates,
        "mf": c.mf_params,
    })
}

#[allow(clippy::too_many_arguments)]
fn write_bundle(
    p: &Prepared,
    c: &Chosen,
    rows: &[Interaction],
    published: &Published,
    metrics: Value,
    options: &TrainOptions,
    artifact_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let cold_list = cold_start::list(
        &c.cold,
        &published.snapshot,
        rows,
        published.cutoff,
        c.model_for_cold,
    );
    writer::write(
        artifact_dir,
        BundleParts {
            version: &options.version,
            save_towers: &|dir| Ok(published.retrieval.model.save(dir)?),
            ann: &published.retrieval.ann,
            ranker: published.ranker(c),
            snapshot: &published.snapshot,
            catalog: &Catalog::from_dataset(&p.data),
            data_window: DataWindow {
                first_timestamp: p.data.first_timestamp().unwrap_or(0),
                cutoff: published.cutoff,
                rows: published.rows_used,
            },
            hyper_parameters: json!({
                "source": options.source,
                "labels": options.labels.to_string(),
                "seed": options.seed,
                "two_tower": published.retrieval.model.config(),
                "two_tower_recency_half_life_days": c.recency.half_life_days,
                "ranker": c.tuning.best,
                "ranker_averaged": c.tuning.averaged,
                "mf": c.mf_params,
                "recent_popularity_days": c.recent_days,
                "cold_start": c.cold.policy,
                "cold_start_counted": c.cold.counted,
                "cold_start_profile": c.cold.profile,
                "publish_state": options.publish_state,
            }),
            metrics,
            cold_start: Some(&cold_list),
            drift_reference: drift::reference_for(&published.snapshot, rows, published.cutoff)
                .as_ref(),
        },
    )?;
    Ok(())
}

/// A warm test user with the most relevant test items: a real example to ask for.
fn example_user(p: &Prepared, t: &Tested) -> String {
    p.relevant
        .iter()
        .filter(|(u, _)| t.warm.contains(u))
        .max_by_key(|(u, r)| (r.len(), std::cmp::Reverse(**u)))
        .map(|(u, _)| p.data.users[*u as usize].external_id.clone())
        .unwrap_or_else(|| p.data.users[0].external_id.clone())
}
