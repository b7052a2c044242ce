//! Per-user and per-item statistics as of a cut-off time.

use super::declared::DeclaredFeatures;
use crate::Dataset;
use recsys_core::features::FeatureSpec;
use recsys_core::Interaction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

const DAY: f32 = 86_400.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UserFeatures {
    /// Age in years; 0 when unknown.
    pub age: f32,
    pub gender: Option<String>,
    pub occupation: Option<usize>,
    /// First digit of the zip code (a coarse region), when it is a digit.
    pub region: Option<usize>,
    pub history_len: u32,
    pub mean_rating: f32,
    /// Share of the user's history per genre (sums to 1 when there is history).
    pub genre_affinity: Vec<f32>,
    /// Days between the user's last interaction and the cut-off; −1 without history.
    pub days_since_last: f32,
    /// Items the user interacted with before the cut-off, ascending.
    pub seen: Vec<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ItemFeatures {
    pub genres: Vec<usize>,
    /// Release year; 0 when unknown.
    pub year: f32,
    pub count_all: u32,
    pub count_7d: u32,
    pub count_30d: u32,
    /// Mean rating shrunk towards the global mean by 10 pseudo-ratings.
    pub mean_rating: f32,
    /// Days since the item's first interaction; −1 when it has none.
    pub days_since_first: f32,
}

/// Everything the towers and the ranker need, as of `cutoff`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FeatureSnapshot {
    pub cutoff: i64,
    pub genres: Vec<String>,
    pub occupations: Vec<String>,
    pub users: Vec<UserFeatures>,
    pub items: Vec<ItemFeatures>,
    /// The declarative definition's user and item values at the same cut-off.
    #[serde(default)]
    pub declared: DeclaredFeatures,
}

impl FeatureSnapshot {
    /// Every index the snapshot holds points inside it, and the declared rows have their
    /// spec's width: a file that fails this would index out of bounds on a request.
    pub fn check(&self) -> Result<(), String> {
        let (users, items, genres) = (self.users.len(), self.items.len(), self.genres.len());
        for (u, f) in self.users.iter().enumerate() {
            if f.occupation.is_some_and(|o| o >= self.occupations.len()) {
                return Err(format!(
                    "user {u}: occupation index outside the {} known",
                    self.occupations.len()
                ));
            }
            if f.genre_affinity.len() != genres {
                return Err(format!(
                    "user {u}: {} genre affinities for {genres} genres",
                    f.genre_affinity.len()
                ));
            }
            if let Some(&i) = f.seen.iter().find(|&&i| i as usize >= items) {
                return Err(format!("user {u}: seen item {i} outside the {items} items"));
            }
        }
        for (i, f) in self.items.iter().enumerate() {
            if let Some(&g) = f.genres.iter().find(|&&g| g >= genres) {
                return Err(format!("item {i}: genre {g} outside the {genres} genres"));
            }
        }
        // No values at all is allowed (each row then gets the declared defaults, as an
        // unknown user does); a partial table is not.
        let spec = &self.declared.spec;
        for (what, len, rows, width) in [
            ("user", self.declared.users.len(), users, spec.user.width()),
            ("item", self.declared.items.len(), items, spec.item.width()),
        ] {
            if len != 0 && len != rows * width {
                return Err(format!(
                    "{len} declared {what} values for {rows} {what}s × {width}"
                ));
            }
        }
        Ok(())
    }

    /// Builds the snapshot from `history`; rows at or after `cutoff` are ignored, which is what
    /// makes every feature point-in-time correct.
    pub fn compute(data: &Dataset, history: &[Interaction], cutoff: i64) -> Self {
        let genres: Vec<String> = data
            .items
            .iter()
            .flat_map(|i| i.genres.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let occupations: Vec<String> = data
            .users
            .iter()
            .filter_map(|u| u.occupation.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let genre_index = |g: &String| genres.binary_search(g).ok();

        let mut items: Vec<ItemFeatures> = data
            .items
            .iter()
            .map(|meta| ItemFeatures {
                genres: meta.genres.iter().filter_map(genre_index).collect(),
                year: meta.year.map_or(0.0, |y| y as f32),
                days_since_first: -1.0,
                ..Default::default()
            })
            .collect();
        let mut users: Vec<UserFeatures> = data
            .users
            .iter()
            .map(|p| UserFeatures {
                age: p.age.map_or(0.0, |a| a as f32),
                gender: p.gender.clone(),
                occupation: p
                    .occupation
                    .as_ref()
                    .and_then(|o| occupations.binary_search(o).ok()),
                region: p
                    .zip
                    .as_ref()
                    .and_then(|z| z.chars().next())
                    .and_then(|c| c.to_digit(10))
                    .map(|d| d as usize),
                genre_affinity: vec![0.0; genres.len()],
                days_since_last: -1.0,
                ..Default::default()
            })
            .collect();

        let past: Vec<&Interaction> = history.iter().filter(|r| r.timestamp < cutoff).collect();
        let mut rating_sum_item = vec![0f64; items.len()];
        let mut first_seen = vec![i64::MAX; items.len()];
        let mut last_seen = vec![i64::MIN; users.len()];
        let mut rating_sum_user = vec![0f64; users.len()];
        let mut seen: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); users.len()];
        for r in &past {
            let (u, i) = (r.user as usize, r.item as usize);
            let (Some(item), Some(user)) = (items.get_mut(i), users.get_mut(u)) else {
                continue;
            };
            item.count_all += 1;
            let age_days = (cutoff - r.timestamp) as f32 / DAY;
            if age_days <= 7.0 {
                item.count_7d += 1;
            }
            if age_days <= 30.0 {
                item.count_30d += 1;
            }
            rating_sum_item[i] += f64::from(r.value);
            first_seen[i] = first_seen[i].min(r.timestamp);
            user.history_len += 1;
            rating_sum_user[u] += f64::from(r.value);
            last_seen[u] = last_seen[u].max(r.timestamp);
            for &g in &item.genres {
                user.genre_affinity[g] += 1.0;
            }
            seen[u].insert(r.item);
        }
        let global_mean = if past.is_empty() {
            3.5
        } else {
            past.iter().map(|r| f64::from(r.value)).sum::<f64>() / past.len() as f64
        };
        for (i, item) in items.iter_mut().enumerate() {
            item.mean_rating = ((rating_sum_item[i] + 10.0 * global_mean)
                / (f64::from(item.count_all) + 10.0)) as f32;
            if first_seen[i] != i64::MAX {
                item.days_since_first = (cutoff - first_seen[i]) as f32 / DAY;
            }
        }
        for (u, user) in users.iter_mut().enumerate() {
            if user.history_len > 0 {
                user.mean_rating = (rating_sum_user[u] / f64::from(user.history_len)) as f32;
                user.days_since_last = (cutoff - last_seen[u]) as f32 / DAY;
                let total: f32 = user.genre_affinity.iter().sum();
                if total > 0.0 {
                    user.genre_affinity.iter_mut().for_each(|g| *g /= total);
                }
            }
            user.seen = std::mem::take(&mut seen[u]).into_iter().collect();
        }
        Self {
            cutoff,
            genres,
            occupations,
            users,
            items,
            declared: DeclaredFeatures::compute(
                &FeatureSpec::default_spec(),
                data,
                history,
                cutoff,
            ),
        }
    }

