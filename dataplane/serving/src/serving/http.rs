//! The small HTTP/JSON surface for humans and probes: `GET /recommend?user_id=…&num_items=…`,
//! `/healthz`, `/readyz` and `/metrics`.

use super::auth::Access;
use super::errors::{http_status, ServingError};
use super::limits;
use super::listener::{self, Conn, ListenerOptions};
use super::state::ServingState;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use recsys_api::v1::{Filters, RecommendRequest};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}

fn json_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        "application/json",
        serde_json::json!({ "error": message }).to_string(),
    )
}

/// Builds a request from the query string; malformed numbers are the caller's error.
fn parse_query(query: &str) -> Result<RecommendRequest, String> {
    let mut req = RecommendRequest {
        num_items: 10,
        ..Default::default()
    };
    let mut filters = Filters::default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "user_id" => req.user_id = value.into_owned(),
            "num_items" => {
                req.num_items = value
                    .parse()
                    .map_err(|_| format!("num_items must be a whole number, got {value:?}"))?
            }
            "placement" => req.placement = value.into_owned(),
            "exclude" => req.exclude_item_ids.push(value.into_owned()),
            "category" => filters.categories.push(value.into_owned()),
            "country" => {
                req.context.get_or_insert_with(Default::default).country = value.into_owned()
            }
            "max_age_rating" => {
                filters.max_age_rating = value
                    .parse()
                    .map_err(|_| format!("max_age_rating must be a whole number, got {value:?}"))?
            }
            "brand_safe_only" => filters.brand_safe_only = matches!(value.as_ref(), "1" | "true"),
            "explain" => req.explain = matches!(value.as_ref(), "1" | "true"),
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    if filters != Filters::default() {
        req.filters = Some(filters);
    }
    Ok(req)
}

async fn handle(
    state: &Arc<ServingState>,
    recommend_access: &Access,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if state.is_ready() => reply(StatusCode::OK, "text/plain", "ready\n".into()),
        "/readyz" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".into(),
        ),
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            state.metrics.render(),
        ),
        "/recommend" => {
            let started = Instant::now();
            let presented = req
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if let Err(e) = recommend_access.check(presented) {
                let e: ServingError = e;
                return json_error(http_status(e.code()), &e.to_string());
            }
            let request = match parse_query(req.uri().query().unwrap_or("")) {
                Ok(r) => r,
                Err(message) => return json_error(StatusCode::BAD_REQUEST, &message),
            };
            let result = state.recommend(request).await;
            state.observe("HttpRecommend", started, &result);
            match result {
                Ok(r) => {
                    let items: Vec<serde_json::Value> = r
                        .items
                        .iter()
                        .map(|i| {
                            serde_json::json!({
                                "item_id": i.item_id, "rank": i.rank, "score": i.score,
                                "title": i.title, "category": i.category,
                            })
                        })
                        .collect();
                    let timings: serde_json::Map<String, serde_json::Value> = r
                        .timings
                        .iter()
                        .map(|t| (t.stage.clone(), serde_json::json!(t.millis)))
                        .collect();
                    let body = serde_json::json!({
                        "items": items, "model_version": r.model_version, "variant": r.variant,
                        "request_id": r.request_id, "fallback": r.fallback, "timings_ms": timings,
                    });
                    reply(StatusCode::OK, "application/json", body.to_string())
                }
                Err(e) => json_error(http_status(e.code()), &e.to_string()),
            }
        }
        _ => json_error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Serves HTTP/1.1 on every connection `connections` yields, with a deadline for the request
/// headers, until `shutdown` resolves.
async fn serve_connections<S>(
    mut connections: tokio::sync::mpsc::Receiver<Conn>,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: hyper::service::Service<
            Request<hyper::body::Incoming>,
            Response = Response<Full<Bytes>>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            c = connections.recv() => match c { Some(c) => c, None => return },
            _ = &mut shutdown => return,
        };
        let service = service.clone();
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits::HTTP_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(conn), service)
                .await;
        });
    }
}

/// The router's HTTP front: `/metrics` from `render` (run off the async threads: it may read
/// Redis), `/healthz`, and `/readyz` while `ready` holds (cleared on SIGTERM, so HTTPS probes
/// see the drain as the gRPC health check does). TLS and connection bounds from `options`.
pub async fn bind_metrics(
    addr: SocketAddr,
    options: ListenerOptions,
    ready: Arc<std::sync::atomic::AtomicBool>,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> anyhow::Result<(SocketAddr, impl Future<Output = ()>)> {
    let (local, connections) = listener::bind(addr, options).await?;
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let render = Arc::clone(&render);
        let ready = ready.load(std::sync::atomic::Ordering::Relaxed);
        async move {
            let response = match req.uri().path() {
                "/metrics" => match tokio::task::spawn_blocking(move || render()).await {
                    Ok(text) => reply(StatusCode::OK, "text/plain; version=0.0.4", text),
                    Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "metrics failed"),
                },
                "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
                "/readyz" if ready => reply(StatusCode::OK, "text/plain", "ready\n".into()),
                "/readyz" => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready\n".into(),
                ),
                _ => json_error(StatusCode::NOT_FOUND, "not found"),
            };
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let server = serve_connections(connections, service, std::future::pending());
    Ok((local, server))
}

/// Binds `addr` with every path open and default bounds, and serves until `shutdown`
/// resolves.
pub async fn bind(
    state: Arc<ServingState>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, impl Future<Output = ()>)> {
    bind_with(
        state,
        addr,
        ListenerOptions::default(),
        Access::Open,
        shutdown,
    )
    .await
}

/// [`bind`] with a connection cap and TLS from `options`, and `/recommend` behind
/// `recommend_access`.
pub async fn bind_with(
    state: Arc<ServingState>,
    addr: SocketAddr,
    options: ListenerOptions,
    recommend_access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, impl Future<Output = ()>)> {
    let (local, connections) = listener::bind(addr, options).await?;
    let service = hyper::service::service_fn(move |req| {
        let state = Arc::clone(&state);
        let access = recommend_access.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&state, &access, req).await) }
    });
    Ok((local, serve_connections(connections, service, shutdown)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_become_requests_and_bad_ones_are_refused() {
        let r = parse_query("user_id=42&num_items=5&category=Drama&exclude=7&explain=1").unwrap();
        assert_eq!(
            (r.user_id.as_str(), r.num_items, r.explain),
            ("42", 5, true)
        );
        assert_eq!(r.exclude_item_ids, vec!["7"]);
        assert_eq!(r.filters.unwrap().categories, vec!["Drama"]);
        assert_eq!(parse_query("user_id=a%20b").unwrap().user_id, "a b");
        assert!(parse_query("num_items=ten")
            .unwrap_err()
            .contains("num_items"));
        assert!(parse_query("colour=red").unwrap_err().contains("colour"));
        assert_eq!(
            http_status(tonic::Code::InvalidArgument),
            StatusCode::BAD_REQUEST
        );
    }
}
