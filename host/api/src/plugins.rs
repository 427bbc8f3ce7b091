//! Glass's own admin API for store driver and metadata validator components (not part of
//! Glance's API, so it lives under `/glass/v1`): list what is loaded, hot-swap a store's or a
//! validator's component, roll back. A validator is named by its `[[validators]]` id (ids
//! of stores and validators never clash: the configuration refuses it).
//!
//! - `GET  /glass/v1/plugins` — every store's status (driver, version, WIT, capabilities,
//!   sha256, calls, faults) and the versions a rollback can return to, under `plugins`; every
//!   validator's (name, version, WIT, sha256, calls, faults, mode, on_failure) under
//!   `validators`.
//! - `GET  /glass/v1/plugins/{store}` — one store's (or validator's) status.
//! - `PUT  /glass/v1/plugins/{store}` — body: the new component (`application/wasm`). It is
//!   compiled and checked off the request path; calls in flight finish on the old version,
//!   new calls use the new one. Refused with 400 (and nothing changed) if it does not fit.
//! - `POST /glass/v1/plugins/{store}/rollback` — back to the version the last swap replaced.
//!
//! Admin only. A swap lasts until the server restarts; the configuration decides what a
//! restarted server loads.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;
use glass_images::validators::ValidatorEntry;
use glass_runtime::{ComponentSource, PluginStatus, WasmStore};

/// Largest component accepted by `PUT`.
const MAX_COMPONENT_BYTES: usize = 64 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list))
        .route(
            "/plugins/{store}",
            get(show)
                .put(load)
                .layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
        .route("/plugins/{store}/rollback", post(rollback))
}

fn require_admin(who: &Identity) -> Result<(), Error> {
    super::require_admin(who, "Managing store plugins")
}

fn plugin(state: &AppState, store: &str) -> Result<Arc<WasmStore>, Error> {
    state
        .stores
        .entry(store)
        .map(|e| e.plugin.clone())
        .ok_or_else(|| Error::NotFound(format!("No store with id {store} is configured.")))
}

fn body(status: PluginStatus) -> Json<Value> {
    Json(json!({ "plugin": status }))
}

/// The validator configured as `id`, when no store is.
fn validator<'a>(state: &'a AppState, id: &str) -> Option<&'a ValidatorEntry> {
    if state.stores.entry(id).is_some() {
        return None;
    }
    state.validators.get(id)
}

fn validator_body(entry: &ValidatorEntry, status: PluginStatus) -> Json<Value> {
    let mut value = json!({ "plugin": status });
    value["plugin"]["mode"] = json!(entry.mode);
    value["plugin"]["on_failure"] = json!(entry.on_failure);
    Json(value)
}

async fn list(State(state): State<AppState>, who: Identity) -> Result<Json<Value>, ApiError> {
    require_admin(&who)?;
    let plugins: Vec<PluginStatus> = state
        .stores
        .entries()
        .iter()
        .map(|e| e.plugin.status())
        .collect();
    let validators: Vec<Value> = state
        .validators
        .entries()
        .iter()
        .map(|e| validator_body(e, e.plugin.status()).0["plugin"].take())
        .collect();
    Ok(Json(
        json!({ "plugins": plugins, "validators": validators }),
    ))
}

async fn show(
    State(state): State<AppState>,
    who: Identity,
    Path(store): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&who)?;
    if let Some(entry) = validator(&state, &store) {
        return Ok(validator_body(entry, entry.plugin.status()));
    }
    Ok(body(plugin(&state, &store)?.status()))
}

async fn load(
    State(state): State<AppState>,
    who: Identity,
    Path(store): Path<String>,
    component: Bytes,
) -> Result<Json<Value>, ApiError> {
    require_admin(&who)?;
    let entry = validator(&state, &store);
    if entry.is_none() {
        plugin(&state, &store)?;
    }
    if component.is_empty() {
        return Err(
            Error::BadRequest("The request body must be a WebAssembly component.".into()).into(),
        );
    }
    if let Some(entry) = entry {
        let status = entry
            .plugin
            .reload(ComponentSource::Owned(component.to_vec().into()))
            .await
            .map_err(|e| Error::BadRequest(format!("{e:#}")))?;
        return Ok(validator_body(entry, status));
    }
    let plugin = plugin(&state, &store)?;
    let status = plugin
        .reload(ComponentSource::Owned(component.to_vec().into()))
        .await
        .map_err(|e| Error::BadRequest(format!("{e:#}")))?;
    Ok(body(status))
}

async fn rollback(
    State(state): State<AppState>,
    who: Identity,
    Path(store): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&who)?;
    if let Some(entry) = validator(&state, &store) {
        let status = entry
            .plugin
            .rollback()
            .map_err(|e| Error::Conflict(format!("{e:#}")))?;
        return Ok(validator_body(entry, status));
    }
    let status = plugin(&state, &store)?
        .rollback()
        .map_err(|e| Error::Conflict(format!("{e:#}")))?;
    Ok(body(status))
}
