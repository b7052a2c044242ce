//! Computes the entity features of a [`FeatureSpec`] from a stream of events, as of a time:
//! events at or after the as-of time are ignored, so every value is point-in-time correct.
//! Every aggregate is order-independent (counts, sums, extremes, the latest-N sequence with a
//! total tie-break), so any partitioning or ordering of the input gives the same table.

use super::attributes::{with_attributes, AttributeReport, AttributeRows};
use super::spec::{Aggregate, EntitySpec, FeatureSpec, Transform};
use crate::validation::{Event, EventType};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

const DAY: f64 = 86_400.0;

/// Users or items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    User,
    Item,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::User => "user",
            Entity::Item => "item",
        }
    }
}

/// Feature values of one entity kind as of one time: `values` is row-major, one row per key.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTable {
    pub entity: Entity,
    pub as_of: i64,
    pub names: Vec<String>,
    pub keys: Vec<String>,
    pub values: Vec<f32>,
    /// Most recent first; empty when the definition keeps no sequence.
    pub sequences: Vec<Vec<String>>,
}

impl FeatureTable {
    pub fn width(&self) -> usize {
        self.names.len()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn row(&self, index: usize) -> &[f32] {
        &self.values[index * self.width()..(index + 1) * self.width()]
    }

    /// Key → row index (built on demand; the table itself stays a plain columnar value).
    pub fn index(&self) -> HashMap<&str, usize> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    Count,
    SumValue,
    FirstTime,
    LastTime,
}

/// One running quantity per entity: events whose type is in `mask` and whose time is at or
/// after `since`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counter {
    mask: u8,
    since: i64,
    measure: Measure,
}

impl Counter {
    fn initial(&self) -> f64 {
        match self.measure {
            Measure::Count | Measure::SumValue => 0.0,
            Measure::FirstTime => f64::INFINITY,
            Measure::LastTime => f64::NEG_INFINITY,
        }
    }
}

#[derive(Debug, Clone)]
enum Formula {
    Count(usize),
    Mean {
        sum: usize,
        count: usize,
        prior: f64,
        weight: f64,
    },
    Rate {
        hits: usize,
        trials: usize,
        prior: f64,
        weight: f64,
    },
    Trend {
        recent: usize,
        recent_days: f64,
        baseline: usize,
        baseline_days: f64,
    },
    DaysSince(usize),
}

#[derive(Debug, Clone)]
struct Compiled {
    counters: Vec<Counter>,
    formulas: Vec<(Formula, Transform, f32)>,
    names: Vec<String>,
    sequence_length: usize,
}

fn mask(types: &[EventType]) -> u8 {
    if types.is_empty() {
        return u8::MAX;
    }
    types.iter().fold(0, |m, t| m | bit(*t))
}

fn bit(t: EventType) -> u8 {
    1 << (t as u8)
}

impl Compiled {
    fn new(spec: &EntitySpec, as_of: i64) -> Self {
        let mut counters: Vec<Counter> = Vec::new();
        let mut counter = |mask: u8, window: Option<u32>, measure: Measure| {
            let since = window.map_or(i64::MIN, |d| as_of - i64::from(d) * 86_400);
            let c = Counter {
                mask,
                since,
                measure,
            };
            counters.iter().position(|x| *x == c).unwrap_or_else(|| {
                counters.push(c);
                counters.len() - 1
            })
        };
        let mut formulas = Vec::new();
        for f in &spec.features {
            let m = mask(&f.event_types);
            let w = f.window_days;
            let (prior, weight) = (f.prior, f.prior_weight);
            let formula = match f.aggregate {
                Aggregate::Count => Formula::Count(counter(m, w, Measure::Count)),
                Aggregate::Mean => Formula::Mean {
                    sum: counter(m, w, Measure::SumValue),
                    count: counter(m, w, Measure::Count),
                    prior,
                    weight,
                },
                Aggregate::Rate => Formula::Rate {
                    hits: counter(mask(&f.numerator), w, Measure::Count),
                    trials: counter(m, w, Measure::Count),
                    prior,
                    weight,
                },
                Aggregate::Trend => {
                    // Checked when the definition was parsed.
                    let baseline_days = f.baseline_days.unwrap_or(1);
                    Formula::Trend {
                        recent: counter(m, w, Measure::Count),
                        recent_days: f64::from(w.unwrap_or(1)),
                        baseline: counter(m, Some(baseline_days), Measure::Count),
                        baseline_days: f64::from(baseline_days),
                    }
                }
                Aggregate::DaysSinceLast => Formula::DaysSince(counter(m, w, Measure::LastTime)),
                Aggregate::DaysSinceFirst => Formula::DaysSince(counter(m, w, Measure::FirstTime)),
            };
            formulas.push((formula, f.transform, f.default));
        }
        Self {
            counters,
            formulas,
            names: spec.features.iter().map(|f| f.name.clone()).collect(),
            sequence_length: spec.sequence_length,
        }
    }

