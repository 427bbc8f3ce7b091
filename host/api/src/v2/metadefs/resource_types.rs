//! `/v2/metadefs/resource_types` (every resource type) and
//! `/v2/metadefs/namespaces/{ns}/resource_types[/{rt}]`: a namespace's associations with
//! resource types, their prefixes and properties targets.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use glass_registry::{MetadefAssociation, now};
use serde_json::{Value, json};

use super::validate::Checker;
use super::{
    READ_ONLY_TIMES, association_view, namespace_for, namespace_to_change, object_body,
    sort_by_created, time,
};
use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;

pub async fn list_types(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut types = state.registry.list_metadef_resource_types().await?;
    sort_by_created(&mut types, |t| (t.created_at, t.name.clone()), false);
    let types: Vec<Value> = types
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "created_at": time(&t.created_at),
                "updated_at": time(&t.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({ "resource_types": types })).into_response())
}

pub async fn list_associations(
    State(state): State<AppState>,
    who: Identity,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    namespace_for(&state, &who, &ns).await?;
    let mut associations = state.registry.list_metadef_associations(&ns).await?;
    sort_by_created(&mut associations, |a| (a.created_at, a.name.clone()), false);
    let associations: Vec<Value> = associations.iter().map(association_view).collect();
    Ok(Json(json!({ "resource_type_associations": associations })).into_response())
}

pub async fn associate(
    State(state): State<AppState>,
    who: Identity,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    namespace_to_change(&state, &who, &ns, "add_metadef_resource_type_association").await?;
    let map = object_body(&body, &READ_ONLY_TIMES)?;
    let c = Checker::new("resource_type_association");
    c.only(&map, &["name", "prefix", "properties_target"], "")?;
    let t = now();
    let association = MetadefAssociation {
        namespace: ns,
        name: c.required_string(&map, "name", Some(80), "")?,
        prefix: c.string(&map, "prefix", Some(80), "")?,
        properties_target: c.string(&map, "properties_target", Some(80), "")?,
        created_at: t,
        updated_at: t,
    };
    let association = state
        .registry
        .create_metadef_association(association)
        .await?;
    Ok((StatusCode::CREATED, Json(association_view(&association))).into_response())
}

pub async fn dissociate(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, rt)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let namespace = namespace_to_change(
        &state,
        &who,
        &ns,
        "remove_metadef_resource_type_association",
    )
    .await?;
    let missing = || Error::NotFound(format!("Failed to find resource type {rt} to delete"));
    let associations = state.registry.list_metadef_associations(&ns).await?;
    if !associations.iter().any(|a| a.name == rt) {
        return Err(missing().into());
    }
    if namespace.protected {
        return Err(Error::Forbidden(format!(
            "Metadata definition resource-type-association {rt} is protected and cannot be deleted."
        ))
        .into());
    }
    match state.registry.delete_metadef_association(&ns, &rt).await {
        Err(glass_registry::RegistryError::MetadefNotFound { .. }) => Err(missing().into()),
        other => other.map(|()| StatusCode::NO_CONTENT).map_err(Into::into),
    }
}
