//! The offline feature store: one Hive-style partition per as-of date,
//! `<root>/date=YYYY-MM-DD/{user,item}.parquet` plus `manifest.json`. A partition holds the
//! values as of the end of its date (events before the next midnight, UTC), so a training row
//! for an event on day D joins partition D−1: point-in-time correct by path.

use anyhow::{bail, ensure, Context as _};
use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, Float32Array, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use recsys_core::features::{Entity, FeatureSpec, FeatureTable};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const MANIFEST_FILE: &str = "manifest.json";
const KEY_COLUMN: &str = "key";
const SEQUENCE_COLUMN: &str = "recent_items";
const SCHEMA_HASH_KEY: &str = "recsys.feature_schema_hash";
const ROWS_PER_BATCH: usize = 65_536;

/// What a partition holds; written last, so a partition without one is incomplete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionManifest {
    pub date: String,
    pub as_of: i64,
    pub schema_hash: String,
    pub users: usize,
    pub items: usize,
    pub events_used: u64,
    pub events_after_as_of: u64,
    pub rows_rejected: u64,
}

pub fn partition_dir(root: &Path, date: &str) -> PathBuf {
    root.join(format!("date={date}"))
}

/// The newest complete partition under `root`.
pub fn latest_partition(root: &Path) -> anyhow::Result<PathBuf> {
    let entries = std::fs::read_dir(root)
        .with_context(|| format!("reading the offline store {}", root.display()))?;
    let mut dates = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let complete = path.join(MANIFEST_FILE).is_file();
        if let Some(date) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("date="))
        {
            if complete {
                dates.push(date.to_owned());
            }
        }
    }
    dates.sort();
    match dates.pop() {
        Some(date) => Ok(partition_dir(root, &date)),
        None => bail!(
            "{}: no complete date=… partition (run `recsys features` first)",
            root.display()
        ),
    }
}

pub fn read_manifest(partition: &Path) -> anyhow::Result<PartitionManifest> {
    let path = partition.join(MANIFEST_FILE);
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

fn file_name(entity: Entity) -> String {
    format!("{}.parquet", entity.as_str())
}

fn schema(table: &FeatureTable) -> Arc<Schema> {
    let mut fields = vec![Field::new(KEY_COLUMN, DataType::Utf8, false)];
    fields.extend(
        table
            .names
            .iter()
            .map(|n| Field::new(n, DataType::Float32, false)),
    );
    if !table.sequences.is_empty() {
        let item = Field::new("item", DataType::Utf8, true);
        fields.push(Field::new(
            SEQUENCE_COLUMN,
            DataType::List(Arc::new(item)),
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

fn batch(
    table: &FeatureTable,
    schema: &Arc<Schema>,
    rows: std::ops::Range<usize>,
) -> anyhow::Result<RecordBatch> {
    let width = table.width();
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
        table.keys[rows.clone()].iter(),
    ))];
    for f in 0..width {
        let values = rows.clone().map(|r| table.values[r * width + f]);
        columns.push(Arc::new(Float32Array::from_iter_values(values)));
    }
    if !table.sequences.is_empty() {
        let mut list = ListBuilder::new(StringBuilder::new()).with_field(Field::new(
            "item",
            DataType::Utf8,
            true,
        ));
        for r in rows {
            for item in &table.sequences[r] {
                list.values().append_value(item);
            }
            list.append(true);
        }
        columns.push(Arc::new(list.finish()));
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn write_table(path: &Path, table: &FeatureTable, schema_hash: &str) -> anyhow::Result<()> {
    let schema = schema(table);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_HASH_KEY.to_owned(),
            schema_hash.to_owned(),
        )]))
        .build();
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    let mut start = 0;
    while start < table.len() {
        let end = (start + ROWS_PER_BATCH).min(table.len());
        writer.write(&batch(table, &schema, start..end)?)?;
        start = end;
    }
    writer.close()?;
    Ok(())
}