    /// Whether `user` interacted with `item` before the cut-off.
    pub fn has_seen(&self, user: u32, item: u32) -> bool {
        self.users
            .get(user as usize)
            .is_some_and(|u| u.seen.binary_search(&item).is_ok())
    }

    /// Interaction counts per item (the popularity the log-q correction and novelty use).
    pub fn item_counts(&self) -> Vec<u64> {
        self.items.iter().map(|i| u64::from(i.count_all)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_pointing_outside_the_snapshot_are_refused() {
        let mut s = FeatureSnapshot::default();
        assert_eq!(s.check(), Ok(()));
        s.users.push(UserFeatures {
            seen: vec![0],
            ..Default::default()
        });
        s.declared.users = vec![0.0; s.declared.spec.user.width()];
        assert!(s
            .check()
            .unwrap_err()
            .contains("seen item 0 outside the 0 items"));
        s.users[0].seen.clear();
        assert_eq!(s.check(), Ok(()));
        s.users[0].occupation = Some(3);
        assert!(s.check().unwrap_err().contains("occupation"));
        s.users[0].occupation = None;
        s.items.push(ItemFeatures {
            genres: vec![2],
            ..Default::default()
        });
        s.declared.items = vec![0.0; s.declared.spec.item.width()];
        assert!(s
            .check()
            .unwrap_err()
            .contains("genre 2 outside the 0 genres"));
        s.items[0].genres.clear();
        assert_eq!(s.check(), Ok(()));
        s.declared.users.push(0.0);
        assert!(s.check().unwrap_err().contains("declared user values"));
        // No declared values at all: every row gets the defaults.
        s.declared.users.clear();
        s.declared.items.clear();
        assert_eq!(s.check(), Ok(()));
    }
    use crate::{ItemMeta, UserProfile};

    fn data() -> Dataset {
        Dataset {
            users: vec![
                UserProfile {
                    external_id: "1".into(),
                    age: Some(30),
                    ..Default::default()
                },
                UserProfile::default(),
            ],
            items: vec![
                ItemMeta {
                    genres: vec!["Drama".into()],
                    ..Default::default()
                },
                ItemMeta {
                    genres: vec!["Comedy".into(), "Drama".into()],
                    ..Default::default()
                },
            ],
            interactions: vec![],
            ..Dataset::default()
        }
    }

    fn row(user: u32, item: u32, day: i64) -> Interaction {
        Interaction {
            user,
            item,
            timestamp: day * 86_400,
            value: 4.0,
            kind: recsys_core::validation::EventType::Rating,
            relevant: false,
        }
    }

    #[test]
    fn rows_at_or_after_the_cutoff_are_invisible() {
        let history = vec![row(0, 0, 1), row(0, 1, 9), row(1, 1, 10), row(1, 0, 11)];
        let s = FeatureSnapshot::compute(&data(), &history, 10 * 86_400);
        assert_eq!(s.users[0].history_len, 2);
        assert_eq!(s.users[1].history_len, 0);
        assert_eq!(s.users[1].days_since_last, -1.0);
        assert_eq!(s.items[1].count_all, 1);
        assert_eq!(s.items[1].count_7d, 1);
        assert_eq!(s.items[0].count_7d, 0);
        assert!(s.has_seen(0, 1) && !s.has_seen(1, 1));
        // Drama appears in both of user 0's items, Comedy in one: shares 2/3 and 1/3.
        assert_eq!(s.genres, vec!["Comedy", "Drama"]);
        assert!((s.users[0].genre_affinity[1] - 2.0 / 3.0).abs() < 1e-6);
    }
}
