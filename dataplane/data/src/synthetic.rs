//! Synthetic events at scale, deterministic from a seed: power-law item popularity, users in
//! taste clusters, a daily activity cycle, users who sign up over the whole timeline, a few
//! bots, and a known share of defective rows — each defect planted on purpose and remembered,
//! so validation can be checked row by row.

use crate::events_io::COLUMNS;
use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recsys_core::validation::Reason;
use std::io::BufWriter;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub events: u64,
    pub users: u32,
    pub items: u32,
    pub days: u32,
    /// Unix seconds of the first day's midnight.
    pub start: i64,
    pub seed: u64,
    /// Users that emit `BOT_EVENTS_PER_DAY` events on each of three days.
    pub bots: u32,
    /// Share of regular rows turned into a defect.
    pub bad_fraction: f64,
    pub clusters: u32,
    /// Share of users who sign up after the first day (on a day drawn uniformly from the rest
    /// of the timeline) and have no events before it, so every test window has newcomers.
    pub newcomer_fraction: f64,
}

impl GeneratorConfig {
    pub fn new(events: u64, start: i64) -> Self {
        Self {
            events,
            users: (events / 100).clamp(100, 1_000_000) as u32,
            items: (events / 10).clamp(1_000, 10_000_000) as u32,
            days: 30,
            start,
            seed: 7,
            bots: 3,
            bad_fraction: 0.005,
            clusters: 20,
            newcomer_fraction: 0.25,
        }
    }
}

pub const BOT_EVENTS_PER_DAY: u32 = 1500;

/// What was written, and every planted defect by row number.
#[derive(Debug, Default)]
pub struct Generated {
    pub rows: u64,
    pub planted: Vec<(u64, Reason)>,
}

/// Zipf-like sampling by inverse CDF over precomputed cumulative weights.
struct PowerLaw {
    cumulative: Vec<f64>,
}

impl PowerLaw {
    fn new(n: usize, exponent: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|k| {
                total += (k as f64).powf(-exponent);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let x = rng.random_range(0.0..*self.cumulative.last().expect("non-empty"));
        self.cumulative.partition_point(|&c| c <= x)
    }
}

struct Row {
    ts: i64,
    user: String,
    item: u32,
    kind: &'static str,
    value: String,
    session: String,
    device: &'static str,
    country: &'static str,
    placement: &'static str,
    bot: bool,
}

const DEVICES: [&str; 3] = ["web", "ios", "android"];
const COUNTRIES: [&str; 5] = ["US", "DE", "FR", "BR", "IN"];
const PLACEMENTS: [&str; 3] = ["home", "detail", "search"];
const DEFECTS: [Reason; 10] = [
    Reason::Malformed,
    Reason::NullField,
    Reason::UnknownEventType,
    Reason::BadTimestamp,
    Reason::FutureTimestamp,
    Reason::TooOld,
    Reason::ValueOutOfRange,
    Reason::BadValue,
    Reason::Duplicate,
    Reason::OutlierValue,
];

fn event_kind(rng: &mut StdRng) -> (&'static str, String) {
    let x: f64 = rng.random();
    if x < 0.70 {
        ("view", String::new())
    } else if x < 0.90 {
        ("click", String::new())
    } else if x < 0.95 {
        ("add_to_cart", String::new())
    } else if x < 0.98 {
        ("purchase", format!("{:.2}", rng.random_range(1.0..500.0)))
    } else {
        ("rating", rng.random_range(1..=5).to_string())
    }
}

/// Each user's sign-up day: 0 for most, a later day for `newcomer_fraction` of them. Drawn
/// from its own stream, so with no newcomers the events are exactly those of a world without
/// sign-ups. The first user is always there from day 0, so no day is without users.
fn signup_days(config: &GeneratorConfig) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x0051_6e75_7000);
    let share = config.newcomer_fraction.clamp(0.0, 1.0);
    (0..config.users)
        .map(|u| {
            if u > 0 && config.days > 1 && rng.random_bool(share) {
                rng.random_range(1..config.days)
            } else {
                0
            }
        })
        .collect()
}

/// The cumulative activity of the users signed up by `day` (a user not yet signed up weighs
/// nothing), and its total.
fn activity_so_far(activity: &[f64], signup: &[u32], day: u32) -> (Vec<f64>, f64) {
    let mut total = 0.0;
    let cdf = activity
        .iter()
        .zip(signup)
        .map(|(a, &d)| {
            if d <= day {
                total += a;
            }
            total
        })
        .collect();
    (cdf, total)
}

