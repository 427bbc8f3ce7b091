//! The Images API v2 over HTTP: the router, the version documents, the health check, `/metrics`
//! (and the per-route request counting behind it), request ids, and
//! the fallbacks that answer unknown routes (404) and wrong methods (405) in Glance's shape.

pub mod audit;
pub mod auth;
pub mod body_limit;
pub mod deleted_images;
pub mod error;
pub mod idle_body;
pub mod plugins;
pub mod server;
pub mod state;
pub mod v2;

pub use state::AppState;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::error::{ApiError, render_errors};
use glass_images::Error;

/// Glass's own admin APIs (`/glass/v1/...`) are for admins only: a 403 naming what was asked.
pub fn require_admin(who: &glass_images::Identity, what: &str) -> Result<(), Error> {
    if who.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("{what} requires the admin role.")))
    }
}

/// Parses a JSON request body, with Glance's message for malformed JSON.
pub fn json_body(body: &Bytes) -> Result<Value, Error> {
    serde_json::from_slice(body)
        .map_err(|_| Error::BadRequest("Malformed JSON in request body.".into()))
}

/// A numeric header (`Content-Length`, `X-Openstack-Image-Size`), 400 when not a number.
pub fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, Error> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| Error::BadRequest(format!("Invalid value for header {name}"))),
    }
}

/// The media type of a request body (`Content-Type` without parameters), or "".
pub fn media_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("")
}

/// The Images API versions Glass speaks (Glance 2.0 to 2.18).
fn versions_body(headers: &HeaderMap) -> Value {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:9292");
    let href = format!("http://{host}/v2/");
    let versions: Vec<Value> = (0..=18)
        .rev()
        .map(|minor| {
            json!({
                "id": format!("v2.{minor}"),
                "status": if minor == 18 { "CURRENT" } else { "SUPPORTED" },
                "links": [{"rel": "self", "href": href}],
            })
        })
        .collect();
    json!({ "versions": versions })
}

async fn versions_root(headers: HeaderMap) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(versions_body(&headers)),
    )
        .into_response()
}

async fn versions(headers: HeaderMap) -> Response {
    axum::Json(versions_body(&headers)).into_response()
}

async fn healthcheck() -> &'static str {
    "OK"
}

/// Prometheus scrape endpoint (OpenMetrics text).
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts each routed request by method, route template and status, with its latency.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.metrics.observe_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Seconds a client is told to wait before retrying a 503 (`Retry-After`).
pub const RETRY_AFTER_S: u64 = 5;

/// Every 503 (a full plugin budget, a store or Keystone unavailable) tells the client when
/// to come back.
async fn retry_after(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
    }
    response
}

async fn not_found() -> ApiError {
    Error::not_found().into()
}

/// Tags every response with an `x-openstack-request-id` and logs the request.
/// The id of the request being served (its `x-openstack-request-id`), in the request's
/// extensions for handlers that record it (import tasks).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

async fn request_id(mut request: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    tracing::debug!(
        request_id = %id, %method, %path, status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64, "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-openstack-request-id", v);
    }
    response
}

/// The whole service as a router, ready to serve.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/", get(versions_root))
        .route("/versions", get(versions))
        .route("/healthcheck", get(healthcheck))
        .route("/metrics", get(metrics))
        .nest("/v2", v2::router())
        .nest(
            "/glass/v1",
            plugins::router()
                .merge(audit::router())
                .merge(deleted_images::router()),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .fallback(not_found)
        .with_state(state.clone());
    // The middleware wraps the whole router as one service, so it also sees what the router
    // adds after a route's own layers (the `Allow` header of a 405). Authentication comes
    // before any route (an unknown path without a token is a 401, as in Glance).
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .layer(middleware::from_fn(body_limit::refuse_declared_oversize))
        .layer(middleware::from_fn(render_errors))
        .layer(middleware::from_fn(retry_after))
        .layer(middleware::from_fn(request_id))
        .layer(middleware::from_fn_with_state(
            state,
            idle_body::cut_idle_bodies,
        ))
}

/// Serves `state` until `shutdown` completes, then lets requests in flight finish; with the
/// configuration's HTTP timeouts and connection limits (`[server]`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = server::Limits::of(&state.config.server);
    server::serve(listener, router(state), limits, shutdown).await
}
