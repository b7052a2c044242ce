//! One loaded model version and the two-stage request path: user tower → ANN top-500 → ranker
//! features → LightGBM → top N. Unknown users get recent popular items instead.

use super::bundle::{Catalog, CATALOG_FILE, RANKER_FILE, SNAPSHOT_FILE};
use crate::artifacts::{self, ArtifactError};
use crate::features::{ranker::feature_names, tower, FeatureSnapshot};
use crate::pipeline::ranking::{rerank, CANDIDATES};
use crate::pipeline::retrieval::retrieve_unseen;
use recsys_core::ranking;
use recsys_models::{AnnIndex, ModelError, Ranker, TowerInputs, TwoTower};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("{file}: {message}")]
    BadFile { file: String, message: String },
}

/// A ranked answer with the time each stage took.
#[derive(Debug, Clone)]
pub struct Recommendation {
    pub items: Vec<(u32, f32)>,
    pub fallback: bool,
    pub timings: Vec<(&'static str, f64)>,
}

/// Deployment-time settings of a serving process.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Serve this ANN index (an ItemIndex build) instead of the one in the model directory.
    pub index_dir: Option<std::path::PathBuf>,
    /// Candidates retrieved before ranking.
    pub candidates: usize,
    /// Arm name reported with every response (`stable`, `canary`, …).
    pub variant: String,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            index_dir: None,
            candidates: CANDIDATES,
            variant: "stable".into(),
        }
    }
}

pub struct Engine {
    version: String,
    options: EngineOptions,
    // libtorch tensors are Send but not Sync; the tower runs under a lock.
    tower: Mutex<TwoTower>,
    ann: AnnIndex,
    ranker: Ranker,
    snapshot: FeatureSnapshot,
    catalog: Catalog,
    users: HashMap<String, u32>,
    items: HashMap<String, u32>,
    popular: Vec<(u32, f32)>,
}

impl Engine {
    /// Loads and verifies a version directory; any bad file refuses the whole version.
    pub fn load(dir: &Path) -> Result<Self, EngineError> {
        Self::load_with(dir, EngineOptions::default())
    }

    /// [`Engine::load`] with deployment settings; a separate index must cover exactly the
    /// model's catalog with vectors of the model's width.
    pub fn load_with(dir: &Path, options: EngineOptions) -> Result<Self, EngineError> {
        let manifest = artifacts::verify(dir, None)?;
        let snapshot: FeatureSnapshot = read_json(&dir.join(SNAPSHOT_FILE))?;
        let expected = artifacts::feature_schema_hash(&snapshot);
        if manifest.feature_schema_hash != expected {
            return Err(ArtifactError::Schema {
                dir: dir.to_path_buf(),
                found: manifest.feature_schema_hash,
                expected,
            }
            .into());
        }
        let catalog: Catalog = read_json(&dir.join(CATALOG_FILE))?;
        if catalog.items.len() != snapshot.items.len()
            || catalog.user_ids.len() != snapshot.users.len()
        {
            return Err(EngineError::BadFile {
                file: CATALOG_FILE.into(),
                message: "catalog and snapshot sizes differ".into(),
            });
        }
        let tower = TwoTower::load(dir)?;
        let ann = AnnIndex::load(options.index_dir.as_deref().unwrap_or(dir))?;
        if ann.len() != catalog.items.len() || ann.dim() != tower.config().output_dim as usize {
            return Err(EngineError::BadFile {
                file: "ann.json".into(),
                message: format!(
                    "index of {} vectors × {} does not match the model's {} items × {}",
                    ann.len(),
                    ann.dim(),
                    catalog.items.len(),
                    tower.config().output_dim
                ),
            });
        }
        let ranker = Ranker::load(&dir.join(RANKER_FILE), &feature_names())?;
        let users = catalog
            .user_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        let items = catalog
            .items
            .iter()
            .enumerate()
            .map(|(i, meta)| (meta.external_id.clone(), i as u32))
            .collect();
        let popularity: Vec<f32> = snapshot
            .items
            .iter()
            .map(|i| i.count_7d as f32 + i.count_all as f32 / 1e6)
            .collect();
        let mut popular: Vec<(u32, f32)> = popularity
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .collect();
        popular.sort_by(ranking::compare_scored);
        popular.truncate(1000);
        Ok(Self {
            version: manifest.model_version,
            options,
            tower: Mutex::new(tower),
            ann,
            ranker,
            snapshot,
            catalog,
            users,
            items,
            popular,
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn variant(&self) -> &str {
        &self.options.variant
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Dense id of an external item id; a map, since exclusions are looked up per request.
    pub fn item_by_external_id(&self, id: &str) -> Option<u32> {
        self.items.get(id).copied()
    }

    /// The top `n` items for `user_id`, never including `exclude` or items seen before.
    pub fn recommend(
        &self,
        user_id: &str,
        n: usize,
        exclude: &HashSet<u32>,
    ) -> Result<Recommendation, EngineError> {
        let Some(&user) = self.users.get(user_id) else {
            let items = self
                .popular
                .iter()
                .filter(|(i, _)| !exclude.contains(i))
                .take(n)
                .copied()
                .collect();
            return Ok(Recommendation {
                items,
                fallback: true,
                timings: Vec::new(),
            });
        };
        let mut timings = Vec::new();
        let mut clock = Instant::now();
        let mut lap = |stage: &'static str, timings: &mut Vec<(&'static str, f64)>| {
            timings.push((stage, clock.elapsed().as_secs_f64() * 1e3));
            clock = Instant::now();
        };

        let mut inputs = TowerInputs {
            feature_dim: tower::user_feature_dim(&self.snapshot),
            ..Default::default()
        };
        inputs
            .ids
            .push(tower::user_row(&self.snapshot, user, &mut inputs.features));
        let query = {
            let model = self
                .tower
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            model.embed_users(&inputs)?
        };
        lap("embedding", &mut timings);

        let mut candidates = retrieve_unseen(
            &self.ann,
            &self.snapshot,
            user,
            &query,
            self.options.candidates + exclude.len(),
        )?;
        candidates.retain(|(i, _)| !exclude.contains(i));
        candidates.truncate(self.options.candidates);
        lap("retrieval", &mut timings);

        let mut ranked = rerank(&self.ranker, &self.snapshot, user, &candidates)?;
        ranked.truncate(n);
        lap("ranking", &mut timings);
        Ok(Recommendation {
            items: ranked,
            fallback: false,
            timings,
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EngineError> {
    let bad = |message: String| EngineError::BadFile {
        file: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))
}
