//! The YAML-declared features (`core/features.yaml`) as of a snapshot's cut-off, by dense id.
//! The ranker appends them to its own columns. Training computes them with the same
//! [`FeatureEngine`] as `recsys features`, so a version's values equal the offline store's for
//! the same events and as-of time; serving prefers fresher values from the online store and
//! falls back to these.

use crate::Dataset;
use recsys_core::features::{assemble, Context, FeatureEngine, FeatureSpec, FeatureTable};
use recsys_core::validation::Event;
use recsys_core::Interaction;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclaredFeatures {
    pub spec: FeatureSpec,
    /// The as-of time (Unix seconds) the values were computed at.
    pub as_of: i64,
    /// Row-major, one row per dense user (the spec's user width); entities without events
    /// before the as-of time hold the defaults.
    pub users: Vec<f32>,
    /// Row-major, one row per dense item.
    pub items: Vec<f32>,
}

impl Default for DeclaredFeatures {
    fn default() -> Self {
        Self {
            spec: FeatureSpec::default_spec(),
            as_of: 0,
            users: Vec::new(),
            items: Vec::new(),
        }
    }
}

impl DeclaredFeatures {
    /// Runs the feature engine over `history` (rows at or after `as_of` are ignored by it) and
    /// lays the tables out by the dataset's dense ids.
    pub fn compute(
        spec: &FeatureSpec,
        data: &Dataset,
        history: &[Interaction],
        as_of: i64,
    ) -> Self {
        let mut engine = FeatureEngine::new(spec, as_of);
        for r in history {
            let (Some(user), Some(item)) = (
                data.users.get(r.user as usize),
                data.items.get(r.item as usize),
            ) else {
                continue;
            };
            engine.observe(&Event {
                user_id: &user.external_id,
                item_id: &item.external_id,
                event_type: r.kind,
                timestamp: r.timestamp,
                value: Some(f64::from(r.value)),
                session: None,
                device: None,
                country: None,
                placement: None,
                event_id: None,
            });
        }
        let (users, items, reports) =
            engine.finish_with(data.profiles.as_ref(), data.metadata.as_ref());
        for (entity, report) in ["user", "item"].iter().zip(&reports) {
            for (column, (count, example)) in &report.not_numeric {
                tracing::warn!(
                    entity,
                    column,
                    count,
                    example,
                    "attribute cells that are not numbers take the default"
                );
            }
        }
        let user_ids = data.users.iter().map(|u| u.external_id.as_str());
        let item_ids = data.items.iter().map(|i| i.external_id.as_str());
        Self {
            spec: spec.clone(),
            as_of,
            users: by_dense_id(&users, user_ids, spec.user.defaults()),
            items: by_dense_id(&items, item_ids, spec.item.defaults()),
        }
    }

    /// The user's stored row; None outside the table (the caller then uses the defaults).
    pub fn user(&self, user: u32) -> Option<&[f32]> {
        row(&self.users, self.spec.user.width(), user)
    }

    pub fn item(&self, item: u32) -> Option<&[f32]> {
        row(&self.items, self.spec.item.width(), item)
    }

    /// Appends the declared columns for (`user`, `item`) in `ctx`.
    pub fn append(&self, user: u32, item: u32, ctx: &Context, out: &mut Vec<f32>) {
        assemble(&self.spec, self.user(user), self.item(item), ctx, out);
    }
}

fn row(values: &[f32], width: usize, index: u32) -> Option<&[f32]> {
    let start = index as usize * width;
    values.get(start..start + width)
}

fn by_dense_id<'a>(
    table: &FeatureTable,
    ids: impl Iterator<Item = &'a str>,
    defaults: Vec<f32>,
) -> Vec<f32> {
    let index = table.index();
    let mut out = Vec::new();
    for id in ids {
        match index.get(id) {
            Some(&r) => out.extend_from_slice(table.row(r)),
            None => out.extend_from_slice(&defaults),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ItemMeta, UserProfile};
    use recsys_core::validation::EventType;

    fn data() -> Dataset {
        let user = |id: &str| UserProfile {
            external_id: id.into(),
            ..Default::default()
        };
        let item = |id: &str| ItemMeta {
            external_id: id.into(),
            title: id.into(),
            year: None,
            genres: Vec::new(),
        };
        Dataset {
            users: vec![user("u0"), user("u1")],
            items: vec![item("a"), item("b")],
            interactions: Vec::new(),
            ..Dataset::default()
        }
    }

    fn event(user: u32, item: u32, kind: EventType, day: i64) -> Interaction {
        Interaction {
            user,
            item,
            timestamp: day * 86_400,
            value: 5.0,
            kind,
            relevant: false,
        }
    }

    #[test]
    fn rows_follow_dense_ids_and_unknown_entities_get_defaults() {
        let spec = FeatureSpec::default_spec();
        let history = [
            event(0, 1, EventType::Rating, 1),
            event(0, 1, EventType::Purchase, 2),
            // At the as-of time: ignored.
            event(1, 0, EventType::Rating, 10),
        ];
        let declared = DeclaredFeatures::compute(&spec, &data(), &history, 10 * 86_400);
        let names = spec.user_names();
        let at = |row: &[f32], name: &str| row[names.iter().position(|n| n == name).unwrap()];
        let u0 = declared.user(0).unwrap();
        assert_eq!(at(u0, "user_purchases_all"), 1.0);
        assert_eq!(at(u0, "user_days_since_last"), 8.0);
        // u1's only event is at the as-of time, so u1 holds the defaults.
        assert_eq!(declared.user(1).unwrap(), spec.user.defaults().as_slice());
        assert_eq!(declared.item(0).unwrap(), spec.item.defaults().as_slice());
        assert_ne!(declared.item(1).unwrap(), spec.item.defaults().as_slice());
        assert_eq!(declared.user(2), None);

        // A row is the user's, the item's and the context's columns, as `assemble` lays out.
        let mut row = Vec::new();
        declared.append(0, 1, &Context::default(), &mut row);
        assert_eq!(row.len(), spec.vector_names().len());
        assert_eq!(&row[..names.len()], u0);
    }
}
