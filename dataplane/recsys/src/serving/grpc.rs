//! The `recsys.v1.Recommender` gRPC front: health, reflection (so `grpcurl` works), and the
//! two methods, each counted and timed.

use super::state::ServingState;
use recsys_api::v1::recommender_server::{Recommender, RecommenderServer};
use recsys_api::v1::{FeedbackRequest, FeedbackResponse, RecommendRequest, RecommendResponse};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

pub struct RecommenderService {
    state: Arc<ServingState>,
}

impl RecommenderService {
    pub fn new(state: Arc<ServingState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl Recommender for RecommenderService {
    async fn recommend(
        &self,
        request: Request<RecommendRequest>,
    ) -> Result<Response<RecommendResponse>, Status> {
        let started = Instant::now();
        let result = self.state.recommend(request.into_inner()).await;
        self.state.observe("Recommend", started, &result);
        result.map(Response::new)
    }

    async fn feedback(
        &self,
        request: Request<FeedbackRequest>,
    ) -> Result<Response<FeedbackResponse>, Status> {
        let started = Instant::now();
        let result = self.state.feedback(request.into_inner()).await;
        self.state.observe("Feedback", started, &result);
        result.map(Response::new)
    }
}

/// Binds `addr` (port 0 picks a free one) and returns the bound address and the server, which
/// runs until `shutdown` resolves and then drains the requests in flight.
pub async fn bind(
    state: Arc<ServingState>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(
    SocketAddr,
    impl Future<Output = Result<(), tonic::transport::Error>>,
)> {
    serve(RecommenderService::new(state), addr, shutdown).await
}

/// Serves any implementation of `recsys.v1.Recommender` (the server, the router) with
/// `grpc.health.v1` and server reflection beside it.
pub async fn serve<S: Recommender>(
    service: S,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(
    SocketAddr,
    impl Future<Output = Result<(), tonic::transport::Error>>,
)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<RecommenderServer<S>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(recsys_api::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // Small request/response messages: without TCP_NODELAY, Nagle's algorithm and delayed
    // ACKs add ~40 ms to every call.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection)
        .add_service(RecommenderServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown);
    Ok((local, server))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::validate;
    use recsys_api::v1::RecommendRequest;

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
