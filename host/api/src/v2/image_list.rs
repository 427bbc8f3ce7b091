//! `GET /v2/images`: Glance's list parameters (filters, `in:` lists, date operators, sorting,
//! paging) turned into a registry [`ImageQuery`], and the page turned into Glance's body with
//! `first` and `next` links.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use glass_registry::{
    Comparison, Filter, ImageQuery, ImageStatus, MemberStatus, MemberStatusFilter, SortDir,
    SortKey, TextField, TimeField, Visibility, VisibilityScope,
};
use serde::Serialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;
use glass_images::config::Config;
use glass_images::view::{ImageBody, image_body};

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

/// Splits the list of an `in:` filter: comma-separated, items may be double-quoted to hold
/// commas, empty items are dropped.
pub fn split_in_list(list: &str) -> Result<Vec<String>, Error> {
    let invalid = |why: &str| bad(format!("Invalid filter value {list}. {why}"));
    let mut values = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut just_closed = false;
    for c in list.chars() {
        match c {
            '"' if quoted => {
                quoted = false;
                just_closed = true;
                continue;
            }
            '"' if current.is_empty() => quoted = true,
            '"' => return Err(invalid("There is no comma before opening quotation mark.")),
            ',' if !quoted => {
                if !current.is_empty() {
                    values.push(std::mem::take(&mut current));
                }
            }
            _ if just_closed => {
                return Err(invalid("There is no comma after closing quotation mark."));
            }
            c => current.push(c),
        }
        just_closed = false;
    }
    if quoted {
        return Err(invalid("The quote is not closed."));
    }
    if !current.is_empty() {
        values.push(current);
    }
    Ok(values)
}

/// The values of a filter on a core text attribute: `v`, `eq:v` or `in:a,b`.
fn text_values(raw: &str) -> Result<Vec<String>, Error> {
    match raw.split_once(':') {
        None => Ok(vec![raw.to_string()]),
        Some(("eq", value)) => Ok(vec![value.to_string()]),
        Some(("in", list)) => split_in_list(list),
        Some(_) if parse_time(raw).is_some() => Ok(vec![raw.to_string()]),
        Some((op, _)) => Err(bad(format!("Unable to filter by unknown operator '{op}'."))),
    }
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(raw.trim_end_matches('Z'), fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// `gte:2016-04-18T21:38:54Z` (operator optional, `eq` by default).
fn time_filter(field: TimeField, raw: &str) -> Result<Filter, Error> {
    let (op, value) = match raw.split_once(':') {
        Some((op, rest)) if op.chars().all(|c| c.is_ascii_alphabetic()) => (op, rest),
        _ => ("eq", raw),
    };
    let op = match op {
        "eq" => Comparison::Eq,
        "neq" => Comparison::Neq,
        "gt" => Comparison::Gt,
        "gte" => Comparison::Gte,
        "lt" => Comparison::Lt,
        "lte" => Comparison::Lte,
        _ => return Err(bad("Unable to filter on a unknown operator.")),
    };
    let name = match field {
        TimeField::CreatedAt => "created_at",
        TimeField::UpdatedAt => "updated_at",
    };
    let at = parse_time(value).ok_or_else(|| {
        bad(format!(
            "Bad \"{name}\" query filter format. Use ISO 8601 DateTime notation."
        ))
    })?;
    Ok(Filter::Time { field, op, at })
}

fn size_filter(raw: &str) -> Result<i64, Error> {
    raw.parse::<i64>()
        .map_err(|_| bad("Unable to filter on a range with a non-numeric value."))
}

/// `protected` takes exactly `true`/`false`; `os_hidden` any case of them (as Glance).
fn bool_filter(name: &str, raw: &str) -> Result<bool, Error> {
    let value = if name == "os_hidden" {
        raw.to_ascii_lowercase()
    } else {
        raw.to_string()
    };
    match value.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(format!(
            "Invalid value '{raw}' for '{name}' filter. Valid values are 'true' or 'false'."
        ))),
    }
}

fn sort_key(raw: &str) -> Result<SortKey, Error> {
    SortKey::parse(raw).ok_or_else(|| {
        let keys: Vec<&str> = SortKey::ALL.iter().map(|k| k.as_str()).collect();
        bad(format!(
            "Invalid sort key: {raw}. It must be one of the following: {}.",
            keys.join(", ")
        ))
    })
}

fn sort_dir(raw: &str) -> Result<SortDir, Error> {
    match raw {
        "asc" => Ok(SortDir::Asc),
        "desc" => Ok(SortDir::Desc),
        other => Err(bad(format!("Invalid sort direction: {other}"))),
    }
}

