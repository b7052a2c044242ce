//! The request path's declared features: the user's and every candidate's values read from the
//! online feature store (`recsys materialize`) in one MGET. Item rows change only when a new
//! partition is materialized, so they are also kept in process (for at most ten minutes, and
//! dropped as soon as the store's materialization marker changes): a request then asks Redis
//! only for its user, the marker and the candidates it has not seen lately. Anything the store
//! lacks, or all of it when Redis is down, falls back to the model version's own values, so a
//! request is never refused for want of features.

use super::cache::CacheStore;
use recsys_core::features::{Entity, FeatureSpec};
use recsys_data::features::online_store::{decode, entity_key, marker_key};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest an item's row read from Redis is reused in process.
pub const ITEM_ROWS_TTL: Duration = Duration::from_secs(600);
const ITEM_ROWS_CAPACITY: usize = 500_000;

/// Item rows recently read from Redis (None: Redis had none), by dense item id, and the
/// materialization marker they were read under.
#[derive(Default)]
pub struct ItemRowCache {
    state: Mutex<CacheState>,
}

/// An item's row (None: the store had none) and when it was read.
type KeptRow = (Instant, Option<Arc<[f32]>>);

#[derive(Default)]
struct CacheState {
    marker: Option<Vec<u8>>,
    rows: HashMap<u32, KeptRow>,
}

/// What one read found: values per entity (None where the store has none) and a label for the
/// cache metric.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRows {
    pub user: Option<Vec<f32>>,
    pub items: Vec<Option<Arc<[f32]>>>,
    /// `hit` (every entity found), `partial`, `miss` (none found) or `error` (unreachable).
    pub result: &'static str,
}

