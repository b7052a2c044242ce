//! `recsys features`: compute the declarative features (core/features.yaml or --spec) as of the end
//! of --as-of into the offline store: <store>/date=YYYY-MM-DD/{user,item}.parquet.

use super::args::EntityFileArgs;
use recsys::pipeline::feature_job;
use recsys_data::remote;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Events (CSV, JSONL or Parquet; a path or an s3:// / file:// URI), normally
    /// `recsys validate`'s clean output.
    #[arg(long)]
    pub input: String,
    /// UTC date, YYYY-MM-DD: events before the following midnight count.
    #[arg(long)]
    pub as_of: chrono::NaiveDate,
    /// The offline store: a directory or an object-storage prefix.
    #[arg(long)]
    pub store: String,
    #[arg(long)]
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub entity_files: EntityFileArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        input,
        as_of,
        store,
        spec,
        entity_files,
    } = args;
    let spec = feature_job::load_spec(spec.as_deref())?;
    let scratch = remote::Scratch::new("features")?;
    let input = remote::fetch(&input, &scratch.path().join("input"))?;
    let files = entity_files.load(&scratch)?;
    let out = remote::Output::new(&store, &scratch);
    let (dir, m, rate) = feature_job::compute(&input, as_of, &spec, out.local(), &files)?;
    out.publish(&format!("date={}", m.date))?;
    println!(
            "{}: {} users, {} items from {} events ({} at or after the as-of time ignored, {} unreadable rows skipped); schema {}; {rate:.0} rows/s",
            dir.display(),
            m.users,
            m.items,
            m.events_used,
            m.events_after_as_of,
            m.rows_rejected,
            m.schema_hash
        );
    Ok(())
}
