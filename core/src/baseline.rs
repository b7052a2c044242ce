//! Popularity baselines that every model must beat: all-time and recent.

use crate::event::Interaction;

/// Interactions per item over all rows (dense by item id).
pub fn item_counts(rows: &[Interaction], num_items: usize) -> Vec<u64> {
    item_counts_since(rows, num_items, i64::MIN)
}

/// Interactions per item among rows at or after `since` (unix seconds).
pub fn item_counts_since(rows: &[Interaction], num_items: usize, since: i64) -> Vec<u64> {
    let mut counts = vec![0u64; num_items];
    for row in rows.iter().filter(|r| r.timestamp >= since) {
        if let Some(c) = counts.get_mut(row.item as usize) {
            *c += 1;
        }
    }
    counts
}

/// Counts of the last `days` days before `cutoff` as scores; all-time counts break ties so that
/// items absent from the window still rank by long-run popularity.
pub fn recent_popularity_scores(
    rows: &[Interaction],
    num_items: usize,
    cutoff: i64,
    days: i64,
) -> Vec<f32> {
    let recent = item_counts_since(rows, num_items, cutoff - days * 86_400);
    let all = item_counts(rows, num_items);
    let total = all.iter().sum::<u64>().max(1) as f32;
    recent
        .iter()
        .zip(&all)
        .map(|(&r, &a)| r as f32 + a as f32 / total)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(item: u32, ts: i64) -> Interaction {
        Interaction {
            user: 0,
            item,
            timestamp: ts,
            value: 1.0,
            kind: crate::validation::EventType::Rating,
            relevant: false,
        }
    }

    #[test]
    fn recent_window_outranks_all_time() {
        let day = 86_400;
        let rows = vec![
            row(0, 0),
            row(0, 1),
            row(0, 2),
            row(1, 9 * day),
            row(2, 9 * day),
        ];
        assert_eq!(item_counts(&rows, 3), vec![3, 1, 1]);
        let s = recent_popularity_scores(&rows, 3, 10 * day, 3);
        assert!(s[1] > s[0] && s[2] > s[0]);
        // Items 1 and 2 tie in the window and all-time: equal scores.
        assert_eq!(s[1], s[2]);
    }
}
