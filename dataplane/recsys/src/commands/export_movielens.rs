//! `recsys export-movielens`: the MovieLens adapter: write ml-100k as the pipeline's files
//! (events.csv, users.csv, items.csv) for validate, features, split, train and materialize (train
//! with `--labels 'rating>=4' --category-column genres`).

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The ml-100k directory (default: the usual places, as for `demo`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args { data_dir, out } = args;
    let data =
        recsys_data::movielens::load(&recsys_data::locate::find_movielens(data_dir.as_deref())?)?;
    std::fs::create_dir_all(&out)?;
    recsys_data::movielens::write_events(&data, &out.join("events.csv"))?;
    let write = recsys_data::entity_files::write_csv;
    if let (Some(profiles), Some(metadata)) = (&data.profiles, &data.metadata) {
        write(profiles, "user_id", &out.join("users.csv"))?;
        write(metadata, "item_id", &out.join("items.csv"))?;
    }
    println!(
        "{}: events.csv ({} ratings), users.csv ({} users), items.csv ({} items)",
        out.display(),
        data.interactions.len(),
        data.users.len(),
        data.items.len()
    );
    Ok(())
}
