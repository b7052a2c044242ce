//! Which interactions count as relevant: a declared policy, not a dataset's constant.
//!
//! MovieLens's "a rating of 4 or more" is one policy (`rating>=4`); a shop's "a purchase or an
//! add-to-cart" is another (`purchase,add_to_cart`). Terms are comma-separated and an event is
//! relevant when any term matches it:
//! - an event type (`click`, `add_to_cart`, `purchase`, `view`, `rating`): every event of it;
//! - `<type>>=<x>`: events of that type whose value is at least `x` (`rating>=4`).
//!
//! The policy is applied once, at ingest, so every stage (training labels, early stopping, the
//! ranker's CV, the test window's relevance) reads the same labels.

use crate::validation::EventType;
use crate::Interaction;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Term {
    kind: EventType,
    /// Inclusive lower bound on the value; `None` accepts any value.
    at_least: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabelPolicy {
    terms: Vec<Term>,
}

impl LabelPolicy {
    /// The MovieLens protocol's policy: an explicit rating of 4 or more.
    pub fn ratings_at_least(threshold: f32) -> Self {
        Self {
            terms: vec![Term {
                kind: EventType::Rating,
                at_least: Some(threshold),
            }],
        }
    }

    pub fn is_relevant(&self, kind: EventType, value: f32) -> bool {
        self.terms
            .iter()
            .any(|t| t.kind == kind && t.at_least.is_none_or(|x| value >= x))
    }

    /// Sets `relevant` on every interaction.
    pub fn apply(&self, rows: &mut [Interaction]) {
        for r in rows {
            r.relevant = self.is_relevant(r.kind, r.value);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelPolicyError(String);

impl fmt::Display for LabelPolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "label policy: {} (expected comma-separated terms like `rating>=4` or `purchase,add_to_cart`)",
            self.0
        )
    }
}

impl std::error::Error for LabelPolicyError {}

impl FromStr for LabelPolicy {
    type Err = LabelPolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut terms = Vec::new();
        for raw in s.split(',').map(str::trim) {
            let (name, at_least) = match raw.split_once(">=") {
                Some((name, x)) => {
                    let x: f32 = x
                        .trim()
                        .parse()
                        .ok()
                        .filter(|x: &f32| x.is_finite())
                        .ok_or_else(|| LabelPolicyError(format!("`{raw}`: not a number")))?;
                    (name.trim(), Some(x))
                }
                None => (raw, None),
            };
            let kind = EventType::parse(name)
                .ok_or_else(|| LabelPolicyError(format!("`{name}` is not an event type")))?;
            terms.push(Term { kind, at_least });
        }
        if terms.is_empty() || s.trim().is_empty() {
            return Err(LabelPolicyError("empty".into()));
        }
        Ok(Self { terms })
    }
}

impl fmt::Display for LabelPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self
            .terms
            .iter()
            .map(|t| match t.at_least {
                Some(x) => format!("{}>={x}", t.kind.as_str()),
                None => t.kind.as_str().to_owned(),
            })
            .collect();
        f.write_str(&terms.join(","))
    }
}

impl TryFrom<String> for LabelPolicy {
    type Error = LabelPolicyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<LabelPolicy> for String {
    fn from(p: LabelPolicy) -> Self {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movielens_policy_counts_ratings_of_four_or_more_only() {
        let p: LabelPolicy = "rating>=4".parse().unwrap();
        assert_eq!(p, LabelPolicy::ratings_at_least(4.0));
        assert!(p.is_relevant(EventType::Rating, 4.0));
        assert!(!p.is_relevant(EventType::Rating, 3.5));
        // A purchase priced at 9.99 is not a rating.
        assert!(!p.is_relevant(EventType::Purchase, 9.99));
    }

    #[test]
    fn event_type_terms_ignore_the_value() {
        let p: LabelPolicy = "purchase, add_to_cart".parse().unwrap();
        assert!(p.is_relevant(EventType::Purchase, 0.5));
        assert!(p.is_relevant(EventType::AddToCart, 1.0));
        assert!(!p.is_relevant(EventType::Click, 1.0));
        assert_eq!(p.to_string(), "purchase,add_to_cart");
        assert_eq!(p.to_string().parse::<LabelPolicy>().unwrap(), p);
    }

    #[test]
    fn bad_policies_are_refused_with_the_term() {
        for bad in ["", "likes", "rating>=high", "rating>=", "click,,purchase"] {
            let e = bad.parse::<LabelPolicy>().unwrap_err().to_string();
            assert!(e.contains("label policy"), "{bad}: {e}");
        }
        let e = "clicks".parse::<LabelPolicy>().unwrap_err().to_string();
        assert!(e.contains("`clicks`"), "{e}");
    }

    #[test]
    fn serializes_as_its_text() {
        let p: LabelPolicy = "rating>=4.5,purchase".parse().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"rating>=4.5,purchase\"");
        assert_eq!(serde_json::from_str::<LabelPolicy>(&json).unwrap(), p);
        assert!(serde_json::from_str::<LabelPolicy>("\"nope\"").is_err());
    }
}
