//! Event validation, the seed's four steps, as pure functions over records:
//! 1. schema: required fields present and typed;
//! 2. quality: no nulls in critical fields, known event types, timestamps neither in the
//!    future nor too old, values in range, no exact duplicates;
//! 3. anomalies: bot-like users (more events per day than a limit), statistical outliers of
//!    the value, daily volume spikes (reported, not rejected);
//! 4. the data-quality rate clean / total, with an alert below a threshold.
//!
//! Every rejected record gets exactly one [`Reason`]; callers write it to a quarantine output,
//! so rows in = clean + quarantined, always.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// The documented event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    View,
    Click,
    AddToCart,
    Purchase,
    Rating,
}

impl EventType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "view" => Self::View,
            "click" => Self::Click,
            "add_to_cart" => Self::AddToCart,
            "purchase" => Self::Purchase,
            "rating" => Self::Rating,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Click => "click",
            Self::AddToCart => "add_to_cart",
            Self::Purchase => "purchase",
            Self::Rating => "rating",
        }
    }
}

/// A record as read from CSV, JSONL or Parquet: every field optional and untyped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawRecord {
    pub user_id: Option<String>,
    pub item_id: Option<String>,
    pub event_type: Option<String>,
    /// Unix seconds, unix milliseconds, or RFC 3339.
    pub timestamp: Option<String>,
    pub value: Option<String>,
    pub session: Option<String>,
    pub device: Option<String>,
    pub country: Option<String>,
    pub placement: Option<String>,
    /// Unique id of the event where the producer assigns one (serving's feedback does):
    /// delivery is at-least-once, and a repeated id is a duplicate whatever its time.
    pub event_id: Option<String>,
}

/// A record's fields borrowed from wherever they were read (a CSV row buffer, a
/// [`RawRecord`]): validation allocates nothing per row.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RawView<'a> {
    pub user_id: Option<&'a str>,
    pub item_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub value: Option<&'a str>,
    pub session: Option<&'a str>,
    pub device: Option<&'a str>,
    pub country: Option<&'a str>,
    pub placement: Option<&'a str>,
    pub event_id: Option<&'a str>,
}

impl RawView<'_> {
    /// An owned copy, for keeping a row beyond its reader's buffer.
    pub fn to_owned_record(&self) -> RawRecord {
        let own = |s: Option<&str>| s.map(str::to_owned);
        RawRecord {
            user_id: own(self.user_id),
            item_id: own(self.item_id),
            event_type: own(self.event_type),
            timestamp: own(self.timestamp),
            value: own(self.value),
            session: own(self.session),
            device: own(self.device),
            country: own(self.country),
            placement: own(self.placement),
            event_id: own(self.event_id),
        }
    }
}

impl RawRecord {
    pub fn view(&self) -> RawView<'_> {
        RawView {
            user_id: self.user_id.as_deref(),
            item_id: self.item_id.as_deref(),
            event_type: self.event_type.as_deref(),
            timestamp: self.timestamp.as_deref(),
            value: self.value.as_deref(),
            session: self.session.as_deref(),
            device: self.device.as_deref(),
            country: self.country.as_deref(),
            placement: self.placement.as_deref(),
            event_id: self.event_id.as_deref(),
        }
    }
}

/// A validated event, borrowing its text from the record it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event<'a> {
    pub user_id: &'a str,
    pub item_id: &'a str,
    pub event_type: EventType,
    /// Unix seconds, UTC.
    pub timestamp: i64,
    pub value: Option<f64>,
    pub session: Option<&'a str>,
    pub device: Option<&'a str>,
    pub country: Option<&'a str>,
    pub placement: Option<&'a str>,
    pub event_id: Option<&'a str>,
}

/// Why a record was quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The row could not be read at all (wrong column count, invalid JSON…).
    Malformed,
    MissingField,
    NullField,
    BadTimestamp,
    FutureTimestamp,
    TooOld,
    UnknownEventType,
    BadValue,
    ValueOutOfRange,
    Duplicate,
    BotUser,
    OutlierValue,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::MissingField => "missing_field",
            Self::NullField => "null_field",
            Self::BadTimestamp => "bad_timestamp",
            Self::FutureTimestamp => "future_timestamp",
            Self::TooOld => "too_old",
            Self::UnknownEventType => "unknown_event_type",
            Self::BadValue => "bad_value",
            Self::ValueOutOfRange => "value_out_of_range",
            Self::Duplicate => "duplicate",
            Self::BotUser => "bot_user",
            Self::OutlierValue => "outlier_value",
        }
    }
}

