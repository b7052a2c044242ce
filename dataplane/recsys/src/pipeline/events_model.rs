//! `recsys train-events`: a servable model version trained on an event file (generated or
//! real) rather than MovieLens — the same towers, index, ranker and bundle as the demo, at
//! catalog sizes the demo's data cannot reach (1M items for the serving benchmark). Training
//! uses events before the last `holdout_days`; the ranker learns from a sample of the users
//! active in those days, labelled by what they did there.

use crate::artifacts::DataWindow;
use crate::data::{events_io, Dataset, ItemMeta, UserProfile};
use crate::features::FeatureSnapshot;
use crate::pipeline::feature_job::EntityFiles;
use crate::pipeline::labels::relevant_by_user;
use crate::pipeline::ranking::{self, CandidateRows};
use crate::pipeline::retrieval;
use crate::serving::bundle::{self, BundleParts, Catalog};
use anyhow::{ensure, Context};
use recsys_core::validation::check_record;
use recsys_core::Interaction;
use recsys_models::{Ranker, RankerParams};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct EventsModelOptions {
    /// Catalog items `i0..i{n-1}` exist even without events (the generator's naming).
    pub catalog_items: u32,
    /// Generator taste clusters: item `iK` belongs to category `K mod clusters`.
    pub clusters: u32,
    pub holdout_days: i64,
    pub epochs: usize,
    /// Users of the holdout window whose candidates train the ranker.
    pub ranker_users: usize,
    pub ranker_trees: u32,
    pub version: String,
    /// User profiles and item metadata: the feature definition's attribute columns, and the
    /// catalog's titles and categories (items only in the metadata join the catalog).
    pub files: EntityFiles,
    /// Which events count as relevant.
    pub labels: recsys_core::labels::LabelPolicy,
}

/// Dense ids in first-seen order.
#[derive(Default)]
struct Ids {
    index: HashMap<String, u32>,
    names: Vec<String>,
}

impl Ids {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.index.insert(name.to_owned(), i);
        self.names.push(name.to_owned());
        i
    }
}

fn load(input: &Path, options: &EventsModelOptions) -> anyhow::Result<Dataset> {
    let config = super::feature_job::parse_only(0);
    let (mut users, mut items) = (Ids::default(), Ids::default());
    for k in 0..options.catalog_items {
        items.id(&format!("i{k}"));
    }
    let mut interactions = Vec::new();
    let mut skipped = 0u64;
    events_io::for_each_row(input, |_, row| {
        match row.ok().map(|r| check_record(&r, &config)) {
            Some(Ok(e)) => interactions.push(Interaction {
                user: users.id(e.user_id),
                item: items.id(e.item_id),
                timestamp: e.timestamp,
                value: e.value.unwrap_or(1.0) as f32,
                kind: e.event_type,
                relevant: false,
            }),
            _ => skipped += 1,
        }
        Ok(())
    })?;
    ensure!(
        !interactions.is_empty(),
        "{}: no readable events",
        input.display()
    );
    if skipped > 0 {
        tracing::warn!(skipped, "unreadable rows skipped; validate the file first");
    }
    let metadata = options.files.metadata.as_ref();
    for id in metadata.map(|m| m.ids.as_slice()).unwrap_or_default() {
        items.id(id);
    }
    let metadata_index = metadata.map(|m| m.index()).unwrap_or_default();
    let cell = |id: &str, column: &str| -> Option<String> {
        let m = metadata?;
        let row = m.row(*metadata_index.get(id)?);
        row[m.column(column)?].clone()
    };
    let category = |name: &str| {
        name.strip_prefix('i')
            .and_then(|k| k.parse::<u32>().ok())
            .map_or_else(
                || "other".to_owned(),
                |k| format!("cluster-{}", k % options.clusters),
            )
    };
    Ok(Dataset {
        users: users
            .names
            .into_iter()
            .map(|external_id| UserProfile {
                external_id,
                ..Default::default()
            })
            .collect(),
        items: items
            .names
            .into_iter()
            .map(|external_id| ItemMeta {
                title: cell(&external_id, "title").unwrap_or_else(|| format!("Item {external_id}")),
                genres: vec![
                    cell(&external_id, "category").unwrap_or_else(|| category(&external_id))
                ],
                year: cell(&external_id, "year").and_then(|y| y.trim().parse().ok()),
                external_id,
            })
            .collect(),
        interactions,
        profiles: options.files.profiles.clone(),
        metadata: options.files.metadata.clone(),
    })
}

/// Trains and writes the version; returns its directory.
pub fn train(
    input: &Path,
    out_root: &Path,
    options: &EventsModelOptions,
) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    let mut data = load(input, options)?;
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
    let retrieval = retrieval::train(&snapshot, &history, None, options.epochs, 7)?;
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
        crate::features::ranker::feature_names(),
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
    bundle::write(
        &dir,
        BundleParts {
            version: &options.version,
            retrieval: &retrieval,
            ranker: &ranker,
            snapshot: &snapshot,
            catalog: &Catalog::from_dataset(&data),
            data_window: DataWindow {
                first_timestamp: data
                    .interactions
                    .iter()
                    .map(|r| r.timestamp)
                    .min()
                    .unwrap_or(0),
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
        },
    )?;
    println!(
        "wrote     {} [{:.0} s]",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(dir)
}
