//! `recsys features` and `recsys materialize`: compute the declarative features as of a date
//! into the offline store (Parquet), and copy the newest partition into the online store
//! (Redis) with the definition's TTLs.

use anyhow::Context as _;
use recsys_core::features::{Entity, FeatureEngine, FeatureSpec};
use recsys_core::validation::check_record;
use recsys_data::events_io;
use recsys_data::features::offline_store::{self, PartitionManifest};
use recsys_data::features::online_store::OnlineStore;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Reads the definition at `path`, or the shipped one.
pub fn load_spec(path: Option<&Path>) -> anyhow::Result<FeatureSpec> {
    match path {
        None => Ok(FeatureSpec::default_spec()),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            FeatureSpec::from_yaml(&text).with_context(|| p.display().to_string())
        }
    }
}

pub use recsys_data::entity_files::EntityFiles;
pub use recsys_data::events_io::parse_only;

/// Midnight (UTC) after `date`: the partition for `date` sees every event of that day.
pub fn as_of_for(date: chrono::NaiveDate) -> i64 {
    date.succ_opt()
        .expect("a date before the end of time")
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp()
}

fn bar(len: Option<u64>, what: &str) -> indicatif::ProgressBar {
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>12} {human_pos} ({per_sec}) {elapsed}")
            .expect("static template"),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Streams `input` into the features as of the end of `date` and writes the partition.
pub fn compute(
    input: &Path,
    date: chrono::NaiveDate,
    spec: &FeatureSpec,
    store: &Path,
    files: &EntityFiles,
) -> anyhow::Result<(PathBuf, PartitionManifest, f64)> {
    let started = Instant::now();
    let as_of = as_of_for(date);
    let config = parse_only(as_of);
    let mut engine = FeatureEngine::new(spec, as_of);
    let mut rejected = 0u64;
    let progress = bar(None, "features");
    let rows = events_io::for_each_row(input, |line, row| {
        match row.ok().map(|r| check_record(&r, &config)) {
            Some(Ok(event)) => engine.observe(&event),
            _ => rejected += 1,
        }
        if line % 65_536 == 0 {
            progress.set_position(line);
        }
        Ok(())
    })?;
    progress.finish_and_clear();
    let (used, after) = engine.counts();
    anyhow::ensure!(
        used + after + rejected == rows,
        "row counts do not reconcile"
    );
    let (dir, manifest) = write_engine(engine, date, spec, store, rejected, files)?;
    Ok((
        dir,
        manifest,
        rows as f64 / started.elapsed().as_secs_f64().max(1e-9),
    ))
}

/// Finishes `engine` (built for `as_of_for(date)`) into the offline store's partition for
/// `date`; `rows_rejected` counts input rows the engine never saw.
pub fn write_engine(
    engine: FeatureEngine,
    date: chrono::NaiveDate,
    spec: &FeatureSpec,
    store: &Path,
    rows_rejected: u64,
    files: &EntityFiles,
) -> anyhow::Result<(PathBuf, PartitionManifest)> {
    let (used, after) = engine.counts();
    let (users, items, reports) =
        engine.finish_with(files.profiles.as_ref(), files.metadata.as_ref());
    for (file, report) in ["--users", "--items"].iter().zip(&reports) {
        for column in &report.missing_columns {
            tracing::warn!(
                file,
                column,
                "the definition's attribute column is not in the file; its default is used"
            );
        }
        for (column, (count, example)) in &report.not_numeric {
            tracing::warn!(
                file,
                column,
                count,
                example,
                "cells that are not numbers take the default"
            );
        }
    }
    let manifest = PartitionManifest {
        date: date.format("%Y-%m-%d").to_string(),
        as_of: as_of_for(date),
        schema_hash: String::new(),
        users: 0,
        items: 0,
        events_used: used,
        events_after_as_of: after,
        rows_rejected,
    };
    let dir = offline_store::write_partition(store, spec, &users, &items, manifest)?;
    let manifest = offline_store::read_manifest(&dir)?;
    Ok((dir, manifest))
}

/// What `materialize` did.
#[derive(Debug, Clone)]
pub struct Materialized {
    pub partition: PathBuf,
    pub keys: u64,
    pub seconds: f64,
}

/// Copies the newest complete partition of `store` into Redis at `redis_url`.
pub fn materialize(
    store: &Path,
    redis_url: &str,
    spec: &FeatureSpec,
) -> anyhow::Result<Materialized> {
    let started = Instant::now();
    let partition = offline_store::latest_partition(store)?;
    let mut online = OnlineStore::connect(redis_url, spec)?;
    let mut keys = 0;
    for (entity, entity_spec) in [(Entity::User, &spec.user), (Entity::Item, &spec.item)] {
        let table = offline_store::read_table(&partition, entity, spec)?;
        let ttl = Duration::from_secs(entity_spec.ttl_hours * 3600);
        let progress = bar(Some(table.len() as u64), entity.as_str());
        keys += online.write(&table, ttl, &|n| progress.set_position(n))?;
        progress.finish_and_clear();
    }
    let manifest = offline_store::read_manifest(&partition)?;
    let ttl_hours = spec.user.ttl_hours.max(spec.item.ttl_hours);
    online.write_marker(manifest.as_of, Duration::from_secs(ttl_hours * 3600))?;
    Ok(Materialized {
        partition,
        keys,
        seconds: started.elapsed().as_secs_f64(),
    })
}
