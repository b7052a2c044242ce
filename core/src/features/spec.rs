//! The declarative feature definition (a YAML file). The offline job and the serving path both
//! compile the same file into the same [`CompiledSpec`], so a feature means one thing
//! everywhere; its [`CompiledSpec::schema_hash`] names the online keys and the offline files,
//! so values written under one definition are never read under another.

use crate::validation::EventType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The definition shipped with the binary (`features.yaml` at the crate root).
pub const DEFAULT_SPEC_YAML: &str = include_str!("../../features.yaml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub version: u32,
    pub user: EntitySpec,
    pub item: EntitySpec,
    #[serde(default)]
    pub context: Vec<ContextFeature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySpec {
    /// How long a materialized value lives in the online store.
    pub ttl_hours: u64,
    /// Length of the recent-item sequence kept per entity (0: none).
    #[serde(default)]
    pub sequence_length: usize,
    pub features: Vec<AggregateFeature>,
    /// Columns taken from the entity's profile or metadata file rather than its events.
    #[serde(default)]
    pub attributes: Vec<AttributeFeature>,
}

impl EntitySpec {
    /// Column names: the aggregates, then the attribute columns.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.features.iter().map(|f| f.name.clone()).collect();
        for a in &self.attributes {
            if a.values.is_empty() {
                names.push(a.name.clone());
            } else {
                names.extend(a.values.iter().map(|v| format!("{}={v}", a.name)));
            }
        }
        names
    }

    /// Values per entity row.
    pub fn width(&self) -> usize {
        self.features.len()
            + self
                .attributes
                .iter()
                .map(|a| a.values.len().max(1))
                .sum::<usize>()
    }

    /// The row of an entity the store knows nothing about.
    pub fn defaults(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.width());
        self.extend_defaults(&mut out);
        out
    }

    /// Appends [`EntitySpec::defaults`] to `out` without allocating.
    pub fn extend_defaults(&self, out: &mut Vec<f32>) {
        out.extend(self.features.iter().map(|f| f.default));
        for a in &self.attributes {
            if a.values.is_empty() {
                out.push(a.default);
            } else {
                out.extend(std::iter::repeat_n(0.0, a.values.len()));
            }
        }
    }
}

/// A column of the entity's profile or metadata file (user profiles, item metadata): a number
/// (optionally log1p) or, with `values`, one 0/1 column `<name>=<value>` per listed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeFeature {
    pub name: String,
    /// The file's column.
    pub column: String,
    /// One-hot categories; empty for a numeric column.
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub transform: Transform,
    /// A numeric column's value when the file has no row, no cell or no number for the entity.
    #[serde(default)]
    pub default: f32,
}

/// One numeric feature aggregated from an entity's events before the as-of time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateFeature {
    pub name: String,
    pub aggregate: Aggregate,
    /// Only these event types count (all when empty).
    #[serde(default)]
    pub event_types: Vec<EventType>,
    /// Only events in the last `window_days` before the as-of time count (all when absent).
    #[serde(default)]
    pub window_days: Option<u32>,
    #[serde(default)]
    pub transform: Transform,
    /// The value when it is undefined: an entity without events, a rate without trials.
    #[serde(default)]
    pub default: f32,
    /// `rate`: the event types counted as hits.
    #[serde(default)]
    pub numerator: Vec<EventType>,
    /// `mean` and `rate`: the value shrunk towards, and by how many pseudo-events.
    #[serde(default)]
    pub prior: f64,
    #[serde(default)]
    pub prior_weight: f64,
    /// `trend`: the longer window the recent rate is compared with.
    #[serde(default)]
    pub baseline_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Count,
    /// Mean of the events' values, shrunk towards `prior` by `prior_weight` pseudo-events.
    Mean,
    /// Events of `numerator` types over events of the feature's `event_types`, shrunk towards
    /// `prior` by `prior_weight` pseudo-events (a CTR or conversion rate).
    Rate,
    /// Daily rate in the window over the daily rate in the last `baseline_days`.
    Trend,
    DaysSinceLast,
    DaysSinceFirst,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    #[default]
    None,
    Log1p,
}

/// A feature of the request itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ContextFeature {
    /// `<name>_sin`, `<name>_cos` of the UTC hour.
    HourOfDay { name: String },
    /// `<name>_sin`, `<name>_cos` of the UTC weekday (Monday = 0).
    DayOfWeek { name: String },
    /// 1 on Saturday and Sunday (UTC).
    Weekend { name: String },
    /// One column `<name>=<value>` per listed value; anything else is all zeros.
    OneHot {
        name: String,
        field: ContextField,
        values: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextField {
    Device,
    Country,
    Placement,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("feature definition is not valid YAML for the schema: {0}")]
    Parse(String),
    #[error("feature definition version {0} is not supported (expected 1)")]
    Version(u32),
    #[error("feature `{0}` is defined twice")]
    Duplicate(String),
    #[error("feature `{name}`: {problem}")]
    Invalid { name: String, problem: String },
}

