//! Recommend, as named steps: parse the request against the live version → admit it (a
//! compute permit within the deadline) → compute (the engine, on a blocking worker) → emit
//! telemetry → answer. Every failure is a [`ServingError`]; only the gRPC and HTTP fronts turn
//! it into their status.

use super::attributes::Audience;
use super::engine::{Engine, EngineError, Query, Recommendation};
use super::errors::ServingError;
use super::item_display::{self, ItemDisplay};
use super::state::{validate, ServingState};
use recsys_api::v1::{
    FeatureContribution, RecommendRequest, RecommendResponse, RecommendedItem, StageTiming,
};
use recsys_core::features::Context;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request read against the live version: everything the engine's query needs, owned so
/// that it can move to the worker thread.
struct Parsed {
    user_id: String,
    n: usize,
    exclude: HashSet<u32>,
    categories: Option<HashSet<u32>>,
    max_age_days: Option<f32>,
    country: Option<String>,
    device: Option<String>,
    placement: String,
    request_time: i64,
    max_age_rating: Option<u32>,
    brand_safe_only: bool,
    explain: bool,
}

/// What the worker computed: the ranked items and their display metadata.
struct Computed {
    rec: Recommendation,
    displays: Vec<Option<ItemDisplay>>,
    /// Whether the display metadata came from the shared store (`None` when there is none).
    display_lookup: Option<&'static str>,
}

impl ServingState {
    pub async fn recommend(
        &self,
        req: RecommendRequest,
    ) -> Result<RecommendResponse, ServingError> {
        self.recommend_within(req, None).await
    }

    /// [`Self::recommend`] within the caller's deadline when it gave one (shorter than the
    /// server's wins).
    pub async fn recommend_within(
        &self,
        req: RecommendRequest,
        caller_deadline: Option<Duration>,
    ) -> Result<RecommendResponse, ServingError> {
        let budget =
            caller_deadline.map_or(self.limits().timeout, |d| d.min(self.limits().timeout));
        let deadline = tokio::time::Instant::now() + budget;
        validate(&req)?;
        let engine = self.engine();
        let parsed = self.parse(&req, &engine)?;
        let permit = self.admit(deadline, budget).await?;
        let computed = self
            .compute(Arc::clone(&engine), parsed, permit, deadline, budget)
            .await?;
        self.emit_telemetry(&computed);
        answer(&engine, &req, computed)
    }

