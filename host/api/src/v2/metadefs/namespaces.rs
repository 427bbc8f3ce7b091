//! `/v2/metadefs/namespaces` and `/v2/metadefs/namespaces/{ns}`: list (visibility and
//! resource type filters, sorting, marker paging), create (with contents, in one
//! transaction), show (with contents, optionally with a resource type's prefix applied),
//! replace, delete, and deleting all objects, properties or tags of a namespace.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use glass_registry::{
    MetadefAssociation, MetadefDefinition, MetadefKind, MetadefNamespace, MetadefObject,
    MetadefProperty, MetadefTag, MetadefVisibility, Timestamp, now,
};
use serde_json::{Map, Value, json};

use super::validate::Checker;
use super::{
    READ_ONLY, association_view, can_see, namespace_for, namespace_to_change, namespace_view,
    object_body, object_view, require_admin, sort_by_created,
};
use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;

const NAMESPACE_KEYS: [&str; 10] = [
    "namespace",
    "display_name",
    "description",
    "visibility",
    "protected",
    "owner",
    "resource_type_associations",
    "properties",
    "objects",
    "tags",
];

/// Reads a namespace document (a create body, or a definitions file) into a definition.
/// `owner` is used when the document names none; every record gets `at` as its times, a
/// microsecond apart in document order so listings keep that order.
pub fn parse_definition(
    map: &Map<String, Value>,
    owner: Option<String>,
    at: Timestamp,
) -> Result<MetadefDefinition, Error> {
    let c = Checker::new("namespace");
    c.only(map, &NAMESPACE_KEYS, "")?;
    let ns = parse_namespace(&c, map, owner, at)?;
    let name = ns.namespace.clone();
    let mut tick = 0i64;
    let mut next = || {
        tick += 1;
        at + chrono::Duration::microseconds(tick)
    };
    let mut def = MetadefDefinition::empty(ns);
    for (i, a) in c
        .objects(map, "resource_type_associations", "")?
        .into_iter()
        .enumerate()
    {
        let here = format!("resource_type_associations.{i}");
        c.only(a, &["name", "prefix", "properties_target"], &here)?;
        let t = next();
        def.associations.push(MetadefAssociation {
            namespace: name.clone(),
            name: c.required_string(a, "name", Some(80), &here)?,
            prefix: c.string(a, "prefix", Some(80), &here)?,
            properties_target: c.string(a, "properties_target", Some(80), &here)?,
            created_at: t,
            updated_at: t,
        });
    }
    for (prop, schema) in c.properties(map, "properties", "")? {
        let t = next();
        def.properties.push(MetadefProperty {
            namespace: name.clone(),
            name: prop,
            schema: schema.as_object().cloned().unwrap_or_default(),
            created_at: t,
            updated_at: t,
        });
    }
    for (i, o) in c.objects(map, "objects", "")?.into_iter().enumerate() {
        let here = format!("objects.{i}");
        def.objects.push(parse_object(&c, o, &name, next(), &here)?);
    }
    for (i, tag) in c.objects(map, "tags", "")?.into_iter().enumerate() {
        let here = format!("tags.{i}");
        c.only(tag, &["name"], &here)?;
        let t = next();
        def.tags.push(MetadefTag {
            namespace: name.clone(),
            name: c.required_string(tag, "name", Some(80), &here)?,
            created_at: t,
            updated_at: t,
        });
    }
    Ok(def)
}

fn parse_namespace(
    c: &Checker,
    map: &Map<String, Value>,
    owner: Option<String>,
    at: Timestamp,
) -> Result<MetadefNamespace, Error> {
    let visibility = match c.string(map, "visibility", None, "")? {
        None => MetadefVisibility::Private,
        Some(v) => MetadefVisibility::parse(&v).ok_or_else(|| {
            c.error(
                format!("'{v}' is not one of ['public', 'private']"),
                "visibility",
            )
        })?,
    };
    Ok(MetadefNamespace {
        namespace: c.required_string(map, "namespace", Some(80), "")?,
        display_name: c.string(map, "display_name", Some(80), "")?,
        description: c.string(map, "description", Some(500), "")?,
        visibility,
        protected: c.boolean(map, "protected", "")?.unwrap_or(false),
        owner: c.string(map, "owner", Some(255), "")?.or(owner),
        created_at: at,
        updated_at: at,
    })
}

