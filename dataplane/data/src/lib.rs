//! Data in, features out. Interaction data and the catalog loaded into dense ids (CSV and
//! Parquet event files, entity files, MovieLens, the synthetic generator, `s3://` and `file://`
//! locations) and validated; point-in-time features computed from them ([`features`]: the
//! snapshot training and serving share, the Parquet offline store, the Redis online store).

pub mod entity_files;
pub mod event_dataset;
pub mod events_io;
pub mod export;
pub mod features;
pub mod locate;
pub mod movielens;
pub mod parquet_events;
pub mod remote;
pub mod synthetic;

use recsys_core::features::AttributeRows;
use recsys_core::Interaction;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Demographics of one user, as far as they are known.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UserProfile {
    pub external_id: String,
    pub age: Option<u32>,
    pub gender: Option<String>,
    pub occupation: Option<String>,
    pub zip: Option<String>,
}

/// Display and content metadata of one item.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ItemMeta {
    pub external_id: String,
    pub title: String,
    pub year: Option<i32>,
    pub genres: Vec<String>,
}

/// Users, items and interactions with dense ids: `users[u]`, `items[i]`.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub users: Vec<UserProfile>,
    pub items: Vec<ItemMeta>,
    pub interactions: Vec<Interaction>,
    /// User profile columns by external id, for the definition's user attributes.
    pub profiles: Option<AttributeRows>,
    /// Item metadata columns by external id, for the definition's item attributes.
    pub metadata: Option<AttributeRows>,
}

impl Dataset {
    /// Profiles and metadata as attribute tables, from the typed fields (what the MovieLens
    /// files hold: age, gender, occupation, zip; title, year, category, genres).
    pub fn with_typed_attributes(mut self) -> Self {
        let mut profiles = AttributeRows {
            columns: ["age", "gender", "occupation", "zip"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        };
        for u in &self.users {
            profiles.ids.push(u.external_id.clone());
            profiles.cells.extend([
                u.age.map(|a| a.to_string()),
                u.gender.clone(),
                u.occupation.clone(),
                u.zip.clone(),
            ]);
        }
        let mut metadata = AttributeRows {
            columns: ["title", "year", "category", "genres"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        };
        for i in &self.items {
            metadata.ids.push(i.external_id.clone());
            metadata.cells.extend([
                Some(i.title.clone()),
                i.year.map(|y| y.to_string()),
                i.genres.first().cloned(),
                (!i.genres.is_empty()).then(|| i.genres.join("|")),
            ]);
        }
        self.profiles = Some(profiles);
        self.metadata = Some(metadata);
        self
    }

    pub fn first_timestamp(&self) -> Option<i64> {
        self.interactions.iter().map(|r| r.timestamp).min()
    }

    pub fn last_timestamp(&self) -> Option<i64> {
        self.interactions.iter().map(|r| r.timestamp).max()
    }

    /// Keeps only the events of the last `days` days before the newest one (the data window
    /// a schedule declares); returns how many were dropped. Users and items stay known.
    pub fn keep_last_days(&mut self, days: u32) -> usize {
        let Some(last) = self.last_timestamp() else {
            return 0;
        };
        let start = last - i64::from(days) * 86_400;
        let before = self.interactions.len();
        self.interactions.retain(|r| r.timestamp > start);
        before - self.interactions.len()
    }

    pub fn user_index(&self) -> std::collections::HashMap<String, u32> {
        self.users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.external_id.clone(), i as u32))
            .collect()
    }
}

/// A data file that could not be read, with the exact place it went wrong.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "no ml-100k data found; looked in: {0}. Run scripts/fetch-data.sh or set RECSYS_DATA_DIR"
    )]
    NotFound(String),
}
