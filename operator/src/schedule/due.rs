//! Which run of a RetrainSchedule is due now: the latest scheduled time since the last one
//! (never more than one catching up after downtime), unless it is later than the starting
//! deadline; or a drift run, at most one per interval.

use super::cron::Cron;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// More missed times than this are reported as "more than".
pub const MISSED_CAP: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub enum Scheduled {
    /// Start the run scheduled at `at`; `missed` scheduled times passed since the last one
    /// (1 when on time), all but the latest are dropped.
    Run {
        at: Timestamp,
        missed: usize,
    },
    /// The latest scheduled time is older than the starting deadline: record it, start
    /// nothing.
    TooLate {
        at: Timestamp,
        missed: usize,
    },
    NotDue,
}

/// The schedule's decision at `now`, given the last scheduled time handled (or the
/// schedule's creation).
pub fn scheduled(
    cron: &Cron,
    tz: &TimeZone,
    last: Timestamp,
    now: Timestamp,
    starting_deadline: Option<SignedDuration>,
) -> Scheduled {
    // Like a CronJob: with a deadline, nothing older than it can start, so look no further.
    let from = match starting_deadline {
        Some(d) => last.max(now.checked_sub(d).unwrap_or(last)),
        None => last,
    };
    match cron.latest_between(from, now, tz, MISSED_CAP) {
        Some((at, missed)) => match starting_deadline {
            Some(d) if now.duration_since(at) > d => Scheduled::TooLate { at, missed },
            _ => Scheduled::Run { at, missed },
        },
        None => {
            // Everything since `last` is older than the deadline: the latest of it is late.
            if from > last {
                if let Some((at, missed)) = cron.latest_between(last, from, tz, MISSED_CAP) {
                    return Scheduled::TooLate { at, missed };
                }
            }
            Scheduled::NotDue
        }
    }
}

/// The largest PSI over the features, as read from Prometheus.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReading {
    pub feature: String,
    pub psi: f64,
}

/// Why a drift run should start now, or `None`: the PSI must exceed the threshold and the
/// last drift run must be at least `min_interval` ago.
pub fn drift_due(
    reading: Option<&DriftReading>,
    threshold: f64,
    min_interval: SignedDuration,
    last_drift_run: Option<Timestamp>,
    now: Timestamp,
) -> Option<String> {
    let r = reading?;
    if r.psi.is_nan() || r.psi <= threshold {
        return None;
    }
    if let Some(last) = last_drift_run {
        if now.duration_since(last) < min_interval {
            return None;
        }
    }
    Some(format!(
        "feature {} drifted: PSI {:.3} > {threshold}",
        r.feature, r.psi
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn one_catch_up_run_after_downtime_or_none_past_the_deadline() {
        let hourly: Cron = "0 * * * *".parse().unwrap();
        let utc = TimeZone::UTC;
        let last = at("2026-05-01T00:00:00Z");
        assert_eq!(
            scheduled(&hourly, &utc, last, at("2026-05-01T00:30:00Z"), None),
            Scheduled::NotDue
        );
        assert_eq!(
            scheduled(&hourly, &utc, last, at("2026-05-01T05:10:00Z"), None),
            Scheduled::Run {
                at: at("2026-05-01T05:00:00Z"),
                missed: 5
            }
        );
        let deadline = Some(SignedDuration::from_mins(5));
        assert_eq!(
            scheduled(&hourly, &utc, last, at("2026-05-01T05:10:00Z"), deadline),
            Scheduled::TooLate {
                at: at("2026-05-01T05:00:00Z"),
                missed: 5
            }
        );
        assert_eq!(
            scheduled(&hourly, &utc, last, at("2026-05-01T05:03:00Z"), deadline),
            Scheduled::Run {
                at: at("2026-05-01T05:00:00Z"),
                missed: 1
            }
        );
    }

    #[test]
    fn drift_needs_the_threshold_and_the_interval() {
        let r = DriftReading {
            feature: "user_age".into(),
            psi: 0.31,
        };
        let day = SignedDuration::from_hours(24);
        let now = at("2026-05-02T00:00:00Z");
        let why = drift_due(Some(&r), 0.2, day, None, now).unwrap();
        assert!(why.contains("user_age") && why.contains("0.310"), "{why}");
        assert!(drift_due(Some(&r), 0.4, day, None, now).is_none());
        assert!(drift_due(None, 0.2, day, None, now).is_none());
        let recent = Some(at("2026-05-01T12:00:00Z"));
        assert!(drift_due(Some(&r), 0.2, day, recent, now).is_none());
        let old = Some(at("2026-05-01T00:00:00Z"));
        assert!(drift_due(Some(&r), 0.2, day, old, now).is_some());
        let nan = DriftReading {
            feature: "x".into(),
            psi: f64::NAN,
        };
        assert!(drift_due(Some(&nan), 0.2, day, None, now).is_none());
    }
}
