//! What is popular right now, for users the model does not know. A version's own popular list
//! is fixed when it is trained; this one follows the feedback stream: clicks, add-to-carts and
//! purchases are added to hourly sorted sets in Redis (shared by every replica), and every 15
//! minutes (the seed's TTL for the popular list) the last 24 hours are merged into one list,
//! itself kept in Redis for 15 minutes so replicas share one computation. Each process also
//! counts its own feedback, which serves while Redis is down or when none is configured.

use super::cache::CacheStore;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The seed's TTL for the popular list.
pub const POPULAR_TTL: Duration = Duration::from_secs(15 * 60);
/// Hours of feedback a list covers.
const WINDOW_HOURS: i64 = 24;
/// Items kept in a list.
const LIST_SIZE: usize = 500;
const KEY_PREFIX: &str = "recsys:popular";

/// How much an event says about an item's appeal; impressions say nothing by themselves.
pub fn weight(event_type: &str) -> Option<f64> {
    match event_type {
        "click" => Some(1.0),
        "add_to_cart" => Some(2.0),
        "purchase" => Some(4.0),
        _ => None,
    }
}

fn hour_key(hour: i64) -> String {
    format!("{KEY_PREFIX}:h:{hour}")
}

/// The merged list's key: one per refresh period, so a new period starts a new list.
fn list_key(now: i64, period: Duration) -> String {
    let period = period.as_secs().max(1) as i64;
    format!("{KEY_PREFIX}:list:{}", now.div_euclid(period))
}

#[derive(Default)]
pub struct Trending {
    /// This process's own counts by hour (external item id → weight).
    local: Mutex<BTreeMap<i64, HashMap<String, f64>>>,
    /// The latest merged list, best first.
    list: RwLock<Arc<Vec<(String, f64)>>>,
}

impl Trending {
    /// Adds engaged items (external id, weight) at time `now` (unix seconds), to Redis when
    /// the store is shared and always to this process's counts.
    pub fn record(&self, store: &dyn CacheStore, items: &[(&str, f64)], now: i64) {
        if items.is_empty() {
            return;
        }
        let hour = now.div_euclid(3600);
        if store.shared() {
            // Kept one hour past the window so a merge at its edge still finds it.
            let ttl = Duration::from_secs(3600 * (WINDOW_HOURS as u64 + 1));
            store.add_scores(&hour_key(hour), items, ttl);
        }
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = local.entry(hour).or_default();
        for &(item, w) in items {
            *bucket.entry(item.to_owned()).or_default() += w;
        }
        local.retain(|&h, _| h > hour - WINDOW_HOURS);
    }

    /// Recomputes the list: Redis's merge of the last 24 hours when reachable (or the one
    /// another replica made this period), else this process's counts. Returns its length.
    pub fn refresh(&self, store: &dyn CacheStore, now: i64, period: Duration) -> usize {
        let hour = now.div_euclid(3600);
        let shared = store
            .shared()
            .then(|| {
                let hours: Vec<String> = (hour - WINDOW_HOURS + 1..=hour).map(hour_key).collect();
                store.top_of_union(&list_key(now, period), &hours, LIST_SIZE, period)
            })
            .flatten();
        let list = shared.unwrap_or_else(|| self.local_top(hour));
        let n = list.len();
        *self.list.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(list);
        n
    }

    fn local_top(&self, hour: i64) -> Vec<(String, f64)> {
        let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let mut totals: HashMap<&str, f64> = HashMap::new();
        for (_, bucket) in local.range(hour - WINDOW_HOURS + 1..=hour) {
            for (item, &w) in bucket {
                *totals.entry(item.as_str()).or_default() += w;
            }
        }
        let mut top: Vec<(String, f64)> = totals
            .into_iter()
            .map(|(item, w)| (item.to_owned(), w))
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(LIST_SIZE);
        top
    }

    /// The latest list (external ids, best first); empty before any engagement.
    pub fn current(&self) -> Arc<Vec<(String, f64)>> {
        Arc::clone(&self.list.read().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::cache::InProcessStore;

    #[test]
    fn engagement_in_the_last_day_ranks_items_by_weight() {
        let trending = Trending::default();
        let store = InProcessStore::default();
        let now = 1_800_000_000;
        assert_eq!(trending.refresh(&store, now, POPULAR_TTL), 0);
        trending.record(&store, &[("a", 1.0), ("b", 4.0)], now - 2 * 3600);
        trending.record(&store, &[("a", 1.0), ("a", 1.0), ("a", 2.0)], now);
        // Older than a day: dropped from the window.
        trending.record(&store, &[("old", 100.0)], now - 30 * 3600);
        assert_eq!(trending.refresh(&store, now, POPULAR_TTL), 2);
        assert_eq!(
            *trending.current(),
            vec![("a".to_owned(), 5.0), ("b".to_owned(), 4.0)]
        );
        assert_eq!(weight("impression"), None);
        assert!(weight("purchase") > weight("click"));
    }
}
