//! Reading and writing event files in the documented schema
//! (`user_id,item_id,event_type,timestamp,value,session,device,country,placement`), as CSV with
//! a header or as JSON lines. Reading never drops a row: a row that cannot be read comes back
//! as an error with its text, for the quarantine.

use anyhow::{bail, Context};
use recsys_core::validation::{Event, RawRecord, RawView, Reason};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn of(path: &Path) -> anyhow::Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(Self::Csv),
            Some("jsonl") | Some("ndjson") => Ok(Self::Jsonl),
            _ => bail!(
                "{}: unknown event file format (expected .csv or .jsonl; Parquet is not supported yet)",
                path.display()
            ),
        }
    }
}

/// What [`for_each_row`] calls per row.
type Visitor<'v> = dyn FnMut(u64, Result<RawView<'_>, &str>) -> anyhow::Result<()> + 'v;

/// Calls `visit` with every row of an event file, in order: its 1-based position among the
/// data rows and either its fields (borrowed from a reused buffer: no allocation per row) or
/// the raw text of a row that could not be read. Returns the number of rows.
pub fn for_each_row(
    path: &Path,
    mut visit: impl FnMut(u64, Result<RawView<'_>, &str>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    match Format::of(path)? {
        Format::Csv => csv_rows(reader, path, &mut visit),
        Format::Jsonl => jsonl_rows(reader, &mut visit),
    }
}

fn csv_rows(reader: BufReader<File>, path: &Path, visit: &mut Visitor<'_>) -> anyhow::Result<u64> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let header = csv.headers()?.clone();
    let position = |name: &str| header.iter().position(|h| h.trim() == name);
    let index: Vec<Option<usize>> = COLUMNS.iter().map(|c| position(c)).collect();
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
    let mut line = 0u64;
    let mut record = csv::ByteRecord::new();
    loop {
        line += 1;
        match csv.read_byte_record(&mut record) {
            Ok(false) => return Ok(line - 1),
            Err(e) => visit(line, Err(&format!("unreadable CSV row: {e}")))?,
            Ok(true) => {
                let fields: Option<Vec<&str>> = (record.len() == width)
                    .then(|| record.iter().map(|f| std::str::from_utf8(f).ok()).collect())
                    .flatten();
                match fields {
                    None => {
                        let raw = String::from_utf8_lossy(record.as_slice()).into_owned();
                        visit(line, Err(&raw))?;
                    }
                    Some(f) => {
                        let get = |i: usize| index[i].map(|j| f[j]);
                        visit(
                            line,
                            Ok(RawView {
                                user_id: get(0),
                                item_id: get(1),
                                event_type: get(2),
                                timestamp: get(3),
                                value: get(4),
                                session: get(5),
                                device: get(6),
                                country: get(7),
                                placement: get(8),
                            }),
                        )?;
                    }
                }
            }
        }
    }
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
        out.write_record(COLUMNS)?;
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
                fields.extend([""; 9]);
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
