//! Reader for MovieLens in RecBole's atomic-file format (`.inter`, `.item`, `.user`: a typed
//! header line, then tab-separated rows).

use super::{DataError, Dataset, ItemMeta, UserProfile};
use recsys_core::Interaction;
use std::collections::HashMap;
use std::path::Path;

/// Loads `ml-100k.{user,item,inter}` from `dir`. Ids are dense, ordered by the numeric value of
/// the original token, so "ascending item id" means the same thing before and after loading.
pub fn load(dir: &Path) -> Result<Dataset, DataError> {
    let users = read_users(&dir.join("ml-100k.user"))?;
    let items = read_items(&dir.join("ml-100k.item"))?;
    let user_index: HashMap<&str, u32> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.external_id.as_str(), i as u32))
        .collect();
    let item_index: HashMap<&str, u32> = items
        .iter()
        .enumerate()
        .map(|(i, m)| (m.external_id.as_str(), i as u32))
        .collect();
    let interactions = read_interactions(&dir.join("ml-100k.inter"), &user_index, &item_index)?;
    Ok(Dataset {
        users,
        items,
        interactions,
        ..Dataset::default()
    }
    .with_typed_attributes())
}

fn read_rows(path: &Path, min_columns: usize) -> Result<Vec<(usize, Vec<String>)>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<String> = line.split('\t').map(str::to_owned).collect();
        if fields.len() < min_columns {
            return Err(malformed(
                path,
                n + 1,
                format!(
                    "expected {min_columns} tab-separated fields, got {}",
                    fields.len()
                ),
            ));
        }
        rows.push((n + 1, fields));
    }
    Ok(rows)
}

fn malformed(path: &Path, line: usize, message: String) -> DataError {
    DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    }
}

fn numeric_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn read_users(path: &Path) -> Result<Vec<UserProfile>, DataError> {
    let mut users = Vec::new();
    for (line, f) in read_rows(path, 5)? {
        let age = match f[1].trim() {
            "" => None,
            a => Some(
                a.parse()
                    .map_err(|_| malformed(path, line, format!("age {a:?} is not a number")))?,
            ),
        };
        users.push(UserProfile {
            external_id: f[0].trim().to_owned(),
            age,
            gender: non_empty(&f[2]),
            occupation: non_empty(&f[3]),
            zip: non_empty(&f[4]),
        });
    }
    users.sort_by(|a, b| numeric_order(&a.external_id, &b.external_id));
    Ok(users)
}

fn read_items(path: &Path) -> Result<Vec<ItemMeta>, DataError> {
    let mut items = Vec::new();
    for (_, f) in read_rows(path, 2)? {
        items.push(ItemMeta {
            external_id: f[0].trim().to_owned(),
            title: f[1].trim().to_owned(),
            year: f.get(2).and_then(|y| y.trim().parse().ok()),
            genres: f
                .get(3)
                .map(|g| g.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        });
    }
    items.sort_by(|a, b| numeric_order(&a.external_id, &b.external_id));
    Ok(items)
}

fn read_interactions(
    path: &Path,
    users: &HashMap<&str, u32>,
    items: &HashMap<&str, u32>,
) -> Result<Vec<Interaction>, DataError> {
    let mut rows = Vec::new();
    for (line, f) in read_rows(path, 4)? {
        let user = *users
            .get(f[0].trim())
            .ok_or_else(|| malformed(path, line, format!("unknown user {:?}", f[0])))?;
        let item = *items
            .get(f[1].trim())
            .ok_or_else(|| malformed(path, line, format!("unknown item {:?}", f[1])))?;
        let value: f32 = f[2]
            .trim()
            .parse()
            .map_err(|_| malformed(path, line, format!("rating {:?} is not a number", f[2])))?;
        let timestamp: f64 = f[3]
            .trim()
            .parse()
            .map_err(|_| malformed(path, line, format!("timestamp {:?} is not a number", f[3])))?;
        rows.push(Interaction {
            user,
            item,
            timestamp: timestamp as i64,
            value,
            kind: recsys_core::validation::EventType::Rating,
            relevant: false,
        });
    }
    Ok(rows)
}

/// The MovieLens adapter for the pipeline: every rating as an event of the documented schema
/// (`event_type` rating, `value` the stars), in time order, written as CSV.
pub fn write_events(data: &Dataset, path: &Path) -> anyhow::Result<()> {
    let mut rows: Vec<&recsys_core::Interaction> = data.interactions.iter().collect();
    rows.sort_by_key(|r| r.timestamp);
    let mut out = csv::Writer::from_path(path)?;
    out.write_record(super::events_io::COLUMNS)?;
    for r in rows {
        out.write_record([
            data.users[r.user as usize].external_id.as_str(),
            &data.items[r.item as usize].external_id,
            "rating",
            &r.timestamp.to_string(),
            &r.value.to_string(),
            "",
            "",
            "",
            "",
        ])?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::write(dir.join(name), body).unwrap();
    }

    fn fixture(inter: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ml-100k.user", "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n10\t30\tF\twriter\t12345\n2\t24\tM\tstudent\t55455\n");
        write(dir.path(), "ml-100k.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n9\tHeat\t1995\tAction Crime\n1\tToy Story\t1995\tAnimation Children's\n");
        write(dir.path(), "ml-100k.inter", inter);
        dir
    }

    #[test]
    fn dense_ids_follow_numeric_order_of_tokens() {
        let dir = fixture("user_id:token\titem_id:token\trating:float\ttimestamp:float\n10\t9\t4\t100\n2\t1\t3\t50\n");
        let data = load(dir.path()).unwrap();
        assert_eq!(data.users[0].external_id, "2");
        assert_eq!(data.items[1].title, "Heat");
        assert_eq!(data.items[0].genres, vec!["Animation", "Children's"]);
        assert_eq!(
            data.interactions[0],
            Interaction {
                user: 1,
                item: 1,
                timestamp: 100,
                value: 4.0,
                kind: recsys_core::validation::EventType::Rating,
                relevant: false,
            }
        );
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let dir = fixture(
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n10\t9\tfour\t100\n",
        );
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("ml-100k.inter:2") && err.contains("not a number"),
            "{err}"
        );

        let dir =
            fixture("user_id:token\titem_id:token\trating:float\ttimestamp:float\n77\t9\t4\t100\n");
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("unknown user \"77\""));
    }
}
