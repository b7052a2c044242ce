//! Plain-text tables for people reading a terminal.

use super::evaluate::MetricRow;
use std::fmt::Write;

/// The metrics table: one line per system and subset, intervals in brackets.
pub fn metrics_table(rows: &[MetricRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:<5} {:>5}  {:>7} {:>22} {:>8} {:>22} {:>7} {:>7} {:>7} {:>7}",
        "system",
        "users",
        "n",
        "R@10",
        "R@50 [95% CI]",
        "R@100",
        "NDCG@10 [95% CI]",
        "MAP@10",
        "HR@10",
        "Cov@10",
        "Nov@10"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<22} {:<5} {:>5}  {:>7.4} {:>7.4} [{:.3},{:.3}] {:>8.4} {:>7.4} [{:.3},{:.3}] {:>7.4} {:>7.4} {:>7.4} {:>7.2}",
            r.system,
            r.subset,
            r.users,
            r.recall_at_10,
            r.recall_at_50.mean,
            r.recall_at_50.low,
            r.recall_at_50.high,
            r.recall_at_100,
            r.ndcg_at_10.mean,
            r.ndcg_at_10.low,
            r.ndcg_at_10.high,
            r.map_at_10,
            r.hit_rate_at_10,
            r.coverage_at_10,
            r.novelty_at_10
        );
    }
    out
}
