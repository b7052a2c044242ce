//! `recsys train-events`: the unevaluated fast path for catalogs `recsys train` does not reach
//! yet (1M items for the serving benchmark): the same loader, towers, index, ranker and
//! bundle, but a fixed number of epochs, one fixed-parameter ranker and no evaluation (its
//! manifest's metrics are empty, so no gate can pass it). Training uses events before the last
//! `holdout_days`; the ranker learns from a sample of the users active in those days, labelled
//! by the label policy.

use crate::pipeline::feature_job::EntityFiles;
use crate::pipeline::labels::relevant_by_user;
use crate::pipeline::ranking::{self, CandidateRows};
use crate::pipeline::retrieval;
use anyhow::Context;
use recsys_core::Interaction;
use recsys_data::event_dataset::{self, MetadataColumns};
use recsys_data::features::FeatureSnapshot;
use recsys_models::{Ranker, RankerParams};
use recsys_version::bundle::Catalog;
use recsys_version::writer::{self, BundleParts};
use recsys_version::DataWindow;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct EventsModelOptions {
    pub holdout_days: i64,
    pub epochs: usize,
    /// Users of the holdout window whose candidates train the ranker.
    pub ranker_users: usize,
    pub ranker_trees: u32,
    pub version: String,
    /// User profiles and item metadata: the feature definition's attribute columns, and the
    /// catalog's titles and categories (items only in the metadata join the catalog).
    pub files: EntityFiles,
    pub columns: MetadataColumns,
    /// Which events count as relevant.
    pub labels: recsys_core::labels::LabelPolicy,
}

/// Trains and writes the version; returns its directory.
pub fn train(
    input: &Path,
    out_root: &Path,
    options: &EventsModelOptions,
) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    let mut data = event_dataset::load(input, &options.files, &options.columns)?;
    options.labels.apply(&mut data.interactions);
    let last = data.last_timestamp().context("no interactions")?;
    let cutoff = last + 1 - options.holdout_days * 86_400;
    let (history, holdout): (Vec<Interaction>, Vec<Interaction>) =
        data.interactions.iter().partition(|r| r.timestamp < cutoff);
    println!(
        "data      {} users, {} items, {} events ({} before the cut, {} after) [{:.0} s]",
        data.users.len(),
        data.items.len(),
        data.interactions.len(),
        history.len(),
        holdout.len(),
        started.elapsed().as_secs_f64()
    );
    let snapshot = FeatureSnapshot::compute(&data, &history, cutoff);
    let retrieval = retrieval::train(
        &snapshot,
        &history,
        None,
        &retrieval::TowerTraining::uniform(options.epochs, 7),
    )?;
    println!(
        "two-tower {} epochs; index {:?} over {} items [{:.0} s]",
        retrieval.report.epochs_run,
        retrieval.ann.kind(),
        retrieval.ann.len(),
        started.elapsed().as_secs_f64()
    );

    // A deterministic sample of the holdout's users (every k-th by id).
    let relevant = relevant_by_user(&holdout);
    let step = (relevant.len() / options.ranker_users.max(1)).max(1);
    let sample: BTreeMap<_, _> = relevant
        .into_iter()
        .step_by(step)
        .take(options.ranker_users)
        .collect();
    let sampled: Vec<Interaction> = holdout
        .iter()
        .filter(|r| sample.contains_key(&r.user))
        .copied()
        .collect();
    let rows: CandidateRows = ranking::candidate_rows(&retrieval, &snapshot, &sampled)?;
    let params = RankerParams {
        num_iterations: options.ranker_trees,
        early_stopping_rounds: 0,
        ..RankerParams::default()
    };
    let ranker = Ranker::train(
        rows.grouped(),
        None,
        recsys_data::features::ranker::feature_names(),
        &params,
    )?;
    println!(
        "ranker    {} trees on {} candidate rows ({} positive) from {} users [{:.0} s]",
        ranker.num_trees(),
        rows.len(),
        rows.positives(),
        sample.len(),
        started.elapsed().as_secs_f64()
    );

    let dir = out_root.join(&options.version);
    writer::write(
        &dir,
        BundleParts {
            version: &options.version,
            save_towers: &|dir| Ok(retrieval.model.save(dir)?),
            ann: &retrieval.ann,
            ranker: &ranker,
            snapshot: &snapshot,
            catalog: &Catalog::from_dataset(&data),
            data_window: DataWindow {
                first_timestamp: data.first_timestamp().unwrap_or(0),
                cutoff,
                rows: history.len(),
            },
            hyper_parameters: json!({
                "source": input.display().to_string(),
                "epochs": options.epochs,
                "ranker_trees": options.ranker_trees,
                "ranker_users": sample.len(),
            }),
            metrics: json!({}),
            cold_start: None,
            drift_reference: super::drift::reference_for(&snapshot, &history, cutoff).as_ref(),
        },
    )?;
    println!(
        "wrote     {} [{:.0} s]",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(dir)
}
