//! Reading and writing event files in the documented schema
//! (`user_id,item_id,event_type,timestamp,value,session,device,country,placement`), as CSV with
//! a header or as JSON lines. Reading never drops a row: a row that cannot be read comes back
//! as an error with its text, for the quarantine.

use anyhow::{bail, Context};
use recsys_core::validation::{Event, RawRecord, Reason};
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

/// One row: its 1-based position among the data rows and either a record or the raw text of a
/// row that could not be read.
pub type Row = (u64, Result<RawRecord, String>);

/// Streams the rows of an event file.
pub fn read(path: &Path) -> anyhow::Result<Box<dyn Iterator<Item = Row>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    Ok(match Format::of(path)? {
        Format::Csv => Box::new(csv_rows(reader, path)?),
        Format::Jsonl => Box::new(jsonl_rows(reader)),
    })
}

fn csv_rows(reader: BufReader<File>, path: &Path) -> anyhow::Result<impl Iterator<Item = Row>> {
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
    let mut record = csv::StringRecord::new();
    Ok(std::iter::from_fn(move || {
        line += 1;
        match csv.read_record(&mut record) {
            Ok(false) => None,
            Err(e) => Some((line, Err(format!("unreadable CSV row: {e}")))),
            Ok(true) if record.len() != width => {
                Some((line, Err(record.iter().collect::<Vec<_>>().join(","))))
            }
            Ok(true) => {
                let get = |i: usize| index[i].and_then(|j| record.get(j)).map(str::to_owned);
                Some((
                    line,
                    Ok(RawRecord {
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
                ))
            }
        }
    }))
}

fn jsonl_rows(reader: BufReader<File>) -> impl Iterator<Item = Row> {
    let mut lines = reader.lines();
    let mut line = 0u64;
    std::iter::from_fn(move || loop {
        let text = match lines.next()? {
            Ok(t) => t,
            Err(e) => {
                line += 1;
                return Some((line, Err(format!("unreadable line: {e}"))));
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        line += 1;
        let parsed: Result<serde_json::Map<String, serde_json::Value>, _> =
            serde_json::from_str(&text);
        return Some((
            line,
            match parsed {
                Err(_) => Err(text),
                Ok(map) => {
                    let get = |k: &str| match map.get(k) {
                        None | Some(serde_json::Value::Null) => None,
                        Some(serde_json::Value::String(s)) => Some(s.clone()),
                        Some(other) => Some(other.to_string()),
                    };
                    Ok(RawRecord {
                        user_id: get("user_id"),
                        item_id: get("item_id"),
                        event_type: get("event_type"),
                        timestamp: get("timestamp"),
                        value: get("value"),
                        session: get("session"),
                        device: get("device"),
                        country: get("country"),
                        placement: get("placement"),
                    })
                }
            },
        ));
    })
}

/// Writes clean events as CSV in the documented schema.
pub struct EventWriter {
    out: csv::Writer<BufWriter<File>>,
}

impl EventWriter {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
        out.write_record(COLUMNS)?;
        Ok(Self { out })
    }

    pub fn write(&mut self, e: &Event) -> anyhow::Result<()> {
        let ts = e.timestamp.to_string();
        let value = e.value.map(|v| v.to_string()).unwrap_or_default();
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        self.out.write_record([
            e.user_id.as_str(),
            &e.item_id,
            e.event_type.as_str(),
            &ts,
            &value,
            &opt(&e.session),
            &opt(&e.device),
            &opt(&e.country),
            &opt(&e.placement),
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
        record: Result<&RawRecord, &str>,
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
                    &r.user_id,
                    &r.item_id,
                    &r.event_type,
                    &r.timestamp,
                    &r.value,
                    &r.session,
                    &r.device,
                    &r.country,
                    &r.placement,
                ] {
                    fields.push(f.as_deref().unwrap_or(""));
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