/// Limits and thresholds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationConfig {
    /// "Now" in unix seconds: later timestamps (beyond the skew) are rejected.
    pub now: i64,
    pub future_skew_secs: i64,
    /// Timestamps older than this many days before `now` are rejected.
    pub max_age_days: i64,
    /// A user with more events than this on one UTC day is treated as a bot that day.
    pub bot_events_per_day: u32,
    /// Exact duplicates are caught when they lie within this many seconds of each other.
    pub dedup_window_secs: i64,
    /// Values further than this many robust standard deviations (MAD·1.4826) from their event
    /// type's median are outliers.
    pub outlier_z: f64,
    /// A day with more than this multiple of the median daily volume is a spike.
    pub spike_factor: f64,
    /// Alert when clean / total falls below this.
    pub quality_alert_below: f64,
}

impl ValidationConfig {
    pub fn new(now: i64) -> Self {
        Self {
            now,
            future_skew_secs: 300,
            max_age_days: 3650,
            bot_events_per_day: 1000,
            dedup_window_secs: 3600,
            outlier_z: 8.0,
            spike_factor: 3.0,
            quality_alert_below: 0.95,
        }
    }
}

fn field(value: Option<&str>) -> Result<&str, Reason> {
    match value.map(str::trim) {
        None => Err(Reason::MissingField),
        Some(v) if v.is_empty() || v.eq_ignore_ascii_case("null") => Err(Reason::NullField),
        Some(v) => Ok(v),
    }
}

fn optional(value: Option<&str>) -> Option<&str> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("null"))
}

/// Unix seconds from seconds, milliseconds (13 digits) or RFC 3339.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(if n.abs() >= 100_000_000_000 {
            n / 1000
        } else {
            n
        });
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

/// Step 1 and the record-level part of step 2.
pub fn check_record<'a>(
    record: &RawView<'a>,
    config: &ValidationConfig,
) -> Result<Event<'a>, Reason> {
    let user_id = field(record.user_id)?;
    let item_id = field(record.item_id)?;
    let event_type = field(record.event_type)?;
    let timestamp = field(record.timestamp)?;
    let timestamp = parse_timestamp(timestamp).ok_or(Reason::BadTimestamp)?;
    let event_type = EventType::parse(event_type).ok_or(Reason::UnknownEventType)?;
    if timestamp > config.now + config.future_skew_secs {
        return Err(Reason::FutureTimestamp);
    }
    if timestamp < config.now - config.max_age_days * 86_400 {
        return Err(Reason::TooOld);
    }
    let value = match optional(record.value) {
        None => None,
        Some(v) => Some(v.parse::<f64>().map_err(|_| Reason::BadValue)?),
    };
    match (event_type, value) {
        (_, Some(v)) if !v.is_finite() => return Err(Reason::BadValue),
        (EventType::Rating, None) => return Err(Reason::MissingField),
        (EventType::Rating, Some(v)) if !(0.0..=10.0).contains(&v) => {
            return Err(Reason::ValueOutOfRange)
        }
        (_, Some(v)) if v < 0.0 => return Err(Reason::ValueOutOfRange),
        _ => {}
    }
    Ok(Event {
        user_id,
        item_id,
        event_type,
        timestamp,
        value,
        session: optional(record.session),
        device: optional(record.device),
        country: optional(record.country),
        placement: optional(record.placement),
        event_id: optional(record.event_id),
    })
}

/// Keys here are already well-mixed 64-bit fingerprints: hashing them again (SipHash, the
/// default) would cost more than the rest of the per-row work.
#[derive(Default, Clone, Copy)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<PassThrough>>;
type FastSet<K> = HashSet<K, std::hash::BuildHasherDefault<PassThrough>>;

