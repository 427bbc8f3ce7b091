//! `/v2/metadefs/namespaces/{ns}/objects[/{name}]`: list, create, show, replace and delete
//! the objects of a namespace (deleting them all is in `namespaces`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use glass_registry::{MetadefObject, now};
use serde_json::json;

use super::namespaces::{namespace_or_missing, parse_object};
use super::validate::Checker;
use super::{READ_ONLY, namespace_to_change, object_body, object_view};
use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("Could not find metadata object {name}"))
}

pub async fn list(
    State(state): State<AppState>,
    who: Identity,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    namespace_or_missing(&state, &who, &ns).await?;
    let mut objects = state.registry.list_metadef_objects(&ns).await?;
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    // Glance lists objects by name; its link here has no leading slash.
    Ok(Json(json!({
        "objects": objects.iter().map(object_view).collect::<Vec<_>>(),
        "schema": "v2/schemas/metadefs/objects",
    }))
    .into_response())
}

pub async fn create(
    State(state): State<AppState>,
    who: Identity,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    namespace_to_change(&state, &who, &ns, "add_metadef_object").await?;
    let map = object_body(&body, &READ_ONLY)?;
    let object = parse_object(&Checker::new("object"), &map, &ns, now(), "")?;
    let object = state.registry.create_metadef_object(object).await?;
    Ok((StatusCode::CREATED, Json(object_view(&object))).into_response())
}

async fn visible_object(
    state: &AppState,
    who: &Identity,
    ns: &str,
    name: &str,
) -> Result<MetadefObject, Error> {
    namespace_or_missing(state, who, ns).await?;
    state
        .registry
        .get_metadef_object(ns, name)
        .await?
        .ok_or_else(|| not_found(name))
}

pub async fn show(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let object = visible_object(&state, &who, &ns, &name).await?;
    Ok(Json(object_view(&object)).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    namespace_to_change(&state, &who, &ns, "modify_metadef_object").await?;
    let current = state
        .registry
        .get_metadef_object(&ns, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    let map = object_body(&body, &READ_ONLY)?;
    let mut object = parse_object(&Checker::new("object"), &map, &ns, current.created_at, "")?;
    object.updated_at = now();
    let object = state.registry.update_metadef_object(&name, object).await?;
    Ok(Json(object_view(&object)).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let namespace = namespace_to_change(&state, &who, &ns, "delete_metadef_object").await?;
    state
        .registry
        .get_metadef_object(&ns, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    if namespace.protected {
        return Err(Error::Forbidden(format!(
            "Metadata definition object {name} is protected and cannot be deleted."
        ))
        .into());
    }
    state.registry.delete_metadef_object(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
