//! The offline gates a trained version must pass before users see it: absolute floors, and
//! non-inferiority against the live version on the paired interval the Job measured on the
//! same test window with the same users.

use crate::builders::training_job::TrainResult;
use crate::crd::v1alpha1::OfflineGates;

/// `Ok(summary)` when every gate passes, `Err(reason)` naming the first that does not.
/// `live_expected`: the Job was asked to compare with a live version.
pub fn judge(gates: &OfflineGates, r: &TrainResult, live_expected: bool) -> Result<String, String> {
    let auc = r.ranker_auc.ok_or_else(|| {
        "no ranker AUC: the test window had no positive candidate to rank".to_owned()
    })?;
    if auc < gates.min_auc {
        return Err(format!("ranker AUC {auc:.4} < minAuc {:.4}", gates.min_auc));
    }
    if let Some(min) = gates.min_ndcg_at10 {
        if r.ndcg_at10 < min {
            return Err(format!("NDCG@10 {:.4} < minNdcgAt10 {min:.4}", r.ndcg_at10));
        }
    }
    let mut summary = format!("AUC {auc:.4}, NDCG@10 {:.4}", r.ndcg_at10);
    match (&r.live_version, r.live_ndcg_at10, r.versus_live) {
        (Some(live), Some(live_ndcg), Some(diff)) => {
            let allowed = gates.max_ndcg_regression * live_ndcg;
            let range = format!(
                "{:+.4} [{:+.4}, {:+.4}] on {} users",
                diff.mean, diff.low, diff.high, r.common_users
            );
            if diff.low < -allowed {
                return Err(format!(
                    "NDCG@10 versus live {live}: {range}; a drop of up to {:.1} % cannot be ruled out, {:.1} % allowed",
                    -100.0 * diff.low / live_ndcg.max(f64::MIN_POSITIVE),
                    100.0 * gates.max_ndcg_regression
                ));
            }
            summary.push_str(&format!(", versus live {live} {range}"));
            if r.live_saw_test_window == Some(true) {
                summary.push_str(" (the live version saw the test window)");
            }
        }
        _ if live_expected => {
            return Err(
                "no comparison with the live version (no common users on the test window)".into(),
            )
        }
        _ => summary.push_str(", no live version to compare with"),
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::training_job::Interval;

    fn result(auc: f64, low: f64) -> TrainResult {
        TrainResult {
            version: "v2".into(),
            model_uri: "s3://m/v2".into(),
            ndcg_at10: 0.30,
            ranker_auc: Some(auc),
            live_version: Some("v1".into()),
            live_ndcg_at10: Some(0.30),
            versus_live: Some(Interval {
                mean: low + 0.004,
                low,
                high: low + 0.008,
            }),
            common_users: 800,
            live_saw_test_window: Some(false),
            rows: 10_000,
        }
    }

    #[test]
    fn absolute_and_relative_gates() {
        let gates = OfflineGates::default(); // AUC ≥ 0.75, drop ≤ 2 % (0.006 of 0.30)
        assert!(judge(&gates, &result(0.80, -0.005), true).is_ok());
        let e = judge(&gates, &result(0.70, 0.01), true).unwrap_err();
        assert!(e.contains("AUC 0.7000 < minAuc 0.7500"), "{e}");
        let e = judge(&gates, &result(0.80, -0.009), true).unwrap_err();
        assert!(e.contains("3.0 %") && e.contains("2.0 % allowed"), "{e}");
        let mut no_live = result(0.8, 0.0);
        no_live.versus_live = None;
        assert!(judge(&gates, &no_live, true).is_err());
        assert!(judge(&gates, &no_live, false).is_ok());
        let floor = OfflineGates {
            min_ndcg_at10: Some(0.35),
            ..gates
        };
        assert!(judge(&floor, &result(0.8, 0.0), true).is_err());
        let mut no_auc = result(0.8, 0.0);
        no_auc.ranker_auc = None;
        assert!(judge(&OfflineGates::default(), &no_auc, true).is_err());
    }
}
