//! Items each user was recently shown or engaged with, kept 7 days, so the next response does
//! not repeat them. In-process; bounded per user.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub const RETENTION_SECS: i64 = 7 * 86_400;
const PER_USER: usize = 500;

#[derive(Default)]
pub struct RecentItems {
    by_user: Mutex<HashMap<String, VecDeque<(String, i64)>>>,
}

impl RecentItems {
    pub fn record(&self, user: &str, item: &str, ts: i64) {
        let mut map = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(user.to_owned()).or_default();
        list.push_back((item.to_owned(), ts));
        while list.len() > PER_USER {
            list.pop_front();
        }
    }

    /// Item ids the user saw within the retention window before `now`.
    pub fn recent(&self, user: &str, now: i64) -> Vec<String> {
        let mut map = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = map.get_mut(user) else {
            return Vec::new();
        };
        while list.front().is_some_and(|(_, t)| *t < now - RETENTION_SECS) {
            list.pop_front();
        }
        list.iter().map(|(i, _)| i.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_expire_after_seven_days() {
        let r = RecentItems::default();
        r.record("u", "old", 0);
        r.record("u", "new", RETENTION_SECS);
        assert_eq!(r.recent("u", RETENTION_SECS + 10), vec!["new".to_owned()]);
        assert!(r.recent("nobody", 0).is_empty());
    }
}
