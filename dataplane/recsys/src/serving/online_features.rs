//! The request path's declared features: the user's and every candidate's values read from the
//! online feature store (`recsys materialize`) in one MGET. Anything the store lacks, or all of
//! it when Redis is down, falls back to the model version's own values, so a request is never
//! refused for want of features.

use super::cache::CacheStore;
use crate::features::online_store::{decode, entity_key};
use recsys_core::features::{Entity, FeatureSpec};

/// What one read found: values per entity (None where the store has none) and a label for the
/// cache metric.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRows {
    pub user: Option<Vec<f32>>,
    pub items: Vec<Option<Vec<f32>>>,
    /// `hit` (every entity found), `partial`, `miss` (none found) or `error` (unreachable).
    pub result: &'static str,
}

/// Reads `user_id` and `item_ids` under the definition whose keys start with `prefix`.
pub fn fetch<'a>(
    store: &dyn CacheStore,
    prefix: &str,
    spec: &FeatureSpec,
    user_id: &str,
    item_ids: impl ExactSizeIterator<Item = &'a str>,
) -> OnlineRows {
    let n = item_ids.len();
    let mut keys = Vec::with_capacity(n + 1);
    keys.push(entity_key(prefix, Entity::User, user_id));
    keys.extend(item_ids.map(|id| entity_key(prefix, Entity::Item, id)));
    let Some(found) = store.get_many(&keys).filter(|f| f.len() == keys.len()) else {
        return OnlineRows {
            user: None,
            items: vec![None; n],
            result: "error",
        };
    };
    let (user_width, item_width) = (spec.user.width(), spec.item.width());
    let mut found = found.into_iter();
    // A value of the wrong length (another writer, a corrupt key) counts as missing.
    let user = found.next().flatten().and_then(|b| decode(&b, user_width));
    let items: Vec<Option<Vec<f32>>> = found
        .map(|v| v.and_then(|b| decode(&b, item_width)))
        .collect();
    let hits = usize::from(user.is_some()) + items.iter().filter(|v| v.is_some()).count();
    let result = match hits {
        0 => "miss",
        h if h == n + 1 => "hit",
        _ => "partial",
    };
    OnlineRows {
        user,
        items,
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
        fn put(&self, _: &str, _: &[f32]) {}
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

        let rows = fetch(&store, prefix, &spec, "u", ["a", "b", "c"].into_iter());
        assert_eq!(rows.user.as_deref(), Some(user_row.as_slice()));
        assert_eq!(rows.items, vec![Some(item_row.clone()), None, None]);
        assert_eq!(rows.result, "partial");
        assert_eq!(
            fetch(&store, prefix, &spec, "u", ["a"].into_iter()).result,
            "hit"
        );
        assert_eq!(
            fetch(&store, prefix, &spec, "x", ["c"].into_iter()).result,
            "miss"
        );
        // Another definition's prefix finds nothing.
        assert_eq!(
            fetch(
                &store,
                "recsys:features:other",
                &spec,
                "u",
                ["a"].into_iter()
            )
            .result,
            "miss"
        );
        let down = fetch(&MapStore(None), prefix, &spec, "u", ["a", "b"].into_iter());
        assert_eq!(
            (down.result, down.user, down.items),
            ("error", None, vec![None, None])
        );
    }
}