    fn parse(&self, req: &RecommendRequest, engine: &Engine) -> Result<Parsed, ServingError> {
        let categories: Option<HashSet<u32>> = match req.filters.as_ref() {
            Some(f) if !f.categories.is_empty() => Some(
                f.categories
                    .iter()
                    .map(|c| {
                        engine.category_id(c).ok_or_else(|| {
                            ServingError::InvalidArgument(format!("unknown category {c:?}"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => None,
        };
        let now = chrono::Utc::now().timestamp();
        let exclude: HashSet<u32> = req
            .exclude_item_ids
            .iter()
            .cloned()
            .chain(self.recent.recent(&req.user_id, now))
            .filter_map(|id| engine.item_by_external_id(&id))
            .collect();
        let context = req.context.as_ref();
        let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
        let (max_age_rating, brand_safe_only) = req.filters.as_ref().map_or((None, false), |f| {
            (
                (f.max_age_rating > 0).then_some(f.max_age_rating),
                f.brand_safe_only,
            )
        });
        Ok(Parsed {
            user_id: req.user_id.clone(),
            n: req.num_items as usize,
            exclude,
            categories,
            max_age_days: req
                .filters
                .as_ref()
                .map(|f| f.max_age_days)
                .filter(|&d| d > 0)
                .map(|d| d as f32),
            country: context.and_then(|c| non_empty(&c.country)),
            device: context.and_then(|c| non_empty(&c.device)),
            placement: if req.placement.is_empty() {
                "home".to_owned()
            } else {
                req.placement.clone()
            },
            request_time: context
                .map(|c| c.timestamp_unix)
                .filter(|&t| t > 0)
                .unwrap_or(now),
            max_age_rating,
            brand_safe_only,
            explain: req.explain,
        })
    }

    /// A compute permit, timing how long the request queued for it.
    async fn admit(
        &self,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ServingError> {
        let queued = Instant::now();
        let permit = self.permit(deadline, budget).await?;
        self.metrics
            .stage_seconds
            .with_label_values(&["queue"])
            .observe(queued.elapsed().as_secs_f64());
        Ok(permit)
    }

    /// The engine's answer and the items' display metadata, on a blocking worker that holds
    /// the permit. Past the deadline the caller has gone; the worker finishes and frees it.
    async fn compute(
        &self,
        engine: Arc<Engine>,
        parsed: Parsed,
        permit: tokio::sync::OwnedSemaphorePermit,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Result<Computed, ServingError> {
        let trending = self.trending.current();
        let cache = Arc::clone(&self.cache);
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let p = parsed;
            let rec = engine.recommend(&Query {
                user_id: &p.user_id,
                n: p.n,
                exclude: &p.exclude,
                categories: p.categories.as_ref(),
                max_age_days: p.max_age_days,
                cache: Some(cache.as_ref()),
                audience: Audience {
                    country: p.country.as_deref(),
                    max_age_rating: p.max_age_rating,
                    brand_safe_only: p.brand_safe_only,
                },
                context: Context {
                    timestamp: p.request_time,
                    device: p.device.as_deref(),
                    country: p.country.as_deref(),
                    placement: Some(&p.placement),
                },
                explain: p.explain,
                trending: &trending,
            })?;
            let ids: Vec<&str> = rec
                .items
                .iter()
                .map(|&(item, _)| engine.items().external_id(item))
                .collect();
            let (displays, lookup) = item_display::fetch(cache.as_ref(), &ids);
            Ok::<_, EngineError>(Computed {
                rec,
                displays,
                display_lookup: cache.shared().then_some(lookup),
            })
        });
        tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| ServingError::DeadlineExceeded(budget))?
            .map_err(|e| ServingError::Worker(e.to_string()))?
            .map_err(ServingError::Engine)
    }

    /// Stage times, cache outcomes and fallbacks of one computed request.
    fn emit_telemetry(&self, computed: &Computed) {
        let rec = &computed.rec;
        let cache_outcomes = [
            ("item_metadata", computed.display_lookup),
            ("user_embedding", rec.cache),
            ("predictions", rec.predictions),
            ("online_features", rec.online_features),
        ];
        for (cache, outcome) in cache_outcomes {
            if let Some(result) = outcome {
                self.metrics.cache.with_label_values(&[cache, result]).inc();
            }
        }
        for &(stage, millis) in &rec.timings {
            self.metrics
                .stage_seconds
                .with_label_values(&[stage])
                .observe(millis / 1e3);
        }
        if rec.fallback {
            self.metrics
                .fallbacks
                .with_label_values(&["unknown_user"])
                .inc();
        }
    }
}

/// The response: each item with the catalog feed's current display values where it has them
/// (else the version's), its explanation when asked for, and the stage timings.
fn answer(
    engine: &Engine,
    req: &RecommendRequest,
    computed: Computed,
) -> Result<RecommendResponse, ServingError> {
    let Computed { rec, displays, .. } = computed;
    let explanations = if req.explain && !rec.fallback {
        engine.explain(&rec, 3).map_err(ServingError::Engine)?
    } else {
        vec![Vec::new(); rec.items.len()]
    };
    let items = rec
        .items
        .iter()
        .zip(explanations)
        .zip(displays)
        .enumerate()
        .map(|(rank, ((&(item, score), top), display))| {
            let meta = engine.items().get(item);
            let display = display.unwrap_or_default();
            let or_version = |fresh: String, trained: &str| {
                if fresh.is_empty() {
                    trained.to_owned()
                } else {
                    fresh
                }
            };
            RecommendedItem {
                item_id: meta.external_id.to_owned(),
                score,
                rank: rank as u32 + 1,
                title: or_version(display.title, meta.title),
                category: or_version(display.category, meta.category),
                image_url: display.image_url,
                price: display.price.unwrap_or(0.0),
                top_features: top
                    .into_iter()
                    .map(|(feature, value)| FeatureContribution { feature, value })
                    .collect(),
            }
        })
        .collect();
    let timings = if req.explain {
        rec.timings
            .iter()
            .map(|&(stage, millis)| StageTiming {
                stage: stage.to_owned(),
                millis,
            })
            .collect()
    } else {
        Vec::new()
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    // The assignment is logged with every response: experiment analysis joins on it.
    tracing::info!(
        request_id,
        user = req.user_id,
        variant = engine.variant(),
        model_version = engine.version(),
        fallback = rec.fallback,
        "recommend"
    );
    Ok(RecommendResponse {
        items,
        model_version: engine.version().to_owned(),
        variant: engine.variant().to_owned(),
        request_id,
        fallback: rec.fallback,
        timings,
    })
}