    fn value(&self, state: &[f64], as_of: i64, index: usize) -> f32 {
        let (formula, transform, default) = &self.formulas[index];
        let shrunk = |num: f64, den: f64, prior: f64, weight: f64| {
            (den + weight > 0.0).then(|| (num + prior * weight) / (den + weight))
        };
        let raw = match *formula {
            Formula::Count(c) => Some(state[c]),
            Formula::Mean {
                sum,
                count,
                prior,
                weight,
            } => shrunk(state[sum], state[count], prior, weight),
            Formula::Rate {
                hits,
                trials,
                prior,
                weight,
            } => shrunk(state[hits], state[trials], prior, weight),
            Formula::Trend {
                recent,
                recent_days,
                baseline,
                baseline_days,
            } => Some((state[recent] / recent_days) / ((state[baseline] + 1.0) / baseline_days)),
            Formula::DaysSince(t) => state[t]
                .is_finite()
                .then(|| (as_of as f64 - state[t]) / DAY),
        };
        match (raw, transform) {
            (None, _) => *default,
            (Some(v), Transform::None) => v as f32,
            (Some(v), Transform::Log1p) => v.max(0.0).ln_1p() as f32,
        }
    }
}

/// FNV-1a for entity ids: short strings, hashed once per event per entity.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // A final multiply-shift spreads FNV's weak low bits over the table index.
        (self.0 ^ (self.0 >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type IdMap = HashMap<Box<str>, u32, BuildHasherDefault<IdHasher>>;

struct Accumulator {
    compiled: Compiled,
    ids: IdMap,
    keys: Vec<Box<str>>,
    state: Vec<f64>,
    sequences: Vec<VecDeque<(i64, u32)>>,
}

impl Accumulator {
    fn new(compiled: Compiled) -> Self {
        Self {
            compiled,
            ids: IdMap::default(),
            keys: Vec::new(),
            state: Vec::new(),
            sequences: Vec::new(),
        }
    }

    fn slot(&mut self, key: &str) -> usize {
        if let Some(&i) = self.ids.get(key) {
            return i as usize;
        }
        let i = self.keys.len();
        self.ids.insert(key.into(), i as u32);
        self.keys.push(key.into());
        let initial = self.compiled.counters.iter().map(Counter::initial);
        self.state.extend(initial);
        if self.compiled.sequence_length > 0 {
            self.sequences.push(VecDeque::new());
        }
        i
    }

    fn observe(&mut self, slot: usize, event: &Event, other: u32) {
        let width = self.compiled.counters.len();
        let state = &mut self.state[slot * width..(slot + 1) * width];
        let b = bit(event.event_type);
        let t = event.timestamp;
        for (c, value) in self.compiled.counters.iter().zip(state.iter_mut()) {
            if c.mask & b == 0 || t < c.since {
                continue;
            }
            match c.measure {
                Measure::Count => *value += 1.0,
                Measure::SumValue => *value += event.value.unwrap_or(0.0),
                Measure::FirstTime => *value = value.min(t as f64),
                Measure::LastTime => *value = value.max(t as f64),
            }
        }
        let cap = self.compiled.sequence_length;
        if cap > 0 {
            let seq = &mut self.sequences[slot];
            // Ascending by (time, other); keep the `cap` largest.
            let entry = (t, other);
            if seq.len() == cap && seq.front().is_some_and(|&f| entry <= f) {
                return;
            }
            // Events mostly arrive in time order: appending is the common case.
            if seq.back().is_none_or(|&b| b < entry) {
                seq.push_back(entry);
            } else {
                let at = seq.partition_point(|&e| e < entry);
                seq.insert(at, entry);
            }
            if seq.len() > cap {
                seq.pop_front();
            }
        }
    }

    fn finish<K: AsRef<str>>(self, entity: Entity, as_of: i64, other_keys: &[K]) -> FeatureTable {
        let width = self.compiled.counters.len();
        let n = self.compiled.formulas.len();
        let mut values = Vec::with_capacity(self.keys.len() * n);
        for slot in 0..self.keys.len() {
            let state = &self.state[slot * width..(slot + 1) * width];
            values.extend((0..n).map(|f| self.compiled.value(state, as_of, f)));
        }
        let sequences = self
            .sequences
            .into_iter()
            .map(|seq| {
                seq.iter()
                    .rev()
                    .map(|&(_, o)| other_keys[o as usize].as_ref().to_owned())
                    .collect()
            })
            .collect();
        FeatureTable {
            entity,
            as_of,
            names: self.compiled.names,
            keys: self.keys.into_iter().map(String::from).collect(),
            values,
            sequences,
        }
    }
}

/// Streams events into user and item features as of `as_of` (Unix seconds).
pub struct FeatureEngine {
    as_of: i64,
    user_spec: EntitySpec,
    item_spec: EntitySpec,
    users: Accumulator,
    items: Accumulator,
    observed: u64,
    ignored_after_as_of: u64,
}

impl FeatureEngine {
    pub fn new(spec: &FeatureSpec, as_of: i64) -> Self {
        Self {
            as_of,
            user_spec: spec.user.clone(),
            item_spec: spec.item.clone(),
            users: Accumulator::new(Compiled::new(&spec.user, as_of)),
            items: Accumulator::new(Compiled::new(&spec.item, as_of)),
            observed: 0,
            ignored_after_as_of: 0,
        }
    }

    pub fn observe(&mut self, event: &Event) {
        if event.timestamp >= self.as_of {
            self.ignored_after_as_of += 1;
            return;
        }
        self.observed += 1;
        let user = self.users.slot(event.user_id);
        let item = self.items.slot(event.item_id);
        self.users.observe(user, event, item as u32);
        self.items.observe(item, event, user as u32);
    }

    /// Events that counted, and events ignored for being at or after the as-of time.
    pub fn counts(&self) -> (u64, u64) {
        (self.observed, self.ignored_after_as_of)
    }

    /// The user table and the item table, without profile or metadata files (attribute
    /// columns hold their defaults).
    pub fn finish(self) -> (FeatureTable, FeatureTable) {
        let (users, items, _) = self.finish_with(None, None);
        (users, items)
    }

    /// The user table and the item table with the definition's attribute columns taken from
    /// user profiles and item metadata; what could not be used is reported.
    pub fn finish_with(
        self,
        profiles: Option<&AttributeRows>,
        metadata: Option<&AttributeRows>,
    ) -> (FeatureTable, FeatureTable, [AttributeReport; 2]) {
        let items = self
            .items
            .finish(Entity::Item, self.as_of, &self.users.keys);
        let users = self.users.finish(Entity::User, self.as_of, &items.keys);
        let (users, user_report) = with_attributes(users, &self.user_spec, profiles);
        let (items, item_report) = with_attributes(items, &self.item_spec, metadata);
        (users, items, [user_report, item_report])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AS_OF: i64 = 100 * 86_400;

    fn event<'a>(
        user: &'a str,
        item: &'a str,
        t: EventType,
        day: f64,
        value: Option<f64>,
    ) -> Event<'a> {
        Event {
            user_id: user,
            item_id: item,
            event_type: t,
            timestamp: (day * 86_400.0) as i64,
            value,
            session: None,
            device: None,
            country: None,
            placement: None,
            event_id: None,
        }
    }

    fn events() -> Vec<Event<'static>> {
        use EventType::*;
        vec![
            event("u1", "a", View, 60.0, None),
            event("u1", "a", Click, 60.1, None),
            event("u1", "b", View, 95.0, None),
            event("u1", "b", Rating, 96.0, Some(5.0)),
            event("u2", "a", View, 98.0, None),
            event("u2", "a", Purchase, 99.5, None),
            // At and after the as-of time: must not count anywhere.
            event("u1", "c", Purchase, 100.0, None),
            event("u3", "a", Click, 120.0, None),
        ]
    }

    fn tables(events: &[Event]) -> (FeatureTable, FeatureTable) {
        let spec = FeatureSpec::default_spec();
        let mut engine = FeatureEngine::new(&spec, AS_OF);
        events.iter().for_each(|e| engine.observe(e));
        assert_eq!(engine.counts(), (6, 2));
        engine.finish()
    }

    fn value(table: &FeatureTable, key: &str, name: &str) -> f32 {
        let row = table.index()[key];
        table.row(row)[table.names.iter().position(|n| n == name).unwrap()]
    }

    #[test]
    fn values_match_the_definition_by_hand() {
        let (users, items) = tables(&events());
        assert_eq!(
            users.keys,
            vec!["u1", "u2"],
            "u3 only acted after the as-of time"
        );
        assert_eq!(
            value(&users, "u1", "user_events_all"),
            (4f64).ln_1p() as f32
        );
        // Day 60 is 40 days back: outside the 30-day window.
        assert_eq!(
            value(&users, "u1", "user_events_30d"),
            (2f64).ln_1p() as f32
        );
        assert_eq!(value(&users, "u2", "user_purchases_all"), 1.0);
        // Clicks over views in 30 days, shrunk: (0 + 0.05·20) / (1 + 20).
        assert_eq!(
            value(&users, "u1", "user_click_rate_30d"),
            (1.0f64 / 21.0) as f32
        );
        assert_eq!(
            value(&users, "u1", "user_mean_value"),
            ((5.0 + 3.5 * 5.0) / 6.0f64) as f32
        );
        assert_eq!(value(&users, "u2", "user_days_since_last"), 0.5);
        // Most recent first.
        assert_eq!(users.sequences[0], vec!["b", "b", "a", "a"]);
        // Item a: 3 trials (views) in all time but only u2's view is in the last 30 days.
        assert_eq!(
            value(&items, "a", "item_conversion_30d"),
            ((1.0 + 1.0) / 101.0f64) as f32
        );
        assert_eq!(value(&items, "a", "item_days_since_first"), 40.0);
        // Item a: 2 events in the last 7 days, 2 in the last 30: (2/7) / (3/30).
        assert_eq!(
            value(&items, "a", "item_trend_7d"),
            ((2.0 / 7.0) / (3.0 / 30.0f64)) as f32
        );
    }

    #[test]
    fn order_does_not_matter_and_later_events_change_nothing() {
        let forward = tables(&events());
        let mut reversed = events();
        reversed.reverse();
        let (mut users, mut items) = tables(&reversed);
        // Keys come in first-seen order; compare by key.
        for (a, b) in [(&forward.0, &mut users), (&forward.1, &mut items)] {
            let index = b.index();
            for (i, key) in a.keys.iter().enumerate() {
                assert_eq!(a.row(i), b.row(index[key.as_str()]), "{key}");
            }
        }
    }
}
