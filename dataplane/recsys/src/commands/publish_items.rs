//! `recsys publish-items`: publish the catalog feed's display metadata (title, image_url, price,
//! category by item_id) to Redis for one day, where serving reads it for every response.

use recsys_data::remote;

#[derive(clap::Args)]
pub struct Args {
    /// CSV, JSON lines or Parquet with an `item_id` column: a path or a URI.
    #[arg(long)]
    pub items: String,
    #[arg(long, env = "RECSYS_REDIS_URL")]
    pub redis_url: String,
    #[arg(long, default_value_t = 24)]
    pub ttl_hours: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        items,
        redis_url,
        ttl_hours,
    } = args;
    let scratch = remote::Scratch::new("publish-items")?;
    let local = remote::fetch(&items, scratch.path())?;
    let feed = recsys_serving::serving::item_display::read_feed(&local)?;
    let progress = indicatif::ProgressBar::new(feed.len() as u64);
    let written = recsys_serving::serving::item_display::publish(
        &redis_url,
        &feed,
        std::time::Duration::from_secs(ttl_hours.max(1) * 3600),
        &|n| progress.set_position(n),
    )?;
    progress.finish_and_clear();
    println!(
        "{items} → {}: {written} items, {ttl_hours} h",
        recsys_core::redact::url(&redis_url)
    );
    Ok(())
}
