//! Reading and writing event files in the documented schema
//! (`user_id,item_id,event_type,timestamp,value,session,device,country,placement`), as CSV with
//! a header or as JSON lines. Reading never drops a row: a row that cannot be read comes back
//! as an error with its text, for the quarantine.

use anyhow::{bail, Context};
use recsys_core::validation::{Event, RawRecord, RawView, Reason, ValidationConfig};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::Path;

pub const COLUMNS: [&str; 9] = [
    "user_id",
    "item_id",
    "event_type",
    "timestamp",
    "value",
    "session",
    "device",
    "country",
    "placement",
];

/// Optional column: a producer-assigned unique id (serving's feedback has one); validation
/// deduplicates on it. Clean output always carries it, empty where the input had none.
pub const EVENT_ID: &str = "event_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    Parquet,
}

impl Format {
    pub fn of(path: &Path) -> anyhow::Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(Self::Csv),
            Some("jsonl") | Some("ndjson") => Ok(Self::Jsonl),
            Some("parquet") => Ok(Self::Parquet),
            _ => bail!(
                "{}: unknown event file format (expected .csv, .jsonl or .parquet)",
                path.display()
            ),
        }
    }
}

/// What [`for_each_row`] calls per row.
pub(super) type Visitor<'v> = dyn FnMut(u64, Result<RawView<'_>, &str>) -> anyhow::Result<()> + 'v;

/// Calls `visit` with every row of an event file, in order: its 1-based position among the
/// data rows and either its fields (borrowed from a reused buffer: no allocation per row) or
/// the raw text of a row that could not be read. Returns the number of rows.
pub fn for_each_row(
    path: &Path,
    mut visit: impl FnMut(u64, Result<RawView<'_>, &str>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    if path.is_dir() {
        // A partitioned directory (e.g. feedback's date=…/hour=…/part-….parquet): every
        // event file under it, in path order, numbered as one input.
        let mut rows = 0u64;
        for file in event_files(path)? {
            let base = rows;
            rows += for_each_file_row(&file, &mut |line, row| visit(base + line, row))?;
        }
        return Ok(rows);
    }
    for_each_file_row(path, &mut visit)
}

/// The event files under `dir`, recursively, sorted; hidden files (a writer's temporaries)
/// are skipped.
pub fn event_files(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if Format::of(&path).is_ok() {
                files.push(path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "{}: no event files (.csv, .jsonl, .parquet) under it",
            dir.display()
        );
    }
    Ok(files)
}

fn for_each_file_row(path: &Path, visit: &mut Visitor<'_>) -> anyhow::Result<u64> {
    let format = Format::of(path)?;
    if format == Format::Parquet {
        return super::parquet_events::parquet_rows(path, visit);
    }
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    match format {
        Format::Csv => csv_rows(reader, path, visit),
        Format::Jsonl => jsonl_rows(reader, visit),
        Format::Parquet => unreachable!("handled above"),
    }
}

