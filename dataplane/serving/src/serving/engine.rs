//! One loaded model version and the two-stage request path: user tower → ANN top-500 → ranker
//! features → LightGBM → top N. Unknown users get recent popular items instead.

use super::attributes::{self, Audience, ItemAttributes};
use super::cache::{CacheStore, Lookup, PREDICTION_TTL};
use super::drift_monitor::DriftMonitor;
use super::item_table::ItemTable;
use super::online_features::{self, ItemRowCache, OnlineRows};
use super::prediction_cache;
use recsys_core::features::Context;
use recsys_core::ranking;
use recsys_core::rules::{finish, Candidate, RuleConfig};
use recsys_data::features::online_store::key_prefix;
use recsys_data::features::ranker::{
    context_columns, feature_names_for, ranker_row_with, Declared,
};
use recsys_data::features::{tower, FeatureSnapshot};
use recsys_models::{AnnIndex, ModelError, Ranker, TowerInputs, UserEncoder};
use recsys_scoring::{retrieve_unseen, rule_candidate, rule_score, score_rows, CANDIDATES};
use recsys_version::bundle::{
    Catalog, ColdStart, DriftReference, CATALOG_FILE, COLD_START_FILE, DRIFT_REFERENCE_FILE,
    RANKER_FILE, SNAPSHOT_FILE,
};
use recsys_version::{self, ArtifactError};
use std::collections::{HashMap, HashSet};
use std::path::Path;
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
    /// The user-embedding cache lookup's result, when a cache was consulted.
    pub cache: Option<&'static str>,
    /// The ranker rows the returned items were scored with (row-major, in item order), for
    /// explanations; empty for the popular fallback.
    pub rows: Vec<f32>,
    /// The online feature read's result (`hit`, `partial`, `miss`, `error`), when one was made.
    pub online_features: Option<&'static str>,
    /// The prediction cache lookup's result, when one was made.
    pub predictions: Option<&'static str>,
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
    /// Diversity: at most this many items of one category in the top 10.
    pub max_per_category: usize,
    /// The item attribute feed (stock, regions, age rating, brand safety), if any.
    pub item_attributes: Option<std::path::PathBuf>,
    /// How long a computed answer is reused (zero: never).
    pub prediction_ttl: std::time::Duration,
    /// Slots of the drift window (PSI covers this many rotations).
    pub drift_slots: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            index_dir: None,
            candidates: CANDIDATES,
            variant: "stable".into(),
            max_per_category: 3,
            item_attributes: None,
            prediction_ttl: PREDICTION_TTL,
            drift_slots: 12,
        }
    }
}

pub struct Engine {
    version: String,
    options: EngineOptions,
    /// The user tower in plain Rust: shared by every worker without a lock.
    tower: UserEncoder,
    ann: AnnIndex,
    ranker: Ranker,
    snapshot: FeatureSnapshot,
    users: HashMap<String, u32>,
    items: ItemTable,
    /// What users without history get (and whether known ones go through the model instead).
    cold: ColdStart,
    /// Online feature store keys of this version's feature definition start with this.
    feature_prefix: String,
    /// Item rows recently read from the online store.
    online_items: ItemRowCache,
    /// Per dense item; empty without a feed (everything allowed).
    attributes: Vec<ItemAttributes>,
    /// Counts requests against the version's training distribution (versions without a
    /// reference have none).
    drift: Option<DriftMonitor>,
    /// What an unknown user's declared row holds: the spec's defaults.
    default_user_row: Vec<f32>,
}

impl Engine {
    /// Loads and verifies a version directory; any bad file refuses the whole version.
    pub fn load(dir: &Path) -> Result<Self, EngineError> {
        Self::load_with(dir, EngineOptions::default())
    }

