//! Entity attributes (user profiles, item metadata) as feature columns. A profile or metadata
//! file is read into [`AttributeRows`] (text cells by id); the definition's `attributes` turn
//! them into numbers appended after the entity's aggregates, and entities known only from the
//! file (a new item nobody has seen yet) get rows too, so cold items carry their metadata.

use super::aggregate::FeatureTable;
use super::spec::{AttributeFeature, EntitySpec, Transform};
use std::collections::HashMap;

/// Text cells of a profile or metadata file by entity id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributeRows {
    pub columns: Vec<String>,
    pub ids: Vec<String>,
    /// Row-major, `columns.len()` cells per id.
    pub cells: Vec<Option<String>>,
}

/// Cells the definition asked for but could not use, per column (reported, never fatal).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributeReport {
    /// Numeric attributes whose cell was not a number: column → (count, first bad value).
    pub not_numeric: HashMap<String, (u64, String)>,
    /// Attribute columns the file does not have (every entity takes the default).
    pub missing_columns: Vec<String>,
}

impl AttributeRows {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn row(&self, index: usize) -> &[Option<String>] {
        let w = self.columns.len();
        &self.cells[index * w..(index + 1) * w]
    }

    pub fn index(&self) -> HashMap<&str, usize> {
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect()
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// The attribute columns of one entity, resolved against one file's columns.
struct Resolved<'a> {
    features: &'a [AttributeFeature],
    columns: Vec<Option<usize>>,
}

impl<'a> Resolved<'a> {
    fn new(
        spec: &'a EntitySpec,
        rows: Option<&AttributeRows>,
        report: &mut AttributeReport,
    ) -> Self {
        let columns = spec
            .attributes
            .iter()
            .map(|a| {
                let c = rows.and_then(|r| r.column(&a.column));
                if c.is_none() && rows.is_some() {
                    report.missing_columns.push(a.column.clone());
                }
                c
            })
            .collect();
        Self {
            features: &spec.attributes,
            columns,
        }
    }

