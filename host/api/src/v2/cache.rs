//! The cache API of Glance (Images API 2.14+, clean and prune of 2.18), admin only:
//! `GET /v2/cache` (cached and queued images), `PUT /v2/cache/{id}` (queue an active image
//! for the prefetcher, 202), `DELETE /v2/cache/{id}` (drop it from cache and queue),
//! `DELETE /v2/cache` (`x-image-cache-clear-target: cache|queue|` empty for both),
//! `POST /v2/cache/clean` and `POST /v2/cache/prune`. 404 when the cache is disabled.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use glass_registry::ImageStatus;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;
use glass_images::cache::ImageCache;

fn cache(state: &AppState, who: &Identity, action: &str) -> Result<Arc<ImageCache>, Error> {
    state
        .policy
        .enforce(action, who, &glass_images::auth::policy::Target::new())?;
    let cache = state
        .cache
        .clone()
        .ok_or_else(|| Error::NotFound("The image cache is not enabled.".into()))?;
    Ok(cache)
}

pub async fn state_of_cache(
    State(state): State<AppState>,
    who: Identity,
) -> Result<Json<Value>, ApiError> {
    let cache = cache(&state, &who, "cache_list")?;
    let cached: Vec<Value> = cache
        .list()
        .into_iter()
        .map(|e| {
            json!({
                "image_id": e.image_id,
                "hits": e.hits,
                "last_accessed": e.last_accessed,
                "last_modified": e.last_modified,
                "size": e.size,
            })
        })
        .collect();
    Ok(Json(
        json!({"cached_images": cached, "queued_images": cache.queued()}),
    ))
}

pub async fn queue_image(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let cache = cache(&state, &who, "cache_image")?;
    let not_found = || Error::NotFound(format!("Image {id} not found."));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let image = state
        .registry
        .get_image(uuid)
        .await?
        .ok_or_else(not_found)?;
    if image.status != ImageStatus::Active {
        return Err(Error::BadRequest(
            "Only images with status active can be targeted for queueing".into(),
        )
        .into());
    }
    cache
        .queue(uuid)
        .map_err(|e| Error::Internal(format!("queueing {id}: {e}")))?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn delete_entry(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let cache = cache(&state, &who, "cache_delete")?;
    let not_found = || Error::NotFound(format!("Image {id} not found."));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let known = state.registry.get_image(uuid).await?.is_some();
    let had = cache.delete(uuid) | cache.dequeue(uuid);
    if !known && !had {
        return Err(not_found().into());
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn clear(
    State(state): State<AppState>,
    who: Identity,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let cache = cache(&state, &who, "cache_delete")?;
    let target = headers
        .get("x-image-cache-clear-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(Json(match target.as_str() {
        "" => json!({"cache_deleted": cache.delete_all(), "queue_deleted": cache.dequeue_all()}),
        "cache" => json!({"cache_deleted": cache.delete_all()}),
        "queue" => json!({"queue_deleted": cache.dequeue_all()}),
        _ => {
            return Err(Error::BadRequest(
                "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string."
                    .into(),
            ).into());
        }
    }))
}

pub async fn clean(State(state): State<AppState>, who: Identity) -> Result<Json<Value>, ApiError> {
    let cache = cache(&state, &who, "cache_clean")?;
    let removed = glass_images::periodic::clean_cache(&state, &cache).await;
    Ok(Json(json!({"total_files_cleaned": removed})))
}

pub async fn prune(State(state): State<AppState>, who: Identity) -> Result<Json<Value>, ApiError> {
    let cache = cache(&state, &who, "cache_prune")?;
    let (files, bytes) = cache.prune();
    Ok(Json(
        json!({"total_files_pruned": files, "total_bytes_pruned": bytes}),
    ))
}
