//! `recsys validate`: two streaming passes over an event file. The first learns what needs
//! the whole input (events per user-day for bots, value distributions for outliers, daily
//! volumes for spikes); the second decides every row and writes it either to the clean output
//! or to the quarantine with its reason. Memory grows with distinct user-days, not rows.

use anyhow::{ensure, Context};
use recsys_core::validation::{check_record, Event, Profile, Reason, Tally, ValidationConfig};
use recsys_data::events_io::{self, EventWriter, QuarantineWriter};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const CLEAN_FILE: &str = "clean.csv";
pub const QUARANTINE_FILE: &str = "quarantine.csv";
pub const REPORT_FILE: &str = "validation_report.json";

/// The JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub input: String,
    #[serde(flatten)]
    pub tally: Tally,
    pub quality_rate: f64,
    /// True when the quality rate is below the configured threshold.
    pub alert: bool,
    pub bot_users: usize,
    pub median_daily_volume: u64,
    /// Days (UTC, YYYY-MM-DD) whose volume exceeded the spike factor × the median.
    pub volume_spikes: Vec<(String, u64)>,
    pub seconds: f64,
    pub rows_per_second: f64,
    pub config: ValidationConfig,
    pub outputs: Vec<PathBuf>,
}

impl ValidationReport {
    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut reasons: Vec<String> = self
            .tally
            .by_reason
            .iter()
            .map(|(r, n)| format!("{} {n}", r.as_str()))
            .collect();
        if reasons.is_empty() {
            reasons.push("none".into());
        }
        format!(
            "{}: {} rows → {} clean + {} quarantined (quality {:.2}%{})\n  quarantined: {}\n  bot users: {}; volume spikes: {}; {:.0} rows/s",
            self.input,
            self.tally.rows_in,
            self.tally.clean,
            self.tally.quarantined,
            100.0 * self.quality_rate,
            if self.alert { ", ALERT: below threshold" } else { "" },
            reasons.join(", "),
            self.bot_users,
            if self.volume_spikes.is_empty() {
                "none".to_owned()
            } else {
                self.volume_spikes
                    .iter()
                    .map(|(d, n)| format!("{d} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            self.rows_per_second
        )
    }
}

fn progress(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(what.to_owned());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>10} {human_pos} rows ({per_sec}) {elapsed}")
            .expect("static template"),
    );
    bar
}

/// Validates `input` into `out_dir` (clean.csv, quarantine.csv, validation_report.json).
pub fn run(
    input: &Path,
    out_dir: &Path,
    config: &ValidationConfig,
) -> anyhow::Result<ValidationReport> {
    run_with(input, out_dir, config, &mut |_| {})
}

/// [`run`], also handing every clean event to `on_clean` as it is written (one pass feeds
/// downstream work such as the feature engine, without reading clean.csv again).
pub fn run_with(
    input: &Path,
    out_dir: &Path,
    config: &ValidationConfig,
    on_clean: &mut dyn FnMut(&Event<'_>),
) -> anyhow::Result<ValidationReport> {
    let started = Instant::now();
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let bar = progress("profiling");
    let mut profile = Profile::new(config);
    events_io::for_each_row(input, |line, row| {
        if let Ok(event) = row
            .map_err(|_| Reason::Malformed)
            .and_then(|r| check_record(&r, config))
        {
            profile.observe(&event);
        }
        if line % 65_536 == 0 {
            bar.set_position(line);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let mut rules = profile.finish(config);

    let bar = progress("validating");
    let clean_path = out_dir.join(CLEAN_FILE);
    let quarantine_path = out_dir.join(QUARANTINE_FILE);
    let mut clean = EventWriter::create(&clean_path)?;
    let mut quarantine = QuarantineWriter::create(&quarantine_path)?;
    let mut tally = Tally::default();
    events_io::for_each_row(input, |line, row| {
        match row {
            Err(raw) => {
                tally.reject(Reason::Malformed);
                quarantine.write(line, Reason::Malformed, Err(raw))?;
            }
            Ok(record) => {
                match check_record(&record, config).and_then(|e| rules.check(&e).map(|()| e)) {
                    Ok(event) => {
                        tally.accept();
                        clean.write(&event)?;
                        on_clean(&event);
                    }
                    Err(reason) => {
                        tally.reject(reason);
                        quarantine.write(line, reason, Ok(&record))?;
                    }
                }
            }
        }
        if line % 65_536 == 0 {
            bar.set_position(line);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    clean.finish()?;
    quarantine.finish()?;
    ensure!(tally.reconciles(), "row counts do not reconcile: {tally:?}");

    let seconds = started.elapsed().as_secs_f64();
    let date = |d: i64| {
        chrono::DateTime::from_timestamp(d * 86_400, 0)
            .map_or_else(|| d.to_string(), |t| t.format("%Y-%m-%d").to_string())
    };
    let report = ValidationReport {
        input: input.display().to_string(),
        quality_rate: tally.quality_rate(),
        alert: tally.quality_rate() < config.quality_alert_below,
        bot_users: rules.bot_users(),
        median_daily_volume: rules.median_daily_volume(),
        volume_spikes: rules.spikes().iter().map(|&(d, n)| (date(d), n)).collect(),
        seconds,
        rows_per_second: tally.rows_in as f64 / seconds.max(1e-9),
        config: config.clone(),
        outputs: vec![clean_path, quarantine_path, out_dir.join(REPORT_FILE)],
        tally,
    };
    std::fs::write(
        out_dir.join(REPORT_FILE),
        serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}
