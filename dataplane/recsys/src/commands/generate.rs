//! `recsys generate`: write synthetic events (power-law popularity, taste clusters, daily cycle,
//! bots and planted defects) as CSV, deterministically from a seed.

use recsys_data::synthetic;
use recsys_data::synthetic::GeneratorConfig;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    #[arg(long)]
    pub users: Option<u32>,
    #[arg(long)]
    pub items: Option<u32>,
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Share of rows turned into defects.
    #[arg(long, default_value_t = 0.005)]
    pub bad_fraction: f64,
    /// Share of users who sign up after the first day (no events before their sign-up).
    #[arg(long, default_value_t = 0.25)]
    pub newcomer_fraction: f64,
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the users' profiles here (CSV: user_id, age, gender).
    #[arg(long)]
    pub users_out: Option<PathBuf>,
    /// Also write the items' metadata here (CSV: item_id, title, category, price, year).
    #[arg(long)]
    pub items_out: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        events,
        users,
        items,
        days,
        seed,
        bad_fraction,
        newcomer_fraction,
        out,
        users_out,
        items_out,
    } = args;
    anyhow::ensure!(
        (0.0..=1.0).contains(&newcomer_fraction),
        "--newcomer-fraction must be within 0..=1, got {newcomer_fraction}"
    );
    let now = chrono::Utc::now().timestamp();
    let start = now - now.rem_euclid(86_400) - i64::from(days) * 86_400;
    let defaults = GeneratorConfig::new(events, start);
    let config = GeneratorConfig {
        users: users.unwrap_or(defaults.users),
        items: items.unwrap_or(defaults.items),
        days,
        seed,
        bad_fraction,
        newcomer_fraction,
        ..defaults
    };
    let t = std::time::Instant::now();
    let generated = synthetic::generate(&out, &config)?;
    if let (Some(users), Some(items)) = (&users_out, &items_out) {
        synthetic::write_catalog(&config, users, items)?;
    } else if users_out.is_some() || items_out.is_some() {
        anyhow::bail!("--users-out and --items-out go together");
    }
    eprintln!(
        "wrote {} rows ({} planted defects) to {} in {:.1} s",
        generated.rows,
        generated.planted.len(),
        out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
