//! `recsys train-events`: the unevaluated fast path for catalogs `train` does not reach yet (the
//! 1M-item serving benchmark): fixed epochs, one fixed-parameter ranker, no evaluation, empty
//! metrics.

use super::args::DatasetArgs;
use super::args::EntityFileArgs;
use recsys::pipeline::events_model;
use recsys_data::remote;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub input: String,
    /// Model root; the version is written to <out>/<version>.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "v1")]
    pub version: String,
    #[command(flatten)]
    pub data: DatasetArgs,
    #[arg(long, default_value_t = 7)]
    pub holdout_days: i64,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    #[arg(long, default_value_t = 2000)]
    pub ranker_users: usize,
    #[arg(long, default_value_t = 200)]
    pub ranker_trees: u32,
    /// Which events count as relevant (see `train --labels`).
    #[arg(long)]
    pub labels: recsys_core::labels::LabelPolicy,
    #[command(flatten)]
    pub entity_files: EntityFileArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        input,
        out,
        version,
        data,
        holdout_days,
        epochs,
        ranker_users,
        ranker_trees,
        labels,
        entity_files,
    } = args;
    let scratch = remote::Scratch::new("train-events")?;
    let input = remote::fetch(&input, &scratch.path().join("input"))?;
    let files = entity_files.load(&scratch)?;
    let options = events_model::EventsModelOptions {
        holdout_days,
        epochs,
        ranker_users,
        ranker_trees,
        version,
        files,
        columns: data.columns(),
        labels,
    };
    events_model::train(&input, &out, &options)?;
    Ok(())
}
