//! `PUT/GET /v2/images/{id}/file`: image bytes. Uploads stream from the request body through
//! the host's parallel hashing into the default store's component; the image goes
//! queued → saving → active, or back to queued if anything fails (including the client going
//! away, via [`UploadGuard`]). Downloads stream from the store with single-range support.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use glass_registry::{Image, ImageStatus, Location};
use tokio::sync::mpsc;
use tokio_util::io::{ReaderStream, StreamReader};
use uuid::Uuid;

use super::access::{check_owner, modify_image, parse_image_id, visible_image};
use crate::api::media_type;
use crate::error::ApiError;
use crate::hashing::{Digests, ParallelHasher};
use crate::identity::Identity;
use crate::state::AppState;
use crate::store::{ImageStore, StoreError};

/// Chunks in flight between the request body and the store component.
const PIPE_DEPTH: usize = 16;

fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest(format!("Invalid value for header {name}"))),
    }
}

/// Puts an image back to `queued` and removes partial data unless disarmed: runs when an
/// upload fails, and also when the client disconnects and the handler is dropped mid-way.
struct UploadGuard {
    state: AppState,
    store: Arc<dyn ImageStore>,
    image: Uuid,
    armed: bool,
}

impl UploadGuard {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (state, store, id) = (self.state.clone(), self.store.clone(), self.image);
        tokio::spawn(async move {
            if let Err(e) = store.discard_partial(id).await {
                tracing::warn!(image = %id, error = %e, "discarding partial upload failed");
            }
            if let Err(e) = revert_to_queued(&state, id).await {
                tracing::warn!(image = %id, error = %e, "reverting failed upload to queued");
            }
        });
    }
}

/// Glance's answer to a failed upload: the image is queued again, with no data attributes.
pub async fn revert_to_queued(state: &AppState, id: Uuid) -> Result<(), ApiError> {
    let system = Identity::system();
    match modify_image(state, &system, id, |image| {
        if image.status == ImageStatus::Saving {
            image.status = ImageStatus::Queued;
            image.size = None;
            image.virtual_size = None;
            image.checksum = None;
            image.os_hash_algo = None;
            image.os_hash_value = None;
        }
        Ok(())
    })
    .await
    {
        Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Input(msg) => {
            ApiError::BadRequest(format!("Error reading the image data: {msg}"))
        }
        StoreError::PluginFault { .. } | StoreError::Other(_) => {
            tracing::error!(error = %e, "store failure");
            ApiError::Internal(e.to_string())
        }
        StoreError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
        StoreError::NotFound => ApiError::NotFound("Image data not found".into()),
        e => ApiError::Internal(e.to_string()),
    }
}

/// Why the body pump stopped early; decides the client's status code.
enum PumpError {
    TooLarge(u64),
    SizeMismatch,
    Client(String),
    StoreGone,
}

pub async fn upload(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let media_type = media_type(&headers);
    if media_type != "application/octet-stream" {
        return Err(ApiError::UnsupportedMediaType(media_type.to_string()));
    }
    let id = parse_image_id(&id)?;
    let declared = header_u64(&headers, "x-openstack-image-size")?;
    let content_length = header_u64(&headers, header::CONTENT_LENGTH.as_str())?;
    let cap = state.config.image_size_cap;
    if let Some(len) = content_length.or(declared)
        && len > cap
    {
        return Err(too_large(len, cap));
    }
    if let (Some(d), Some(l)) = (declared, content_length)
        && d != l
    {
        return Err(size_mismatch(d, l));
    }
    // queued → saving: of two concurrent uploads exactly one gets here.
    modify_image(&state, &who, id, |image| {
        check_owner(&who, image, "upload_image")?;
        if image.status == ImageStatus::Queued
            && (image.disk_format.is_none() || image.container_format.is_none())
        {
            return Err(ApiError::BadRequest(
                "Properties disk_format, container_format must be set prior to saving data.".into(),
            ));
        }
        if image.status != ImageStatus::Queued {
            return Err(ApiError::Conflict(format!(
                "Image status transition from {} to saving is not allowed",
                image.status
            )));
        }
        image.status = ImageStatus::Saving;
        Ok(())
    })
    .await?;
    let Some((store_id, store)) = state.stores.default_store() else {
        revert_to_queued(&state, id).await?;
        return Err(ApiError::Unavailable(
            "No image store is configured.".into(),
        ));
    };
    let (store_id, store) = (store_id.to_string(), store.clone());
    let guard = UploadGuard {
        state: state.clone(),
        store: store.clone(),
        image: id,
        armed: true,
    };

    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(PIPE_DEPTH);
    let reader = StreamReader::new(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut hasher = ParallelHasher::new();
    let pump = async {
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return Err(PumpError::Client(e.to_string()));
                }
            };
            hasher.update(&chunk).await;
            let problem = if hasher.size() > cap {
                Some(PumpError::TooLarge(hasher.size()))
            } else if declared.is_some_and(|d| hasher.size() > d) {
                Some(PumpError::SizeMismatch)
            } else {
                None
            };
            if let Some(problem) = problem {
                let _ = tx.send(Err(std::io::Error::other("upload refused"))).await;
                return Err(problem);
            }
            if tx.send(Ok(chunk)).await.is_err() {
                return Err(PumpError::StoreGone);
            }
        }
        drop(tx);
        Ok(())
    };
    let (pumped, added) = tokio::join!(pump, store.add(id, Box::pin(reader), declared));
    let digests = hasher.finish().await;
    if let Err(problem) = pumped {
        return Err(match problem {
            PumpError::TooLarge(n) => too_large(n, cap),
            PumpError::SizeMismatch => size_mismatch(declared.unwrap_or_default(), digests.size),
            PumpError::Client(msg) => {
                ApiError::BadRequest(format!("Error reading the image data: {msg}"))
            }
            PumpError::StoreGone => match added {
                Err(e) => store_error(e),
                Ok(_) => ApiError::Internal("store stopped reading early".into()),
            },
        });
    }
    let stored = added.map_err(store_error)?;
    if let Some(d) = declared
        && d != digests.size
    {
        // The guard reverts the image; the complete data must go too.
        let _ = store.delete(&stored.location).await;
        return Err(size_mismatch(d, digests.size));
    }
    if stored.size != digests.size {
        let _ = store.delete(&stored.location).await;
        return Err(ApiError::Internal(format!(
            "store {store_id} reports {} bytes stored, {} were sent",
            stored.size, digests.size
        )));
    }
    match activate(&state, id, &store_id, &stored.location, &digests).await {
        Ok(()) => {
            guard.disarm();
            tracing::info!(image = %id, size = digests.size, store = %store_id, "image data stored");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => {
            let _ = store.delete(&stored.location).await;
            Err(e)
        }
    }
}