/// Parses a list request's query string into a registry query.
pub fn parse_query(
    pairs: &[(String, String)],
    who: &Identity,
    config: &Config,
) -> Result<ImageQuery, Error> {
    let mut query = ImageQuery {
        viewer: who.viewer(),
        limit: config.limit_param_default,
        budget: config.registry.list_budget,
        ..ImageQuery::default()
    };
    let mut sort_keys = Vec::new();
    let mut sort_dirs = Vec::new();
    let mut sort_param = None;
    let mut os_hidden_given = false;
    for (name, raw) in pairs {
        match name.as_str() {
            "limit" => {
                let n: i64 = raw
                    .parse()
                    .map_err(|_| bad("limit param must be an integer"))?;
                if n < 0 {
                    return Err(bad("limit param must be positive"));
                }
                query.limit = (n as usize).min(config.api_limit_max);
            }
            "marker" => {
                query.marker = Some(
                    Uuid::parse_str(raw)
                        .map_err(|_| bad(format!("No image found with ID {raw}")))?,
                );
            }
            "sort_key" => sort_keys.push(sort_key(raw)?),
            "sort_dir" => sort_dirs.push(sort_dir(raw)?),
            "sort" => sort_param = Some(raw.clone()),
            "visibility" => {
                query.visibility = match raw.as_str() {
                    "all" => VisibilityScope::All,
                    v => VisibilityScope::Only(
                        Visibility::parse(v)
                            .ok_or_else(|| bad(format!("Invalid visibility value: {v}")))?,
                    ),
                };
            }
            "member_status" => {
                query.member_status = match raw.as_str() {
                    "all" => MemberStatusFilter::All,
                    s => MemberStatusFilter::Only(
                        MemberStatus::parse(s)
                            .ok_or_else(|| bad(format!("Invalid status: {s}")))?,
                    ),
                };
            }
            "tag" => query.filters.push(Filter::Tag(raw.clone())),
            // An exact size (Glance filters on the column).
            "size" => {
                let size = size_filter(raw)?;
                query.filters.push(Filter::SizeMin(size));
                query.filters.push(Filter::SizeMax(size));
            }
            "size_min" => query.filters.push(Filter::SizeMin(size_filter(raw)?)),
            "size_max" => query.filters.push(Filter::SizeMax(size_filter(raw)?)),
            "protected" => query
                .filters
                .push(Filter::Protected(bool_filter(name, raw)?)),
            "os_hidden" => {
                os_hidden_given = true;
                query
                    .filters
                    .push(Filter::OsHidden(bool_filter(name, raw)?));
            }
            "created_at" => query.filters.push(time_filter(TimeField::CreatedAt, raw)?),
            "updated_at" => query.filters.push(time_filter(TimeField::UpdatedAt, raw)?),
            "status" => {
                let values = text_values(raw)?;
                for v in &values {
                    if ImageStatus::parse(v).is_none() {
                        return Err(bad(format!("Invalid status value: {v}")));
                    }
                }
                query.filters.push(Filter::Text {
                    field: TextField::Status,
                    values,
                });
            }
            "id" | "name" | "disk_format" | "container_format" => {
                let field = match name.as_str() {
                    "id" => TextField::Id,
                    "name" => TextField::Name,
                    "disk_format" => TextField::DiskFormat,
                    _ => TextField::ContainerFormat,
                };
                query.filters.push(Filter::Text {
                    field,
                    values: text_values(raw)?,
                });
            }
            "owner" | "checksum" | "os_hash_value" => {
                let field = match name.as_str() {
                    "owner" => TextField::Owner,
                    "checksum" => TextField::Checksum,
                    _ => TextField::OsHashValue,
                };
                query.filters.push(Filter::Text {
                    field,
                    values: vec![raw.clone()],
                })
            }
            key => query.filters.push(Filter::Property {
                key: key.to_string(),
                values: vec![raw.clone()],
            }),
        }
    }
    if !os_hidden_given {
        query.filters.push(Filter::OsHidden(false));
    }
    // How many directions Glance's parser ends up with: one per key in the `sort` syntax,
    // as many as given in the `sort_key`/`sort_dir` syntax.
    let dirs_given = match &sort_param {
        Some(raw) => raw.split(',').count(),
        None => sort_dirs.len(),
    };
    query.sort = match sort_param {
        Some(_) if !sort_keys.is_empty() || !sort_dirs.is_empty() => {
            return Err(bad("Old and new sorting syntax cannot be combined"));
        }
        Some(raw) => raw
            .split(',')
            .map(|item| {
                let (key, dir) = match item.split_once(':') {
                    Some((k, d)) => (k.trim(), sort_dir(d.trim())?),
                    None => (item.trim(), SortDir::Desc),
                };
                Ok((sort_key(key)?, dir))
            })
            .collect::<Result<_, Error>>()?,
        None => {
            if sort_keys.is_empty() {
                sort_keys.push(SortKey::CreatedAt);
            }
            match sort_dirs.len() {
                0 => sort_keys.iter().map(|k| (*k, SortDir::Desc)).collect(),
                1 => sort_keys.iter().map(|k| (*k, sort_dirs[0])).collect(),
                n if n == sort_keys.len() => sort_keys.into_iter().zip(sort_dirs).collect(),
                _ => {
                    return Err(bad(
                        "Number of sort dirs does not match the number of sort keys",
                    ));
                }
            }
        }
    };
    // Glance's tie-breakers: created_at, then id, in the one direction given if exactly one
    // was, descending otherwise.
    let tie_dir = match (dirs_given, query.sort.first()) {
        (1, Some((_, dir))) => *dir,
        _ => SortDir::Desc,
    };
    for key in [SortKey::CreatedAt, SortKey::Id] {
        if !query.sort.iter().any(|(k, _)| *k == key) {
            query.sort.push((key, tie_dir));
        }
    }
    Ok(query)
}

