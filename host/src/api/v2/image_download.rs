//! `GET /v2/images/{id}/file`: image bytes out, with single-range support. The image's
//! locations are tried in the order of their stores' weights (highest first, then the order
//! they were added); if a store fails before or during the transfer, the download continues
//! from the next location at the byte where it stopped, so the client never notices one
//! store being down. If every location fails the response is cut short (the client sees a
//! truncated body, never wrong bytes).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use glass_registry::{Image, ImageStatus};
use tokio_util::io::ReaderStream;

use super::access::{parse_image_id, visible_image};
use super::image_data::store_failure;
use crate::error::ApiError;
use crate::identity::Identity;
use crate::metrics::{Direction, Metrics};
use crate::periodic::auditor::marked_bad;
use crate::state::AppState;
use crate::store::{ByteReader, ImageStore};

/// Size of the chunks read from a store.
const CHUNK: usize = 64 * 1024;

pub async fn download(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_image_id(&id)?;
    let image = visible_image(&state, &who, id).await?;
    if image.status == ImageStatus::Deactivated && !who.is_admin() {
        return Err(ApiError::Forbidden(
            "The requested image has been deactivated. Image data download is forbidden.".into(),
        ));
    }
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
            let mut r = ApiError::RangeNotSatisfiable(format!(
                "Requested range not satisfiable for an image of {size} bytes"
            ))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let mut transfer = Transfer {
        metrics: state.metrics.clone(),
        sources: sources(&state, &image),
        next: 0,
        reader: None,
        image: image.id.to_string(),
        offset: start,
        remaining: len,
    };
    match transfer.open().await {
        // Glance answers 204 when the store has no data for an active image.
        Err(ApiError::NotFound(_)) => return Ok(StatusCode::NO_CONTENT.into_response()),
        other => other?,
    }
    let first = match transfer.next_chunk().await {
        Some(Ok(chunk)) => Some(chunk),
        Some(Err(e)) => {
            return Err(ApiError::Unavailable(format!(
                "No store could deliver the data of image {id}: {e}"
            )));
        }
        None => None,
    };
    let mut response = Response::new(Body::from_stream(transfer.into_stream(first)));
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
    Ok(response)
}

/// One place the bytes can be read from.
struct Source {
    store_id: String,
    store: Arc<dyn ImageStore>,
    url: String,
}

/// The image's locations in configured stores, highest store weight first (stable, so equal
/// weights keep the order the locations were added in). Copies the auditor marked bad are
/// never served.
fn sources(state: &AppState, image: &Image) -> Vec<Source> {
    let mut sources: Vec<(i64, Source)> = image
        .locations
        .iter()
        .filter(|l| !marked_bad(l))
        .filter_map(|l| {
            let store = state.stores.get(&l.store)?;
            Some((
                state.stores.weight(&l.store),
                Source {
                    store_id: l.store.clone(),
                    store: store.clone(),
                    url: l.url.clone(),
                },
            ))
        })
        .collect();
    sources.sort_by_key(|(weight, _)| std::cmp::Reverse(*weight));
    sources.into_iter().map(|(_, s)| s).collect()
}

/// The state of one download: where the next byte comes from and how many are still due.
struct Transfer {
    metrics: Arc<Metrics>,
    sources: Vec<Source>,
    /// Index of the next source to try.
    next: usize,
    reader: Option<ReaderStream<ByteReader>>,
    image: String,
    /// Image offset of the next byte due.
    offset: u64,
    remaining: u64,
}

impl Transfer {
    /// Opens the next source that answers, from the current offset. The error of the last
    /// one tried if none does.
    async fn open(&mut self) -> Result<(), ApiError> {
        let mut last = ApiError::Unavailable(format!(
            "No configured store holds a good copy of the data of image {}",
            self.image
        ));
        while let Some(source) = self.sources.get(self.next) {
            self.next += 1;
            match source
                .store
                .get(&source.url, self.offset, Some(self.remaining))
                .await
            {
                Ok(reader) => {
                    self.reader = Some(ReaderStream::with_capacity(reader, CHUNK));
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(image = %self.image, store = %source.store_id, error = %e,
                        "reading image data failed, trying the next location");
                    last = store_failure(&source.store_id, e);
                }
            }
        }
        Err(last)
    }

    /// The next chunk: from the current source; when it fails or ends early, from the next
    /// one at the same offset. `None` once every byte due was delivered.
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            if self.remaining == 0 {
                return None;
            }
            let failure = match self.reader.as_mut()?.next().await {
                Some(Ok(mut chunk)) => {
                    if chunk.len() as u64 > self.remaining {
                        chunk.truncate(self.remaining as usize);
                    }
                    self.offset += chunk.len() as u64;
                    self.remaining -= chunk.len() as u64;
                    let store = &self.sources[self.next - 1].store_id;
                    self.metrics
                        .store_bytes(store, Direction::Out, chunk.len() as u64);
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => e.to_string(),
                None => format!("the store ended the data {} bytes early", self.remaining),
            };
            let failed = self.next.saturating_sub(1);
            tracing::warn!(image = %self.image, store = %self.sources[failed].store_id,
                offset = self.offset, error = %failure, "image data read failed mid-way");
            self.reader = None;
            if let Err(e) = self.open().await {
                return Some(Err(std::io::Error::other(e.to_string())));
            }
        }
    }

    /// The body, starting with `first` (already read, so that a download whose every copy
    /// fails before its first byte gets a proper error status instead of a broken body).
    fn into_stream(
        self,
        first: Option<Bytes>,
    ) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
        let rest = futures_util::stream::unfold(Some(self), |transfer| async move {
            let mut t = transfer?;
            match t.next_chunk().await {
                Some(Ok(chunk)) => Some((Ok(chunk), Some(t))),
                Some(Err(e)) => Some((Err(e), None)),
                None => None,
            }
        });
        futures_util::stream::iter(first.map(Ok)).chain(rest)
    }
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
