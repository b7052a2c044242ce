//! `recsys demo`: train, evaluate, publish and serve on MovieLens 100K, then ask for one
//! recommendation.

use recsys::demo;
use recsys::demo::DemoOptions;
use recsys::demo::SplitKind;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Directory with ml-100k.{inter,item,user}; found automatically when omitted.
    #[arg(long, env = "RECSYS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where versioned artifact directories are written.
    #[arg(long, default_value = "artifacts")]
    pub artifacts_dir: PathBuf,
    /// External user id to recommend for (default: a warm test user).
    #[arg(long)]
    pub user: Option<String>,
    /// Upper bound on two-tower epochs (early stopping usually ends sooner).
    #[arg(long, default_value_t = 30)]
    pub max_epochs: usize,
    /// Ranker hyper-parameter configurations to try (time-based cross-validation).
    #[arg(long, default_value_t = 12)]
    pub ranker_trials: usize,
    /// Which evaluation split to use.
    #[arg(long, value_enum, default_value = "seed")]
    pub split: SplitKind,
    /// State the published version serves from: the latest, or as of the test window's
    /// start (for replaying the test window against the served version).
    #[arg(long, value_enum, default_value = "latest")]
    pub publish_state: demo::PublishState,
    /// Seed of every model's initialisation and sampling.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        data_dir,
        artifacts_dir,
        user,
        max_epochs,
        ranker_trials,
        split,
        publish_state,
        seed,
    } = args;
    demo::run(DemoOptions {
        data_dir,
        artifacts_dir,
        user,
        max_epochs,
        split,
        ranker_trials,
        publish_state,
        seed,
    })
    .await?;
    Ok(())
}