/// Encodes query pairs as Glance writes them in `first` and `next` links.
fn link(pairs: &[(String, String)], marker: Option<Uuid>) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "marker") {
        ser.append_pair(k, v);
    }
    if let Some(m) = marker {
        ser.append_pair("marker", &m.to_string());
    }
    let qs = ser.finish();
    if qs.is_empty() {
        "/v2/images".to_string()
    } else {
        format!("/v2/images?{qs}")
    }
}

pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub async fn list(
    State(state): State<AppState>,
    who: Identity,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    state.policy.enforce(
        "get_images",
        &who,
        &glass_images::auth::policy::Target::own_project(&who),
    )?;
    let pairs = query_pairs(raw.as_deref());
    let query = parse_query(&pairs, &who, &state.config)?;
    let budget = query.budget;
    let page = state.registry.list_images(query).await?;
    state.metrics.list_work(page.examined, budget);
    let next = page.next.map(|marker| link(&pairs, Some(marker)));
    let body = ListBody {
        images: page.images.iter().map(image_body).collect(),
        first: link(&pairs, None),
        schema: "/v2/schemas/images",
        next,
    };
    Ok(Json(body).into_response())
}

/// Glance's list body.
#[derive(Serialize)]
struct ListBody<'a> {
    images: Vec<ImageBody<'a>>,
    first: String,
    schema: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_split_with_quotes() {
        assert_eq!(text_values("plain").unwrap(), vec!["plain"]);
        assert_eq!(text_values("eq:x").unwrap(), vec!["x"]);
        assert_eq!(text_values("in:a,b,,").unwrap(), vec!["a", "b"]);
        assert_eq!(
            text_values("in:\"a,b\",c").unwrap(),
            vec!["a,b".to_string(), "c".to_string()]
        );
        assert!(text_values("in:\"a,b").is_err());
        assert!(text_values("in:\"a\"b").is_err());
        assert!(text_values("in:a\"b\"").is_err());
        assert!(text_values("like:x").is_err());
    }

    #[test]
    fn sort_forms_and_errors() {
        let who = Identity {
            project: Some("p".into()),
            user: None,
            roles: vec![],
        };
        let config = Config::default();
        let pairs = |s: &str| query_pairs(Some(s));
        let q = parse_query(&pairs("sort=name:asc,size"), &who, &config).unwrap();
        assert_eq!(
            q.sort,
            vec![
                (SortKey::Name, SortDir::Asc),
                (SortKey::Size, SortDir::Desc),
                (SortKey::CreatedAt, SortDir::Desc),
                (SortKey::Id, SortDir::Desc),
            ]
        );
        let q = parse_query(&pairs("sort=name:asc"), &who, &config).unwrap();
        assert_eq!(q.sort[1], (SortKey::CreatedAt, SortDir::Asc));
        let q = parse_query(
            &pairs("sort_key=name&sort_key=size&sort_dir=asc"),
            &who,
            &config,
        )
        .unwrap();
        assert_eq!(q.sort[2], (SortKey::CreatedAt, SortDir::Asc));
        assert!(parse_query(&pairs("sort=name&sort_key=size"), &who, &config).is_err());
        assert!(parse_query(&pairs("sort_key=bogus"), &who, &config).is_err());
        assert!(parse_query(&pairs("sort_dir=up"), &who, &config).is_err());
        let q = parse_query(&pairs("limit=5000"), &who, &config).unwrap();
        assert_eq!(q.limit, 1000);
        assert!(parse_query(&pairs("limit=-1"), &who, &config).is_err());
        assert!(parse_query(&pairs("created_at=bogus:2020-01-01"), &who, &config).is_err());
        assert!(parse_query(&pairs("created_at=gte:2020-01-01T00:00:00Z"), &who, &config).is_ok());
    }
}