/// Writes the generated world's user profiles (`user_id, age, gender`) and item metadata
/// (`item_id, title, category, price, year`) as CSV, deterministic from the seed. Item `ik`
/// belongs to taste cluster `k mod clusters`, like its events; its price level depends on the
/// cluster, so metadata carries a real signal.
pub fn write_catalog(config: &GeneratorConfig, users: &Path, items: &Path) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_ca7a_1065);
    let mut out =
        csv::Writer::from_path(users).with_context(|| format!("creating {}", users.display()))?;
    out.write_record(["user_id", "age", "gender"])?;
    for u in 0..config.users {
        let age: u32 = rng.random_range(16..75);
        let gender = if rng.random_bool(0.5) { "F" } else { "M" };
        out.write_record([format!("u{u}"), age.to_string(), gender.to_owned()])?;
    }
    out.flush()?;
    let mut out =
        csv::Writer::from_path(items).with_context(|| format!("creating {}", items.display()))?;
    out.write_record(["item_id", "title", "category", "price", "year"])?;
    for i in 0..config.items {
        let cluster = i % config.clusters;
        let level = 5.0 * (1.0 + f64::from(cluster % 5));
        let price = level * rng.random_range(0.5..1.5);
        let year: u32 = rng.random_range(1990..2027);
        out.write_record([
            format!("i{i}"),
            format!("Item {i}"),
            format!("cluster-{cluster}"),
            format!("{price:.2}"),
            year.to_string(),
        ])?;
    }
    out.flush()?;
    Ok(())
}

