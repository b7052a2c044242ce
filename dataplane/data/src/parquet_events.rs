//! Event files (and profile or metadata tables) in Parquet. Columns are matched by name against the documented schema; text,
//! integer, float, timestamp and dictionary-encoded text columns are accepted, and each cell is
//! handed to validation as text, exactly as a CSV cell would be, so one set of rules decides
//! every format.

use super::events_io::{Visitor, COLUMNS, EVENT_ID};
use anyhow::{bail, Context};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use recsys_core::validation::RawView;
use std::fs::File;
use std::path::Path;

const BATCH: usize = 8192;

/// One column of a batch as text cells (None for null).
fn column_text(array: &ArrayRef, name: &str, path: &Path) -> anyhow::Result<Vec<Option<String>>> {
    fn cells<T: ToString>(array: &ArrayRef, value: impl Fn(usize) -> T) -> Vec<Option<String>> {
        (0..array.len())
            .map(|i| (!array.is_null(i)).then(|| value(i).to_string()))
            .collect()
    }
    Ok(match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            cells(array, |i| a.value(i))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            cells(array, |i| a.value(i))
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            cells(array, |i| a.value(i))
        }
        DataType::Int32 => {
            let a = array.as_primitive::<Int32Type>();
            cells(array, |i| a.value(i))
        }
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            cells(array, |i| a.value(i))
        }
        DataType::UInt32 => {
            let a = array.as_primitive::<UInt32Type>();
            cells(array, |i| a.value(i))
        }
        DataType::UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            cells(array, |i| a.value(i))
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            cells(array, |i| a.value(i))
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            cells(array, |i| a.value(i))
        }
        // Timestamps become Unix seconds, the schema's canonical form.
        DataType::Timestamp(unit, _) => {
            let seconds: Box<dyn Fn(usize) -> i64> = match unit {
                TimeUnit::Second => {
                    let a = array.as_primitive::<TimestampSecondType>();
                    Box::new(move |i| a.value(i))
                }
                TimeUnit::Millisecond => {
                    let a = array.as_primitive::<TimestampMillisecondType>();
                    Box::new(move |i| a.value(i).div_euclid(1_000))
                }
                TimeUnit::Microsecond => {
                    let a = array.as_primitive::<TimestampMicrosecondType>();
                    Box::new(move |i| a.value(i).div_euclid(1_000_000))
                }
                TimeUnit::Nanosecond => {
                    let a = array.as_primitive::<TimestampNanosecondType>();
                    Box::new(move |i| a.value(i).div_euclid(1_000_000_000))
                }
            };
            cells(array, seconds)
        }
        DataType::Dictionary(_, values) if values.as_ref() == &DataType::Utf8 => {
            let dict = array.as_any_dictionary();
            let text = column_text(dict.values(), name, path)?;
            let keys = dict.normalized_keys();
            (0..array.len())
                .map(|i| {
                    if array.is_null(i) {
                        None
                    } else {
                        text[keys[i]].clone()
                    }
                })
                .collect()
        }
        other => bail!(
            "{}: column `{name}` has type {other}; expected text, integer, float or timestamp",
            path.display()
        ),
    })
}

/// Every column of a Parquet file (a profile or metadata table) as text cells, with each row's
/// 1-based position.
#[allow(clippy::type_complexity)]
pub fn parquet_table(
    path: &Path,
) -> anyhow::Result<(Vec<String>, Vec<(u64, Vec<Option<String>>)>)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::new();
    for batch in builder.with_batch_size(BATCH).build()? {
        let batch = batch.with_context(|| format!("{}: reading a row group", path.display()))?;
        let columns: Vec<Vec<Option<String>>> = names
            .iter()
            .enumerate()
            .map(|(c, name)| column_text(batch.column(c), name, path))
            .collect::<anyhow::Result<_>>()?;
        for r in 0..batch.num_rows() {
            let line = rows.len() as u64 + 1;
            rows.push((line, columns.iter().map(|col| col[r].clone()).collect()));
        }
    }
    Ok((names, rows))
}

/// Calls `visit` with every row of a Parquet event file; returns the number of rows.
pub fn parquet_rows(path: &Path, visit: &mut Visitor<'_>) -> anyhow::Result<u64> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    let schema = builder.schema().clone();
    let names: Vec<&str> = COLUMNS.iter().copied().chain([EVENT_ID]).collect();
    let index: Vec<Option<usize>> = names.iter().map(|c| schema.index_of(c).ok()).collect();
    for (required, column) in COLUMNS.iter().zip(&index).take(4) {
        if column.is_none() {
            bail!(
                "{}: no `{required}` column (schema: {})",
                path.display(),
                COLUMNS.join(",")
            );
        }
    }
    let mut line = 0u64;
    for batch in builder.with_batch_size(BATCH).build()? {
        let batch = batch.with_context(|| format!("{}: reading a row group", path.display()))?;
        let columns: Vec<Option<Vec<Option<String>>>> = index
            .iter()
            .zip(&names)
            .map(|(c, name)| {
                c.map(|c| column_text(batch.column(c), name, path))
                    .transpose()
            })
            .collect::<anyhow::Result<_>>()?;
        for r in 0..batch.num_rows() {
            line += 1;
            let cell = |c: usize| columns[c].as_ref().and_then(|col| col[r].as_deref());
            visit(
                line,
                Ok(RawView {
                    user_id: cell(0),
                    item_id: cell(1),
                    event_type: cell(2),
                    timestamp: cell(3),
                    value: cell(4),
                    session: cell(5),
                    device: cell(6),
                    country: cell(7),
                    placement: cell(8),
                    event_id: cell(9).filter(|id| !id.is_empty()),
                }),
            )?;
        }
    }
    Ok(line)
}
