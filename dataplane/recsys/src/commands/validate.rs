//! `recsys validate`: validate an event file (CSV or JSONL): clean rows, quarantined rows with
//! reasons and a JSON report in --out-dir. Exits non-zero when the quality rate is below the alert
//! level.

use super::args::EntityFileArgs;
use recsys::pipeline::feature_job;
use recsys::pipeline::validate;
use recsys_core::validation::ValidationConfig;
use recsys_data::remote;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A local path or an object-storage URI (s3://bucket/key, file:///path).
    #[arg(long)]
    pub input: String,
    /// A local directory or an object-storage prefix.
    #[arg(long)]
    pub out_dir: String,
    /// "Now" for future/too-old checks, unix seconds (default: the current time).
    #[arg(long)]
    pub now: Option<i64>,
    #[arg(long, default_value_t = 1000)]
    pub bot_events_per_day: u32,
    #[arg(long, default_value_t = 0.95)]
    pub quality_alert_below: f64,
    /// Also compute the declarative features as of the end of this UTC date from the
    /// clean rows, in the same pass, into --feature-store.
    #[arg(long, requires = "feature_store")]
    pub features_as_of: Option<chrono::NaiveDate>,
    /// The offline feature store (a directory or an object-storage prefix).
    #[arg(long)]
    pub feature_store: Option<String>,
    #[arg(long)]
    pub feature_spec: Option<PathBuf>,
    #[command(flatten)]
    pub entity_files: EntityFileArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        input,
        out_dir,
        now,
        bot_events_per_day,
        quality_alert_below,
        features_as_of,
        feature_store,
        feature_spec,
        entity_files,
    } = args;
    let started = std::time::Instant::now();
    let config = ValidationConfig {
        bot_events_per_day,
        quality_alert_below,
        ..ValidationConfig::new(now.unwrap_or_else(|| chrono::Utc::now().timestamp()))
    };
    let scratch = remote::Scratch::new("validate")?;
    let input = remote::fetch(&input, &scratch.path().join("input"))?;
    let out = remote::Output::new(&out_dir, &scratch);
    let spec = feature_job::load_spec(feature_spec.as_deref())?;
    let mut engine = features_as_of
        .map(|date| recsys_core::features::FeatureEngine::new(&spec, feature_job::as_of_for(date)));
    let report = validate::run_with(&input, out.local(), &config, &mut |event| {
        if let Some(engine) = engine.as_mut() {
            engine.observe(event);
        }
    })?;
    out.publish("")?;
    println!("{}", report.summary());
    if let (Some(engine), Some(date), Some(store)) = (engine, features_as_of, feature_store) {
        let store_scratch = remote::Scratch::new("validate-features")?;
        let store_out = remote::Output::new(&store, &store_scratch);
        let files = entity_files.load(&store_scratch)?;
        let (dir, m) = feature_job::write_engine(
            engine,
            date,
            &spec,
            store_out.local(),
            report.tally.quarantined,
            &files,
        )?;
        store_out.publish(&format!("date={}", m.date))?;
        println!(
                "{}: {} users, {} items from {} clean events ({} at or after the as-of time ignored); {:.1} s in all",
                dir.display(),
                m.users,
                m.items,
                m.events_used,
                m.events_after_as_of,
                started.elapsed().as_secs_f64()
            );
    }
    if report.alert {
        std::process::exit(3);
    }
    Ok(())
}