impl FeatureSpec {
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        let spec: Self = serde_yaml::from_str(text).map_err(|e| SpecError::Parse(e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    pub fn default_spec() -> Self {
        Self::from_yaml(DEFAULT_SPEC_YAML).expect("the shipped feature definition is valid")
    }

    fn check(&self) -> Result<(), SpecError> {
        if self.version != 1 {
            return Err(SpecError::Version(self.version));
        }
        let mut names = BTreeSet::new();
        let all = self.user_names().into_iter().chain(self.item_names());
        for name in all.chain(self.context_names()) {
            if !names.insert(name.clone()) {
                return Err(SpecError::Duplicate(name));
            }
        }
        for a in self.user.attributes.iter().chain(&self.item.attributes) {
            let invalid = |problem: &str| SpecError::Invalid {
                name: a.name.clone(),
                problem: problem.to_owned(),
            };
            if a.column.is_empty() {
                return Err(invalid("an attribute needs its file's column"));
            }
            let unique: BTreeSet<&String> = a.values.iter().collect();
            if unique.len() != a.values.len() {
                return Err(invalid("one-hot values must be distinct"));
            }
            if !a.values.is_empty() && (a.transform != Transform::None || a.default != 0.0) {
                return Err(invalid("a one-hot attribute takes no transform or default"));
            }
        }
        for f in self.user.features.iter().chain(&self.item.features) {
            let invalid = |problem: &str| SpecError::Invalid {
                name: f.name.clone(),
                problem: problem.to_owned(),
            };
            if f.window_days == Some(0) {
                return Err(invalid("window_days must be at least 1"));
            }
            if f.aggregate == Aggregate::Rate && f.numerator.is_empty() {
                return Err(invalid("a rate needs numerator event types"));
            }
            if f.aggregate != Aggregate::Rate && !f.numerator.is_empty() {
                return Err(invalid("numerator belongs to a rate only"));
            }
            if f.prior_weight < 0.0 {
                return Err(invalid("prior_weight cannot be negative"));
            }
            match (f.aggregate, f.window_days, f.baseline_days) {
                (Aggregate::Trend, Some(window), Some(baseline)) if baseline > window => {}
                (Aggregate::Trend, _, _) => {
                    return Err(invalid(
                        "a trend needs window_days and a longer baseline_days",
                    ))
                }
                (_, _, Some(_)) => return Err(invalid("baseline_days belongs to a trend only")),
                _ => {}
            }
        }
        Ok(())
    }

    pub fn user_names(&self) -> Vec<String> {
        self.user.names()
    }

    pub fn item_names(&self) -> Vec<String> {
        self.item.names()
    }

    /// Context columns in order (a cyclic feature gives two, a one-hot one per value).
    pub fn context_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.context {
            match c {
                ContextFeature::HourOfDay { name } | ContextFeature::DayOfWeek { name } => {
                    out.push(format!("{name}_sin"));
                    out.push(format!("{name}_cos"));
                }
                ContextFeature::Weekend { name } => out.push(name.clone()),
                ContextFeature::OneHot { name, values, .. } => {
                    out.extend(values.iter().map(|v| format!("{name}={v}")));
                }
            }
        }
        out
    }

    /// Every column of a (user, item, context) vector, in the order [`super::assemble`] writes.
    pub fn vector_names(&self) -> Vec<String> {
        let mut names = self.user_names();
        names.extend(self.item_names());
        names.extend(self.context_names());
        names
    }

    /// A short stable digest of the definition (FNV-1a of its canonical JSON): online keys and
    /// offline files carry it.
    pub fn schema_hash(&self) -> String {
        let canonical = serde_json_like(self);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in canonical.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// The canonical text hashed by [`FeatureSpec::schema_hash`]: YAML re-emitted from the parsed
/// definition, so comments and formatting do not change the hash.
fn serde_json_like(spec: &FeatureSpec) -> String {
    serde_yaml::to_string(spec).expect("a parsed definition serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_definition_parses_and_names_every_column_once() {
        let spec = FeatureSpec::default_spec();
        let names = spec.vector_names();
        let unique: BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert!(names.contains(&"hour_sin".to_owned()));
        assert_eq!(
            spec.schema_hash(),
            FeatureSpec::default_spec().schema_hash()
        );
    }

    #[test]
    fn formatting_does_not_change_the_hash_but_content_does() {
        let spec = FeatureSpec::default_spec();
        let reformatted = format!("# a comment\n{DEFAULT_SPEC_YAML}\n\n");
        assert_eq!(
            FeatureSpec::from_yaml(&reformatted).unwrap().schema_hash(),
            spec.schema_hash()
        );
        let mut changed = spec.clone();
        changed.user.features[0].default = 42.0;
        assert_ne!(changed.schema_hash(), spec.schema_hash());
    }

    #[test]
    fn bad_definitions_are_refused_with_the_reason() {
        let dup = DEFAULT_SPEC_YAML.replace("item_events_7d", "user_events_30d");
        assert!(matches!(
            FeatureSpec::from_yaml(&dup),
            Err(SpecError::Duplicate(_))
        ));
        let unknown = DEFAULT_SPEC_YAML.replace("aggregate: count", "aggregate: median");
        assert!(matches!(
            FeatureSpec::from_yaml(&unknown),
            Err(SpecError::Parse(_))
        ));
        let typo = DEFAULT_SPEC_YAML.replace("window_days:", "window_dayz:");
        assert!(matches!(
            FeatureSpec::from_yaml(&typo),
            Err(SpecError::Parse(_))
        ));
        let version = DEFAULT_SPEC_YAML.replace("version: 1", "version: 2");
        assert_eq!(FeatureSpec::from_yaml(&version), Err(SpecError::Version(2)));
    }
}
