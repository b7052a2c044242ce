//! Item business attributes from the catalog team's feed: stock, the regions an item may be
//! shown in, its age rating and brand safety. A CSV (`item_id,in_stock,regions,age_rating,
//! brand_safe`, regions separated by `|`, empty = everywhere) named by `serve
//! --item-attributes`; items it does not list are in stock, everywhere, unrated and safe.

use anyhow::{bail, Context};
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct ItemAttributes {
    pub in_stock: bool,
    /// Country codes; empty means everywhere.
    pub regions: Vec<String>,
    /// Minimum viewer age; 0 when unrated.
    pub age_rating: u32,
    pub brand_safe: bool,
}

impl Default for ItemAttributes {
    fn default() -> Self {
        Self {
            in_stock: true,
            regions: Vec::new(),
            age_rating: 0,
            brand_safe: true,
        }
    }
}

/// What a request allows, beyond its own exclusions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Audience<'a> {
    /// The request's country; without one only items shown everywhere qualify.
    pub country: Option<&'a str>,
    pub max_age_rating: Option<u32>,
    pub brand_safe_only: bool,
}

impl ItemAttributes {
    pub fn allows(&self, audience: &Audience<'_>) -> bool {
        self.in_stock
            && (self.regions.is_empty()
                || audience
                    .country
                    .is_some_and(|c| self.regions.iter().any(|r| r.eq_ignore_ascii_case(c))))
            && audience.max_age_rating.is_none_or(|m| self.age_rating <= m)
            && (self.brand_safe || !audience.brand_safe_only)
    }
}

fn flag(text: &str, line: usize, column: &str) -> anyhow::Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => bail!("line {line}: {column} must be true or false, not {other:?}"),
    }
}

/// Reads the feed into dense ids via `item_index`. Rows for items outside the catalog are
/// counted (returned) rather than failing the load; malformed rows fail it with their line.
pub fn load(
    path: &Path,
    item_index: impl Fn(&str) -> Option<u32>,
    items: usize,
) -> anyhow::Result<(Vec<ItemAttributes>, usize)> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let header = reader.headers()?.clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let (id, stock, regions, age, safe) = (
        column("item_id")?,
        column("in_stock")?,
        column("regions")?,
        column("age_rating")?,
        column("brand_safe")?,
    );
    let mut table = vec![ItemAttributes::default(); items];
    let mut unknown = 0;
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}: line {line}", path.display()))?;
        let field = |c: usize| row.get(c).unwrap_or("");
        let Some(item) = item_index(field(id)) else {
            unknown += 1;
            continue;
        };
        let parse = || -> anyhow::Result<ItemAttributes> {
            Ok(ItemAttributes {
                in_stock: flag(field(stock), line, "in_stock")?,
                regions: field(regions)
                    .split('|')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect(),
                age_rating: field(age)
                    .trim()
                    .parse()
                    .with_context(|| format!("line {line}: age_rating must be a whole number"))?,
                brand_safe: flag(field(safe), line, "brand_safe")?,
            })
        };
        table[item as usize] = parse().with_context(|| path.display().to_string())?;
    }
    Ok((table, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn each_attribute_restricts_only_what_it_names() {
        let everywhere = ItemAttributes::default();
        let anyone = Audience::default();
        assert!(everywhere.allows(&anyone));
        let sold_out = ItemAttributes {
            in_stock: false,
            ..Default::default()
        };
        assert!(!sold_out.allows(&anyone));
        let german = ItemAttributes {
            regions: vec!["DE".into()],
            ..Default::default()
        };
        assert!(
            !german.allows(&anyone),
            "no country: only items shown everywhere"
        );
        assert!(german.allows(&Audience {
            country: Some("de"),
            ..anyone
        }));
        assert!(!german.allows(&Audience {
            country: Some("US"),
            ..anyone
        }));
        let adult = ItemAttributes {
            age_rating: 18,
            ..Default::default()
        };
        assert!(adult.allows(&anyone));
        assert!(!adult.allows(&Audience {
            max_age_rating: Some(16),
            ..anyone
        }));
        let unsafe_item = ItemAttributes {
            brand_safe: false,
            ..Default::default()
        };
        assert!(unsafe_item.allows(&anyone));
        assert!(!unsafe_item.allows(&Audience {
            brand_safe_only: true,
            ..anyone
        }));
    }

    #[test]
    fn the_feed_loads_and_bad_rows_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attributes.csv");
        std::fs::write(
            &path,
            "item_id,in_stock,regions,age_rating,brand_safe\na,false,,0,true\nb,true,DE|AT,18,false\nzzz,true,,0,true\n",
        )
        .unwrap();
        let index: HashMap<String, u32> = [
            ("a".to_owned(), 0),
            ("b".to_owned(), 1),
            ("c".to_owned(), 2),
        ]
        .into();
        let (table, unknown) = load(&path, |id| index.get(id).copied(), 3).unwrap();
        assert_eq!(unknown, 1);
        assert!(!table[0].in_stock);
        assert_eq!(table[1].regions, vec!["DE", "AT"]);
        assert_eq!((table[1].age_rating, table[1].brand_safe), (18, false));
        assert_eq!(table[2], ItemAttributes::default());
        std::fs::write(
            &path,
            "item_id,in_stock,regions,age_rating,brand_safe\na,maybe,,0,true\n",
        )
        .unwrap();
        let err = format!(
            "{:#}",
            load(&path, |id| index.get(id).copied(), 3).unwrap_err()
        );
        assert!(
            err.contains("line 2: in_stock must be true or false"),
            "{err}"
        );
    }
}