/// An object document (in a namespace body or on its own).
pub fn parse_object(
    c: &Checker,
    o: &Map<String, Value>,
    namespace: &str,
    at: Timestamp,
    here: &str,
) -> Result<MetadefObject, Error> {
    c.only(o, &["name", "description", "required", "properties"], here)?;
    Ok(MetadefObject {
        namespace: namespace.to_string(),
        name: c.required_string(o, "name", Some(80), here)?,
        description: c.string(o, "description", None, here)?,
        required: c.string_array(o, "required", 0, here)?.unwrap_or_default(),
        properties: c.properties(o, "properties", here)?,
        created_at: at,
        updated_at: at,
    })
}

/// The namespace with its contents, as `GET /v2/metadefs/namespaces/{ns}` shows it.
pub fn definition_view(def: &MetadefDefinition, prefix: Option<&str>) -> Value {
    let mut out = namespace_view(&def.namespace);
    let p = |name: &str| format!("{}{name}", prefix.unwrap_or(""));
    if !def.associations.is_empty() {
        let mut assoc = def.associations.clone();
        sort_by_created(&mut assoc, |a| (a.created_at, a.name.clone()), false);
        out.insert(
            "resource_type_associations".into(),
            assoc.iter().map(association_view).collect(),
        );
    }
    if !def.properties.is_empty() {
        let props: Map<String, Value> = def
            .properties
            .iter()
            .map(|pr| (p(&pr.name), Value::Object(pr.schema.clone())))
            .collect();
        out.insert("properties".into(), Value::Object(props));
    }
    if !def.objects.is_empty() {
        let mut objects = def.objects.clone();
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        for o in &mut objects {
            o.properties = o
                .properties
                .iter()
                .map(|(k, v)| (p(k), v.clone()))
                .collect();
            o.required = o.required.iter().map(|r| p(r)).collect();
        }
        out.insert("objects".into(), objects.iter().map(object_view).collect());
    }
    if !def.tags.is_empty() {
        let mut tags = def.tags.clone();
        sort_by_created(&mut tags, |t| (t.created_at, t.name.clone()), true);
        out.insert(
            "tags".into(),
            tags.iter().map(|t| json!({"name": t.name})).collect(),
        );
    }
    Value::Object(out)
}

fn created(body: Value, name: &str) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&super::namespace_href(name)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

pub async fn create(
    State(state): State<AppState>,
    who: Identity,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&who, "add_metadef_namespace")?;
    let map = object_body(&body, &READ_ONLY)?;
    let def = parse_definition(&map, who.project.clone(), now())?;
    let def = state.registry.create_metadef_namespace(def).await?;
    tracing::info!(namespace = %def.namespace.namespace, "metadef namespace created");
    Ok(created(
        definition_view(&def, None),
        &def.namespace.namespace,
    ))
}

/// Query parameters of a namespace listing.
struct ListQuery {
    limit: usize,
    marker: Option<String>,
    sort_key: String,
    desc: bool,
    visibility: Option<MetadefVisibility>,
    resource_types: Option<Vec<String>>,
    /// The query without the marker, for the `first` and `next` links.
    rest: Vec<(String, String)>,
}

