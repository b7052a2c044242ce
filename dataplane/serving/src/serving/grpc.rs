//! The `recsys.v1.Recommender` gRPC front: health, reflection (so `grpcurl` works), and the
//! two methods, each counted and timed.

use super::auth::AuthPolicy;
use super::limits;
use super::listener::{self, ListenerOptions};
use super::state::ServingState;
use recsys_api::v1::recommender_server::{Recommender, RecommenderServer};
use recsys_api::v1::{FeedbackRequest, FeedbackResponse, RecommendRequest, RecommendResponse};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};
use tonic_health::server::HealthReporter;

pub struct RecommenderService {
    state: Arc<ServingState>,
    auth: AuthPolicy,
}

impl RecommenderService {
    pub fn new(state: Arc<ServingState>, auth: AuthPolicy) -> Self {
        Self { state, auth }
    }
}

/// The `authorization` header of a call, if it is text.
pub fn authorization<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

/// The caller's deadline, from its `grpc-timeout` header.
pub fn caller_deadline<T>(request: &Request<T>) -> Option<Duration> {
    request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(limits::grpc_timeout)
}

#[tonic::async_trait]
impl Recommender for RecommenderService {
    async fn recommend(
        &self,
        request: Request<RecommendRequest>,
    ) -> Result<Response<RecommendResponse>, Status> {
        let started = Instant::now();
        let result = match self.auth.recommend.check(authorization(&request)) {
            Ok(()) => {
                let deadline = caller_deadline(&request);
                self.state
                    .recommend_within(request.into_inner(), deadline)
                    .await
            }
            Err(e) => Err(e),
        };
        self.state.observe("Recommend", started, &result);
        result.map(Response::new).map_err(Status::from)
    }

    async fn feedback(
        &self,
        request: Request<FeedbackRequest>,
    ) -> Result<Response<FeedbackResponse>, Status> {
        let started = Instant::now();
        let result = match self.auth.feedback.check(authorization(&request)) {
            Ok(()) => self.state.feedback(request.into_inner()).await,
            Err(e) => Err(e),
        };
        self.state.observe("Feedback", started, &result);
        result.map(Response::new).map_err(Status::from)
    }
}

/// How a gRPC front accepts connections and bounds what they may send.
#[derive(Clone)]
pub struct GrpcOptions {
    pub listener: ListenerOptions,
    pub max_message_bytes: usize,
    pub max_concurrent_streams: u32,
}

impl Default for GrpcOptions {
    fn default() -> Self {
        Self {
            listener: ListenerOptions::default(),
            max_message_bytes: limits::MAX_MESSAGE_BYTES,
            max_concurrent_streams: limits::MAX_CONCURRENT_STREAMS,
        }
    }
}

/// A bound gRPC front: its address, its health service's reporter (NOT_SERVING first on a
/// stop) and the server to run.
pub struct Bound<F> {
    pub addr: SocketAddr,
    pub health: HealthReporter,
    pub server: F,
}

/// Binds `addr` (port 0 picks a free one) with every method open and default bounds, and
/// returns the bound address and the server, which runs until `shutdown` resolves and then
/// drains the requests in flight. In-process callers (the demo, tests) use this.
pub async fn bind(
    state: Arc<ServingState>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(
    SocketAddr,
    impl Future<Output = Result<(), tonic::transport::Error>>,
)> {
    let bound = serve(
        RecommenderService::new(state, AuthPolicy::open()),
        addr,
        &GrpcOptions::default(),
        shutdown,
    )
    .await?;
    Ok((bound.addr, bound.server))
}

/// Serves any implementation of `recsys.v1.Recommender` (the server, the router) with
/// `grpc.health.v1` and server reflection beside it.
pub async fn serve<S: Recommender>(
    service: S,
    addr: SocketAddr,
    options: &GrpcOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Bound<impl Future<Output = Result<(), tonic::transport::Error>>>> {
    let (local, connections) = listener::bind(addr, options.listener.clone()).await?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<RecommenderServer<S>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(recsys_api::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let incoming =
        tokio_stream::wrappers::ReceiverStream::new(connections).map(Ok::<_, std::io::Error>);
    let recommender = RecommenderServer::new(service)
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(options.max_concurrent_streams)
        // Dead peers are noticed and their connection slots freed.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health)
        .add_service(reflection)
        .add_service(recommender)
        .serve_with_incoming_shutdown(incoming, shutdown);
    Ok(Bound {
        addr: local,
        health: reporter,
        server,
    })
}

/// Marks every service NOT_SERVING, so probes and clients that watch health stop sending
/// before the server stops accepting.
pub async fn stop_serving<S: Recommender>(health: &HealthReporter) {
    health.set_not_serving::<RecommenderServer<S>>().await;
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
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
        assert!(e.to_string().contains("user_id"));
        assert!(validate(&req("1", 0, ""))
            .unwrap_err()
            .to_string()
            .contains("num_items"));
        assert!(validate(&req("1", 101, "")).is_err());
        assert!(validate(&req("1", 10, "moon"))
            .unwrap_err()
            .to_string()
            .contains("placement"));
        assert!(validate(&req("1", 10, "home")).is_ok());
    }
}