fn csv_rows(reader: BufReader<File>, path: &Path, visit: &mut Visitor<'_>) -> anyhow::Result<u64> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let header = csv.headers()?.clone();
    let position = |name: &str| header.iter().position(|h| h.trim() == name);
    let index: Vec<Option<usize>> = COLUMNS
        .iter()
        .chain([&EVENT_ID])
        .map(|c| position(c))
        .collect();
    for required in ["user_id", "item_id", "event_type", "timestamp"] {
        if position(required).is_none() {
            bail!(
                "{}: the header has no `{required}` column (schema: {})",
                path.display(),
                COLUMNS.join(",")
            );
        }
    }
    let width = header.len();
    // Parsing CSV and deciding rows share the work across two cores: a reader thread splits
    // rows into fields, checks their width and UTF-8, and fills batches; this thread visits
    // them; emptied batches go back for reuse, so nothing is allocated per row.
    const BATCH: usize = 4096;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<Parsed>>(4);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<Parsed>>();
    std::thread::scope(|scope| -> anyhow::Result<u64> {
        scope.spawn(move || loop {
            let mut batch = empty_rx.try_recv().unwrap_or_default();
            batch.resize_with(BATCH, || Parsed::Error(String::new()));
            let mut filled = 0;
            while filled < BATCH {
                let slot = &mut batch[filled];
                let mut record = match std::mem::replace(slot, Parsed::Error(String::new())) {
                    Parsed::Record(r) => r.into_byte_record(),
                    Parsed::Error(_) => csv::ByteRecord::new(),
                };
                match csv.read_byte_record(&mut record) {
                    Ok(true) => {
                        // A row of the wrong width is malformed as a whole; so is one that
                        // is not UTF-8.
                        *slot = if record.len() != width {
                            Parsed::Error(lossy(&record))
                        } else {
                            match csv::StringRecord::from_byte_record(record) {
                                Ok(r) => Parsed::Record(r),
                                Err(e) => Parsed::Error(lossy(&e.into_byte_record())),
                            }
                        };
                        filled += 1;
                    }
                    Ok(false) => break,
                    Err(e) => {
                        *slot = Parsed::Error(format!("unreadable CSV row: {e}"));
                        filled += 1;
                    }
                }
            }
            batch.truncate(filled);
            let done = filled < BATCH;
            if !batch.is_empty() && full_tx.send(batch).is_err() {
                return;
            }
            if done {
                return;
            }
        });
        let mut line = 0u64;
        for batch in full_rx {
            for parsed in &batch {
                line += 1;
                let record = match parsed {
                    Parsed::Error(message) => {
                        visit(line, Err(message))?;
                        continue;
                    }
                    Parsed::Record(r) => r,
                };
                let field = |c: usize| index[c].map(|j| &record[j]);
                visit(
                    line,
                    Ok(RawView {
                        user_id: field(0),
                        item_id: field(1),
                        event_type: field(2),
                        timestamp: field(3),
                        value: field(4),
                        session: field(5),
                        device: field(6),
                        country: field(7),
                        placement: field(8),
                        event_id: field(9).filter(|id| !id.is_empty()),
                    }),
                )?;
            }
            let _ = empty_tx.send(batch);
        }
        Ok(line)
    })
}

fn lossy(record: &csv::ByteRecord) -> String {
    record
        .iter()
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(",")
}

/// A record read by the CSV thread, or why it could not be read.
enum Parsed {
    Record(csv::StringRecord),
    Error(String),
}

fn jsonl_rows(reader: BufReader<File>, visit: &mut Visitor<'_>) -> anyhow::Result<u64> {
    let mut line = 0u64;
    for text in reader.lines() {
        let text = text.context("reading a JSON line")?;
        if text.trim().is_empty() {
            continue;
        }
        line += 1;
        let parsed: Result<serde_json::Map<String, serde_json::Value>, _> =
            serde_json::from_str(&text);
        match parsed {
            Err(_) => visit(line, Err(&text))?,
            Ok(map) => {
                let get = |k: &str| match map.get(k) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(other) => Some(other.to_string()),
                };
                let record = RawRecord {
                    user_id: get("user_id"),
                    item_id: get("item_id"),
                    event_type: get("event_type"),
                    timestamp: get("timestamp"),
                    value: get("value"),
                    session: get("session"),
                    device: get("device"),
                    country: get("country"),
                    placement: get("placement"),
                    event_id: get(EVENT_ID),
                };
                visit(line, Ok(record.view()))?;
            }
        }
    }
    Ok(line)
}

/// Writes clean events as CSV in the documented schema.
pub struct EventWriter {
    out: csv::Writer<BufWriter<File>>,
    /// Reused buffer for the formatted timestamp and value.
    numbers: String,
}

