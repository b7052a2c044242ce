//! Any validated event file, plus optional user profiles and item metadata, as a [`Dataset`]:
//! what `recsys train` reads. Nothing here knows a dataset: ids are whatever the producer
//! uses, an item's categories come from a declared metadata column, and relevance is left to
//! the label policy the pipeline applies.

use super::entity_files::EntityFiles;
use super::events_io::parse_only;
use super::{events_io, Dataset, ItemMeta, UserProfile};
use anyhow::ensure;
use recsys_core::validation::check_record;
use recsys_core::Interaction;
use std::collections::HashMap;
use std::path::Path;

/// How the metadata file's columns are read.
#[derive(Debug, Clone)]
pub struct MetadataColumns {
    /// The items' categories (diversity rule, category filters, the genre features); several
    /// may be given separated by `|`. Items without it get [`UNCATEGORIZED`].
    pub category: String,
    pub title: String,
    pub year: String,
}

impl Default for MetadataColumns {
    fn default() -> Self {
        Self {
            category: "category".into(),
            title: "title".into(),
            year: "year".into(),
        }
    }
}

/// The category of items whose metadata names none.
pub const UNCATEGORIZED: &str = "uncategorized";

/// Dense ids in first-seen order.
#[derive(Default)]
struct Ids {
    index: HashMap<String, u32>,
    names: Vec<String>,
}

impl Ids {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.index.insert(name.to_owned(), i);
        self.names.push(name.to_owned());
        i
    }
}

/// Reads `events` (CSV, JSONL or Parquet in the pipeline schema). Catalog: every item with a
/// metadata row or an event; users: every user with a profile row or an event. Profile
/// columns `age`, `gender`, `occupation` and `zip` feed the seed's user features. Rows that fail
/// the parse-level checks are counted and skipped (the input is meant to be `recsys
/// validate`'s clean output); a file with none readable is an error.
pub fn load(
    events: &Path,
    files: &EntityFiles,
    columns: &MetadataColumns,
) -> anyhow::Result<Dataset> {
    let config = parse_only(0);
    // Entity files first: their order is the dense order (so a dataset written by
    // `export` reads back with the same ids), then ids only events name.
    let (mut users, mut items) = (Ids::default(), Ids::default());
    for id in files.profiles.iter().flat_map(|p| p.ids.iter()) {
        users.id(id);
    }
    let metadata = files.metadata.as_ref();
    for id in metadata.iter().flat_map(|m| m.ids.iter()) {
        items.id(id);
    }
    let mut interactions = Vec::new();
    let mut skipped = 0u64;
    events_io::for_each_row(events, |_, row| {
        match row.ok().map(|r| check_record(&r, &config)) {
            Some(Ok(e)) => interactions.push(Interaction {
                user: users.id(e.user_id),
                item: items.id(e.item_id),
                timestamp: e.timestamp,
                value: e.value.unwrap_or(1.0) as f32,
                kind: e.event_type,
                relevant: false,
            }),
            _ => skipped += 1,
        }
        Ok(())
    })?;
    ensure!(
        !interactions.is_empty(),
        "{}: no readable events",
        events.display()
    );
    if skipped > 0 {
        tracing::warn!(skipped, "unreadable rows skipped; validate the file first");
    }
    if let Some(m) = metadata {
        ensure!(
            m.column(&columns.category).is_some(),
            "item metadata has no `{}` column for categories (columns: {}); name one with --category-column",
            columns.category,
            m.columns.join(",")
        );
    }
    let metadata_index = metadata.map(|m| m.index()).unwrap_or_default();
    let cell = |id: &str, column: &str| -> Option<String> {
        let m = metadata?;
        let row = m.row(*metadata_index.get(id)?);
        row[m.column(column)?].clone()
    };
    // The seed's user features read these profile columns when the file has them.
    let profile_index = files
        .profiles
        .as_ref()
        .map(|p| p.index())
        .unwrap_or_default();
    let profile = |id: &str, column: &str| -> Option<String> {
        let p = files.profiles.as_ref()?;
        p.row(*profile_index.get(id)?)[p.column(column)?].clone()
    };
    let items = items
        .names
        .into_iter()
        .map(|external_id| {
            let mut genres: Vec<String> = cell(&external_id, &columns.category)
                .map(|c| {
                    c.split('|')
                        .map(|g| g.trim().to_owned())
                        .filter(|g| !g.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            if genres.is_empty() {
                genres.push(UNCATEGORIZED.to_owned());
            }
            ItemMeta {
                title: cell(&external_id, &columns.title)
                    .unwrap_or_else(|| format!("Item {external_id}")),
                genres,
                year: cell(&external_id, &columns.year).and_then(|y| y.trim().parse().ok()),
                external_id,
            }
        })
        .collect();
    Ok(Dataset {
        users: users
            .names
            .into_iter()
            .map(|external_id| UserProfile {
                age: profile(&external_id, "age").and_then(|a| a.trim().parse().ok()),
                gender: profile(&external_id, "gender"),
                occupation: profile(&external_id, "occupation"),
                zip: profile(&external_id, "zip"),
                external_id,
            })
            .collect(),
        items,
        interactions,
        profiles: files.profiles.clone(),
        metadata: files.metadata.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn any_ids_and_declared_category_column() {
        let dir = tempfile::tempdir().unwrap();
        let events = write(
            dir.path(),
            "events.csv",
            "user_id,item_id,event_type,timestamp,value\n\
             alice,sku-9,purchase,1700000000,12.5\n\
             bob,sku-2,click,1700000100,\n\
             bob,sku-9,nonsense,1700000200,\n",
        );
        let items = write(
            dir.path(),
            "items.csv",
            "item_id,name,dept\nsku-9,Kettle,kitchen|home\nsku-2,Mug,\nsku-7,Spoon,kitchen\n",
        );
        let files = EntityFiles::load(None, Some(&items)).unwrap();
        let columns = MetadataColumns {
            category: "dept".into(),
            title: "name".into(),
            ..Default::default()
        };
        let data = load(&events, &files, &columns).unwrap();
        assert_eq!(
            data.interactions.len(),
            2,
            "the unknown event type is skipped"
        );
        let names: Vec<&str> = data.items.iter().map(|i| i.external_id.as_str()).collect();
        assert_eq!(
            names,
            ["sku-9", "sku-2", "sku-7"],
            "metadata order, then events"
        );
        assert_eq!(data.items[0].genres, ["kitchen", "home"]);
        assert_eq!(data.items[0].title, "Kettle");
        assert_eq!(data.items[1].genres, [UNCATEGORIZED]);
        assert_eq!(data.items[2].genres, ["kitchen"]);
        assert!(data.interactions.iter().all(|r| !r.relevant));

        // A category column that does not exist is an error, not a catalog of "other".
        let e = load(&events, &files, &MetadataColumns::default()).unwrap_err();
        assert!(e.to_string().contains("no `category` column"), "{e}");
    }
}