fn parse_list_query(raw: Option<&str>, state: &AppState) -> Result<ListQuery, Error> {
    let mut q = ListQuery {
        limit: state.config.limit_param_default,
        marker: None,
        sort_key: "created_at".into(),
        desc: true,
        visibility: None,
        resource_types: None,
        rest: Vec::new(),
    };
    let bad = |m: String| Error::BadRequest(m);
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        match k.as_str() {
            "marker" => {
                q.marker = Some(v);
                continue;
            }
            "limit" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| bad("limit param must be an integer".into()))?;
                if n < 0 {
                    return Err(bad("limit param must be positive".into()));
                }
                q.limit = (n as usize).min(state.config.api_limit_max);
            }
            "sort_dir" => match v.as_str() {
                "asc" => q.desc = false,
                "desc" => q.desc = true,
                _ => return Err(bad(format!("Invalid sort direction: {v}"))),
            },
            "sort_key" => {
                const KEYS: [&str; 8] = [
                    "namespace",
                    "display_name",
                    "description",
                    "visibility",
                    "protected",
                    "owner",
                    "created_at",
                    "updated_at",
                ];
                if !KEYS.contains(&v.as_str()) {
                    return Err(bad(format!("Invalid sort key: {v}")));
                }
                q.sort_key = v.clone();
            }
            "visibility" => {
                q.visibility = Some(
                    MetadefVisibility::parse(&v)
                        .ok_or_else(|| bad(format!("Invalid visibility value: {v}")))?,
                );
            }
            "resource_types" => {
                q.resource_types = Some(v.split(',').map(|s| s.trim().to_string()).collect());
            }
            _ => {}
        }
        q.rest.push((k, v));
    }
    Ok(q)
}

/// The value a namespace sorts by, then its creation time and name.
fn sort_value(ns: &MetadefNamespace, key: &str) -> (String, Timestamp, String) {
    let text = match key {
        "namespace" => ns.namespace.clone(),
        "display_name" => ns.display_name.clone().unwrap_or_default(),
        "description" => ns.description.clone().unwrap_or_default(),
        "visibility" => ns.visibility.as_str().to_string(),
        "protected" => ns.protected.to_string(),
        "owner" => ns.owner.clone().unwrap_or_default(),
        "updated_at" => format!("{:020}", ns.updated_at.timestamp_micros()),
        _ => String::new(),
    };
    (text, ns.created_at, ns.namespace.clone())
}

