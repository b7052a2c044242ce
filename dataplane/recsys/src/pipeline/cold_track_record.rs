//! How the chosen cold list would have served the newcomers of every earlier window, beside
//! most-popular. A test window can hold a handful of cold users (11 on MovieLens's seed
//! split), too few to tell two lists apart; the windows before it, judged the same way (lists
//! as of each window's start, the window's relevant items), show whether the choice holds up
//! over time or only on the weeks it was chosen on. Windows older than those the choice
//! looked at are out of its sample.

use super::cold_start::{self, ColdChoice, ColdPolicy, Counted, Scores};
use recsys_core::Interaction;
use recsys_data::features::FeatureSnapshot;
use serde::{Deserialize, Serialize};

/// How many windows the record steps back at most (a year of weeks).
pub const MAX_WINDOWS: usize = 52;

/// One window's newcomers and what each list scored on them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WindowRecord {
    /// Window start (unix seconds); the lists are as of this moment.
    pub start: i64,
    pub users: usize,
    /// Mean NDCG@10 of the chosen list(s) and of most-popular on them.
    pub chosen: f64,
    pub most_popular: f64,
    /// Whether the cold choice was judged on this window's newcomers.
    pub used_for_choice: bool,
}

/// Paired per-user difference (chosen − most-popular) pooled over a set of windows.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct Pooled {
    pub windows: usize,
    /// Windows where the chosen list's mean beat most-popular's.
    pub windows_won: usize,
    pub users: usize,
    pub difference: f64,
    pub standard_error: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrackRecord {
    /// Where the windows step back from (the test window's start, unix seconds).
    pub test_start: i64,
    pub window_days: f64,
    /// Newest first; windows without a newcomer with a relevant item are left out.
    pub windows: Vec<WindowRecord>,
    /// Over every window, and over those the choice did not look at.
    pub all: Pooled,
    pub out_of_sample: Pooled,
}

