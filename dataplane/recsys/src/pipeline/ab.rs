//! `recsys ab plan` and `recsys ab analyze`: the experiment statistics of `recsys-core` on the
//! command line. Analyze reads per-user counts (CSV: `arm,user_id,x,y`, where x is the
//! denominator — impressions, or 1 for per-user metrics — and y the numerator: clicks,
//! conversions, revenue), one row per user, and prints the same numbers the Experiment
//! controller writes to status.

use anyhow::{bail, Context};
use recsys_core::stats::analysis::{analyze, Analysis, Settings};
use recsys_core::stats::ArmStats;
use std::collections::HashSet;
use std::path::Path;

/// Sums per-user rows into the two arms; a user listed twice, in either arm, is refused
/// (the randomization unit is the user: one user, one arm, one row).
pub fn read_users(
    path: &Path,
    control: &str,
    treatment: &str,
) -> anyhow::Result<(ArmStats, ArmStats)> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let header = reader.headers()?.clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| {
                format!(
                    "{}: no `{name}` column (need arm,user_id,x,y)",
                    path.display()
                )
            })
    };
    let (arm, user, x, y) = (col("arm")?, col("user_id")?, col("x")?, col("y")?);
    let (mut c, mut t) = (ArmStats::default(), ArmStats::default());
    let mut seen = HashSet::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let number = |j: usize, what: &str| -> anyhow::Result<f64> {
            let v: f64 = row[j]
                .trim()
                .parse()
                .with_context(|| format!("row {}: {what} {:?} is not a number", i + 2, &row[j]))?;
            if !v.is_finite() || v < 0.0 {
                bail!("row {}: {what} must be a non-negative number", i + 2);
            }
            Ok(v)
        };
        if !seen.insert(row[user].to_owned()) {
            bail!("row {}: user {} appears twice", i + 2, &row[user]);
        }
        let (xv, yv) = (number(x, "x")?, number(y, "y")?);
        match &row[arm] {
            a if a == control => c.add(xv, yv),
            a if a == treatment => t.add(xv, yv),
            other => bail!(
                "row {}: arm {other:?} is neither {control:?} nor {treatment:?}",
                i + 2
            ),
        }
    }
    if c.n < 2.0 || t.n < 2.0 || c.sum_x <= 0.0 || t.sum_x <= 0.0 {
        bail!("each arm needs at least two users with a positive denominator");
    }
    Ok((c, t))
}

pub fn run_analyze(
    path: &Path,
    control: &str,
    treatment: &str,
    settings: &Settings,
) -> anyhow::Result<Analysis> {
    let (c, t) = read_users(path, control, treatment)?;
    Ok(analyze(&c, &t, settings, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_rows_become_the_arms_sufficient_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        std::fs::write(
            &path,
            "arm,user_id,x,y\ncontrol,a,10,1\ncontrol,b,4,0\ntreatment,c,8,2\ntreatment,d,3,1\ncontrol,e,6,1\n",
        )
        .unwrap();
        let (c, t) = read_users(&path, "control", "treatment").unwrap();
        assert_eq!((c.n, c.sum_x, c.sum_y, c.sum_xy), (3.0, 20.0, 2.0, 16.0));
        assert_eq!((t.n, t.sum_x, t.sum_y), (2.0, 11.0, 3.0));
        let settings = Settings {
            alpha: 0.05,
            expected_split: (50.0, 50.0),
            tau: 0.01,
        };
        let a = run_analyze(&path, "control", "treatment", &settings).unwrap();
        assert_eq!(a, analyze(&c, &t, &settings, 1.0));

        std::fs::write(&path, "arm,user_id,x,y\ncontrol,a,1,0\ntreatment,a,1,1\n").unwrap();
        let err = read_users(&path, "control", "treatment").unwrap_err();
        assert!(err.to_string().contains("user a appears twice"), "{err}");
        std::fs::write(&path, "arm,user_id,x,y\ncontrol,a,1,-2\n").unwrap();
        assert!(read_users(&path, "control", "treatment").is_err());
    }
}