fn encode_query(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub async fn list(
    State(state): State<AppState>,
    who: Identity,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_list_query(raw.as_deref(), &state)?;
    let mut all: Vec<MetadefNamespace> = state
        .registry
        .list_metadef_namespaces()
        .await?
        .into_iter()
        .filter(|ns| can_see(&who, ns))
        .collect();
    if let Some(marker) = &q.marker
        && !all.iter().any(|ns| &ns.namespace == marker)
    {
        return Err(glass_registry::RegistryError::MetadefNamespaceNotFound(marker.clone()).into());
    }
    all.sort_by(|a, b| {
        let ord = sort_value(a, &q.sort_key).cmp(&sort_value(b, &q.sort_key));
        if q.desc { ord.reverse() } else { ord }
    });
    if let Some(marker) = &q.marker
        && let Some(pos) = all.iter().position(|ns| &ns.namespace == marker)
    {
        all.drain(..=pos);
    }
    let mut page = Vec::new();
    for ns in all {
        if page.len() >= q.limit {
            break;
        }
        if q.visibility.is_some_and(|v| v != ns.visibility) {
            continue;
        }
        let associations = state
            .registry
            .list_metadef_associations(&ns.namespace)
            .await
            .unwrap_or_default();
        if let Some(wanted) = &q.resource_types
            && !associations.iter().any(|a| wanted.contains(&a.name))
        {
            continue;
        }
        let mut view = namespace_view(&ns);
        if !associations.is_empty() {
            let mut associations = associations;
            sort_by_created(&mut associations, |a| (a.created_at, a.name.clone()), false);
            view.insert(
                "resource_type_associations".into(),
                associations.iter().map(association_view).collect(),
            );
        }
        page.push((ns.namespace.clone(), Value::Object(view)));
    }
    let mut first = "/v2/metadefs/namespaces".to_string();
    if !q.rest.is_empty() {
        first = format!("{first}?{}", encode_query(&q.rest));
    }
    let mut body = json!({
        "namespaces": page.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        "first": first,
        "schema": "/v2/schemas/metadefs/namespaces",
    });
    // Glance offers a next page whenever this one is full.
    if q.limit > 0
        && page.len() == q.limit
        && let Some((last, _)) = page.last()
    {
        let mut params = q.rest.clone();
        params.push(("marker".into(), last.clone()));
        body["next"] = json!(format!("/v2/metadefs/namespaces?{}", encode_query(&params)));
    }
    Ok(Json(body).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    who: Identity,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let def = state
        .registry
        .get_metadef_definition(&name)
        .await?
        .ok_or_else(|| glass_registry::RegistryError::MetadefNamespaceNotFound(name.clone()))?;
    if !can_see(&who, &def.namespace) {
        return Err(Error::not_found().into());
    }
    let resource_type = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "resource_type")
        .map(|(_, v)| v.into_owned());
    let prefix = resource_type.and_then(|rt| {
        def.associations
            .iter()
            .find(|a| a.name == rt)
            .and_then(|a| a.prefix.clone())
    });
    Ok(Json(definition_view(&def, prefix.as_deref())).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    who: Identity,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let current = namespace_to_change(&state, &who, &name, "modify_metadef_namespace").await?;
    let map = object_body(&body, &READ_ONLY)?;
    let c = Checker::new("namespace");
    c.only(&map, &NAMESPACE_KEYS, "")?;
    // Attributes left out go back to their defaults, as in Glance.
    let mut ns = parse_namespace(&c, &map, who.project.clone(), current.created_at)?;
    ns.updated_at = now();
    let ns = state.registry.update_metadef_namespace(&name, ns).await?;
    Ok(Json(Value::Object(namespace_view(&ns))).into_response())
}

fn refuse_protected(ns: &MetadefNamespace) -> Result<(), Error> {
    if ns.protected {
        return Err(Error::Forbidden(format!(
            "Metadata definition namespace {} is protected and cannot be deleted.",
            ns.namespace
        )));
    }
    Ok(())
}

pub async fn delete(
    State(state): State<AppState>,
    who: Identity,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let ns = namespace_to_change(&state, &who, &name, "delete_metadef_namespace").await?;
    refuse_protected(&ns)?;
    state.registry.delete_metadef_namespace(&name).await?;
    tracing::info!(namespace = %name, "metadef namespace deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_all(
    state: &AppState,
    who: &Identity,
    name: &str,
    kind: MetadefKind,
) -> Result<StatusCode, Error> {
    let ns = namespace_to_change(state, who, name, "delete_metadef_namespace").await?;
    refuse_protected(&ns)?;
    state.registry.delete_metadef_contents(name, kind).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_objects(
    State(state): State<AppState>,
    who: Identity,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    Ok(delete_all(&state, &who, &name, MetadefKind::Object).await?)
}

pub async fn delete_properties(
    State(state): State<AppState>,
    who: Identity,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    Ok(delete_all(&state, &who, &name, MetadefKind::Property).await?)
}

pub async fn delete_tags(
    State(state): State<AppState>,
    who: Identity,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    Ok(delete_all(&state, &who, &name, MetadefKind::Tag).await?)
}

/// Visible namespace for a nested resource's handler that reports a missing namespace the
/// way Glance's objects listing does.
pub async fn namespace_or_missing(
    state: &AppState,
    who: &Identity,
    name: &str,
) -> Result<MetadefNamespace, Error> {
    match state.registry.get_metadef_namespace(name).await? {
        None => {
            Err(glass_registry::RegistryError::MetadefNamespaceNotFound(name.to_string()).into())
        }
        Some(_) => namespace_for(state, who, name).await,
    }
}