impl EventWriter {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
        let mut header = COLUMNS.to_vec();
        header.push(EVENT_ID);
        out.write_record(&header)?;
        Ok(Self {
            out,
            numbers: String::new(),
        })
    }

    pub fn write(&mut self, e: &Event<'_>) -> anyhow::Result<()> {
        use std::fmt::Write;
        self.numbers.clear();
        let _ = write!(self.numbers, "{}", e.timestamp);
        let split = self.numbers.len();
        if let Some(v) = e.value {
            let _ = write!(self.numbers, "{v}");
        }
        let (ts, value) = self.numbers.split_at(split);
        self.out.write_record([
            e.user_id,
            e.item_id,
            e.event_type.as_str(),
            ts,
            value,
            e.session.unwrap_or(""),
            e.device.unwrap_or(""),
            e.country.unwrap_or(""),
            e.placement.unwrap_or(""),
            e.event_id.unwrap_or(""),
        ])?;
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// Writes rejected rows with their row number and reason, fields as read.
pub struct QuarantineWriter {
    out: csv::Writer<BufWriter<File>>,
}

impl QuarantineWriter {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = csv::Writer::from_writer(BufWriter::new(file));
        let mut header = vec!["row", "reason", "raw"];
        header.extend(COLUMNS);
        header.push(EVENT_ID);
        out.write_record(&header)?;
        Ok(Self { out })
    }

    pub fn write(
        &mut self,
        row: u64,
        reason: Reason,
        record: Result<&RawView<'_>, &str>,
    ) -> anyhow::Result<()> {
        let row = row.to_string();
        let mut fields = vec![row.as_str(), reason.as_str()];
        match record {
            Err(raw) => {
                fields.push(raw);
                fields.extend([""; 10]);
            }
            Ok(r) => {
                fields.push("");
                for f in [
                    r.user_id,
                    r.item_id,
                    r.event_type,
                    r.timestamp,
                    r.value,
                    r.session,
                    r.device,
                    r.country,
                    r.placement,
                    r.event_id,
                ] {
                    fields.push(f.unwrap_or(""));
                }
            }
        }
        self.out.write_record(&fields)?;
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// The parse-level checks only: the input is meant to be `recsys validate`'s clean output,
/// and rows that still fail are counted, never guessed at.
pub fn parse_only(as_of: i64) -> ValidationConfig {
    ValidationConfig {
        future_skew_secs: i64::MAX / 4,
        max_age_days: i64::MAX / (4 * 86_400),
        ..ValidationConfig::new(as_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_rows_and_invalid_utf8_come_back_as_raw_text_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.csv");
        let mut bytes = format!("{}\n", COLUMNS.join(",")).into_bytes();
        bytes.extend_from_slice(b"u1,i1,click,1700000000,,,,,\n");
        bytes.extend_from_slice(b"u2,i2\n");
        bytes.extend_from_slice(b"u\xe9,i3,view,1700000000,,,,,\n");
        bytes.extend_from_slice(b"u4,i4,view,1700000001,,s,web,DE,home\n");
        std::fs::write(&path, bytes).unwrap();
        let mut seen = Vec::new();
        let rows = for_each_row(&path, |line, row| {
            seen.push((
                line,
                row.map(|r| r.user_id.map(str::to_owned))
                    .map_err(str::to_owned),
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, 4);
        assert_eq!(seen[0], (1, Ok(Some("u1".into()))));
        assert_eq!(seen[1], (2, Err("u2,i2".into())));
        assert!(seen[2].1.is_err(), "{:?}", seen[2]);
        assert_eq!(seen[3], (4, Ok(Some("u4".into()))));
    }

    #[test]
    fn a_file_without_required_columns_is_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.csv");
        std::fs::write(&path, "user,item\nu,i\n").unwrap();
        let err = for_each_row(&path, |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("user_id"), "{err}");
        assert_eq!(Format::of(Path::new("x.parquet")).unwrap(), Format::Parquet);
        assert!(Format::of(Path::new("x.xlsx")).is_err());
    }
}
