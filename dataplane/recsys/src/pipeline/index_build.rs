//! `recsys build-index`: the ItemIndex Job. Embeds a model version's items, builds the
//! requested FAISS index, measures recall@k against exact search with real user queries, and
//! publishes the index only when it reaches the target, with a manifest of checksums and the
//! model version (by its manifest digest) whose vectors it holds. The model may be read from
//! and the index published to object storage. The result (one JSON line) goes to a file — the
//! pod's termination message — where the operator reads it.

use anyhow::Context;
use recsys_data::features::{tower, FeatureSnapshot};
use recsys_data::remote::{Output, Scratch};
use recsys_models::{AnnIndex, IndexKind};
use recsys_two_tower::TwoTower;
use recsys_version::bundle::SNAPSHOT_FILE;
use recsys_version::index_manifest::{self, IndexManifest};
use recsys_version::{self, fetch};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

pub struct IndexBuildOptions {
    /// A version directory or URI (`s3://`, `file://`).
    pub model_dir: String,
    /// A directory or URI the index is published to.
    pub output: String,
    pub kind: IndexKind,
    /// Find the fewest inverted lists to probe that reach the target (IVF kinds).
    pub tune_probes: bool,
    pub recall_k: usize,
    pub recall_target: f64,
    /// Users whose embeddings serve as recall queries (evenly spaced over all users).
    pub sample_queries: usize,
    pub result_file: Option<PathBuf>,
}

/// The result line, in the shape the operator parses.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexBuildResult {
    pub items: i64,
    pub recall: f64,
    pub artifact_uri: String,
    pub build_seconds: f64,
    pub published: bool,
    /// The model version whose vectors the index holds.
    pub model_version: String,
}

pub fn run(options: &IndexBuildOptions) -> anyhow::Result<IndexBuildResult> {
    let started = Instant::now();
    let scratch = Scratch::new("build-index")?;
    let model_dir = fetch::fetch_version(&options.model_dir, scratch.path())?;
    let model_dir = model_dir.as_path();
    let output = Output::new(&options.output, &scratch);
    let model_manifest =
        recsys_version::verify(model_dir, None).context("refusing an unverified model version")?;
    let snapshot: FeatureSnapshot = serde_json::from_slice(
        &std::fs::read(model_dir.join(SNAPSHOT_FILE)).context("reading the feature snapshot")?,
    )?;
    let model = TwoTower::load(model_dir)?;
    let dim = model.config().output_dim as usize;
    let items = model.embed_items(&tower::all_items(&snapshot))?;
    let ids: Vec<u32> = (0..snapshot.items.len() as u32).collect();
    let mut index = AnnIndex::build(options.kind, dim, &items, ids.clone())?;
    let exact = AnnIndex::build(IndexKind::Flat, dim, &items, ids)?;

    let users = model.embed_users(&tower::all_users(&snapshot))?;
    let n_users = users.len() / dim;
    let step = (n_users / options.sample_queries.max(1)).max(1);
    let queries: Vec<f32> = users
        .chunks(dim)
        .step_by(step)
        .take(options.sample_queries)
        .flatten()
        .copied()
        .collect();
    let recall = if options.tune_probes {
        index.tune_probes(&exact, &queries, options.recall_k, options.recall_target)?
    } else {
        index.recall_against(&exact, &queries, options.recall_k)?
    };
    let published = recall >= options.recall_target;
    if published {
        index.save(output.local())?;
        index_manifest::seal(
            output.local(),
            IndexManifest {
                format_version: 0,
                model_version: model_manifest.model_version.clone(),
                model_manifest_sha256: index_manifest::model_digest(model_dir)?,
                kind: format!("{:?}", index.kind()),
                items: snapshot.items.len(),
                recall,
                created_at: chrono::Utc::now().to_rfc3339(),
                files: Default::default(),
            },
        )?;
        output.publish("")?;
    }
    let result = IndexBuildResult {
        items: snapshot.items.len() as i64,
        recall,
        model_version: model_manifest.model_version.clone(),
        artifact_uri: options.output.clone(),
        build_seconds: started.elapsed().as_secs_f64(),
        published,
    };
    let line = serde_json::to_string(&result)?;
    if let Some(file) = &options.result_file {
        std::fs::write(file, format!("{line}\n"))
            .with_context(|| format!("writing the result to {}", file.display()))?;
    }
    println!("{line}");
    Ok(result)
}
