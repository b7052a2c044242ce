//! Items each user was recently shown or engaged with, kept 7 days, so the next response does
//! not repeat them. In-process; bounded per user and in users: when full, users whose last
//! item expired go first, then about a tenth of the rest (they lose only their de-duplication,
//! a sweep per tenth of the capacity keeps inserts cheap on average).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub const RETENTION_SECS: i64 = 7 * 86_400;
const PER_USER: usize = 500;
/// Users remembered at most (about 200 MB at 500 short ids each, far less in practice).
pub const MAX_USERS: usize = 200_000;

pub struct RecentItems {
    by_user: Mutex<HashMap<String, VecDeque<(String, i64)>>>,
    max_users: usize,
}

impl Default for RecentItems {
    fn default() -> Self {
        Self::with_max_users(MAX_USERS)
    }
}

impl RecentItems {
    pub fn with_max_users(max_users: usize) -> Self {
        Self {
            by_user: Mutex::new(HashMap::new()),
            max_users: max_users.max(1),
        }
    }

    /// Users currently remembered.
    pub fn users(&self) -> usize {
        self.by_user.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn make_room(map: &mut HashMap<String, VecDeque<(String, i64)>>, max: usize, now: i64) {
        map.retain(|_, list| list.back().is_some_and(|(_, t)| *t >= now - RETENTION_SECS));
        if map.len() >= max {
            let drop: Vec<String> = map.keys().take(max.div_ceil(10)).cloned().collect();
            for k in drop {
                map.remove(&k);
            }
        }
    }

    pub fn record(&self, user: &str, item: &str, ts: i64) {
        let mut map = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(user) && map.len() >= self.max_users {
            Self::make_room(&mut map, self.max_users, ts);
        }
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
    fn the_number_of_users_is_bounded_expired_ones_going_first() {
        let r = RecentItems::with_max_users(100);
        r.record("old", "i", 0);
        for u in 0..99 {
            r.record(&format!("u{u}"), "i", RETENTION_SECS + 10);
        }
        assert_eq!(r.users(), 100);
        r.record("new", "i", RETENTION_SECS + 20);
        assert!(r.recent("old", RETENTION_SECS + 20).is_empty());
        assert_eq!(r.recent("new", RETENTION_SECS + 20), vec!["i".to_owned()]);
        for u in 0..10_000 {
            r.record(&format!("flood{u}"), "i", RETENTION_SECS + 30);
        }
        assert!(r.users() <= 100, "{}", r.users());
    }

    #[test]
    fn items_expire_after_seven_days() {
        let r = RecentItems::default();
        r.record("u", "old", 0);
        r.record("u", "new", RETENTION_SECS);
        assert_eq!(r.recent("u", RETENTION_SECS + 10), vec!["new".to_owned()]);
        assert!(r.recent("nobody", 0).is_empty());
    }
}