    /// Appends the attribute values of one file row (None: the entity has no row).
    fn append(
        &self,
        cells: Option<&[Option<String>]>,
        report: &mut AttributeReport,
        out: &mut Vec<f32>,
    ) {
        for (a, column) in self.features.iter().zip(&self.columns) {
            let cell = column
                .and_then(|c| cells.map(|cells| cells[c].as_deref()))
                .flatten()
                .map(str::trim)
                .filter(|t| !t.is_empty());
            if !a.values.is_empty() {
                out.extend(
                    a.values
                        .iter()
                        .map(|v| f32::from(u8::from(cell == Some(v.as_str())))),
                );
                continue;
            }
            let value = match cell.map(|t| (t, t.parse::<f64>())) {
                None => a.default,
                Some((_, Ok(v))) if v.is_finite() => match a.transform {
                    Transform::None => v as f32,
                    Transform::Log1p => v.max(0.0).ln_1p() as f32,
                },
                Some((text, _)) => {
                    let entry = report
                        .not_numeric
                        .entry(a.column.clone())
                        .or_insert_with(|| (0, text.to_owned()));
                    entry.0 += 1;
                    a.default
                }
            };
            out.push(value);
        }
    }
}

/// Widens an aggregate-only table to the entity's full width: each row gains its attribute
/// columns, and each id in `rows` without events gains a row of aggregate defaults plus its
/// attributes. Without attributes in the definition the table is returned as it is.
pub fn with_attributes(
    table: FeatureTable,
    spec: &EntitySpec,
    rows: Option<&AttributeRows>,
) -> (FeatureTable, AttributeReport) {
    let mut report = AttributeReport::default();
    if spec.attributes.is_empty() {
        return (table, report);
    }
    let resolved = Resolved::new(spec, rows, &mut report);
    let file_index = rows.map(|r| r.index()).unwrap_or_default();
    let aggregate_defaults: Vec<f32> = spec.features.iter().map(|f| f.default).collect();
    let old_width = table.width();
    let mut values = Vec::with_capacity((table.len() + file_index.len()) * spec.width());
    let mut keys = table.keys;
    for (k, key) in keys.iter().enumerate() {
        values.extend_from_slice(&table.values[k * old_width..(k + 1) * old_width]);
        let cells = file_index
            .get(key.as_str())
            .map(|&r| rows.expect("indexed").row(r));
        resolved.append(cells, &mut report, &mut values);
    }
    let mut sequences = table.sequences;
    if let Some(rows) = rows {
        let known: std::collections::HashSet<String> = keys.iter().cloned().collect();
        for (r, id) in rows.ids.iter().enumerate() {
            if known.contains(id) {
                continue;
            }
            values.extend_from_slice(&aggregate_defaults);
            resolved.append(Some(rows.row(r)), &mut report, &mut values);
            keys.push(id.clone());
            if !sequences.is_empty() {
                sequences.push(Vec::new());
            }
        }
    }
    let table = FeatureTable {
        entity: table.entity,
        as_of: table.as_of,
        names: spec.names(),
        keys,
        values,
        sequences,
    };
    (table, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{Entity, FeatureSpec};

    fn spec() -> EntitySpec {
        let yaml = r#"
version: 1
user: {ttl_hours: 1, features: []}
item:
  ttl_hours: 1
  features:
    - {name: n, aggregate: count, default: -1}
  attributes:
    - {name: price, column: price, transform: log1p, default: 0}
    - {name: year, column: year, default: 1990}
    - {name: cat, column: category, values: [a, b]}
"#;
        FeatureSpec::from_yaml(yaml).unwrap().item
    }

    fn rows() -> AttributeRows {
        let cell = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        AttributeRows {
            columns: vec!["price".into(), "category".into()],
            ids: vec!["x".into(), "cold".into()],
            cells: ["9", "b", "oops", "a"].into_iter().map(cell).collect(),
        }
    }

    #[test]
    fn rows_gain_attributes_and_file_only_entities_appear() {
        let spec = spec();
        assert_eq!(spec.names(), ["n", "price", "year", "cat=a", "cat=b"]);
        let table = FeatureTable {
            entity: Entity::Item,
            as_of: 0,
            names: vec!["n".into()],
            keys: vec!["x".into(), "no-metadata".into()],
            values: vec![3.0, 5.0],
            sequences: Vec::new(),
        };
        let (table, report) = with_attributes(table, &spec, Some(&rows()));
        assert_eq!(table.width(), spec.width());
        assert_eq!(table.keys, ["x", "no-metadata", "cold"]);
        // x: price log1p(9), no year column in the file → default, category b.
        assert_eq!(table.row(0), [3.0, 10f64.ln() as f32, 1990.0, 0.0, 1.0]);
        assert_eq!(table.row(1), [5.0, 0.0, 1990.0, 0.0, 0.0]);
        // Known only from the file: aggregate defaults, its metadata; a bad price is reported.
        assert_eq!(table.row(2), [-1.0, 0.0, 1990.0, 1.0, 0.0]);
        assert_eq!(report.not_numeric["price"], (1, "oops".to_owned()));
        assert_eq!(report.missing_columns, ["year"]);
        // The defaults row equals what an unknown entity gets.
        assert_eq!(table.row(1)[1..], spec.defaults()[1..]);
    }

    #[test]
    fn without_a_file_every_entity_takes_the_defaults() {
        let spec = spec();
        let table = FeatureTable {
            entity: Entity::Item,
            as_of: 0,
            names: vec!["n".into()],
            keys: vec!["x".into()],
            values: vec![2.0],
            sequences: Vec::new(),
        };
        let (table, report) = with_attributes(table, &spec, None);
        assert_eq!(table.row(0), [2.0, 0.0, 1990.0, 0.0, 0.0]);
        assert!(report.missing_columns.is_empty() && report.not_numeric.is_empty());
    }
}