/// The record over windows of `window_secs` stepping back from `test_start`, on the rows of
/// `history` (everything before the test). `choice` was made with validation starting one
/// window before `test_start`, so its `windows` newest windows are the ones it was judged on.
pub fn compute(
    choice: &ColdChoice,
    snapshot: &FeatureSnapshot,
    history: &[Interaction],
    test_start: i64,
    window_secs: i64,
) -> TrackRecord {
    let judged =
        cold_start::newcomer_windows(history, test_start, window_secs, MAX_WINDOWS, usize::MAX);
    let rows = choice.counted.rows(history);
    let chosen = cold_start::ndcg_per_user(&judged, snapshot, |t| {
        Scores::of(choice.policy, choice.profile, snapshot, &rows, t)
    });
    let all_rows = Counted::AllEvents.rows(history);
    let popular = cold_start::ndcg_per_user(&judged, snapshot, |t| {
        Scores::of(ColdPolicy::AllTime, None, snapshot, &all_rows, t)
    });
    // With every validation user voting, the choice saw validation's window only.
    let used = if choice.cold_users_only {
        choice.windows
    } else {
        1
    };
    let windows: Vec<(WindowRecord, &[f64], &[f64])> = judged
        .iter()
        .zip(chosen.iter().zip(&popular))
        .enumerate()
        .filter(|(_, (j, _))| !j.users.is_empty())
        .map(|(k, (j, (c, p)))| {
            let record = WindowRecord {
                start: j.as_of,
                users: j.users.len(),
                chosen: mean(c),
                most_popular: mean(p),
                used_for_choice: k < used,
            };
            (record, c.as_slice(), p.as_slice())
        })
        .collect();
    let all = pool(windows.iter().map(|w| (w.1, w.2)));
    let out_of_sample = pool(
        windows
            .iter()
            .filter(|w| !w.0.used_for_choice)
            .map(|w| (w.1, w.2)),
    );
    TrackRecord {
        test_start,
        window_days: window_secs as f64 / 86_400.0,
        windows: windows.into_iter().map(|w| w.0).collect(),
        all,
        out_of_sample,
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Pools per-user differences of (chosen, most-popular) score pairs, one pair per window.
fn pool<'a>(windows: impl Iterator<Item = (&'a [f64], &'a [f64])>) -> Pooled {
    let mut out = Pooled::default();
    let mut diffs = Vec::new();
    for (chosen, popular) in windows {
        out.windows += 1;
        out.windows_won += usize::from(mean(chosen) > mean(popular));
        diffs.extend(chosen.iter().zip(popular).map(|(a, b)| a - b));
    }
    out.users = diffs.len();
    (out.difference, out.standard_error) = cold_start::mean_and_standard_error(&diffs);
    out
}

impl TrackRecord {
    /// One line for the training log.
    pub fn summary(&self) -> String {
        let line = |p: &Pooled| {
            format!(
                "{:+.4} ± {:.4} on {} newcomers, better in {} of {} windows",
                p.difference, p.standard_error, p.users, p.windows_won, p.windows
            )
        };
        let mut out = format!(
            "chosen list − most-popular over the {} earlier {:.0}-day windows: {}",
            self.all.windows,
            self.window_days,
            line(&self.all)
        );
        if self.out_of_sample.windows > 0 {
            out.push_str(&format!(
                "; on the {} the choice did not see: {}",
                self.out_of_sample.windows,
                line(&self.out_of_sample)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_core::validation::EventType;
    use recsys_data::features::profile::ProfileKey;
    use recsys_data::features::UserFeatures;

    const DAY: i64 = 86_400;

    fn by(user: u32, item: u32, day: i64, relevant: bool) -> Interaction {
        Interaction {
            user,
            item,
            timestamp: day * DAY,
            value: 1.0,
            kind: EventType::Click,
            relevant,
        }
    }

    fn choice(policy: ColdPolicy, counted: Counted, windows: usize) -> ColdChoice {
        ColdChoice {
            policy,
            counted,
            validation_ndcg_at_10: 0.0,
            users: 0,
            cold_users_only: true,
            windows,
            validation_cold_ndcg_at_10: None,
            tried: Vec::new(),
            profile: None,
            profile_tried: Vec::new(),
            set_aside: Vec::new(),
        }
    }

    /// Item 0 is busy but never liked; item 1 is liked by each week's newcomers. Users 0–1 are
    /// the early crowd; users 2.. arrive one per week from day 7 and like item 1.
    fn world(weeks: u32) -> (FeatureSnapshot, Vec<Interaction>) {
        let mut rows: Vec<Interaction> = (0..20).map(|d| by(d % 2, 0, 0, false)).collect();
        rows.push(by(0, 1, 1, true));
        for w in 1..=weeks {
            let user = 1 + w;
            rows.push(by(user, 1, i64::from(w) * 7 + 1, true));
        }
        let snapshot = FeatureSnapshot {
            users: vec![UserFeatures::default(); 2 + weeks as usize],
            items: vec![Default::default(); 2],
            ..Default::default()
        };
        (snapshot, rows)
    }

    #[test]
    fn every_earlier_window_is_judged_and_the_unseen_ones_pooled_apart() {
        let (snapshot, rows) = world(6);
        let test_start = 7 * 7 * DAY;
        let liked = choice(ColdPolicy::AllTime, Counted::RelevantEvents, 2);
        let record = compute(&liked, &snapshot, &rows, test_start, 7 * DAY);
        // Weeks 1..6 each hold one newcomer; week 0 holds the first rows, where the data
        // begins, so it is not a window of newcomers judged against earlier lists.
        assert_eq!(record.windows.len(), 6);
        assert!(record.windows.windows(2).all(|w| w[0].start > w[1].start));
        assert_eq!(
            record
                .windows
                .iter()
                .map(|w| w.used_for_choice)
                .collect::<Vec<_>>(),
            [true, true, false, false, false, false]
        );
        // The liked item heads the relevant-events list; most-popular puts the busy one first.
        for w in &record.windows {
            assert_eq!(w.chosen, 1.0);
            assert!(w.most_popular < 1.0);
        }
        assert_eq!(record.all.windows_won, 6);
        assert_eq!(record.all.users, 6);
        assert_eq!(record.out_of_sample.windows, 4);
        assert!(record.all.difference > 0.0);
    }

    #[test]
    fn most_popular_against_itself_differs_by_nothing() {
        let (snapshot, rows) = world(4);
        let same = choice(ColdPolicy::AllTime, Counted::AllEvents, 1);
        let record = compute(&same, &snapshot, &rows, 5 * 7 * DAY, 7 * DAY);
        assert_eq!(record.all.windows, 4);
        assert_eq!(record.all.windows_won, 0);
        assert_eq!(record.all.difference, 0.0);
        assert_eq!(record.all.standard_error, 0.0);
        assert_eq!(record.out_of_sample.windows, 3);
    }

    #[test]
    fn a_profile_blend_is_scored_per_segment() {
        // The early crowd: a man busy on item 0, a woman on item 1. Each week a woman arrives
        // and likes item 1.
        let mut rows: Vec<Interaction> = (0..20).map(|_| by(0, 0, 0, false)).collect();
        rows.extend((0..5).map(|_| by(1, 1, 0, false)));
        rows.extend((1..=3).map(|w| by(1 + w, 1, i64::from(w) * 7 + 1, true)));
        let gender = |g: &str| UserFeatures {
            gender: Some(g.into()),
            ..Default::default()
        };
        let mut snapshot = FeatureSnapshot {
            users: vec![UserFeatures::default(); 5],
            items: vec![Default::default(); 2],
            ..Default::default()
        };
        let mut choice = choice(ColdPolicy::AllTime, Counted::AllEvents, 1);
        choice.profile = Some(cold_start::ProfileBlend {
            key: ProfileKey::Gender,
            weight_of_all: 0.25,
        });
        // Without profiles every user falls back to everyone's list: most-popular itself.
        let record = compute(&choice, &snapshot, &rows, 4 * 7 * DAY, 7 * DAY);
        assert_eq!(record.all.windows, 3);
        assert_eq!(record.all.difference, 0.0);
        snapshot.users = vec![
            gender("M"),
            gender("F"),
            gender("F"),
            gender("F"),
            gender("F"),
        ];
        let record = compute(&choice, &snapshot, &rows, 4 * 7 * DAY, 7 * DAY);
        for w in &record.windows {
            assert_eq!((w.chosen, w.users), (1.0, 1), "women's list heads item 1");
            assert!(w.most_popular < 1.0);
        }
        assert_eq!(record.all.windows_won, 3);
    }

    #[test]
    fn the_windows_the_choice_saw_score_what_the_choice_recorded() {
        // Twelve newcomers a week for 20 weeks, each liking that week's two trending items;
        // an early crowd is busy on item 20. Validation is the last week before the test.
        let week = 7 * DAY;
        let mut rows: Vec<Interaction> = (0..30).map(|_| by(0, 20, 0, false)).collect();
        for w in 1..=20u32 {
            for n in 0..12 {
                let user = 1 + (w - 1) * 12 + n;
                let day = i64::from(w) * 7 + i64::from(n % 7);
                rows.push(by(user, (w % 5) * 2, day, true));
                rows.push(by(user, (w % 5) * 2 + 1, day, n % 3 == 0));
            }
        }
        let test_start = 21 * week;
        let validation_start = test_start - week;
        let history: Vec<Interaction> = rows
            .iter()
            .filter(|r| r.timestamp < test_start)
            .copied()
            .collect();
        let train: Vec<Interaction> = history
            .iter()
            .filter(|r| r.timestamp < validation_start)
            .copied()
            .collect();
        let users = 1 + 20 * 12;
        let mut snapshot = FeatureSnapshot {
            cutoff: validation_start,
            users: vec![UserFeatures::default(); users],
            items: vec![Default::default(); 21],
            ..Default::default()
        };
        for r in &train {
            snapshot.users[r.user as usize].history_len += 1;
        }
        let mut labels: std::collections::BTreeMap<u32, std::collections::HashSet<u32>> =
            Default::default();
        for r in history
            .iter()
            .filter(|r| r.relevant && r.timestamp >= validation_start)
        {
            labels.entry(r.user).or_default().insert(r.item);
        }
        let choice = cold_start::choose(&snapshot, &train, &labels, week);
        assert!(choice.cold_users_only && choice.windows > 1);
        let record = compute(&choice, &snapshot, &history, test_start, week);
        let seen: Vec<&WindowRecord> = record
            .windows
            .iter()
            .filter(|w| w.used_for_choice)
            .collect();
        assert_eq!(seen.len(), choice.windows);
        let users: usize = seen.iter().map(|w| w.users).sum();
        assert_eq!(users, choice.users);
        let pooled = seen.iter().map(|w| w.chosen * w.users as f64).sum::<f64>() / users as f64;
        assert!((pooled - choice.validation_ndcg_at_10).abs() < 1e-12);
        assert_eq!(record.windows.len(), 20);
    }

    #[test]
    fn no_earlier_window_pools_to_nothing() {
        let (snapshot, rows) = world(0);
        let record = compute(
            &choice(ColdPolicy::AllTime, Counted::AllEvents, 1),
            &snapshot,
            &rows,
            DAY,
            7 * DAY,
        );
        assert!(record.windows.is_empty());
        assert_eq!(record.all, Pooled::default());
        assert!(record.summary().contains("0 earlier"));
    }
}
