//! What a response shows of an item — title, image URL, price, category — from the catalog
//! team's feed rather than from the model version. Titles, prices and images change between
//! retrains, so `recsys publish-items` writes the feed to Redis with the seed's one-day TTL and
//! every replica reads the returned items' entries in one MGET. An item without an entry, or
//! every item while Redis is down, shows what its version was trained with.

use super::cache::CacheStore;
use anyhow::Context;
use recsys_data::entity_files;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The seed's TTL for item metadata.
pub const ITEM_METADATA_TTL: Duration = Duration::from_secs(24 * 3600);
/// Entries written per pipelined round trip.
const BATCH: usize = 2000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemDisplay {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub category: String,
}

pub fn key(external_id: &str) -> String {
    format!("recsys:item:{external_id}")
}

/// Each item's published entry, in order (None where there is none or it is unreadable),
/// and what the lookup found: "hit" (all), "partial", "miss" (none, or no shared store) or
/// "error" (Redis unreachable).
pub fn fetch(store: &dyn CacheStore, ids: &[&str]) -> (Vec<Option<ItemDisplay>>, &'static str) {
    if ids.is_empty() || !store.shared() {
        return (vec![None; ids.len()], "miss");
    }
    let keys: Vec<String> = ids.iter().map(|id| key(id)).collect();
    let Some(values) = store.get_many(&keys) else {
        return (vec![None; ids.len()], "error");
    };
    let found: Vec<Option<ItemDisplay>> = values
        .into_iter()
        .map(|v| v.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
        .collect();
    let hits = found.iter().filter(|f| f.is_some()).count();
    let label = match hits {
        0 => "miss",
        h if h == ids.len() => "hit",
        _ => "partial",
    };
    (found, label)
}

/// Reads a metadata file (CSV, JSON lines or Parquet with an `item_id` column; the display
/// columns `title`, `image_url`, `price` and `category` are optional) into entries. A price
/// that is not a non-negative number is an error naming the item.
pub fn read_feed(path: &Path) -> anyhow::Result<Vec<(String, ItemDisplay)>> {
    let rows = entity_files::read(path, "item_id")?;
    let column = |name: &str| rows.columns.iter().position(|c| c == name);
    let (title, image, price, category) = (
        column("title"),
        column("image_url"),
        column("price"),
        column("category"),
    );
    let width = rows.columns.len();
    rows.ids
        .iter()
        .enumerate()
        .map(|(r, id)| {
            let cell = |c: Option<usize>| {
                c.and_then(|c| rows.cells[r * width + c].clone())
                    .unwrap_or_default()
            };
            let price = match cell(price).trim() {
                "" => None,
                text => Some(
                    text.parse::<f64>()
                        .ok()
                        .filter(|p| p.is_finite() && *p >= 0.0)
                        .with_context(|| {
                            format!(
                                "{}: item {id}: price {text:?} is not a price",
                                path.display()
                            )
                        })?,
                ),
            };
            Ok((
                id.clone(),
                ItemDisplay {
                    title: cell(title),
                    image_url: cell(image),
                    price,
                    category: cell(category),
                },
            ))
        })
        .collect()
}

/// Writes the entries to Redis with `ttl`, pipelined; returns how many.
pub fn publish(
    redis_url: &str,
    entries: &[(String, ItemDisplay)],
    ttl: Duration,
    progress: &dyn Fn(u64),
) -> anyhow::Result<usize> {
    let client = redis::Client::open(redis_url)
        .with_context(|| format!("bad Redis URL {}", recsys_core::redact::url(redis_url)))?;
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .with_context(|| format!("connecting to {}", recsys_core::redact::url(redis_url)))?;
    let mut written = 0;
    for batch in entries.chunks(BATCH) {
        let mut pipe = redis::pipe();
        for (id, display) in batch {
            pipe.cmd("SET")
                .arg(key(id))
                .arg(serde_json::to_vec(display)?)
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .ignore();
        }
        pipe.query::<()>(&mut connection).with_context(|| {
            format!(
                "writing item metadata to {}",
                recsys_core::redact::url(redis_url)
            )
        })?;
        written += batch.len();
        progress(written as u64);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::cache::InProcessStore;

    #[test]
    fn the_feed_reads_display_columns_and_refuses_a_bad_price() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.csv");
        std::fs::write(
            &path,
            "item_id,title,price,image_url,year\ni1,One,9.5,https://img/1.jpg,1999\ni2,,,,\n",
        )
        .unwrap();
        let feed = read_feed(&path).unwrap();
        assert_eq!(feed.len(), 2);
        assert_eq!(
            feed[0],
            (
                "i1".to_owned(),
                ItemDisplay {
                    title: "One".into(),
                    image_url: "https://img/1.jpg".into(),
                    price: Some(9.5),
                    category: String::new(),
                }
            )
        );
        assert_eq!(feed[1].1, ItemDisplay::default());
        std::fs::write(&path, "item_id,price\ni1,cheap\n").unwrap();
        let err = format!("{:#}", read_feed(&path).unwrap_err());
        assert!(err.contains("item i1: price \"cheap\""), "{err}");
    }

    #[test]
    fn without_a_shared_store_nothing_is_found_and_nothing_fails() {
        let (found, label) = fetch(&InProcessStore::default(), &["i1", "i2"]);
        assert_eq!((found, label), (vec![None, None], "miss"));
    }
}