/// saving → active, with the digests the host computed and the new location.
async fn activate(
    state: &AppState,
    id: Uuid,
    store_id: &str,
    location: &str,
    digests: &Digests,
) -> Result<(), ApiError> {
    let system = Identity::system();
    modify_image(state, &system, id, |image| {
        if image.status != ImageStatus::Saving {
            return Err(ApiError::Conflict(format!(
                "Image {id} changed to {} during the upload",
                image.status
            )));
        }
        image.status = ImageStatus::Active;
        image.size = Some(digests.size);
        if image.disk_format.as_deref() == Some("raw") {
            image.virtual_size = Some(digests.size);
        }
        image.checksum = Some(digests.md5.clone());
        image.os_hash_algo = Some("sha512".into());
        image.os_hash_value = Some(digests.sha512.clone());
        image.locations = vec![Location {
            url: location.to_string(),
            metadata: Default::default(),
            store: store_id.to_string(),
            blake3: Some(digests.blake3.clone()),
        }];
        Ok(())
    })
    .await
    .map(|_| ())
    .map_err(|e| match e {
        ApiError::NotFound(_) => {
            ApiError::Conflict(format!("Image {id} was deleted during the upload"))
        }
        e => e,
    })
}

fn too_large(size: u64, cap: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "Image exceeds the storage quota: the maximum image size is {cap} bytes, got at least {size}"
    ))
}

fn size_mismatch(declared: u64, actual: u64) -> ApiError {
    ApiError::BadRequest(format!(
        "Provided image size must match the stored image size: {declared} declared, {actual} received"
    ))
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
    let (Some(size), Some(location)) = (image.size, image.locations.first()) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    if !matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let store = state.stores.get(&location.store).ok_or_else(|| {
        ApiError::Unavailable(format!("store {} is not configured", location.store))
    })?;
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
    let reader = store
        .get(&location.url, start, Some(len))
        .await
        .map_err(store_error)?;
    let mut response = Response::new(Body::from_stream(ReaderStream::with_capacity(
        reader,
        64 * 1024,
    )));
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

/// Deletes the bytes of an image that was just removed from the registry. Failures are
/// logged, not returned: the image is gone either way (a retrying updater comes later).
pub async fn delete_data(state: &AppState, image: &Image) {
    for location in &image.locations {
        let Some(store) = state.stores.get(&location.store) else {
            tracing::warn!(image = %image.id, store = %location.store, "data left in unknown store");
            continue;
        };
        if let Err(e) = store.delete(&location.url).await {
            tracing::warn!(image = %image.id, error = %e, "deleting image data failed");
        }
    }
}

/// At start-up, before serving: an image still `saving` belongs to an upload that died with
/// the previous process. Its partial data is removed and it goes back to `queued`.
pub async fn sweep_unfinished_uploads(state: &AppState) -> Result<(), ApiError> {
    for id in state.registry.image_ids().await? {
        let Some(image) = state.registry.get_image(id).await? else {
            continue;
        };
        if image.status != ImageStatus::Saving {
            continue;
        }
        for (store_id, store) in state.stores.iter() {
            store.discard_partial(id).await.map_err(|e| {
                ApiError::Internal(format!("store {store_id}: discarding upload of {id}: {e}"))
            })?;
        }
        revert_to_queued(state, id).await?;
        tracing::warn!(image = %id, "unfinished upload from before the restart discarded");
    }
    Ok(())
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
