//! Five-field cron expressions (minute hour day-of-month month day-of-week) evaluated in an
//! IANA time zone.
//!
//! Daylight-saving rules, so a schedule does what a person reading it expects:
//! - a wall-clock time that does not exist on a spring-forward day runs once, at the same
//!   distance after the jump (02:30 becomes 03:30 where 02:00 jumps to 03:00);
//! - a wall-clock time that happens twice on a fall-back day runs once, at its first
//!   occurrence.
//!
//! Day-of-month and day-of-week follow Vixie cron: when both are restricted, a day matching
//! either runs.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use std::fmt;

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// Bit 0 is Sunday.
    days_of_week: u64,
    dom_restricted: bool,
    dow_restricted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CronError {}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The first name's value (1 for months, 0 for days).
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
    },
    // 7 is accepted as Sunday, as every cron does.
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &DAYS,
        names_from: 0,
    },
];

impl Field {
    fn value(&self, text: &str) -> Result<u32, CronError> {
        let lower = text.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + self.names_from);
        }
        let v: u32 = text
            .parse()
            .map_err(|_| CronError(format!("{}: {text:?} is not a number or a name", self.name)))?;
        if v < self.min || v > self.max {
            return Err(CronError(format!(
                "{}: {v} is outside {}–{}",
                self.name, self.min, self.max
            )));
        }
        Ok(v)
    }

    fn parse(&self, text: &str) -> Result<u64, CronError> {
        let mut bits = 0u64;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| CronError(format!("{}: bad step {s:?}", self.name)))?;
                    (r, step)
                }
                None => (item, 1),
            };
            let (low, high) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                (self.value(a)?, self.value(b)?)
            } else {
                let v = self.value(range)?;
                // `5/15` means from 5 to the end in steps of 15.
                (v, if item.contains('/') { self.max } else { v })
            };
            if low > high {
                return Err(CronError(format!(
                    "{}: range {range:?} runs backwards",
                    self.name
                )));
            }
            let mut v = low;
            while v <= high {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok(bits)
    }
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(text: &str) -> Result<Self, CronError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError(format!(
                "a schedule has 5 fields (minute hour day-of-month month day-of-week), {text:?} has {}",
                parts.len()
            )));
        }
        let mut bits = [0u64; 5];
        for (i, (field, part)) in FIELDS.iter().zip(&parts).enumerate() {
            bits[i] = field.parse(part)?;
        }
        let mut days_of_week = bits[4];
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        Ok(Self {
            minutes: bits[0],
            hours: bits[1],
            days_of_month: bits[2],
            months: bits[3],
            days_of_week,
            dom_restricted: !parts[2].starts_with('*'),
            dow_restricted: !parts[4].starts_with('*'),
        })
    }
}

fn set_bits(bits: u64) -> impl Iterator<Item = i8> {
    (0..64)
        .filter(move |i| bits & (1 << i) != 0)
        .map(|i| i as i8)
}

/// How far a wall clock can jump in one transition; a candidate earlier than the start by
/// more than this can never fall after it.
const MAX_JUMP_MINUTES: i64 = 180;
/// Feb 29 on a given weekday recurs within 28 years.
const SEARCH_DAYS: i64 = 366 * 29;

