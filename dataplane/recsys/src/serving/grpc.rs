//! The `recsys.v1.Recommender` gRPC service: validate the request, run the engine off the async
//! runtime, map errors to precise status codes.

use super::engine::{Engine, EngineError};
use recsys_api::v1::recommender_server::{Recommender, RecommenderServer};
use recsys_api::v1::{RecommendRequest, RecommendResponse, RecommendedItem, StageTiming};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Largest `num_items` a caller may ask for.
pub const MAX_ITEMS: u32 = 100;
const PLACEMENTS: [&str; 3] = ["home", "detail", "search"];

pub struct RecommenderService {
    engine: Arc<Engine>,
}

impl RecommenderService {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

fn validate(req: &RecommendRequest) -> Result<(), Status> {
    if req.user_id.trim().is_empty() {
        return Err(Status::invalid_argument("user_id is required"));
    }
    if req.num_items == 0 || req.num_items > MAX_ITEMS {
        return Err(Status::invalid_argument(format!(
            "num_items must be in 1..={MAX_ITEMS}, got {}",
            req.num_items
        )));
    }
    if !req.placement.is_empty() && !PLACEMENTS.contains(&req.placement.as_str()) {
        return Err(Status::invalid_argument(format!(
            "unknown placement {:?}; known: {PLACEMENTS:?}",
            req.placement
        )));
    }
    Ok(())
}

impl From<EngineError> for Status {
    fn from(e: EngineError) -> Self {
        // Any engine failure on a validated request is ours, not the caller's.
        Status::internal(e.to_string())
    }
}

#[tonic::async_trait]
impl Recommender for RecommenderService {
    async fn recommend(
        &self,
        request: Request<RecommendRequest>,
    ) -> Result<Response<RecommendResponse>, Status> {
        let req = request.into_inner();
        validate(&req)?;
        let engine = Arc::clone(&self.engine);
        let request_id = uuid::Uuid::new_v4().to_string();
        let exclude: HashSet<u32> = req
            .exclude_item_ids
            .iter()
            .filter_map(|id| engine.item_by_external_id(id))
            .collect();
        let user_id = req.user_id.clone();
        let n = req.num_items as usize;
        let rec = tokio::task::spawn_blocking(move || {
            engine.recommend(&user_id, n, &exclude).map(|r| (r, engine))
        })
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))??;
        let (rec, engine) = rec;
        let items = rec
            .items
            .iter()
            .enumerate()
            .map(|(rank, &(item, score))| {
                let meta = &engine.catalog().items[item as usize];
                RecommendedItem {
                    item_id: meta.external_id.clone(),
                    score,
                    rank: rank as u32 + 1,
                    title: meta.title.clone(),
                    category: meta.genres.first().cloned().unwrap_or_default(),
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
        tracing::info!(
            request_id,
            user = req.user_id,
            variant = engine.variant(),
            fallback = rec.fallback,
            "recommend"
        );
        Ok(Response::new(RecommendResponse {
            items,
            model_version: engine.version().to_owned(),
            variant: engine.variant().to_owned(),
            request_id,
            fallback: rec.fallback,
            timings,
        }))
    }
}

/// Binds `addr` (port 0 picks a free one), serves until `shutdown` resolves, and reports the
/// bound address through the returned value before serving.
pub async fn bind(
    engine: Arc<Engine>,
    addr: SocketAddr,
) -> anyhow::Result<(
    SocketAddr,
    impl std::future::Future<Output = Result<(), tonic::transport::Error>>,
)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<RecommenderServer<RecommenderService>>()
        .await;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(RecommenderServer::new(RecommenderService::new(engine)))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        });
    Ok((local, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(user: &str, n: u32, placement: &str) -> RecommendRequest {
        RecommendRequest {
            user_id: user.into(),
            num_items: n,
            placement: placement.into(),
            ..Default::default()
        }
    }

    #[test]
    fn bad_requests_are_invalid_argument_with_a_reason() {
        let e = validate(&req("", 10, "")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("user_id"));
        assert!(validate(&req("1", 0, ""))
            .unwrap_err()
            .message()
            .contains("num_items"));
        assert!(validate(&req("1", 101, "")).is_err());
        assert!(validate(&req("1", 10, "moon"))
            .unwrap_err()
            .message()
            .contains("placement"));
        assert!(validate(&req("1", 10, "home")).is_ok());
    }
}
