//! `/v2/metadefs/*`: Glance's metadata definitions API, one module per resource
//! (namespaces, objects, properties, tags, resource types) and the `/v2/schemas/metadefs/*`
//! documents (`schemas`). This file routes and holds what the resources share: who may see
//! or change a namespace, request body checks, and how records look on the wire.
//!
//! Policy is Glance's default: anyone may read a public namespace (or one without owner) and
//! their own project's; admins see all; only admins write. A namespace the caller may not see
//! is a 404, never a 403.

pub mod namespaces;
pub mod objects;
pub mod properties;
pub mod resource_types;
pub mod schemas;
pub mod tags;
pub mod validate;

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use glass_registry::{
    MetadefAssociation, MetadefNamespace, MetadefObject, MetadefTag, MetadefVisibility, Timestamp,
};
use serde_json::{Map, Value, json};

use crate::json_body;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;
use glass_images::view::format_time;

/// The routes under `/v2/metadefs`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/resource_types", get(resource_types::list_types))
        .route(
            "/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/namespaces/{ns}",
            get(namespaces::show)
                .put(namespaces::update)
                .delete(namespaces::delete),
        )
        .route(
            "/namespaces/{ns}/resource_types",
            get(resource_types::list_associations).post(resource_types::associate),
        )
        .route(
            "/namespaces/{ns}/resource_types/{rt}",
            axum::routing::delete(resource_types::dissociate),
        )
        .route(
            "/namespaces/{ns}/objects",
            get(objects::list)
                .post(objects::create)
                .delete(namespaces::delete_objects),
        )
        .route(
            "/namespaces/{ns}/objects/{name}",
            get(objects::show)
                .put(objects::update)
                .delete(objects::delete),
        )
        .route(
            "/namespaces/{ns}/properties",
            get(properties::list)
                .post(properties::create)
                .delete(namespaces::delete_properties),
        )
        .route(
            "/namespaces/{ns}/properties/{name}",
            get(properties::show)
                .put(properties::update)
                .delete(properties::delete),
        )
        .route(
            "/namespaces/{ns}/tags",
            get(tags::list)
                .post(tags::create_many)
                .delete(namespaces::delete_tags),
        )
        .route(
            "/namespaces/{ns}/tags/{name}",
            post(tags::create)
                .get(tags::show)
                .put(tags::update)
                .delete(tags::delete),
        )
}

/// May the caller see this namespace?
pub fn can_see(who: &Identity, ns: &MetadefNamespace) -> bool {
    who.is_admin()
        || ns.owner.is_none()
        || ns.visibility == MetadefVisibility::Public
        || (who.project.is_some() && who.project == ns.owner)
}

/// Only admins change metadata definitions (Glance's default policy).
pub fn require_admin(who: &Identity, action: &str) -> Result<(), Error> {
    if who.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "You are not authorized to complete {action} action."
        )))
    }
}

/// The namespace if the caller may see it; 404 "Namespace X not found" otherwise (how
/// Glance answers for everything under a namespace but its own show).
pub async fn namespace_for(
    state: &AppState,
    who: &Identity,
    name: &str,
) -> Result<MetadefNamespace, Error> {
    match state.registry.get_metadef_namespace(name).await? {
        Some(ns) if can_see(who, &ns) => Ok(ns),
        _ => Err(Error::NotFound(format!("Namespace {name} not found"))),
    }
}

/// As [`namespace_for`], for a change: also requires an admin (403 once the namespace is
/// known to be visible).
pub async fn namespace_to_change(
    state: &AppState,
    who: &Identity,
    name: &str,
    action: &str,
) -> Result<MetadefNamespace, Error> {
    let ns = namespace_for(state, who, name).await?;
    require_admin(who, action)?;
    Ok(ns)
}

/// A JSON object request body, with Glance's messages for none, malformed, or read-only
/// attributes (403).
pub fn object_body(body: &Bytes, read_only: &[&str]) -> Result<Map<String, Value>, Error> {
    if body.is_empty() {
        return Err(Error::BadRequest("Body expected in request.".into()));
    }
    let Value::Object(map) = json_body(body)? else {
        return Err(Error::BadRequest(
            "Unexpected body type. Expected list/dict.".into(),
        ));
    };
    for key in read_only {
        if map.contains_key(*key) {
            return Err(Error::Forbidden(format!("Attribute '{key}' is read-only.")));
        }
    }
    Ok(map)
}

/// Read-only attributes of namespaces and objects.
pub const READ_ONLY: [&str; 4] = ["self", "schema", "created_at", "updated_at"];
/// Read-only attributes of properties, tags and associations.
pub const READ_ONLY_TIMES: [&str; 2] = ["created_at", "updated_at"];

pub fn time(t: &Timestamp) -> Value {
    Value::String(format_time(t))
}

pub fn namespace_href(ns: &str) -> String {
    format!("/v2/metadefs/namespaces/{ns}")
}

/// A namespace's own attributes as Glance shows them (absent values left out).
pub fn namespace_view(ns: &MetadefNamespace) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("namespace".into(), json!(ns.namespace));
    if let Some(v) = &ns.display_name {
        out.insert("display_name".into(), json!(v));
    }
    if let Some(v) = &ns.description {
        out.insert("description".into(), json!(v));
    }
    out.insert("visibility".into(), json!(ns.visibility.as_str()));
    out.insert("protected".into(), json!(ns.protected));
    if let Some(v) = &ns.owner {
        out.insert("owner".into(), json!(v));
    }
    out.insert("created_at".into(), time(&ns.created_at));
    out.insert("updated_at".into(), time(&ns.updated_at));
    out.insert("self".into(), json!(namespace_href(&ns.namespace)));
    out.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
    out
}

pub fn object_view(object: &MetadefObject) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(object.name));
    if let Some(d) = &object.description {
        out.insert("description".into(), json!(d));
    }
    if !object.required.is_empty() {
        out.insert("required".into(), json!(object.required));
    }
    if !object.properties.is_empty() {
        out.insert(
            "properties".into(),
            Value::Object(object.properties.clone()),
        );
    }
    out.insert("created_at".into(), time(&object.created_at));
    out.insert("updated_at".into(), time(&object.updated_at));
    out.insert(
        "self".into(),
        json!(format!(
            "{}/objects/{}",
            namespace_href(&object.namespace),
            object.name
        )),
    );
    out.insert("schema".into(), json!("/v2/schemas/metadefs/object"));
    Value::Object(out)
}

pub fn tag_view(tag: &MetadefTag) -> Value {
    json!({
        "name": tag.name,
        "created_at": time(&tag.created_at),
        "updated_at": time(&tag.updated_at),
    })
}

pub fn association_view(a: &MetadefAssociation) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(a.name));
    if let Some(p) = &a.prefix {
        out.insert("prefix".into(), json!(p));
    }
    if let Some(p) = &a.properties_target {
        out.insert("properties_target".into(), json!(p));
    }
    out.insert("created_at".into(), time(&a.created_at));
    out.insert("updated_at".into(), time(&a.updated_at));
    Value::Object(out)
}

/// Glance's (oslo) reading of a boolean header: true, 1, yes, on, y, t.
pub fn header_true(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on" | "y" | "t"
        )
    })
}

/// Sorts newest first or oldest first, ties broken by name.
pub fn sort_by_created<T>(items: &mut [T], key: impl Fn(&T) -> (Timestamp, String), desc: bool) {
    items.sort_by(|a, b| {
        let ord = key(a).cmp(&key(b));
        if desc { ord.reverse() } else { ord }
    });
}
