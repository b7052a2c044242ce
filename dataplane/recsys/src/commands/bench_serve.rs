//! `recsys bench-serve`: load-test a Recommend endpoint: fixed concurrency (or a fixed rate), Zipf-
//! distributed users; prints throughput and latency percentiles.

use recsys_serving::serving::load;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub target: String,
    /// Comma-separated concurrency levels, run one after another.
    #[arg(long, default_value = "1,4,16")]
    pub concurrency: String,
    /// Total requests per second (default: closed loop, as fast as answers come).
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// A model version directory whose catalog.json supplies the user ids.
    #[arg(long)]
    pub users_from: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    pub num_items: u32,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        target,
        concurrency,
        rate,
        duration_secs,
        users_from,
        num_items,
    } = args;
    let users: Vec<String> = match users_from {
        Some(dir) => {
            let catalog: recsys_version::bundle::Catalog = serde_json::from_slice(&std::fs::read(
                dir.join(recsys_version::bundle::CATALOG_FILE),
            )?)?;
            catalog.user_ids
        }
        None => (1..=1000).map(|u| u.to_string()).collect(),
    };
    for level in concurrency.split(',') {
        let report = load::run(load::LoadOptions {
            target: target.clone(),
            concurrency: level.trim().parse()?,
            rate,
            duration: std::time::Duration::from_secs(duration_secs),
            users: users.clone(),
            num_items,
        })
        .await?;
        println!("concurrency {:>3}: {report}", level.trim());
    }
    Ok(())
}