/// One key for a (user, day) pair.
fn user_day(user: &str, day: i64) -> u64 {
    fingerprint(&[user]) ^ (day as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// FNV-1a, for compact keys of users and rows.
fn fingerprint(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0x1f]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn day(ts: i64) -> i64 {
    ts.div_euclid(86_400)
}

const RESERVOIR: usize = 100_000;

/// What the first pass learns about the whole input: per-(user, day) counts, daily volumes,
/// and a fixed-size sample of values per event type. State grows with distinct user-days, not
/// with events.
#[derive(Default)]
pub struct Profile {
    bot_limit: u32,
    bot_user_ids: FastSet<u64>,
    user_days: FastMap<u64, u32>,
    daily: BTreeMap<i64, u64>,
    values: HashMap<EventType, (Vec<f64>, u64)>,
    rng: crate::bootstrap::SplitMix64,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("user_days", &self.user_days.len())
            .field("days", &self.daily.len())
            .finish()
    }
}

impl Profile {
    pub fn new(config: &ValidationConfig) -> Self {
        Self {
            bot_limit: config.bot_events_per_day,
            ..Self::default()
        }
    }

    pub fn observe(&mut self, event: &Event) {
        let d = day(event.timestamp);
        let count = self
            .user_days
            .entry(user_day(event.user_id, d))
            .or_default();
        *count += 1;
        if *count == self.bot_limit.saturating_add(1) {
            self.bot_user_ids.insert(fingerprint(&[event.user_id]));
        }
        *self.daily.entry(d).or_default() += 1;
        if let Some(v) = event.value {
            let (sample, seen) = self.values.entry(event.event_type).or_default();
            *seen += 1;
            if sample.len() < RESERVOIR {
                sample.push(v);
            } else {
                // Reservoir sampling (algorithm R).
                let j = (self.rng.next_u64() % *seen) as usize;
                if j < RESERVOIR {
                    sample[j] = v;
                }
            }
        }
    }

    /// Freezes the profile into the rules of the second pass.
    pub fn finish(self, config: &ValidationConfig) -> Rules {
        let bots: FastSet<u64> = self
            .user_days
            .iter()
            .filter(|(_, &n)| n > config.bot_events_per_day)
            .map(|(k, _)| *k)
            .collect();
        let bounds = self
            .values
            .into_iter()
            .filter_map(|(t, (mut sample, _))| {
                if sample.len() < 100 {
                    return None;
                }
                sample.sort_by(f64::total_cmp);
                let median = sample[sample.len() / 2];
                let mut deviations: Vec<f64> = sample.iter().map(|v| (v - median).abs()).collect();
                deviations.sort_by(f64::total_cmp);
                let mad = deviations[deviations.len() / 2] * 1.4826;
                // A constant value (e.g. implicit events all 1.0) has no outliers.
                (mad > 0.0).then(|| {
                    let spread = config.outlier_z * mad;
                    (t, (median - spread, median + spread))
                })
            })
            .collect();
        let mut volumes: Vec<u64> = self.daily.values().copied().collect();
        volumes.sort_unstable();
        let median_volume = volumes.get(volumes.len() / 2).copied().unwrap_or(0);
        let spikes = self
            .daily
            .iter()
            .filter(|(_, &v)| {
                median_volume > 0 && v as f64 > config.spike_factor * median_volume as f64
            })
            .map(|(&d, &v)| (d, v))
            .collect();
        let bot_users = self.bot_user_ids.len();
        Rules {
            bots,
            bounds,
            spikes,
            median_volume,
            bot_users,
            window: config.dedup_window_secs,
            ids: FastSet::default(),
            recent: FastSet::default(),
            order: VecDeque::new(),
        }
    }
}

/// The second pass: per-event decisions that need the whole-input profile, and deduplication
/// within a sliding time window.
#[derive(Debug)]
pub struct Rules {
    bots: FastSet<u64>,
    bounds: HashMap<EventType, (f64, f64)>,
    spikes: Vec<(i64, u64)>,
    median_volume: u64,
    bot_users: usize,
    window: i64,
    /// Fingerprints of every event id seen: ids repeat across files and hours.
    ids: FastSet<u64>,
    recent: FastSet<u64>,
    order: VecDeque<(i64, u64)>,
}

impl Rules {
    /// Whether `event` is clean; rejected events get their reason.
    pub fn check(&mut self, event: &Event) -> Result<(), Reason> {
        if self
            .bots
            .contains(&user_day(event.user_id, day(event.timestamp)))
        {
            return Err(Reason::BotUser);
        }
        if let (Some(v), Some(&(low, high))) = (event.value, self.bounds.get(&event.event_type)) {
            if v < low || v > high {
                return Err(Reason::OutlierValue);
            }
        }
        // With an id, the id alone decides: two real clicks in one second differ only by it.
        if let Some(id) = event.event_id {
            return if self.ids.insert(fingerprint(&[id])) {
                Ok(())
            } else {
                Err(Reason::Duplicate)
            };
        }
        // The text fields hashed; the timestamp and value mixed in as numbers (no formatting).
        let key = fingerprint(&[
            event.user_id,
            event.item_id,
            event.event_type.as_str(),
            event.session.unwrap_or(""),
            event.device.unwrap_or(""),
            event.country.unwrap_or(""),
            event.placement.unwrap_or(""),
        ]) ^ (event.timestamp as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ event.value.map_or(0, f64::to_bits).rotate_left(17);
        // Forget fingerprints that fell out of the window (input is roughly time-ordered).
        while let Some(&(t, k)) = self.order.front() {
            if t >= event.timestamp - self.window {
                break;
            }
            self.order.pop_front();
            self.recent.remove(&k);
        }
        if !self.recent.insert(key) {
            return Err(Reason::Duplicate);
        }
        self.order.push_back((event.timestamp, key));
        Ok(())
    }

    /// Days whose volume exceeded the spike factor, with their counts.
    pub fn spikes(&self) -> &[(i64, u64)] {
        &self.spikes
    }

    pub fn median_daily_volume(&self) -> u64 {
        self.median_volume
    }

    pub fn bot_users(&self) -> usize {
        self.bot_users
    }
}

/// Counts of one validation run; `rows_in == clean + quarantined` is checked by
/// [`Tally::reconciles`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub rows_in: u64,
    pub clean: u64,
    pub quarantined: u64,
    pub by_reason: BTreeMap<Reason, u64>,
}

impl Tally {
    pub fn accept(&mut self) {
        self.rows_in += 1;
        self.clean += 1;
    }

    pub fn reject(&mut self, reason: Reason) {
        self.rows_in += 1;
        self.quarantined += 1;
        *self.by_reason.entry(reason).or_default() += 1;
    }

    pub fn reconciles(&self) -> bool {
        self.rows_in == self.clean + self.quarantined
            && self.quarantined == self.by_reason.values().sum::<u64>()
    }

    /// clean / total (1 for an empty input).
    pub fn quality_rate(&self) -> f64 {
        if self.rows_in == 0 {
            1.0
        } else {
            self.clean as f64 / self.rows_in as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn record(user: &str, item: &str, kind: &str, ts: &str, value: Option<&str>) -> RawRecord {
        RawRecord {
            user_id: Some(user.into()),
            item_id: Some(item.into()),
            event_type: Some(kind.into()),
            timestamp: Some(ts.into()),
            value: value.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn each_record_defect_gets_its_reason() {
        let c = ValidationConfig::new(NOW);
        let ok = record("u1", "i1", "click", "1799999000", None);
        assert!(check_record(&ok.view(), &c).is_ok());
        let cases = [
            (
                RawRecord {
                    user_id: None,
                    ..ok.clone()
                },
                Reason::MissingField,
            ),
            (
                RawRecord {
                    item_id: Some("  ".into()),
                    ..ok.clone()
                },
                Reason::NullField,
            ),
            (
                RawRecord {
                    user_id: Some("null".into()),
                    ..ok.clone()
                },
                Reason::NullField,
            ),
            (
                record("u1", "i1", "like", "1799999000", None),
                Reason::UnknownEventType,
            ),
            (
                record("u1", "i1", "click", "yesterday", None),
                Reason::BadTimestamp,
            ),
            (
                record("u1", "i1", "click", "1900000000", None),
                Reason::FutureTimestamp,
            ),
            (record("u1", "i1", "click", "1000", None), Reason::TooOld),
            (
                record("u1", "i1", "rating", "1799999000", None),
                Reason::MissingField,
            ),
            (
                record("u1", "i1", "rating", "1799999000", Some("11")),
                Reason::ValueOutOfRange,
            ),
            (
                record("u1", "i1", "purchase", "1799999000", Some("-3")),
                Reason::ValueOutOfRange,
            ),
            (
                record("u1", "i1", "purchase", "1799999000", Some("abc")),
                Reason::BadValue,
            ),
            (
                record("u1", "i1", "purchase", "1799999000", Some("NaN")),
                Reason::BadValue,
            ),
        ];
        for (r, reason) in cases {
            assert_eq!(check_record(&r.view(), &c), Err(reason), "{r:?}");
        }
    }

    #[test]
    fn timestamps_in_seconds_milliseconds_and_rfc3339_agree() {
        assert_eq!(parse_timestamp("1799999000"), Some(1_799_999_000));
        assert_eq!(parse_timestamp("1799999000123"), Some(1_799_999_000));
        assert_eq!(parse_timestamp("2027-01-15T07:43:20Z"), Some(1_799_999_000));
        assert_eq!(parse_timestamp("15/01/2027"), None);
    }

    fn run(records: &[RawRecord], config: &ValidationConfig) -> Tally {
        let mut profile = Profile::new(config);
        for r in records {
            if let Ok(e) = check_record(&r.view(), config) {
                profile.observe(&e);
            }
        }
        let mut rules = profile.finish(config);
        let mut tally = Tally::default();
        for r in records {
            match check_record(&r.view(), config).and_then(|e| rules.check(&e)) {
                Ok(()) => tally.accept(),
                Err(reason) => tally.reject(reason),
            }
        }
        tally
    }

    #[test]
    fn duplicates_bots_and_outliers_are_quarantined_and_counts_reconcile() {
        let mut config = ValidationConfig::new(NOW);
        config.bot_events_per_day = 50;
        let mut records = Vec::new();
        for i in 0..500 {
            let ts = (NOW - 86_400 + i * 10).to_string();
            let price = format!("{}", 10 + i % 7);
            records.push(record(
                &format!("u{}", i % 40),
                &format!("i{i}"),
                "purchase",
                &ts,
                Some(&price),
            ));
        }
        // A retried write: the same event again, right behind the original.
        records.insert(4, records[3].clone());
        records.push(record(
            "u1",
            "i9",
            "purchase",
            &(NOW - 80_000).to_string(),
            Some("100000"),
        ));
        for i in 0..60 {
            records.push(record(
                "bot",
                &format!("i{i}"),
                "view",
                &(NOW - 3600 + i).to_string(),
                None,
            ));
        }
        let tally = run(&records, &config);
        assert!(tally.reconciles());
        assert_eq!(tally.rows_in, 562);
        assert_eq!(tally.by_reason.get(&Reason::Duplicate), Some(&1));
        assert_eq!(tally.by_reason.get(&Reason::OutlierValue), Some(&1));
        assert_eq!(tally.by_reason.get(&Reason::BotUser), Some(&60));
        assert_eq!(tally.clean, 500);
        assert!(tally.quality_rate() < 0.95);
    }

    #[test]
    fn a_redelivered_event_id_is_a_duplicate_however_far_apart() {
        let config = ValidationConfig::new(NOW);
        let with_id = |id: &str, ts: i64| RawRecord {
            event_id: Some(id.into()),
            ..record("u1", "i1", "click", &ts.to_string(), None)
        };
        // The same delivery twice, hours apart in the input (two flushed files), and two
        // distinct clicks that look identical apart from their ids.
        let records = vec![
            with_id("e1", NOW - 7200),
            with_id("e2", NOW - 7200),
            record("u2", "i2", "click", &(NOW - 7000).to_string(), None),
            with_id("e1", NOW - 7200),
        ];
        let tally = run(&records, &config);
        assert!(tally.reconciles());
        assert_eq!(tally.by_reason.get(&Reason::Duplicate), Some(&1));
        assert_eq!(tally.clean, 3);
    }

    #[test]
    fn volume_spikes_are_reported() {
        let config = ValidationConfig::new(NOW);
        let mut profile = Profile::new(&config);
        for d in 0..10i64 {
            let n = if d == 7 { 1000 } else { 100 };
            for i in 0..n {
                let r = record(
                    &format!("u{i}"),
                    "i",
                    "view",
                    &(NOW - (10 - d) * 86_400 + i).to_string(),
                    None,
                );
                let e = check_record(&r.view(), &config).unwrap();
                profile.observe(&e);
            }
        }
        let rules = profile.finish(&config);
        assert_eq!(rules.median_daily_volume(), 100);
        assert_eq!(rules.spikes().len(), 1);
        assert_eq!(rules.spikes()[0].1, 1000);
    }
}
