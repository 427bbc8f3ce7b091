//! `GET /v2/images/{id}/file`: image bytes out, with single-range support; the bytes come
//! from `glass_images::download` (store failover, the image cache).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use glass_images::access::{check_image_rule, parse_image_id, visible_image};
use glass_images::{Error, Identity, download};
use glass_registry::{Image, ImageStatus};

use crate::error::ApiError;
use crate::state::AppState;

pub async fn download(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_image_id(&id)?;
    let image = visible_image(&state, &who, id).await?;
    if image.status == ImageStatus::Deactivated && !who.is_admin() {
        return Err(Error::Forbidden(
            "The requested image has been deactivated. Image data download is forbidden.".into(),
        )
        .into());
    }
    check_image_rule(&state, &who, &image, "download_image")?;
    let Some(size) = image.size else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    if image.locations.is_empty()
        || !matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated)
    {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let (status, start, len) = match parse_range(&headers, size) {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeRequest::Unsatisfiable => {
            let mut r = ApiError(Error::RangeNotSatisfiable(format!(
                "Requested range not satisfiable for an image of {size} bytes"
            )))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let whole = status == StatusCode::OK;
    let Some(data) = download::read(&state, &image, start, len, whole).await? else {
        // Glance answers 204 when the store has no data for an active image.
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    Ok(data_response(
        Body::from_stream(data.stream),
        status,
        start,
        len,
        size,
        &image,
        data.cache,
    ))
}

/// The response head of a download: type, length, md5, range, and whether the cache served
/// it (`x-glass-cache: hit|miss`, for images of cached stores).
fn data_response(
    body: Body,
    status: StatusCode,
    start: u64,
    len: u64,
    size: u64,
    image: &Image,
    cache: Option<&'static str>,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(md5) = image
        .checksum
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        h.insert("content-md5", md5);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Some(cache) = cache {
        h.insert("x-glass-cache", HeaderValue::from_static(cache));
    }
    response
}

/// A parsed `Range: bytes=...` header against a known size.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    Full,
    Part { start: u64, end: u64 },
    Unsatisfiable,
}

fn parse_range(headers: &HeaderMap, size: u64) -> RangeRequest {
    let Some(raw) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeRequest::Full;
    };
    let Some(spec) = raw.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full; // several ranges: served whole, as the RFC allows
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.parse::<u64>().ok(), last.parse::<u64>().ok()) {
        (Some(s), Some(e)) if s <= e => Some((s, e.min(size.saturating_sub(1)))),
        (Some(_), Some(_)) => return RangeRequest::Full, // invalid: ignore the header
        (Some(s), None) if last.is_empty() => Some((s, size.saturating_sub(1))),
        (None, Some(n)) if first.is_empty() => {
            if n == 0 {
                return RangeRequest::Unsatisfiable;
            }
            Some((size.saturating_sub(n), size.saturating_sub(1)))
        }
        _ => return RangeRequest::Full,
    };
    match parsed {
        Some((start, end)) if start < size && start <= end => RangeRequest::Part { start, end },
        _ => RangeRequest::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> RangeRequest {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        parse_range(&h, size)
    }

    #[test]
    fn ranges() {
        assert_eq!(
            range("bytes=0-15", 100),
            RangeRequest::Part { start: 0, end: 15 }
        );
        assert_eq!(
            range("bytes=90-", 100),
            RangeRequest::Part { start: 90, end: 99 }
        );
        assert_eq!(
            range("bytes=-10", 100),
            RangeRequest::Part { start: 90, end: 99 }
        );
        assert_eq!(
            range("bytes=50-500", 100),
            RangeRequest::Part { start: 50, end: 99 }
        );
        assert_eq!(range("bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=5-1", 100), RangeRequest::Full);
        assert_eq!(range("bytes=0-1,5-6", 100), RangeRequest::Full);
        assert_eq!(range("items=0-1", 100), RangeRequest::Full);
        assert_eq!(parse_range(&HeaderMap::new(), 100), RangeRequest::Full);
    }
}
