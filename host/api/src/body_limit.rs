//! The size cap of request bodies the API reads whole (JSON documents: create, PATCH,
//! members, import, tasks, metadefs), enforced before a byte is read: a request that
//! declares a larger `Content-Length` gets its 413 at once, instead of after the first
//! 2 MiB arrived. Image data (`application/octet-stream`) streams and is capped elsewhere;
//! Glass's own admin API (`/glass/…`) sets its own caps.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::media_type;
use glass_images::Error;

/// Largest document read whole: axum's default body limit, which the extractors enforce on
/// bodies without a `Content-Length`.
pub const DOCUMENT_LIMIT: u64 = 2 * 1024 * 1024;

/// Middleware: 413 for an Images API document whose declared length is over the cap.
pub async fn refuse_declared_oversize(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let streamed = media_type(request.headers()) == "application/octet-stream";
    if request.uri().path().starts_with("/v2/")
        && !streamed
        && declared.is_some_and(|n| n > DOCUMENT_LIMIT)
    {
        tracing::debug!(
            ?declared,
            path = request.uri().path(),
            "document over the cap"
        );
        return ApiError(Error::PayloadTooLarge(format!(
            "Request body is too large: {} bytes declared, at most {DOCUMENT_LIMIT}.",
            declared.unwrap_or_default()
        )))
        .into_response();
    }
    next.run(request).await
}