    /// [`Engine::load`] with deployment settings; a separate index must cover exactly the
    /// model's catalog with vectors of the model's width.
    pub fn load_with(dir: &Path, options: EngineOptions) -> Result<Self, EngineError> {
        let manifest = recsys_version::verify(dir, None)?;
        let snapshot: FeatureSnapshot = read_json(&dir.join(SNAPSHOT_FILE))?;
        snapshot.check().map_err(|message| EngineError::BadFile {
            file: SNAPSHOT_FILE.into(),
            message,
        })?;
        let expected = recsys_version::feature_schema_hash(&snapshot);
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
        // Packed before the large files load, so the parsed catalog is gone by then.
        let users: HashMap<String, u32> = catalog
            .user_ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| (id, i as u32))
            .collect();
        let items = ItemTable::new(catalog.items);
        // Item vectors are in the index; serving needs only the user side of the model, read
        // in plain Rust (the server links no libtorch).
        let tower = UserEncoder::load(dir)?;
        // A separate index must hold this very version's vectors (its manifest names the
        // version's manifest digest); the version's own index is covered by its manifest.
        if let Some(index_dir) = options.index_dir.as_deref() {
            recsys_version::index_manifest::verify_for(index_dir, dir, &manifest.model_version)?;
        }
        let ann = AnnIndex::load(options.index_dir.as_deref().unwrap_or(dir))?;
        if let Some(id) = ann.item_ids().iter().find(|&&i| i as usize >= items.len()) {
            return Err(EngineError::BadFile {
                file: "ann.json".into(),
                message: format!("item id {id} outside the model's {} items", items.len()),
            });
        }
        if ann.len() != items.len() || ann.dim() != tower.output_dim() {
            return Err(EngineError::BadFile {
                file: "ann.json".into(),
                message: format!(
                    "index of {} vectors × {} does not match the model's {} items × {}",
                    ann.len(),
                    ann.dim(),
                    items.len(),
                    tower.output_dim()
                ),
            });
        }
        let spec = &snapshot.declared.spec;
        let ranker = Ranker::load(&dir.join(RANKER_FILE), &feature_names_for(spec))?;
        let feature_prefix = key_prefix(spec);
        let cold = cold_start(dir, &snapshot)?;
        let drift = drift_reference(dir, spec.user.width())?
            .map(|r| DriftMonitor::new(r, options.drift_slots));
        let default_user_row = spec.user.defaults();
        let attributes = match &options.item_attributes {
            None => Vec::new(),
            Some(path) => {
                let (table, unknown) = attributes::load(path, |id| items.find(id), items.len())
                    .map_err(|e| EngineError::BadFile {
                        file: path.display().to_string(),
                        message: format!("{e:#}"),
                    })?;
                if unknown > 0 {
                    tracing::warn!(
                        unknown,
                        "item attribute rows for items outside the catalog ignored"
                    );
                }
                table
            }
        };
        let engine = Self {
            version: manifest.model_version,
            options,
            tower,
            ann,
            ranker,
            snapshot,
            users,
            items,
            cold,
            feature_prefix,
            online_items: ItemRowCache::default(),
            attributes,
            drift,
            default_user_row,
        };
        release_freed_memory();
        Ok(engine)
    }

    /// The drift counters of this version, if it carries a reference.
    pub fn drift(&self) -> Option<&DriftMonitor> {
        self.drift.as_ref()
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn variant(&self) -> &str {
        &self.options.variant
    }

    /// The version's items: ids, titles and categories by dense id.
    pub fn items(&self) -> &ItemTable {
        &self.items
    }

    /// Dense id of an external item id (exclusions and feedback look items up by it).
    pub fn item_by_external_id(&self, id: &str) -> Option<u32> {
        self.items.find(id)
    }

    /// Category (primary genre) and age of an item, for filters and business rules.
    fn candidate(&self, item: u32, score: f32) -> Candidate {
        rule_candidate(&self.snapshot, item, score)
    }

    /// Candidates for a user without history from `popular` (their segment's list or the
    /// version's one list). Without a trending list: those items,
    /// scored by their popularity. With one: its items first, scored 2–3 by engagement (so the
    /// freshness boost, at most ×1.1, cannot lift an older favourite above them), then the
    /// version's popular items scored below 1 by position.
    fn popular_candidates(&self, query: &Query<'_>, popular: &[(u32, f32)]) -> Vec<Candidate> {
        if query.trending.is_empty() {
            return popular
                .iter()
                .filter(|(i, _)| self.allowed(*i, query))
                .map(|&(i, s)| self.candidate(i, s))
                .collect();
        }
        let top = query.trending[0].1.max(f64::MIN_POSITIVE);
        let mut taken = HashSet::new();
        let trending = query
            .trending
            .iter()
            .filter_map(|(id, w)| Some((self.items.find(id)?, 2.0 + (w / top) as f32)));
        let n = popular.len().max(1) as f32;
        let popular = popular
            .iter()
            .enumerate()
            .map(|(rank, &(i, _))| (i, 1.0 - rank as f32 / n));
        trending
            .chain(popular)
            .filter(|&(i, _)| taken.insert(i) && self.allowed(i, query))
            .map(|(i, s)| self.candidate(i, s))
            .collect()
    }

    fn allowed(&self, item: u32, query: &Query<'_>) -> bool {
        if query.exclude.contains(&item) {
            return false;
        }
        if let Some(a) = self.attributes.get(item as usize) {
            if !a.allows(&query.audience) {
                return false;
            }
        }
        let features = &self.snapshot.items[item as usize];
        if let Some(categories) = query.categories {
            if !features
                .genres
                .iter()
                .any(|g| categories.contains(&(*g as u32)))
            {
                return false;
            }
        }
        if let Some(max_age) = query.max_age_days {
            if features.days_since_first < 0.0 || features.days_since_first > max_age {
                return false;
            }
        }
        true
    }

    /// Dense category id of a category name (as in the catalog), for filters.
    pub fn category_id(&self, name: &str) -> Option<u32> {
        self.snapshot
            .genres
            .iter()
            .position(|g| g == name)
            .map(|i| i as u32)
    }

    /// The top `query.n` items for the user: never an excluded or already-seen item, only
    /// items passing the filters, finished by the business rules.
    pub fn recommend(&self, query: &Query<'_>) -> Result<Recommendation, EngineError> {
        let rules = RuleConfig {
            max_per_category: self.options.max_per_category,
            ..RuleConfig::default()
        };
        let known = self.users.get(query.user_id).copied();
        if let Some(drift) = &self.drift {
            drift.observe(
                known
                    .and_then(|u| self.snapshot.declared.user(u))
                    .unwrap_or(&self.default_user_row),
            );
        }
        let user = known.filter(|&u| {
            self.cold.model_for_known_cold_users || self.snapshot.users[u as usize].history_len > 0
        });
        let Some(user) = user else {
            return Ok(self.cold_answer(query, known, &rules));
        };
        let mut timings = Vec::new();
        let mut clock = Instant::now();
        let mut lap = |stage: &'static str, timings: &mut Vec<(&'static str, f64)>| {
            timings.push((stage, clock.elapsed().as_secs_f64() * 1e3));
            clock = Instant::now();
        };

        let reuse = !query.explain && !self.options.prediction_ttl.is_zero();
        let cache = query.cache.filter(|_| reuse);
        let prediction_key = cache.map(|_| prediction_cache::key(&self.version, query));
        let prediction = cache.zip(prediction_key.as_deref()).map(|(c, k)| c.get(k));
        if let Some(Lookup::Hit(values)) = &prediction {
            if let Some(items) = prediction_cache::decode(values, self.items.len()) {
                lap("prediction_cache", &mut timings);
                return Ok(Recommendation {
                    items,
                    fallback: false,
                    timings,
                    cache: None,
                    rows: Vec::new(),
                    online_features: None,
                    predictions: Some("hit"),
                });
            }
        }

        let (query_vector, embedding_cache) = self.user_vector(user, query)?;
        lap("embedding", &mut timings);

        let mut candidates = retrieve_unseen(
            &self.ann,
            &self.snapshot,
            user,
            &query_vector,
            self.options.candidates + query.exclude.len(),
        )?;
        candidates.retain(|(i, _)| self.allowed(*i, query));
        candidates.truncate(self.options.candidates);
        lap("retrieval", &mut timings);

        let online = match query.cache {
            // Only a shared store (Redis) holds materialized features.
            Some(store) if store.shared() => Some(online_features::fetch(
                store,
                &self.online_items,
                &self.feature_prefix,
                &self.snapshot.declared.spec,
                query.user_id,
                candidates
                    .iter()
                    .map(|&(i, _)| (i, self.items.external_id(i))),
            )),
            _ => None,
        };
        lap("features", &mut timings);

        let width = self.ranker.feature_names().len();
        let features = self.ranker_rows(user, &candidates, online.as_ref(), &query.context);
        let ranked = score_rows(&self.ranker, &candidates, &features)?;
        lap("ranking", &mut timings);

        let objective = self.ranker.objective();
        let finished = finish(
            ranked
                .into_iter()
                .map(|(i, s)| self.candidate(i, rule_score(objective, s)))
                .collect(),
            query.n,
            &rules,
        );
        lap("rules", &mut timings);
        let position: HashMap<u32, usize> = candidates
            .iter()
            .enumerate()
            .map(|(k, &(item, _))| (item, k))
            .collect();
        let rows = finished
            .iter()
            .flat_map(|c| {
                let k = position[&c.item];
                features[k * width..(k + 1) * width].iter().copied()
            })
            .collect();
        let items: Vec<(u32, f32)> = finished.into_iter().map(|c| (c.item, c.score)).collect();
        if let (Some(cache), Some(key)) = (cache, &prediction_key) {
            cache.put_for(
                key,
                &prediction_cache::encode(&items),
                self.options.prediction_ttl,
            );
        }
        Ok(Recommendation {
            rows,
            items,
            fallback: false,
            timings,
            cache: embedding_cache,
            online_features: online.map(|o| o.result),
            predictions: prediction.map(|l| l.label()),
        })
    }

    /// What a user without history (or unknown) gets: the version's cold list (the trending
    /// items first for unknown users), filtered and finished by the rules.
    fn cold_answer(
        &self,
        query: &Query<'_>,
        known: Option<u32>,
        rules: &RuleConfig,
    ) -> Recommendation {
        let list = self.cold.for_user(&self.snapshot, known);
        let candidates = self.popular_candidates(query, list);
        let items = finish(candidates, query.n, rules)
            .into_iter()
            .map(|c| (c.item, c.score))
            .collect();
        Recommendation {
            items,
            fallback: true,
            timings: Vec::new(),
            cache: None,
            rows: Vec::new(),
            online_features: None,
            predictions: None,
        }
    }

    /// The user's embedding from the cache when it holds a valid one, else from the user tower
    /// (and cached); with the cache lookup's outcome.
    fn user_vector(
        &self,
        user: u32,
        query: &Query<'_>,
    ) -> Result<(Vec<f32>, Option<&'static str>), EngineError> {
        let key = format!("recsys:{}:user-embedding:{}", self.version, query.user_id);
        let lookup = query.cache.map(|c| c.get(&key));
        let dim = self.ann.dim();
        let vector = match &lookup {
            Some(Lookup::Hit(v)) if v.len() == dim && v.iter().all(|x| x.is_finite()) => v.clone(),
            _ => {
                let mut inputs = TowerInputs {
                    feature_dim: tower::user_feature_dim(&self.snapshot),
                    ..Default::default()
                };
                inputs
                    .ids
                    .push(tower::user_row(&self.snapshot, user, &mut inputs.features));
                let v = self.tower.embed(&inputs)?;
                if let Some(cache) = query.cache {
                    cache.put(&key, &v);
                }
                v
            }
        };
        Ok((vector, lookup.map(|l| l.label())))
    }

    /// One ranker row per candidate: declared values from the online store where it had them,
    /// the version's own otherwise.
    fn ranker_rows(
        &self,
        user: u32,
        candidates: &[(u32, f32)],
        online: Option<&OnlineRows>,
        ctx: &Context,
    ) -> Vec<f32> {
        let declared = &self.snapshot.declared;
        let user_values = online
            .and_then(|o| o.user.as_deref())
            .or_else(|| declared.user(user));
        let context = context_columns(&self.snapshot, ctx);
        let mut rows = Vec::with_capacity(candidates.len() * self.ranker.feature_names().len());
        for (k, &(item, score)) in candidates.iter().enumerate() {
            let item_values = online
                .and_then(|o| o.items[k].as_deref())
                .or_else(|| declared.item(item));
            let values = Declared {
                user: user_values,
                item: item_values,
            };
            ranker_row_with(
                &self.snapshot,
                user,
                item,
                (score, k),
                values,
                &context,
                &mut rows,
            );
        }
        rows
    }
}