/// Writes `config.events` regular events (plus bot events) as CSV to `path`.
pub fn generate(path: &Path, config: &GeneratorConfig) -> anyhow::Result<Generated> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(BufWriter::with_capacity(1 << 20, file));
    out.write_record(COLUMNS)?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let popularity = PowerLaw::new((config.items / config.clusters).max(1) as usize, 1.05);
    let global = PowerLaw::new(config.items as usize, 1.05);
    // Mildly skewed activity, bounded so no regular user looks like a bot.
    let activity: Vec<f64> = (0..config.users)
        .map(|_| rng.random_range(0.2..5.0))
        .collect();
    let signup = signup_days(config);
    // Daily cycle: evenings busiest, early mornings quietest.
    let hour_weights: Vec<f64> = (0..24)
        .map(|h| 1.0 + 0.8 * (2.0 * std::f64::consts::PI * (h as f64 - 14.0) / 24.0).sin())
        .collect();
    let hour_total: f64 = hour_weights.iter().sum();
    let bot_days: Vec<Vec<u32>> = (0..config.bots)
        .map(|_| (0..3).map(|_| rng.random_range(0..config.days)).collect())
        .collect();

    let mut generated = Generated::default();
    let per_day = config.events / u64::from(config.days);
    let now = config.start + i64::from(config.days) * 86_400;
    for day in 0..config.days {
        let midnight = config.start + i64::from(day) * 86_400;
        let n = if day + 1 == config.days {
            config.events - per_day * u64::from(config.days - 1)
        } else {
            per_day
        };
        let (activity_cdf, total) = activity_so_far(&activity, &signup, day);
        let mut rows: Vec<Row> = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let x = rng.random_range(0.0..total);
            let user = activity_cdf.partition_point(|&c| c <= x) as u32;
            let cluster = user % config.clusters;
            let item = if rng.random_bool(0.8) {
                let rank = popularity.sample(&mut rng) as u32;
                (rank * config.clusters + cluster).min(config.items - 1)
            } else {
                global.sample(&mut rng) as u32
            };
            let mut h = rng.random_range(0.0..hour_total);
            let hour = hour_weights
                .iter()
                .position(|w| {
                    h -= w;
                    h < 0.0
                })
                .unwrap_or(23);
            let (kind, value) = event_kind(&mut rng);
            rows.push(Row {
                ts: midnight + hour as i64 * 3600 + rng.random_range(0..3600),
                user: format!("u{user}"),
                item,
                kind,
                value,
                session: format!("s{user}-{day}"),
                device: DEVICES[(user % 3) as usize],
                country: COUNTRIES[(user % 5) as usize],
                placement: PLACEMENTS[rng.random_range(0..3)],
                bot: false,
            });
        }
        for (b, days) in bot_days.iter().enumerate() {
            for _ in days.iter().filter(|&&d| d == day) {
                for _ in 0..BOT_EVENTS_PER_DAY {
                    rows.push(Row {
                        ts: midnight + rng.random_range(0..86_400),
                        user: format!("bot{b}"),
                        item: global.sample(&mut rng) as u32,
                        kind: "view",
                        value: String::new(),
                        session: format!("bot{b}-{day}"),
                        device: "web",
                        country: "US",
                        placement: "home",
                        bot: true,
                    });
                }
            }
        }
        rows.sort_by_key(|r| r.ts);
        for row in rows {
            let mut fields: Vec<String> = vec![
                row.user.clone(),
                format!("i{}", row.item),
                row.kind.into(),
                row.ts.to_string(),
                row.value.clone(),
                row.session.clone(),
                row.device.into(),
                row.country.into(),
                row.placement.into(),
            ];
            let defect = (!row.bot && rng.random_bool(config.bad_fraction))
                .then(|| DEFECTS[rng.random_range(0..DEFECTS.len())]);
            if row.bot {
                generated
                    .planted
                    .push((generated.rows + 1, Reason::BotUser));
            }
            match defect {
                None => {}
                Some(Reason::Duplicate) => {
                    // The original is good; its retry right behind it is the defect.
                    out.write_record(&fields)?;
                    generated.rows += 1;
                    generated
                        .planted
                        .push((generated.rows + 1, Reason::Duplicate));
                }
                Some(reason) => {
                    generated.planted.push((generated.rows + 1, reason));
                    match reason {
                        Reason::Malformed => fields.truncate(3),
                        Reason::NullField => fields[0].clear(),
                        Reason::UnknownEventType => fields[2] = "like".into(),
                        Reason::BadTimestamp => fields[3] = "not-a-time".into(),
                        Reason::FutureTimestamp => fields[3] = (now + 30 * 86_400).to_string(),
                        Reason::TooOld => fields[3] = "86400".into(),
                        Reason::ValueOutOfRange => {
                            fields[2] = "rating".into();
                            fields[4] = "42".into();
                        }
                        Reason::BadValue => {
                            fields[2] = "purchase".into();
                            fields[4] = "abc".into();
                        }
                        _ => {
                            fields[2] = "purchase".into();
                            fields[4] = "999999999".into();
                        }
                    }
                }
            }
            out.write_record(&fields)?;
            generated.rows += 1;
        }
    }
    out.flush()?;
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const START: i64 = 1_700_006_400;

    fn first_day_by_user(path: &Path) -> HashMap<String, i64> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .unwrap();
        let mut first = HashMap::new();
        for record in reader.records() {
            let record = record.unwrap();
            let (Some(user), Some(Ok(ts))) = (record.get(0), record.get(3).map(str::parse::<i64>))
            else {
                continue;
            };
            let day = (ts - START).div_euclid(86_400);
            let entry = first.entry(user.to_owned()).or_insert(day);
            *entry = (*entry).min(day);
        }
        first
    }

    #[test]
    fn newcomers_have_no_events_before_their_sign_up_day() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.csv");
        let config = GeneratorConfig {
            bad_fraction: 0.0,
            bots: 0,
            newcomer_fraction: 0.4,
            ..GeneratorConfig::new(30_000, START)
        };
        generate(&path, &config).unwrap();
        let signup = signup_days(&config);
        let first = first_day_by_user(&path);
        let mut late = 0;
        for (user, day) in &first {
            let u: usize = user.trim_start_matches('u').parse().unwrap();
            assert!(
                *day >= i64::from(signup[u]),
                "{user} acted on day {day}, before signing up on day {}",
                signup[u]
            );
            late += usize::from(*day >= 20);
        }
        // 40% of 300 users sign up on days 1..30; about a third of them after day 20.
        assert!(late >= 10, "only {late} users first seen from day 20 on");
        assert_eq!(signup[0], 0);
    }

    #[test]
    fn without_newcomers_everyone_is_there_from_the_first_day() {
        let config = GeneratorConfig {
            newcomer_fraction: 0.0,
            ..GeneratorConfig::new(30_000, START)
        };
        assert!(signup_days(&config).iter().all(|&d| d == 0));
        let (cdf, total) = activity_so_far(&[1.0, 2.0, 3.0], &[0, 5, 0], 2);
        assert_eq!(cdf, vec![1.0, 1.0, 4.0]);
        assert_eq!(total, 4.0);
    }
}
