//! A split written as pipeline files: train / validation / test events in the documented
//! schema plus the entity files, so any other tool can be scored on exactly the rows
//! `recsys train` used.

use super::entity_files;
use super::events_io::EventWriter;
use super::Dataset;
use anyhow::Context;
use recsys_core::validation::Event;
use recsys_core::{Interaction, SplitWindows, TimeSplit};
use serde::Serialize;
use std::path::Path;

pub const USERS_FILE: &str = "users.csv";
pub const ITEMS_FILE: &str = "items.csv";
pub const CUTOFFS_FILE: &str = "cutoffs.json";

fn write_events(data: &Dataset, rows: &[Interaction], path: &Path) -> anyhow::Result<()> {
    let mut out = EventWriter::create(path)?;
    for r in rows {
        out.write(&Event {
            user_id: &data.users[r.user as usize].external_id,
            item_id: &data.items[r.item as usize].external_id,
            event_type: r.kind,
            timestamp: r.timestamp,
            value: Some(f64::from(r.value)),
            session: None,
            device: None,
            country: None,
            placement: None,
            event_id: None,
        })
        .with_context(|| format!("writing {}", path.display()))?;
    }
    out.finish()
}

/// The entity files, when the dataset has them.
fn write_entities(data: &Dataset, dir: &Path) -> anyhow::Result<()> {
    if let Some(p) = &data.profiles {
        entity_files::write_csv(p, "user_id", &dir.join(USERS_FILE))?;
    }
    if let Some(m) = &data.metadata {
        entity_files::write_csv(m, "item_id", &dir.join(ITEMS_FILE))?;
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct Cutoffs {
    validation_start: i64,
    test_start: i64,
    train_rows: usize,
    validation_rows: usize,
    test_rows: usize,
}

/// Writes `train.csv`, `validation.csv`, `test.csv` (the same rows as training's split), the
/// entity files and `cutoffs.json` into `dir`.
pub fn write_split(data: &Dataset, windows: SplitWindows, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let split = TimeSplit::new(&data.interactions, windows);
    for (name, rows) in [
        ("train.csv", &split.train),
        ("validation.csv", &split.validation),
        ("test.csv", &split.test),
    ] {
        write_events(data, rows, &dir.join(name))?;
    }
    write_entities(data, dir)?;
    let cutoffs = Cutoffs {
        validation_start: windows.validation_start,
        test_start: windows.test_start,
        train_rows: split.train.len(),
        validation_rows: split.validation.len(),
        test_rows: split.test.len(),
    };
    std::fs::write(dir.join(CUTOFFS_FILE), serde_json::to_vec_pretty(&cutoffs)?)?;
    Ok(())
}
