//! Splits on the global timeline: every row before a cut-off trains, every row after tests.
//! Never per user, never random — that would leak the future into training.

use crate::event::Interaction;
use serde::{Deserialize, Serialize};

const DAY: i64 = 86_400;

/// The cut-offs of a three-way split: `train < validation_start <= validation < test_start <= test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitWindows {
    pub validation_start: i64,
    pub test_start: i64,
}

impl SplitWindows {
    /// The product's default windows: train before T−14 d, validation T−14 d..T−7 d, test from
    /// T−7 d, where T is the last timestamp.
    pub fn seed(last_timestamp: i64) -> Self {
        Self::trailing_days(last_timestamp, 14, 7)
    }

    /// Validation starts `validation_days` before T, test starts `test_days` before T.
    pub fn trailing_days(last_timestamp: i64, validation_days: i64, test_days: i64) -> Self {
        Self {
            validation_start: last_timestamp - validation_days * DAY,
            test_start: last_timestamp - test_days * DAY,
        }
    }

    /// The global 80/10/10 split: cut-offs are the timestamps at positions ⌊0.8·n⌋ and ⌊0.9·n⌋
    /// of the rows sorted by time (rows equal to a cut-off belong to the later part).
    pub fn by_fraction(rows: &[Interaction], train: f64, validation: f64) -> Option<Self> {
        if rows.is_empty() {
            return None;
        }
        let mut times: Vec<i64> = rows.iter().map(|r| r.timestamp).collect();
        times.sort_unstable();
        let n = times.len();
        let at = |fraction: f64| times[((fraction * n as f64).floor() as usize).min(n - 1)];
        Some(Self {
            validation_start: at(train),
            test_start: at(train + validation),
        })
    }
}

/// Rows partitioned by [`SplitWindows`]; each part keeps the input order.
#[derive(Debug, Clone, Default)]
pub struct TimeSplit {
    pub train: Vec<Interaction>,
    pub validation: Vec<Interaction>,
    pub test: Vec<Interaction>,
}

impl TimeSplit {
    pub fn new(rows: &[Interaction], windows: SplitWindows) -> Self {
        let mut split = Self::default();
        for row in rows {
            if row.timestamp < windows.validation_start {
                split.train.push(*row);
            } else if row.timestamp < windows.test_start {
                split.validation.push(*row);
            } else {
                split.test.push(*row);
            }
        }
        split
    }

    /// Train and validation together: what the final model is refitted on.
    pub fn train_and_validation(&self) -> Vec<Interaction> {
        self.train.iter().chain(&self.validation).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts: i64) -> Interaction {
        Interaction {
            user: 0,
            item: 0,
            timestamp: ts,
            value: 5.0,
            kind: crate::validation::EventType::Rating,
            relevant: false,
        }
    }

    #[test]
    fn seed_windows_cut_at_14_and_7_days() {
        let last = 100 * DAY;
        let w = SplitWindows::seed(last);
        assert_eq!(w.validation_start, 86 * DAY);
        assert_eq!(w.test_start, 93 * DAY);
    }

    #[test]
    fn no_training_row_is_later_than_the_cut() {
        let rows: Vec<_> = (0..1000).map(|i| row(i * 3600)).collect();
        let w = SplitWindows::trailing_days(999 * 3600, 10, 5);
        let split = TimeSplit::new(&rows, w);
        assert!(split.train.iter().all(|r| r.timestamp < w.validation_start));
        assert!(split
            .validation
            .iter()
            .all(|r| (w.validation_start..w.test_start).contains(&r.timestamp)));
        assert!(split.test.iter().all(|r| r.timestamp >= w.test_start));
        assert_eq!(
            split.train.len() + split.validation.len() + split.test.len(),
            rows.len()
        );
    }

    #[test]
    fn fraction_cutoffs_put_ties_in_the_later_part() {
        let rows: Vec<_> = [1, 2, 3, 4, 5, 6, 7, 8, 8, 8]
            .iter()
            .map(|&t| row(t))
            .collect();
        let w = SplitWindows::by_fraction(&rows, 0.8, 0.1).unwrap();
        assert_eq!(w.validation_start, 8);
        let split = TimeSplit::new(&rows, w);
        assert_eq!(split.train.len(), 7);
        assert_eq!(split.test.len(), 3);
    }
}
