//! The catalog as serving holds it. A version's `catalog.json` parses into one `ItemMeta` per
//! item, each with three heap strings and a vector of them, plus a hash map keyed by a second
//! copy of every id: about 350 bytes an item, a third of a gigabyte at 1M items. Serving reads
//! only an item's id, title and category, so they are packed into two text columns and a
//! category index, and ids are found by binary search over a sorted permutation (a handful of
//! lookups per request, for exclusions and feedback).

use recsys_data::ItemMeta;

/// Strings laid end to end: `get(i)` is `text[ends[i - 1]..ends[i]]`.
#[derive(Debug, Default)]
struct StringColumn {
    text: String,
    ends: Vec<usize>,
}

impl StringColumn {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

/// What a response shows of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemView<'a> {
    pub external_id: &'a str,
    pub title: &'a str,
    /// The first of the item's genres; empty when it has none.
    pub category: &'a str,
}

#[derive(Debug, Default)]
pub struct ItemTable {
    ids: StringColumn,
    titles: StringColumn,
    /// Index into `categories`, `u32::MAX` for none.
    category: Vec<u32>,
    categories: Vec<String>,
    /// Dense ids ordered by external id.
    by_id: Vec<u32>,
}

impl ItemTable {
    /// Packs `items` (consumed, so their strings are freed as they are copied).
    pub fn new(items: Vec<ItemMeta>) -> Self {
        let mut table = Self::default();
        let mut category_ids: std::collections::HashMap<String, u32> = Default::default();
        table.category.reserve_exact(items.len());
        for item in items {
            table.ids.push(&item.external_id);
            table.titles.push(&item.title);
            let category = match item.genres.into_iter().next() {
                None => u32::MAX,
                Some(name) => {
                    let next = table.categories.len() as u32;
                    *category_ids.entry(name.clone()).or_insert_with(|| {
                        table.categories.push(name);
                        next
                    })
                }
            };
            table.category.push(category);
        }
        table.ids.shrink_to_fit();
        table.titles.shrink_to_fit();
        let mut by_id: Vec<u32> = (0..table.category.len() as u32).collect();
        by_id.sort_unstable_by(|&a, &b| table.ids.get(a as usize).cmp(table.ids.get(b as usize)));
        table.by_id = by_id;
        table
    }

    pub fn len(&self) -> usize {
        self.category.len()
    }

    pub fn is_empty(&self) -> bool {
        self.category.is_empty()
    }

    /// The item's display fields; `item` must be a dense id below [`ItemTable::len`].
    pub fn get(&self, item: u32) -> ItemView<'_> {
        let i = item as usize;
        ItemView {
            external_id: self.ids.get(i),
            title: self.titles.get(i),
            category: self
                .categories
                .get(self.category[i] as usize)
                .map_or("", String::as_str),
        }
    }

    pub fn external_id(&self, item: u32) -> &str {
        self.ids.get(item as usize)
    }

    /// The dense id of an external item id.
    pub fn find(&self, external_id: &str) -> Option<u32> {
        self.by_id
            .binary_search_by(|&i| self.ids.get(i as usize).cmp(external_id))
            .ok()
            .map(|k| self.by_id[k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, title: &str, genres: &[&str]) -> ItemMeta {
        ItemMeta {
            external_id: id.into(),
            title: title.into(),
            year: None,
            genres: genres.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn every_item_is_found_by_its_id_and_shows_its_first_genre() {
        let table = ItemTable::new(vec![
            meta("i10", "Ten", &["Drama", "War"]),
            meta("i2", "", &[]),
            meta("i1", "One", &["Comedy"]),
            meta("é", "Accent", &["Drama"]),
        ]);
        assert_eq!(table.len(), 4);
        for (dense, id) in ["i10", "i2", "i1", "é"].iter().enumerate() {
            assert_eq!(table.find(id), Some(dense as u32), "{id}");
            assert_eq!(table.external_id(dense as u32), *id);
        }
        assert_eq!(table.find("i3"), None);
        assert_eq!(table.find(""), None);
        assert_eq!(
            table.get(0),
            ItemView {
                external_id: "i10",
                title: "Ten",
                category: "Drama"
            }
        );
        assert_eq!(table.get(1).category, "");
        assert_eq!(table.get(1).title, "");
        assert_eq!(table.get(3).category, "Drama");
        assert_eq!(table.categories.len(), 2, "categories are stored once");
    }
}
