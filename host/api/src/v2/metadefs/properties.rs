//! `/v2/metadefs/namespaces/{ns}/properties[/{name}]`: list, create, show (optionally by
//! its name with a resource type's prefix), replace and delete a namespace's properties
//! (deleting them all is in `namespaces`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use glass_registry::{MetadefProperty, Timestamp, now};
use serde_json::{Map, Value, json};

use super::validate::Checker;
use super::{READ_ONLY_TIMES, namespace_for, namespace_to_change, object_body};
use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("Could not find property {name}"))
}

/// A property as its own document: its name, then its schema.
fn property_view(p: &MetadefProperty) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(p.name));
    out.extend(p.schema.clone());
    Value::Object(out)
}

/// A property body (name required), checked and split into name and schema.
fn parse_property(
    map: &Map<String, Value>,
    ns: &str,
    at: Timestamp,
) -> Result<MetadefProperty, Error> {
    let c = Checker::new("property");
    let mut schema = c.property(map, "")?;
    let name = c.required_string(map, "name", Some(80), "")?;
    schema.remove("name");
    Ok(MetadefProperty {
        namespace: ns.to_string(),
        name,
        schema,
        created_at: at,
        updated_at: at,
    })
}

pub async fn list(
    State(state): State<AppState>,
    who: Identity,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    namespace_for(&state, &who, &ns).await?;
    let props: Map<String, Value> = state
        .registry
        .list_metadef_properties(&ns)
        .await?
        .into_iter()
        .map(|p| (p.name, Value::Object(p.schema)))
        .collect();
    Ok(Json(json!({ "properties": props })).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    who: Identity,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    namespace_to_change(&state, &who, &ns, "add_metadef_property").await?;
    let map = object_body(&body, &READ_ONLY_TIMES)?;
    let property = parse_property(&map, &ns, now())?;
    let property = state.registry.create_metadef_property(property).await?;
    Ok((StatusCode::CREATED, Json(property_view(&property))).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    namespace_for(&state, &who, &ns).await?;
    let resource_type = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "resource_type")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty());
    let mut name = name;
    if let Some(rt) = resource_type {
        let association = state
            .registry
            .list_metadef_associations(&ns)
            .await?
            .into_iter()
            .find(|a| a.name == rt)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "The metadata definition resource-type association of resource-type={rt} to namespace={ns}, was not found."
                ))
            })?;
        let prefix = association.prefix.unwrap_or_default();
        match name.strip_prefix(&prefix) {
            Some(rest) if !prefix.is_empty() => name = rest.to_string(),
            _ => {
                return Err(Error::NotFound(format!(
                    "Property {name} does not start with the expected resource type association prefix of '{prefix}'."
                )).into());
            }
        }
    }
    let property = state
        .registry
        .get_metadef_property(&ns, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(property_view(&property)).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    namespace_to_change(&state, &who, &ns, "modify_metadef_property").await?;
    let current = state
        .registry
        .get_metadef_property(&ns, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    let map = object_body(&body, &READ_ONLY_TIMES)?;
    let mut property = parse_property(&map, &ns, current.created_at)?;
    property.updated_at = now();
    let property = state
        .registry
        .update_metadef_property(&name, property)
        .await?;
    Ok(Json(property_view(&property)).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let namespace = namespace_to_change(&state, &who, &ns, "remove_metadef_property").await?;
    state
        .registry
        .get_metadef_property(&ns, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    if namespace.protected {
        return Err(Error::Forbidden(format!(
            "Metadata definition property {name} is protected and cannot be deleted."
        ))
        .into());
    }
    state.registry.delete_metadef_property(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
