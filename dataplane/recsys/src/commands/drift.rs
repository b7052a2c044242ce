//! `recsys drift`: pSI per feature between a reference and a current event window.

use recsys::pipeline::drift;
use recsys_data::remote;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub reference: String,
    #[arg(long)]
    pub current: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args { reference, current } = args;
    let scratch = remote::Scratch::new("drift")?;
    let reference = remote::fetch(&reference, &scratch.path().join("reference"))?;
    let current = remote::fetch(&current, &scratch.path().join("current"))?;
    for f in drift::compare(&reference, &current)? {
        println!("{:<12} PSI {:>8.4}  {:?}", f.feature, f.psi, f.level);
    }
    Ok(())
}