impl Engine {
    /// The `k` features that moved each item's ranking score most, from the rows it was scored
    /// with (empty for the popular fallback, which is not ranked).
    pub fn explain(
        &self,
        rec: &Recommendation,
        k: usize,
    ) -> Result<Vec<Vec<(String, f64)>>, EngineError> {
        let width = self.ranker.feature_names().len();
        if rec.items.is_empty() || rec.rows.len() != rec.items.len() * width {
            return Ok(vec![Vec::new(); rec.items.len()]);
        }
        Ok(self.ranker.top_contributions(&rec.rows, k)?)
    }
}

/// What a caller asks for.
#[derive(Clone)]
pub struct Query<'a> {
    pub user_id: &'a str,
    pub n: usize,
    /// Dense item ids never to return (the request's exclusions and recently seen items).
    pub exclude: &'a HashSet<u32>,
    /// Only items with one of these categories, when set.
    pub categories: Option<&'a HashSet<u32>>,
    /// Only items first seen at most this many days ago, when set.
    pub max_age_days: Option<f32>,
    /// Where user embeddings are cached, if anywhere.
    pub cache: Option<&'a dyn CacheStore>,
    /// Region, age rating and brand safety of the request (stock always applies).
    pub audience: Audience<'a>,
    /// Time, device and placement of the request: the ranker's context features.
    pub context: Context<'a>,
    /// Explanations need the ranker's rows, so an explained request is always computed, never
    /// answered from the prediction cache.
    pub explain: bool,
    /// What is engaging now (external ids, best first): unknown users get these before the
    /// version's own popular items.
    pub trending: &'a [(String, f64)],
}

