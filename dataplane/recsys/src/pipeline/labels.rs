//! Relevance labels of a window: per user, the items they rated 4 or more in it.

use recsys_core::{Interaction, ItemId, UserId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Users with at least one relevant item in `window`, ascending by user id.
pub fn relevant_by_user(window: &[Interaction]) -> BTreeMap<UserId, HashSet<ItemId>> {
    let mut out: BTreeMap<UserId, HashSet<ItemId>> = BTreeMap::new();
    for row in window.iter().filter(|r| r.is_relevant()) {
        out.entry(row.user).or_default().insert(row.item);
    }
    out
}

/// When each user of `window` first came back in it: the context time of that user's ranking
/// rows (the request the window's labels answer).
pub fn first_event_times(window: &[Interaction]) -> HashMap<UserId, i64> {
    let mut out: HashMap<UserId, i64> = HashMap::new();
    for row in window {
        out.entry(row.user)
            .and_modify(|t| *t = (*t).min(row.timestamp))
            .or_insert(row.timestamp);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ratings_of_four_or_more_count() {
        let rows = [
            Interaction {
                user: 1,
                item: 5,
                timestamp: 0,
                value: 4.0,
                kind: recsys_core::validation::EventType::Rating,
            },
            Interaction {
                user: 1,
                item: 6,
                timestamp: 0,
                value: 3.0,
                kind: recsys_core::validation::EventType::Rating,
            },
            Interaction {
                user: 2,
                item: 6,
                timestamp: 0,
                value: 2.0,
                kind: recsys_core::validation::EventType::Rating,
            },
        ];
        let labels = relevant_by_user(&rows);
        assert_eq!(labels.len(), 1);
        assert_eq!(labels[&1], HashSet::from([5]));
    }
}
