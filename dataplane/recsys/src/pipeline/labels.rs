//! Relevance labels of a window: per user, the items the label policy applied at ingest
//! counts as relevant.

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
    fn the_applied_policy_decides() {
        let mut rows = [
            Interaction {
                user: 1,
                item: 5,
                timestamp: 0,
                value: 4.0,
                kind: recsys_core::validation::EventType::Rating,
                relevant: false,
            },
            Interaction {
                user: 1,
                item: 6,
                timestamp: 0,
                value: 3.0,
                kind: recsys_core::validation::EventType::Rating,
                relevant: false,
            },
            Interaction {
                user: 2,
                item: 6,
                timestamp: 0,
                value: 2.0,
                kind: recsys_core::validation::EventType::Rating,
                relevant: false,
            },
        ];
        assert!(relevant_by_user(&rows).is_empty(), "no policy applied yet");
        recsys_core::labels::LabelPolicy::ratings_at_least(4.0).apply(&mut rows);
        let labels = relevant_by_user(&rows);
        assert_eq!(labels.len(), 1);
        assert_eq!(labels[&1], HashSet::from([5]));
    }
}