/// Writes both tables and then the manifest. Rewriting a date replaces it.
pub fn write_partition(
    root: &Path,
    spec: &FeatureSpec,
    users: &FeatureTable,
    items: &FeatureTable,
    mut manifest: PartitionManifest,
) -> anyhow::Result<PathBuf> {
    let dir = partition_dir(root, &manifest.date);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Remove the old manifest first: a crash mid-write leaves an incomplete partition, never
    // a manifest describing files it did not see written.
    let _ = std::fs::remove_file(dir.join(MANIFEST_FILE));
    let hash = spec.schema_hash();
    write_table(&dir.join(file_name(Entity::User)), users, &hash)?;
    write_table(&dir.join(file_name(Entity::Item)), items, &hash)?;
    manifest.schema_hash = hash;
    manifest.users = users.len();
    manifest.items = items.len();
    std::fs::write(
        dir.join(MANIFEST_FILE),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(dir)
}

/// Reads one entity's table from a partition, refusing values written under another
/// definition.
pub fn read_table(
    partition: &Path,
    entity: Entity,
    spec: &FeatureSpec,
) -> anyhow::Result<FeatureTable> {
    let manifest = read_manifest(partition)?;
    let expected = spec.schema_hash();
    ensure!(
        manifest.schema_hash == expected,
        "{}: written under feature schema {}, but the definition in use is {expected}",
        partition.display(),
        manifest.schema_hash
    );
    let path = partition.join(file_name(entity));
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    let names = match entity {
        Entity::User => spec.user_names(),
        Entity::Item => spec.item_names(),
    };
    let schema = builder.schema().clone();
    let columns: Vec<usize> = names
        .iter()
        .map(|n| {
            schema
                .index_of(n)
                .with_context(|| format!("{}: no column `{n}`", path.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let key_column = schema.index_of(KEY_COLUMN)?;
    let sequence_column = schema.index_of(SEQUENCE_COLUMN).ok();
    let mut table = FeatureTable {
        entity,
        as_of: manifest.as_of,
        names,
        keys: Vec::new(),
        values: Vec::new(),
        sequences: Vec::new(),
    };
    for batch in builder.with_batch_size(ROWS_PER_BATCH).build()? {
        let batch = batch?;
        let keys = batch
            .column(key_column)
            .as_any()
            .downcast_ref::<StringArray>()
            .context("the key column is not text")?;
        let floats: Vec<&Float32Array> = columns
            .iter()
            .map(|&c| {
                batch
                    .column(c)
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .context("a feature column is not float32")
            })
            .collect::<anyhow::Result<_>>()?;
        for r in 0..batch.num_rows() {
            table.keys.push(keys.value(r).to_owned());
            table.values.extend(floats.iter().map(|c| c.value(r)));
        }
        if let Some(c) = sequence_column {
            let lists = batch
                .column(c)
                .as_any()
                .downcast_ref::<ListArray>()
                .context("recent_items is not a list")?;
            for r in 0..lists.len() {
                let items = lists.value(r);
                let items = items
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .context("recent_items holds text")?;
                table
                    .sequences
                    .push(items.iter().flatten().map(str::to_owned).collect());
            }
        }
    }
    Ok(table)
}

/// A partition loaded for point-in-time joins: the offline side of every training row.
pub struct PartitionTables {
    pub spec: FeatureSpec,
    pub manifest: PartitionManifest,
    pub users: FeatureTable,
    pub items: FeatureTable,
    user_index: std::collections::HashMap<String, usize>,
    item_index: std::collections::HashMap<String, usize>,
}

impl PartitionTables {
    pub fn load(partition: &Path, spec: &FeatureSpec) -> anyhow::Result<Self> {
        let users = read_table(partition, Entity::User, spec)?;
        let items = read_table(partition, Entity::Item, spec)?;
        let index = |t: &FeatureTable| {
            t.keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i))
                .collect()
        };
        Ok(Self {
            spec: spec.clone(),
            manifest: read_manifest(partition)?,
            user_index: index(&users),
            item_index: index(&items),
            users,
            items,
        })
    }

    /// Appends the row for (`user`, `item`) in `ctx`, exactly as serving lays it out.
    pub fn row(
        &self,
        user: &str,
        item: &str,
        ctx: &recsys_core::features::Context,
        out: &mut Vec<f32>,
    ) {
        let user = self.user_index.get(user).map(|&i| self.users.row(i));
        let item = self.item_index.get(item).map(|&i| self.items.row(i));
        recsys_core::features::assemble(&self.spec, user, item, ctx, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entity: Entity, spec: &FeatureSpec) -> FeatureTable {
        let names = match entity {
            Entity::User => spec.user_names(),
            Entity::Item => spec.item_names(),
        };
        let n = 3;
        FeatureTable {
            entity,
            as_of: 86_400,
            values: (0..n * names.len()).map(|v| v as f32 / 7.0).collect(),
            names,
            keys: (0..n).map(|i| format!("{}{i}", entity.as_str())).collect(),
            sequences: if entity == Entity::User {
                vec![vec!["a".into(), "b".into()], vec![], vec!["c".into()]]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn a_partition_round_trips_exactly_and_refuses_another_schema() {
        let dir = tempfile::tempdir().unwrap();
        let spec = FeatureSpec::default_spec();
        let (users, items) = (table(Entity::User, &spec), table(Entity::Item, &spec));
        let manifest = PartitionManifest {
            date: "1970-01-01".into(),
            as_of: 86_400,
            schema_hash: String::new(),
            users: 0,
            items: 0,
            events_used: 9,
            events_after_as_of: 0,
            rows_rejected: 0,
        };
        write_partition(dir.path(), &spec, &users, &items, manifest).unwrap();
        let partition = latest_partition(dir.path()).unwrap();
        assert_eq!(read_table(&partition, Entity::User, &spec).unwrap(), users);
        assert_eq!(read_table(&partition, Entity::Item, &spec).unwrap(), items);

        let mut other = spec.clone();
        other.user.features[0].default = 9.0;
        let err = read_table(&partition, Entity::User, &other)
            .unwrap_err()
            .to_string();
        assert!(err.contains("written under feature schema"), "{err}");

        std::fs::write(partition.join("item.parquet"), b"not parquet").unwrap();
        let err = format!(
            "{:#}",
            read_table(&partition, Entity::Item, &spec).unwrap_err()
        );
        assert!(err.contains("not a readable Parquet file"), "{err}");
    }

    #[test]
    fn incomplete_partitions_are_not_picked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("date=2030-01-01")).unwrap();
        let err = latest_partition(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no complete"), "{err}");
    }
}