/// Reads `user_id` and the `(dense id, external id)` items under the definition whose keys
/// start with `prefix`, reusing `cache`d item rows younger than [`ITEM_ROWS_TTL`].
pub fn fetch<'a>(
    store: &dyn CacheStore,
    cache: &ItemRowCache,
    prefix: &str,
    spec: &FeatureSpec,
    user_id: &str,
    items: impl ExactSizeIterator<Item = (u32, &'a str)> + Clone,
) -> OnlineRows {
    let n = items.len();
    let mut rows: Vec<Option<Arc<[f32]>>> = vec![None; n];
    let mut keys = vec![
        entity_key(prefix, Entity::User, user_id),
        marker_key(prefix),
    ];
    // (position in the request, dense id) of each item asked of Redis.
    let mut asked = Vec::new();
    {
        let cached = cache.state.lock().unwrap_or_else(|p| p.into_inner());
        for (k, (item, external_id)) in items.clone().enumerate() {
            match cached.rows.get(&item) {
                Some((at, row)) if at.elapsed() < ITEM_ROWS_TTL => rows[k] = row.clone(),
                _ => {
                    keys.push(entity_key(prefix, Entity::Item, external_id));
                    asked.push((k, item));
                }
            }
        }
    }
    let Some(found) = store.get_many(&keys).filter(|f| f.len() == keys.len()) else {
        return OnlineRows {
            user: None,
            items: rows,
            result: "error",
        };
    };
    let (user_width, item_width) = (spec.user.width(), spec.item.width());
    let mut found = found.into_iter();
    // A value of the wrong length (another writer, a corrupt key) counts as missing.
    let user = found.next().flatten().and_then(|b| decode(&b, user_width));
    let marker = found.next().flatten();
    {
        let mut cached = cache.state.lock().unwrap_or_else(|p| p.into_inner());
        if cached.marker != marker {
            // A new materialization: what was kept is stale, this request's reuse included.
            let reused = asked.len() < n;
            cached.rows.clear();
            cached.marker = marker;
            if reused {
                drop(cached);
                return fetch(store, cache, prefix, spec, user_id, items);
            }
        }
        if cached.rows.len() + asked.len() > ITEM_ROWS_CAPACITY {
            cached.rows.clear();
        }
        let now = Instant::now();
        for ((k, item), value) in asked.into_iter().zip(found) {
            let row: Option<Arc<[f32]>> = value.and_then(|b| decode(&b, item_width)).map(Arc::from);
            cached.rows.insert(item, (now, row.clone()));
            rows[k] = row;
        }
    }
    let hits = usize::from(user.is_some()) + rows.iter().filter(|v| v.is_some()).count();
    let result = match hits {
        0 => "miss",
        h if h == n + 1 => "hit",
        _ => "partial",
    };
    OnlineRows {
        user,
        items: rows,
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::cache::Lookup;
    use std::collections::HashMap;

    struct MapStore(Option<HashMap<String, Vec<u8>>>);

    impl CacheStore for MapStore {
        fn get(&self, _: &str) -> Lookup {
            Lookup::Miss
        }
        fn put_for(&self, _: &str, _: &[f32], _: std::time::Duration) {}
        fn get_many(&self, keys: &[String]) -> Option<Vec<Option<Vec<u8>>>> {
            let map = self.0.as_ref()?;
            Some(keys.iter().map(|k| map.get(k).cloned()).collect())
        }
    }

    fn bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn found_missing_malformed_and_unreachable_values() {
        let spec = FeatureSpec::default_spec();
        let (uw, iw) = (spec.user.width(), spec.item.width());
        let user_row: Vec<f32> = (0..uw).map(|i| i as f32).collect();
        let item_row: Vec<f32> = (0..iw).map(|i| 10.0 + i as f32).collect();
        let prefix = "recsys:features:test";
        let mut map = HashMap::new();
        map.insert(entity_key(prefix, Entity::User, "u"), bytes(&user_row));
        map.insert(entity_key(prefix, Entity::Item, "a"), bytes(&item_row));
        // Written under a definition with fewer columns: never used.
        map.insert(entity_key(prefix, Entity::Item, "b"), bytes(&item_row[1..]));
        let store = MapStore(Some(map));
        let ids = |names: &[&'static str]| {
            names
                .iter()
                .map(|&n| (u32::from(n.as_bytes()[0]), n))
                .collect::<Vec<_>>()
                .into_iter()
        };
        let item = |r: &Option<Arc<[f32]>>| r.as_deref().map(<[f32]>::to_vec);

        let cache = ItemRowCache::default();
        let rows = fetch(&store, &cache, prefix, &spec, "u", ids(&["a", "b", "c"]));
        assert_eq!(rows.user.as_deref(), Some(user_row.as_slice()));
        let found: Vec<_> = rows.items.iter().map(item).collect();
        assert_eq!(found, vec![Some(item_row.clone()), None, None]);
        assert_eq!(rows.result, "partial");
        let result = |user, names: &[&'static str], prefix| {
            fetch(
                &store,
                &ItemRowCache::default(),
                prefix,
                &spec,
                user,
                ids(names),
            )
            .result
        };
        assert_eq!(result("u", &["a"], prefix), "hit");
        assert_eq!(result("x", &["c"], prefix), "miss");
        // Another definition's prefix finds nothing.
        assert_eq!(result("u", &["a"], "recsys:features:other"), "miss");
        // Values kept in process are dropped when a new materialization's marker appears.
        let mut changed = store.0.clone().unwrap();
        let other_row: Vec<f32> = item_row.iter().map(|v| v + 1.0).collect();
        changed.insert(entity_key(prefix, Entity::Item, "a"), bytes(&other_row));
        let changed = MapStore(Some(changed));
        let kept = fetch(&changed, &cache, prefix, &spec, "u", ids(&["a"]));
        assert_eq!(item(&kept.items[0]), Some(item_row.clone()), "reused");
        let mut remarked = changed.0.clone().unwrap();
        remarked.insert(marker_key(prefix), b"2".to_vec());
        let remarked = MapStore(Some(remarked));
        let fresh = fetch(&remarked, &cache, prefix, &spec, "u", ids(&["a"]));
        assert_eq!(item(&fresh.items[0]), Some(other_row.clone()), "re-read");

        // Redis down: no user row; an item read a moment ago still comes from the process.
        let down = fetch(
            &MapStore(None),
            &cache,
            prefix,
            &spec,
            "u",
            ids(&["a", "d"]),
        );
        assert_eq!((down.result, down.user.is_none()), ("error", true));
        let found: Vec<_> = down.items.iter().map(item).collect();
        assert_eq!(found, vec![Some(other_row), None]);
    }
}
