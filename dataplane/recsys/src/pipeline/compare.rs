//! Comparison with the previous model version: each version stores its per-user NDCG@10 on
//! the test window, so the next one can bootstrap the paired difference on the same users
//! and say whether it is better, worse, or indistinguishable.

use recsys_core::bootstrap::{bootstrap_mean, Interval};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const EVALUATION_FILE: &str = "evaluation.json";
const RESAMPLES: usize = 1000;
const SEED: u64 = 20_260_102;

/// What a version remembers of its offline evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluationRecord {
    pub model_version: String,
    pub split: String,
    pub test_start: i64,
    pub system: String,
    pub ndcg_at_10: f64,
    /// NDCG@10 per evaluated user, keyed by the external user id.
    pub per_user_ndcg: BTreeMap<String, f64>,
}

/// The part of a version's evaluation file read back here (it holds more).
#[derive(Deserialize)]
struct Stored {
    record: EvaluationRecord,
}

/// The verdict against the previous version.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub previous_version: Option<String>,
    pub previous_ndcg_at_10: Option<f64>,
    pub common_users: usize,
    /// Paired 95 % interval of NDCG@10(current) − NDCG@10(previous).
    pub difference: Option<Interval>,
    pub decision: Decision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Better,
    Worse,
    NoSignificantDifference,
    NoPreviousVersion,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Better => "better than the previous version",
            Self::Worse => "worse than the previous version",
            Self::NoSignificantDifference => "no significant difference from the previous version",
            Self::NoPreviousVersion => "no comparable previous version",
        })
    }
}

/// The newest version directory in `root` other than `current` whose evaluation used the same
/// split and test window (otherwise the numbers are not comparable).
pub fn find_previous(
    root: &Path,
    current: &str,
    split: &str,
    test_start: i64,
) -> Option<(PathBuf, EvaluationRecord)> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n != current))
        .collect();
    dirs.sort();
    dirs.into_iter().rev().find_map(|dir| {
        let text = std::fs::read_to_string(dir.join(EVALUATION_FILE)).ok()?;
        let record = serde_json::from_str::<Stored>(&text).ok()?.record;
        (record.split == split && record.test_start == test_start).then_some((dir, record))
    })
}

/// Compares `current` with `previous` on their common users.
pub fn verdict(current: &EvaluationRecord, previous: Option<&EvaluationRecord>) -> Verdict {
    let Some(previous) = previous else {
        return Verdict {
            previous_version: None,
            previous_ndcg_at_10: None,
            common_users: 0,
            difference: None,
            decision: Decision::NoPreviousVersion,
        };
    };
    let diffs: Vec<f64> = current
        .per_user_ndcg
        .iter()
        .filter_map(|(user, now)| previous.per_user_ndcg.get(user).map(|before| now - before))
        .collect();
    let (difference, decision) = if diffs.is_empty() {
        (None, Decision::NoPreviousVersion)
    } else {
        let interval = bootstrap_mean(&diffs, RESAMPLES, SEED);
        let decision = if interval.low > 0.0 {
            Decision::Better
        } else if interval.high < 0.0 {
            Decision::Worse
        } else {
            Decision::NoSignificantDifference
        };
        (Some(interval), decision)
    };
    Verdict {
        previous_version: Some(previous.model_version.clone()),
        previous_ndcg_at_10: Some(previous.ndcg_at_10),
        common_users: diffs.len(),
        difference,
        decision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: &str, scores: &[f64]) -> EvaluationRecord {
        EvaluationRecord {
            model_version: version.into(),
            split: "seed".into(),
            test_start: 100,
            system: "two-tower+ranker".into(),
            ndcg_at_10: scores.iter().sum::<f64>() / scores.len() as f64,
            per_user_ndcg: scores
                .iter()
                .enumerate()
                .map(|(i, &s)| (format!("u{i}"), s))
                .collect(),
        }
    }

    #[test]
    fn a_uniform_improvement_is_better_and_noise_is_not() {
        let before: Vec<f64> = (0..100).map(|i| (i % 10) as f64 / 10.0).collect();
        let after: Vec<f64> = before.iter().map(|s| s + 0.05).collect();
        let v = verdict(&record("b", &after), Some(&record("a", &before)));
        assert_eq!(v.decision, Decision::Better);
        assert_eq!(v.common_users, 100);
        let v = verdict(&record("a", &before), Some(&record("b", &after)));
        assert_eq!(v.decision, Decision::Worse);
        // Half the users up, half down by the same amount: no evidence either way.
        let mixed: Vec<f64> = before
            .iter()
            .enumerate()
            .map(|(i, s)| if i % 2 == 0 { s + 0.05 } else { s - 0.05 })
            .collect();
        let v = verdict(&record("c", &mixed), Some(&record("a", &before)));
        assert_eq!(v.decision, Decision::NoSignificantDifference);
        assert_eq!(
            verdict(&record("a", &before), None).decision,
            Decision::NoPreviousVersion
        );
    }

    #[test]
    fn only_versions_with_the_same_split_and_window_are_compared() {
        let root = tempfile::tempdir().unwrap();
        let write = |name: &str, r: &EvaluationRecord| {
            let dir = root.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let stored = serde_json::json!({ "record": r, "rows": [] });
            std::fs::write(dir.join(EVALUATION_FILE), stored.to_string()).unwrap();
        };
        write("v1", &record("v1", &[0.1]));
        let mut other_window = record("v2", &[0.2]);
        other_window.test_start = 5;
        write("v2", &other_window);
        write("v3", &record("v3", &[0.3]));
        let (_, found) = find_previous(root.path(), "v3", "seed", 100).unwrap();
        assert_eq!(found.model_version, "v1");
        assert!(find_previous(root.path(), "v3", "global", 100).is_none());
    }
}