impl<'a> Query<'a> {
    /// `n` items for `user_id` without `exclude`: no filters, no cache, the default audience
    /// and context, no explanation, no trending list.
    pub fn new(user_id: &'a str, n: usize, exclude: &'a HashSet<u32>) -> Self {
        Self {
            user_id,
            n,
            exclude,
            categories: None,
            max_age_days: None,
            cache: None,
            audience: Audience::default(),
            context: Context::default(),
            explain: false,
            trending: &[],
        }
    }
}

/// The version's lists for users without history, and whether known ones use the model
/// instead. Versions without the file: items by 7-day counts, and the model for known users.
fn cold_start(dir: &Path, snapshot: &FeatureSnapshot) -> Result<ColdStart, EngineError> {
    let path = dir.join(COLD_START_FILE);
    if path.exists() {
        let cold: ColdStart = read_json(&path)?;
        if let Some(bad) = cold
            .all_items()
            .find(|&i| i as usize >= snapshot.items.len())
        {
            return Err(EngineError::BadFile {
                file: path.display().to_string(),
                message: format!("item {bad} is outside the catalog"),
            });
        }
        return Ok(cold);
    }
    let mut popular: Vec<(u32, f32)> = snapshot
        .items
        .iter()
        .enumerate()
        .map(|(i, f)| (i as u32, f.count_7d as f32 + f.count_all as f32 / 1e6))
        .collect();
    popular.sort_by(ranking::compare_scored);
    popular.truncate(1000);
    Ok(ColdStart {
        policy: "counts over the last 7 d (a version without cold_start.json)".into(),
        as_of: snapshot.cutoff,
        items: popular,
        model_for_known_cold_users: true,
        by_profile: None,
    })
}

