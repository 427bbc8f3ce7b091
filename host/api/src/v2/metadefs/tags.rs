//! `/v2/metadefs/namespaces/{ns}/tags[/{name}]`: list (sorting, marker, limit), create one,
//! create many (`X-Openstack-Append` keeps the existing ones, otherwise they are replaced),
//! show, rename and delete (deleting them all is in `namespaces`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use glass_registry::{MetadefTag, now};
use serde_json::{Value, json};

use super::validate::Checker;
use super::{
    READ_ONLY_TIMES, header_true, namespace_for, namespace_to_change, object_body, tag_view,
};
use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("Could not find metadata tag {name}"))
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.chars().count() > 80 {
        return Err(Checker::new("tag").error(format!("'{name}' is too long"), "name"));
    }
    Ok(())
}

pub async fn list(
    State(state): State<AppState>,
    who: Identity,
    Path(ns): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    namespace_for(&state, &who, &ns).await?;
    let mut desc = true;
    let mut by_name = false;
    let mut limit: Option<usize> = None;
    let mut marker: Option<String> = None;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "sort_dir" => match v.as_ref() {
                "asc" => desc = false,
                "desc" => desc = true,
                _ => return Err(Error::BadRequest(format!("Invalid sort direction: {v}")).into()),
            },
            "sort_key" => match v.as_ref() {
                "name" => by_name = true,
                "created_at" => by_name = false,
                _ => return Err(Error::BadRequest(format!("Invalid sort key: {v}")).into()),
            },
            "limit" if !v.is_empty() => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| Error::BadRequest("limit param must be an integer".into()))?;
                if n < 0 {
                    return Err(Error::BadRequest("limit param must be positive".into()).into());
                }
                limit = Some(n as usize);
            }
            "marker" if !v.is_empty() => marker = Some(v.into_owned()),
            _ => {}
        }
    }
    let mut tags = state.registry.list_metadef_tags(&ns).await?;
    tags.sort_by(|a, b| {
        let ord = if by_name {
            a.name.cmp(&b.name)
        } else {
            (a.created_at, &a.name).cmp(&(b.created_at, &b.name))
        };
        if desc { ord.reverse() } else { ord }
    });
    if let Some(marker) = marker {
        let pos = tags
            .iter()
            .position(|t| t.name == marker)
            .ok_or_else(|| not_found(&marker))?;
        tags.drain(..=pos);
    }
    if let Some(limit) = limit {
        tags.truncate(limit);
    }
    let tags: Vec<Value> = tags.iter().map(|t| json!({"name": t.name})).collect();
    Ok(Json(json!({ "tags": tags })).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    namespace_for(&state, &who, &ns).await?;
    check_name(&name)?;
    namespace_to_change(&state, &who, &ns, "add_metadef_tag").await?;
    let t = now();
    let tag = MetadefTag {
        namespace: ns,
        name,
        created_at: t,
        updated_at: t,
    };
    let tag = state.registry.create_metadef_tag(tag).await?;
    Ok((StatusCode::CREATED, Json(tag_view(&tag))).into_response())
}

pub async fn create_many(
    State(state): State<AppState>,
    who: Identity,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    namespace_to_change(&state, &who, &ns, "add_metadef_tags").await?;
    let map = object_body(&body, &READ_ONLY_TIMES)?;
    let c = Checker::new("tags");
    c.only(&map, &["tags"], "")?;
    let t = now();
    let mut tags = Vec::new();
    for (i, item) in c.objects(&map, "tags", "")?.into_iter().enumerate() {
        let here = format!("tags.{i}");
        c.only(item, &["name"], &here)?;
        let name = c.required_string(item, "name", Some(80), &here)?;
        // A microsecond apart, so the listing keeps the order given.
        let at = t + chrono::Duration::microseconds(i as i64);
        tags.push(MetadefTag {
            namespace: ns.clone(),
            name,
            created_at: at,
            updated_at: at,
        });
    }
    let append = header_true(
        headers
            .get("x-openstack-append")
            .and_then(|v| v.to_str().ok()),
    );
    let given: Vec<Value> = tags.iter().map(|t| json!({"name": t.name})).collect();
    state
        .registry
        .create_metadef_tags(&ns, tags, append)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "tags": given }))).into_response())
}

async fn existing(state: &AppState, ns: &str, name: &str) -> Result<MetadefTag, Error> {
    state
        .registry
        .get_metadef_tag(ns, name)
        .await?
        .ok_or_else(|| not_found(name))
}

pub async fn show(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    namespace_for(&state, &who, &ns).await?;
    let tag = existing(&state, &ns, &name).await?;
    Ok(Json(tag_view(&tag)).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    namespace_to_change(&state, &who, &ns, "modify_metadef_tag").await?;
    let current = existing(&state, &ns, &name).await?;
    let map = object_body(&body, &READ_ONLY_TIMES)?;
    let c = Checker::new("tag");
    c.only(&map, &["name"], "")?;
    let new_name = c.required_string(&map, "name", Some(80), "")?;
    let tag = MetadefTag {
        namespace: ns,
        name: new_name,
        created_at: current.created_at,
        updated_at: now(),
    };
    let tag = state.registry.update_metadef_tag(&name, tag).await?;
    Ok(Json(tag_view(&tag)).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    who: Identity,
    Path((ns, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let namespace = namespace_to_change(&state, &who, &ns, "delete_metadef_tag").await?;
    existing(&state, &ns, &name).await?;
    if namespace.protected {
        return Err(Error::Forbidden(format!(
            "Metadata definition tag {name} is protected and cannot be deleted."
        ))
        .into());
    }
    state.registry.delete_metadef_tag(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
