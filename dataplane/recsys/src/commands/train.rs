//! `recsys train`: train, evaluate and publish a model version from any validated event file (plus
//! optional user profiles and item metadata), local or in object storage.

use super::args::DatasetArgs;
use super::args::EntityFileArgs;
use super::args::WindowArgs;
use anyhow::Context as _;
use recsys::demo;
use recsys::pipeline::validate;
use recsys_core::validation::ValidationConfig;
use recsys_data::remote;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Events in the pipeline schema (CSV, JSONL or Parquet): a path or a URI.
    #[arg(long)]
    pub events: String,
    #[command(flatten)]
    pub entity_files: EntityFileArgs,
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Which events count as relevant: comma-separated event types, or `<type>>=<value>`
    /// (`rating>=4` for MovieLens, `purchase,add_to_cart` for a shop).
    #[arg(long)]
    pub labels: recsys_core::labels::LabelPolicy,
    #[command(flatten)]
    pub windows: WindowArgs,
    /// Model root (a path or a URI); the version is written to <out>/<version>.
    #[arg(long)]
    pub out: String,
    /// Version name (default: v<UTC time>).
    #[arg(long)]
    pub version: Option<String>,
    /// The live version (a directory or a URI): scored on the same test window, and the
    /// verdict is against it.
    #[arg(long)]
    pub compare_to: Option<String>,
    /// Train on the events of the last N days before the newest one only.
    #[arg(long)]
    pub window_days: Option<u32>,
    /// Feedback the serving pods wrote (a directory or prefix of `date=…/hour=…/`
    /// partitions): read with the events and validated with them.
    #[arg(long)]
    pub feedback: Option<String>,
    /// Validate events (and feedback) in one pass before training: malformed, too old or
    /// future rows, bots, outliers and duplicate event ids are quarantined. On whenever
    /// --feedback is given.
    #[arg(long)]
    pub validate: bool,
    /// Also write the gate numbers as one JSON line here (a Job's termination log).
    #[arg(long)]
    pub result_file: Option<PathBuf>,
    #[arg(long, default_value_t = 30)]
    pub max_epochs: usize,
    /// How much the two-tower may favour recent positives, each tried on validation:
    /// `none`, or half-lives as shares of the training window's span.
    #[arg(long, value_delimiter = ',', default_values_t = recsys::pipeline::recency::default_candidates())]
    pub recency: Vec<recsys::pipeline::recency::Recency>,
    #[arg(long, default_value_t = 12)]
    pub ranker_trials: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Skip the implicit-ALS baseline (slow on large catalogs).
    #[arg(long)]
    pub no_mf: bool,
    #[arg(long, value_enum, default_value = "latest")]
    pub publish_state: demo::PublishState,
    /// Where remote inputs are copied.
    #[arg(long, env = "RECSYS_CACHE_DIR", default_value_os_t = std::env::temp_dir().join("recsys-cache"))]
    pub cache_dir: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        events,
        entity_files,
        data,
        labels,
        windows,
        out,
        version,
        compare_to,
        window_days,
        feedback,
        validate,
        result_file,
        max_epochs,
        recency,
        ranker_trials,
        seed,
        no_mf,
        publish_state,
        cache_dir,
    } = args;
    let scratch = remote::Scratch::new("train")?;
    let (input, validation) = training_input(&events, feedback.as_deref(), validate, &scratch)?;
    let mut dataset = data.load_local(&input, &entity_files, &scratch)?;
    if let Some(days) = window_days {
        let dropped = dataset.keep_last_days(days);
        println!(
            "window    last {days} days: {} events kept, {dropped} older dropped",
            dataset.interactions.len()
        );
    }
    let rows = dataset.interactions.len();
    let live = compare_to
        .map(|uri| recsys_version::fetch::fetch_version(&uri, &cache_dir))
        .transpose()?
        .map(|dir| {
            Box::new(recsys::live_version::ServedVersion(dir))
                as Box<dyn recsys::pipeline::live::LiveScorer>
        });
    let output = remote::Output::new(&out, &scratch);
    let version =
        version.unwrap_or_else(|| format!("v{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
    let summary = recsys::pipeline::train::run(
        dataset,
        &recsys::pipeline::train::TrainOptions {
            labels,
            windows: windows.config(),
            max_epochs,
            recency_candidates: recency,
            ranker_trials,
            seed,
            with_mf: !no_mf,
            publish_state,
            out_root: output.local().to_path_buf(),
            version: version.clone(),
            live,
            source: recsys_core::redact::url(&events),
        },
    )?;
    if let Some(report) = &validation {
        std::fs::write(
            summary.artifact_dir.join(validate::REPORT_FILE),
            serde_json::to_vec_pretty(report)?,
        )?;
        // The report is part of the version: reseal so its digest covers it.
        let manifest = recsys_version::verify(&summary.artifact_dir, None)?;
        recsys_version::seal(&summary.artifact_dir, manifest)?;
    }
    output.publish(&version)?;
    if let Some(file) = &result_file {
        let line = recsys::pipeline::run_result::from_evaluation(
            &summary.artifact_dir,
            &remote::join(&out, &version),
            rows,
        )?;
        recsys::pipeline::run_result::write(file, &line)?;
    }
    println!(
        "version   {} ({} ranker positives; verdict: {})",
        remote::join(&out, &version),
        summary.ranker_positives,
        summary.verdict.decision
    );
    Ok(())
}

/// The events `train` reads: the history alone, or the history and the feedback partitions
/// side by side; validated in one pass (into the scratch directory) when asked or when
/// feedback is part of it.
fn training_input(
    events: &str,
    feedback: Option<&str>,
    validate_first: bool,
    scratch: &remote::Scratch,
) -> anyhow::Result<(PathBuf, Option<validate::ValidationReport>)> {
    let history = remote::fetch(events, &scratch.path().join("events"))?;
    let input = match feedback {
        None => history,
        Some(location) => {
            let Some(served) = remote::fetch_prefix(location, &scratch.path().join("feedback"))?
            else {
                println!("feedback  none yet under {location}");
                return validated(history, true, scratch);
            };
            let both = scratch.path().join("history-and-feedback");
            std::fs::create_dir_all(&both)?;
            for (name, path) in [("history", &history), ("feedback", &served)] {
                let link = both.join(name);
                let target = std::fs::canonicalize(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                if target.is_dir() {
                    std::os::unix::fs::symlink(&target, &link)?;
                } else {
                    std::fs::create_dir_all(&link)?;
                    let file = target.file_name().context("an event file has a name")?;
                    std::os::unix::fs::symlink(&target, link.join(file))?;
                }
            }
            both
        }
    };
    validated(input, validate_first || feedback.is_some(), scratch)
}

/// `input` itself, or its clean rows after one validation pass when `validate_first`.
fn validated(
    input: PathBuf,
    validate_first: bool,
    scratch: &remote::Scratch,
) -> anyhow::Result<(PathBuf, Option<validate::ValidationReport>)> {
    if !validate_first {
        return Ok((input, None));
    }
    let out = scratch.path().join("validated");
    let config = ValidationConfig::new(chrono::Utc::now().timestamp());
    let report = validate::run(&input, &out, &config)?;
    println!("validated {}", report.summary());
    Ok((out.join(validate::CLEAN_FILE), Some(report)))
}
