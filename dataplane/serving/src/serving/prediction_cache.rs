//! The prediction cache (the seed's 30 minutes): a known user's finished answer, keyed by
//! everything that shaped it — model version, user, number of items, the request's filters and
//! exclusions, and its context down to the hour — so a hit is exactly the answer a fresh
//! computation would have given within that hour. Explained requests are always computed (they
//! need the ranker's rows).

use super::engine::Query;

/// FNV-1a over the parts of a request that change its answer.
fn digest(query: &Query<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so adjacent fields cannot run into each other.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    let sorted = |set: Option<&std::collections::HashSet<u32>>| {
        let mut v: Vec<u32> = set.map(|s| s.iter().copied().collect()).unwrap_or_default();
        v.sort_unstable();
        v
    };
    for id in sorted(Some(query.exclude)) {
        eat(&id.to_le_bytes());
    }
    eat(b"categories");
    for id in sorted(query.categories) {
        eat(&id.to_le_bytes());
    }
    eat(&query
        .max_age_days
        .map_or(u32::MAX, f32::to_bits)
        .to_le_bytes());
    let audience = &query.audience;
    eat(audience.country.unwrap_or("").as_bytes());
    eat(&audience.max_age_rating.unwrap_or(u32::MAX).to_le_bytes());
    eat(&[u8::from(audience.brand_safe_only)]);
    let ctx = &query.context;
    eat(&ctx.timestamp.div_euclid(3600).to_le_bytes());
    for field in [ctx.device, ctx.country, ctx.placement] {
        eat(field.unwrap_or("").as_bytes());
    }
    h
}

/// The cache key of `query`'s answer under model `version`.
pub fn key(version: &str, query: &Query<'_>) -> String {
    format!(
        "recsys:{version}:predictions:{}:{}:{:016x}",
        query.user_id,
        query.n,
        digest(query)
    )
}

/// (item, score) pairs as the cache's f32 vectors: the item id's bits, then the score.
pub fn encode(items: &[(u32, f32)]) -> Vec<f32> {
    items
        .iter()
        .flat_map(|&(item, score)| [f32::from_bits(item), score])
        .collect()
}

/// The cached answer, or `None` (a miss) when the entry is not one: an odd length, an item
/// id outside the version's `items`, or a score that is not a number. A corrupt or foreign
/// entry is recomputed, never served.
pub fn decode(values: &[f32], items: usize) -> Option<Vec<(u32, f32)>> {
    if !values.len().is_multiple_of(2) {
        return None;
    }
    values
        .chunks_exact(2)
        .map(|p| (p[0].to_bits(), p[1]))
        .map(|(item, score)| ((item as usize) < items && !score.is_nan()).then_some((item, score)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_core::features::Context;
    use std::collections::HashSet;

    fn query<'a>(exclude: &'a HashSet<u32>, timestamp: i64, device: Option<&'a str>) -> Query<'a> {
        Query {
            context: Context {
                timestamp,
                device,
                country: None,
                placement: Some("home"),
            },
            ..Query::new("u1", 10, exclude)
        }
    }

    #[test]
    fn the_key_changes_with_what_changes_the_answer_only() {
        let none = HashSet::new();
        let seen: HashSet<u32> = [7, 3].into();
        let same_seen: HashSet<u32> = [3, 7].into();
        let base = key("v1", &query(&none, 7200, Some("ios")));
        // Same hour, same everything: same key.
        assert_eq!(base, key("v1", &query(&none, 7200 + 3599, Some("ios"))));
        assert_eq!(
            key("v1", &query(&seen, 0, None)),
            key("v1", &query(&same_seen, 0, None))
        );
        for other in [
            key("v2", &query(&none, 7200, Some("ios"))),
            key("v1", &query(&none, 7200 + 3600, Some("ios"))),
            key("v1", &query(&none, 7200, Some("web"))),
            key("v1", &query(&seen, 7200, Some("ios"))),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn answers_round_trip_bit_for_bit() {
        let items = vec![(0, 0.5), (u32::MAX - 1, -1.0), (0x7fc0_0001, 3.25)];
        assert_eq!(decode(&encode(&items), u32::MAX as usize), Some(items));
        assert_eq!(decode(&[1.0], 10), None);
    }

    #[test]
    fn an_entry_naming_an_item_outside_the_version_or_a_nan_score_is_a_miss() {
        let fine = encode(&[(3, 0.5), (9, 0.25)]);
        assert_eq!(decode(&fine, 10), Some(vec![(3, 0.5), (9, 0.25)]));
        // Written by another version with a larger catalog, or corrupted in the store.
        assert_eq!(decode(&fine, 9), None);
        assert_eq!(decode(&encode(&[(1, f32::NAN)]), 10), None);
    }
}