impl Cron {
    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first scheduled instant strictly after `after`, or `None` when the schedule never
    /// fires (`0 0 30 2 *`).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start: DateTime = after.to_zoned(tz.clone()).datetime();
        let earliest = start.checked_sub(MAX_JUMP_MINUTES.minutes()).ok()?;
        let mut best: Option<(Timestamp, Date)> = None;
        let mut date = earliest.date();
        for _ in 0..SEARCH_DAYS {
            // A gap can move a candidate past the next day's first one, never further.
            if let Some((_, found)) = best {
                if date > found.tomorrow().ok()? {
                    break;
                }
            }
            if self.day_matches(date) {
                for hour in set_bits(self.hours) {
                    for minute in set_bits(self.minutes) {
                        let civil = date.at(hour, minute, 0, 0);
                        if civil < earliest {
                            continue;
                        }
                        let Ok(zoned) = civil.to_zoned(tz.clone()) else {
                            continue;
                        };
                        let ts = zoned.timestamp();
                        if ts > after && best.is_none_or(|(b, _)| ts < b) {
                            best = Some((ts, date));
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        best.map(|(ts, _)| ts)
    }

    /// The latest scheduled instant in `(after, until]`, and how many there were (counted up
    /// to `cap`).
    pub fn latest_between(
        &self,
        after: Timestamp,
        until: Timestamp,
        tz: &TimeZone,
        cap: usize,
    ) -> Option<(Timestamp, usize)> {
        let first = self.next_after(after, tz).filter(|t| *t <= until)?;
        let mut count = 1;
        let mut cursor = first;
        while count < cap {
            match self.next_after(cursor, tz) {
                Some(t) if t <= until => {
                    cursor = t;
                    count += 1;
                }
                _ => return Some((cursor, count)),
            }
        }
        // Past the cap: find the latest by walking only the last stretch before `until`.
        for window in [1i64, 24, 24 * 32, 24 * 366, 24 * 366 * 29] {
            let from = until
                .checked_sub(jiff::SignedDuration::from_hours(window))
                .unwrap_or(after)
                .max(cursor);
            if let Some(mut t) = self.next_after(from, tz).filter(|t| *t <= until) {
                while let Some(n) = self.next_after(t, tz).filter(|n| *n <= until) {
                    t = n;
                }
                return Some((t, count));
            }
        }
        Some((cursor, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn next(expr: &str, after: &str, zone: &str) -> String {
        let cron: Cron = expr.parse().unwrap();
        cron.next_after(at(after), &tz(zone)).unwrap().to_string()
    }

    #[test]
    fn parses_lists_ranges_steps_and_names() {
        let c: Cron = "*/15 9-17 * jan,JUL mon-fri".parse().unwrap();
        assert_eq!(set_bits(c.minutes).collect::<Vec<_>>(), vec![0, 15, 30, 45]);
        assert_eq!(set_bits(c.hours).count(), 9);
        assert_eq!(set_bits(c.months).collect::<Vec<_>>(), vec![1, 7]);
        assert_eq!(
            set_bits(c.days_of_week).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        let sunday: Cron = "0 0 * * 7".parse().unwrap();
        assert_eq!(set_bits(sunday.days_of_week).collect::<Vec<_>>(), vec![0]);
        let from: Cron = "5/20 * * * *".parse().unwrap();
        assert_eq!(set_bits(from.minutes).collect::<Vec<_>>(), vec![5, 25, 45]);
    }

    #[test]
    fn rejects_what_cron_rejects() {
        for bad in [
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
            "@daily",
        ] {
            assert!(bad.parse::<Cron>().is_err(), "{bad} parsed");
        }
        let e = "61 * * * *".parse::<Cron>().unwrap_err();
        assert!(e.0.contains("minute: 61 is outside 0–59"), "{e}");
    }

    #[test]
    fn next_run_in_utc_and_in_a_zone() {
        assert_eq!(
            next("0 3 * * *", "2026-03-01T03:00:00Z", "UTC"),
            "2026-03-02T03:00:00Z"
        );
        // 03:00 in Berlin (UTC+1 in winter) is 02:00Z.
        assert_eq!(
            next("0 3 * * *", "2026-01-10T12:00:00Z", "Europe/Berlin"),
            "2026-01-11T02:00:00Z"
        );
        // Vixie OR: the 1st of the month, or a Monday — whichever comes first.
        assert_eq!(
            next("0 0 1 * mon", "2026-06-02T00:00:00Z", "UTC"),
            "2026-06-08T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z", "UTC"),
            "2028-02-29T00:00:00Z"
        );
        assert!("0 0 30 2 *"
            .parse::<Cron>()
            .unwrap()
            .next_after(at("2026-01-01T00:00:00Z"), &TimeZone::UTC)
            .is_none());
    }

    #[test]
    fn spring_forward_runs_a_missing_time_once_after_the_jump() {
        // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
        let zone = "America/New_York";
        assert_eq!(
            next("30 2 * * *", "2026-03-07T12:00:00Z", zone),
            "2026-03-08T07:30:00Z" // 03:30 EDT
        );
        // The day after, 02:30 exists again (EDT, 06:30Z).
        assert_eq!(
            next("30 2 * * *", "2026-03-08T07:30:00Z", zone),
            "2026-03-09T06:30:00Z"
        );
        // Every 15 minutes across the jump: each instant once, in order, none skipped twice.
        let cron: Cron = "*/15 * * * *".parse().unwrap();
        let mut t = at("2026-03-08T06:30:00Z");
        let mut seen = Vec::new();
        for _ in 0..6 {
            t = cron.next_after(t, &tz(zone)).unwrap();
            seen.push(t.to_string());
        }
        assert_eq!(
            seen,
            [
                "2026-03-08T06:45:00Z", // 01:45 EST
                "2026-03-08T07:00:00Z", // 03:00 EDT (02:00 does not exist)
                "2026-03-08T07:15:00Z",
                "2026-03-08T07:30:00Z",
                "2026-03-08T07:45:00Z",
                "2026-03-08T08:00:00Z",
            ]
        );
    }

    #[test]
    fn fall_back_runs_a_repeated_time_once() {
        // New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        let zone = "America/New_York";
        assert_eq!(
            next("30 1 * * *", "2026-10-31T12:00:00Z", zone),
            "2026-11-01T05:30:00Z" // 01:30 EDT, the first of the two
        );
        assert_eq!(
            next("30 1 * * *", "2026-11-01T05:30:00Z", zone),
            "2026-11-02T06:30:00Z" // not 06:30Z the same day (01:30 EST)
        );
    }

    #[test]
    fn latest_between_counts_missed_runs_and_finds_the_last() {
        let cron: Cron = "0 * * * *".parse().unwrap();
        let (last, missed) = cron
            .latest_between(
                at("2026-05-01T00:00:00Z"),
                at("2026-05-01T05:30:00Z"),
                &TimeZone::UTC,
                100,
            )
            .unwrap();
        assert_eq!(
            (last.to_string().as_str(), missed),
            ("2026-05-01T05:00:00Z", 5)
        );
        // Far past the cap, the latest is still exact.
        let every_minute: Cron = "* * * * *".parse().unwrap();
        let (last, missed) = every_minute
            .latest_between(
                at("2026-01-01T00:00:00Z"),
                at("2026-05-01T05:30:20Z"),
                &TimeZone::UTC,
                100,
            )
            .unwrap();
        assert_eq!(
            (last.to_string().as_str(), missed),
            ("2026-05-01T05:30:00Z", 100)
        );
        assert!(cron
            .latest_between(
                at("2026-05-01T00:00:00Z"),
                at("2026-05-01T00:59:59Z"),
                &TimeZone::UTC,
                100
            )
            .is_none());
    }
}
