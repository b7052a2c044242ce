//! `recsys materialize`: copy the newest offline partition into the online store (Redis) with the
//! definition's TTLs.

use anyhow::Context as _;
use recsys::pipeline::feature_job;
use recsys_data::remote;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The offline store: a directory or an object-storage prefix.
    #[arg(long)]
    pub store: String,
    #[arg(long, env = "RECSYS_REDIS_URL")]
    pub redis_url: String,
    #[arg(long)]
    pub spec: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        store,
        redis_url,
        spec,
    } = args;
    let spec = feature_job::load_spec(spec.as_deref())?;
    let scratch = remote::Scratch::new("materialize")?;
    let local = if remote::is_remote(&store) {
        let dates = remote::complete_partitions(&store)?;
        let latest = dates
            .last()
            .with_context(|| format!("{store}: no complete date=… partition"))?;
        let local = scratch.path().join("store");
        remote::download_prefix(
            &format!("{}/{latest}", store.trim_end_matches('/')),
            &local.join(latest),
        )?;
        local
    } else {
        PathBuf::from(&store)
    };
    let done = feature_job::materialize(&local, &redis_url, &spec)?;
    println!(
        "{} → {}: {} keys in {:.1} s",
        done.partition.display(),
        recsys_core::redact::url(&redis_url),
        done.keys,
        done.seconds
    );
    Ok(())
}
