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
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::access::{check_image_rule, parse_image_id, visible_image};
use super::image_data::store_failure;
use crate::cache::{Filler, ImageCache};
use crate::error::ApiError;
use crate::identity::Identity;
use crate::metrics::{CacheEvent, Direction, Metrics};
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
    let mut cache_header = None;
    let mut fill = None;
    if let Some(cache) = cache_for(&state, &image) {
        if let Some(file) = cache.open_for(image.id, size, image.checksum.as_deref()) {
            state.metrics.cache_event(CacheEvent::Hit);
            let mut file = tokio::fs::File::from_std(file);
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| ApiError::Internal(format!("reading the image cache: {e}")))?;
            let body = Body::from_stream(ReaderStream::with_capacity(file.take(len), CHUNK));
            return Ok(data_response(
                body,
                status,
                start,
                len,
                size,
                &image,
                Some("hit"),
            ));
        }
        state.metrics.cache_event(CacheEvent::Miss);
        cache_header = Some("miss");
        if status == StatusCode::OK {
            fill = Fill::start(cache, &image).await;
        }
    }
    let mut transfer = Transfer {
        metrics: state.metrics.clone(),
        sources: sources(&state, &image),
        next: 0,
        reader: None,
        image: image.id.to_string(),
        offset: start,
        remaining: len,
        fill,
        filled: false,
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
    let body = Body::from_stream(transfer.into_stream(first));
    Ok(data_response(
        body,
        status,
        start,
        len,
        size,
        &image,
        cache_header,
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

/// The cache, if it is on and the image has a copy in a cached store.
fn cache_for(state: &AppState, image: &Image) -> Option<Arc<ImageCache>> {
    let cached_store = image
        .locations
        .iter()
        .any(|l| state.stores.entry(&l.store).is_some_and(|e| e.cacheable));
    state.cache.clone().filter(|_| cached_store)
}

/// Fills the cache with an active image from its store (the prefetcher), unless it is
/// cached or being filled already. True when an entry was written.
pub async fn prefetch(state: &AppState, image: &Image) -> Result<bool, ApiError> {
    let Some(cache) = cache_for(state, image) else {
        return Ok(false);
    };
    let (Some(size), ImageStatus::Active) = (image.size, image.status) else {
        return Ok(false);
    };
    let Some(fill) = Fill::start(cache, image).await else {
        return Ok(false);
    };
    let mut transfer = Transfer {
        metrics: state.metrics.clone(),
        sources: sources(state, image),
        next: 0,
        reader: None,
        image: image.id.to_string(),
        offset: 0,
        remaining: size,
        fill: Some(fill),
        filled: false,
    };
    transfer.open().await?;
    while let Some(chunk) = transfer.next_chunk().await {
        chunk.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    }
    Ok(transfer.filled)
}

/// A cache fill riding along a full read.
struct Fill {
    cache: Arc<ImageCache>,
    filler: Filler,
    size: u64,
    checksum: Option<String>,
    blake3: Option<String>,
}

impl Fill {
    async fn start(cache: Arc<ImageCache>, image: &Image) -> Option<Fill> {
        let filler = cache.begin_fill(image.id).await?;
        Some(Fill {
            cache,
            filler,
            size: image.size?,
            checksum: image.checksum.clone(),
            blake3: image.locations.iter().find_map(|l| l.blake3.clone()),
        })
    }
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
    /// The cache fill this read feeds, if any; completed when the last byte is delivered.
    fill: Option<Fill>,
    /// Set when the fill became a cache entry.
    filled: bool,
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
                    if let Some(fill) = self.fill.as_mut() {
                        fill.filler.write(&chunk).await;
                    }
                    // Complete the cache fill before handing over the last bytes: once the
                    // client has them the body may never be polled again.
                    if self.remaining == 0
                        && let Some(fill) = self.fill.take()
                    {
                        let Fill {
                            cache,
                            filler,
                            size,
                            checksum,
                            blake3,
                        } = fill;
                        self.filled = cache
                            .finish_fill(filler, size, checksum, blake3.as_deref())
                            .await;
                    }
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
