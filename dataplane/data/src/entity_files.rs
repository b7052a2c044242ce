//! User profile and item metadata files (CSV with a header, JSONL objects, or Parquet): one
//! row per entity, an id column and any other columns, kept as text cells so the feature
//! definition decides what each column means. A row without an id, or an id given twice, is
//! refused with its line: metadata is small and curated, and a silent last-one-wins would hide
//! an upstream bug.

use super::events_io::Format;
use anyhow::{bail, Context};
use recsys_core::features::AttributeRows;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// User profiles and item metadata for the definition's attribute columns (both optional).
#[derive(Debug, Clone, Default)]
pub struct EntityFiles {
    pub profiles: Option<AttributeRows>,
    pub metadata: Option<AttributeRows>,
}

impl EntityFiles {
    /// Reads a profile file keyed by `user_id` and a metadata file keyed by `item_id`.
    pub fn load(users: Option<&Path>, items: Option<&Path>) -> anyhow::Result<Self> {
        Ok(Self {
            profiles: users.map(|p| read(p, "user_id")).transpose()?,
            metadata: items.map(|p| read(p, "item_id")).transpose()?,
        })
    }
}

/// Reads `path`, keyed by `id_column` (`user_id` for profiles, `item_id` for metadata).
pub fn read(path: &Path, id_column: &str) -> anyhow::Result<AttributeRows> {
    let (columns, rows) = match Format::of(path)? {
        Format::Csv => csv_rows(path)?,
        Format::Jsonl => jsonl_rows(path)?,
        Format::Parquet => super::parquet_events::parquet_table(path)?,
    };
    let Some(id_at) = columns.iter().position(|c| c == id_column) else {
        bail!(
            "{}: no `{id_column}` column (columns: {})",
            path.display(),
            columns.join(",")
        );
    };
    let mut out = AttributeRows {
        columns: columns
            .iter()
            .filter(|c| *c != id_column)
            .cloned()
            .collect(),
        ..Default::default()
    };
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for (line, mut cells) in rows {
        let id = match cells[id_at].take().map(|s| s.trim().to_owned()) {
            Some(id) if !id.is_empty() => id,
            _ => bail!("{}:{line}: empty `{id_column}`", path.display()),
        };
        if let Some(first) = first_line.insert(id.clone(), line) {
            bail!(
                "{}:{line}: `{id_column}` {id:?} already given on line {first}",
                path.display()
            );
        }
        out.ids.push(id);
        out.cells.extend(
            cells
                .into_iter()
                .enumerate()
                .filter(|(c, _)| *c != id_at)
                .map(|(_, v)| v.filter(|t| !t.trim().is_empty())),
        );
    }
    Ok(out)
}

/// Writes `rows` as CSV with `id_column` first (what [`read`] reads back).
pub fn write_csv(rows: &AttributeRows, id_column: &str, path: &Path) -> anyhow::Result<()> {
    let mut out =
        csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    out.write_record(std::iter::once(id_column).chain(rows.columns.iter().map(String::as_str)))?;
    for (r, id) in rows.ids.iter().enumerate() {
        let cells = rows.row(r).iter().map(|c| c.as_deref().unwrap_or(""));
        out.write_record(std::iter::once(id.as_str()).chain(cells))?;
    }
    out.flush()?;
    Ok(())
}

type Rows = (Vec<String>, Vec<(u64, Vec<Option<String>>)>);

fn csv_rows(path: &Path) -> anyhow::Result<Rows> {
    let mut csv =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let columns: Vec<String> = csv
        .headers()
        .with_context(|| format!("{}: reading the header", path.display()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut rows = Vec::new();
    for (k, record) in csv.records().enumerate() {
        // Line numbers count the header as line 1.
        let line = k as u64 + 2;
        let record =
            record.with_context(|| format!("{}:{line}: unreadable row", path.display()))?;
        rows.push((line, record.iter().map(|c| Some(c.to_owned())).collect()));
    }
    Ok((columns, rows))
}

fn jsonl_rows(path: &Path) -> anyhow::Result<Rows> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut columns: Vec<String> = Vec::new();
    let mut objects = Vec::new();
    for (k, text) in std::io::BufReader::new(file).lines().enumerate() {
        let line = k as u64 + 1;
        let text = text.with_context(|| format!("{}:{line}: unreadable line", path.display()))?;
        if text.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .with_context(|| format!("{}:{line}: not a JSON object", path.display()))?;
        for key in object.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
        objects.push((line, object));
    }
    let rows = objects
        .into_iter()
        .map(|(line, object)| {
            let cells = columns
                .iter()
                .map(|c| match object.get(c) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(other) => Some(other.to_string()),
                })
                .collect();
            (line, cells)
        })
        .collect();
    Ok((columns, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn csv_and_jsonl_give_the_same_rows() {
        let (_a, csv) = write(
            "items.csv",
            "item_id,price,category\ni1,9.5,books\ni2,,toys\n",
        );
        let (_b, jsonl) = write(
            "items.jsonl",
            "{\"item_id\":\"i1\",\"price\":9.5,\"category\":\"books\"}\n\n{\"item_id\":\"i2\",\"category\":\"toys\"}\n",
        );
        let from_csv = read(&csv, "item_id").unwrap();
        let from_jsonl = read(&jsonl, "item_id").unwrap();
        // Column order may differ (JSON objects are unordered); every cell is the same.
        let cells = |rows: &AttributeRows| {
            let mut out = std::collections::BTreeMap::new();
            for (r, id) in rows.ids.iter().enumerate() {
                for (c, column) in rows.columns.iter().enumerate() {
                    out.insert((id.clone(), column.clone()), rows.row(r)[c].clone());
                }
            }
            out
        };
        assert_eq!(cells(&from_csv), cells(&from_jsonl));
        assert_eq!(from_csv.columns, ["price", "category"]);
        assert_eq!(from_csv.ids, ["i1", "i2"]);
        assert_eq!(from_csv.row(1), [None, Some("toys".to_owned())]);
    }

    #[test]
    fn written_rows_read_back_the_same() {
        let rows = AttributeRows {
            columns: vec!["age".into(), "gender".into()],
            ids: vec!["u1".into(), "u2".into()],
            cells: vec![Some("30".into()), None, None, Some("F".into())],
        };
        let (_d, path) = write("users.csv", "");
        write_csv(&rows, "user_id", &path).unwrap();
        assert_eq!(read(&path, "user_id").unwrap(), rows);
    }

    #[test]
    fn missing_ids_duplicates_and_a_missing_id_column_name_the_place() {
        let (_a, dup) = write("u.csv", "user_id,age\nu1,30\nu2,40\nu1,31\n");
        let err = format!("{:#}", read(&dup, "user_id").unwrap_err());
        assert!(
            err.contains("u.csv:4") && err.contains("already given on line 2"),
            "{err}"
        );
        let (_b, empty) = write("u.csv", "user_id,age\n,30\n");
        let err = format!("{:#}", read(&empty, "user_id").unwrap_err());
        assert!(err.contains("u.csv:2: empty `user_id`"), "{err}");
        let (_c, no_id) = write("u.csv", "id,age\nu1,30\n");
        let err = format!("{:#}", read(&no_id, "user_id").unwrap_err());
        assert!(err.contains("no `user_id` column"), "{err}");
        let (_d, bad) = write("u.jsonl", "{\"user_id\":\"u1\"}\nnot json\n");
        let err = format!("{:#}", read(&bad, "user_id").unwrap_err());
        assert!(err.contains("u.jsonl:2: not a JSON object"), "{err}");
    }
}
