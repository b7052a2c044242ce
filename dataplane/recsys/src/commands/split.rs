//! `recsys split`: write train / validation / test event files with the cut-offs `train` uses, so
//! any other tool can be scored on exactly the same rows.

use super::args::DatasetArgs;
use super::args::EntityFileArgs;
use super::args::WindowArgs;
use recsys_data::remote;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub events: String,
    #[command(flatten)]
    pub entity_files: EntityFileArgs,
    #[command(flatten)]
    pub data: DatasetArgs,
    #[command(flatten)]
    pub windows: WindowArgs,
    #[arg(long)]
    pub out: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        events,
        entity_files,
        data,
        windows,
        out,
    } = args;
    let scratch = remote::Scratch::new("split")?;
    let dataset = data.load(&events, &entity_files, &scratch)?;
    let cut = windows.config().cut(&dataset)?;
    recsys_data::export::write_split(&dataset, cut, &out)?;
    println!(
            "wrote     {}/{{train,validation,test}}.csv and cutoffs.json (validation from {}, test from {})",
            out.display(),
            cut.validation_start,
            cut.test_start
        );
    Ok(())
}
