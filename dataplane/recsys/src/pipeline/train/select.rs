//! Step 2 of `train`: every choice made on validation — the two-tower (epochs, recency), the
//! ranker (time-CV search over rolling windows), the MF baseline's grid, recent popularity's
//! window and what cold users get. Nothing here looks at the test window.

use super::prepare::Prepared;
use super::{choose_recent_days, mean_ndcg, Clock, Lists, TrainOptions, DAY};
use crate::pipeline::evaluate::LIST_LENGTH;
use crate::pipeline::ranking::{self, CandidateRows};
use crate::pipeline::recency::{self, RecencyChoice};
use crate::pipeline::retrieval::{Retrieval, TowerTraining};
use crate::pipeline::tuning::{self, Tuning};
use crate::pipeline::{cold_start, mf_baseline};
use anyhow::ensure;
use recsys_core::UserId;
use recsys_data::features::FeatureSnapshot;
use recsys_models::mf::MfParams;
use recsys_models::ranker::Ranker;

pub(super) struct Chosen {
    pub recency: RecencyChoice,
    /// How the two-tower is refit later: the chosen half-life and epochs.
    pub tower_training: TowerTraining,
    /// The ranker's training candidates (rolling windows, then validation's).
    pub blocks: Vec<CandidateRows>,
    pub tuning: Tuning,
    pub ranker: Ranker,
    pub importance: Vec<(String, f64)>,
    pub ranker_positives: usize,
    /// The search's best time-CV NDCG@10.
    pub best_cv: f64,
    pub mf_params: Option<MfParams>,
    pub recent_days: i64,
    pub cold: cold_start::ColdChoice,
    /// Whether known users without history get the model's answer rather than the list.
    pub model_for_cold: bool,
}

pub(super) fn on_validation(
    p: &Prepared,
    options: &TrainOptions,
    clock: &Clock,
) -> anyhow::Result<Chosen> {
    let snapshot_val =
        FeatureSnapshot::compute(&p.data, &p.split.train, p.windows.validation_start);
    let (selection, recency) = fit_two_tower(p, &snapshot_val, options, clock)?;
    let tower_training = recency.training(selection.report.best_epoch.max(1), options.seed);
    let (blocks, tuning, ranker) =
        search_ranker(p, &snapshot_val, &selection, &tower_training, options)?;
    let importance = ranker.feature_importance()?;
    let ranker_positives = tuning
        .used(&blocks)
        .iter()
        .map(|b| b.positives())
        .sum::<usize>();
    print_ranker(&ranker, &tuning, &blocks, ranker_positives, clock);
    let mf_params = tune_mf(p, &snapshot_val, options)?;
    let recent_days = choose_recent_days(&snapshot_val, &p.split.train, &p.validation_labels);
    let (cold, model_for_cold) = choose_cold(p, &snapshot_val, &selection)?;
    Ok(Chosen {
        recency,
        tower_training,
        blocks,
        best_cv: tuning.best_ndcg(),
        tuning,
        ranker,
        importance,
        ranker_positives,
        mf_params,
        recent_days,
        cold,
        model_for_cold,
    })
}

/// The two-tower fit on train with early stopping on validation, for each recency setting.
fn fit_two_tower(
    p: &Prepared,
    snapshot_val: &FeatureSnapshot,
    options: &TrainOptions,
    clock: &Clock,
) -> anyhow::Result<(Retrieval, RecencyChoice)> {
    let (selection, recency) = recency::choose(
        snapshot_val,
        &p.split.train,
        &p.split.validation,
        &options.recency_candidates,
        options.max_epochs,
        options.seed,
    )?;
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
        clock.elapsed()
    );
    Ok((selection, recency))
}

/// The ranker searched by time-based CV over rolling windows plus validation's candidates,
/// then refit with the chosen settings.
fn search_ranker(
    p: &Prepared,
    snapshot_val: &FeatureSnapshot,
    selection: &Retrieval,
    tower_training: &TowerTraining,
    options: &TrainOptions,
) -> anyhow::Result<(Vec<CandidateRows>, Tuning, Ranker)> {
    let window_secs = options.windows.ranker_window_days * DAY;
    let mut blocks = ranking::rolling_window_rows(
        &p.data,
        &p.split.train,
        p.windows.validation_start,
        options
            .windows
            .ranker_windows
            .iter()
            .copied()
            .max()
            .unwrap_or(0),
        window_secs,
        tower_training,
    )?;
    blocks.push(ranking::candidate_rows(
        selection,
        snapshot_val,
        &p.split.validation,
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
    Ok((blocks, tuning, ranker))
}

fn print_ranker(
    ranker: &Ranker,
    tuning: &Tuning,
    blocks: &[CandidateRows],
    ranker_positives: usize,
    clock: &Clock,
) {
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
        tuning.used(blocks).iter().map(|b| b.len()).sum::<usize>(),
        clock.elapsed()
    );
}

/// The implicit-ALS baseline's grid, chosen on validation NDCG@10 (when asked for).
fn tune_mf(
    p: &Prepared,
    snapshot_val: &FeatureSnapshot,
    options: &TrainOptions,
) -> anyhow::Result<Option<MfParams>> {
    if !options.with_mf {
        return Ok(None);
    }
    let (mut params, score) = mf_baseline::tune(snapshot_val, &p.split.train, &p.split.validation)?;
    params.seed = options.seed;
    println!(
        "MF        implicit ALS, {} factors, λ {}, α {} (validation NDCG@10 {score:.4})",
        params.factors, params.regularization, params.alpha
    );
    Ok(Some(params))
}

/// The cold-start list chosen on validation's cold users, and whether known users without
/// history get the model instead: its own answer (profile features, id dropout) competes with
/// the best popularity list on the same users.
fn choose_cold(
    p: &Prepared,
    snapshot_val: &FeatureSnapshot,
    selection: &Retrieval,
) -> anyhow::Result<(cold_start::ColdChoice, bool)> {
    let cold = cold_start::choose(
        snapshot_val,
        &p.split.train,
        &p.validation_labels,
        p.windows.test_start - p.windows.validation_start,
    );
    let cold_users: Vec<UserId> = p
        .validation_labels
        .keys()
        .copied()
        .filter(|&u| snapshot_val.users[u as usize].history_len == 0)
        .collect();
    let model_for_cold = match cold.validation_cold_ndcg_at_10 {
        Some(list_ndcg) => {
            let mut lists = Lists::new();
            for &u in &cold_users {
                let hits = selection.retrieve(snapshot_val, u, LIST_LENGTH)?;
                lists.insert(u, hits.into_iter().map(|h| h.0).collect());
            }
            mean_ndcg(&lists, &p.validation_labels, &cold_users) > list_ndcg
        }
        None => false,
    };
    print_cold(&cold, model_for_cold);
    Ok((cold, model_for_cold))
}

fn print_cold(cold: &cold_start::ColdChoice, model_for_cold: bool) {
    println!(
        "cold      {} of {}{} (validation NDCG@10 {:.4} on {} {}); known users without history get {}",
        cold.policy,
        cold.counted,
        match &cold.profile {
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
}