/// The version's training request distribution, if it has one; a column outside the user
/// row refuses the version.
fn drift_reference(dir: &Path, width: usize) -> Result<Option<DriftReference>, EngineError> {
    let path = dir.join(DRIFT_REFERENCE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let reference: DriftReference = read_json(&path)?;
    if let Some(f) = reference
        .features
        .iter()
        .find(|f| f.column >= width || f.bins.shares.len() != f.bins.cuts.len() + 1)
    {
        return Err(EngineError::BadFile {
            file: path.display().to_string(),
            message: format!(
                "feature {} does not fit the version's user row of {width} values",
                f.name
            ),
        });
    }
    Ok(Some(reference))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EngineError> {
    let bad = |message: String| EngineError::BadFile {
        file: path.display().to_string(),
        message,
    };
    // Streamed rather than read whole: at 1M items the snapshot alone is 200 MB of text, which
    // would otherwise sit beside the values parsed from it.
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_reader(std::io::BufReader::with_capacity(1 << 20, file))
        .map_err(|e| bad(e.to_string()))
}

/// Parsing a version frees millions of small allocations (JSON values, per-item strings) that
/// glibc keeps in its arenas; hand those pages back so the process holds what it uses.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it touches no live data.
    unsafe {
        libc::malloc_trim(0);
    }
}
