//! The tasks API: `GET /v2/tasks` (stubs, paged, filtered by status and type, sorted),
//! `POST /v2/tasks` (the deprecated `import` task, run as a web-download import),
//! `GET /v2/tasks/{id}` (Glance's task JSON) and `GET /v2/images/{id}/tasks` (the import
//! tasks of an image, as Glance's `get_task_info` lists them). Tasks are written by the import
//! machinery (`glass_images::import`); expired tasks (past `expires_at`) are not shown.
//!
//! Glance's default policy: `/v2/tasks` is for admins (`tasks_api_access`); an image's tasks
//! are shown to whoever may see the image, limited to the tasks the caller may see (its own
//! project's, all for an admin).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use glass_registry::{Task, TaskStatus, now};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;
use glass_images::access::{parse_image_id, visible_image};
use glass_images::view::format_time;

fn status_name(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Pending => "pending",
        TaskStatus::Processing => "processing",
        TaskStatus::Success => "success",
        TaskStatus::Failure => "failure",
    }
}

fn location(task: &Task) -> String {
    format!("/v2/tasks/{}", task.id)
}

/// Glance's task view (`GET /v2/tasks/{id}`).
pub fn task_body(task: &Task) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), task.id.to_string().into());
    body.insert("input".into(), task.input.clone());
    body.insert("type".into(), task.task_type.clone().into());
    body.insert("status".into(), status_name(task.status).into());
    body.insert("owner".into(), json!(task.owner));
    body.insert("message".into(), task.message.clone().into());
    body.insert("result".into(), task.result.clone().unwrap_or(Value::Null));
    body.insert("created_at".into(), format_time(&task.created_at).into());
    body.insert("updated_at".into(), format_time(&task.updated_at).into());
    body.insert("self".into(), location(task).into());
    body.insert("schema".into(), "/v2/schemas/task".into());
    if let Some(image) = task.image_id {
        body.insert("image_id".into(), image.to_string().into());
    }
    if let Some(r) = &task.request_id {
        body.insert("request_id".into(), r.clone().into());
    }
    if let Some(u) = &task.user_id {
        body.insert("user_id".into(), u.clone().into());
    }
    if let Some(e) = &task.expires_at {
        body.insert("expires_at".into(), format_time(e).into());
    }
    Value::Object(body)
}

/// Glance's task stub (`GET /v2/tasks`).
fn task_stub(task: &Task) -> Value {
    let mut body = json!({
        "id": task.id.to_string(),
        "type": task.task_type,
        "status": status_name(task.status),
        "owner": task.owner,
        "created_at": format_time(&task.created_at),
        "updated_at": format_time(&task.updated_at),
        "self": location(task),
        "schema": "/v2/schemas/task",
    });
    if let Some(e) = &task.expires_at {
        body["expires_at"] = format_time(e).into();
    }
    body
}

/// A task record as Glance's `tasks_get_by_image` returns it (the database row: timestamps
/// with microseconds, `deleted` flags).
fn task_record(task: &Task) -> Value {
    let t = |ts: &glass_registry::Timestamp| ts.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    json!({
        "id": task.id.to_string(),
        "type": task.task_type,
        "status": status_name(task.status),
        "owner": task.owner,
        "expires_at": task.expires_at.as_ref().map(t),
        "created_at": t(&task.created_at),
        "updated_at": t(&task.updated_at),
        "deleted_at": Value::Null,
        "deleted": false,
        "image_id": task.image_id.map(|i| i.to_string()),
        "request_id": task.request_id,
        "user_id": task.user_id,
        "input": task.input,
        "result": task.result,
        "message": task.message,
    })
}

fn live(task: &Task) -> bool {
    task.expires_at.is_none_or(|e| e >= now())
}

fn visible_to(who: &Identity, task: &Task) -> bool {
    who.is_admin() || (task.owner.is_some() && task.owner == who.project)
}

/// Glance's `tasks_api_access` (admin by default).
fn require_tasks_access(state: &AppState, who: &Identity) -> Result<(), Error> {
    state.policy.enforce(
        "tasks_api_access",
        who,
        &glass_images::auth::policy::Target::new(),
    )
}

/// `GET /v2/tasks/{id}`.
pub async fn show(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_tasks_access(&state, &who)?;
    let not_found = || Error::NotFound(format!("Task with the given id {id} was not found"));
    let task_id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let task = state
        .registry
        .get_task(task_id)
        .await?
        .filter(|t| live(t) && visible_to(&who, t))
        .ok_or_else(not_found)?;
    Ok(Json(task_body(&task)))
}

/// `GET /v2/tasks`: `limit`, `marker`, `sort_key`, `sort_dir`, and the filters `status` and
/// `type`.
pub async fn list(
    State(state): State<AppState>,
    who: Identity,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    require_tasks_access(&state, &who)?;
    let mut limit = state.config.limit_param_default;
    let mut marker = None;
    let mut sort_key = "created_at".to_string();
    let mut sort_dir = "desc".to_string();
    let mut status = None;
    let mut task_type = None;
    for (key, value) in &params {
        match key.as_str() {
            "limit" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| Error::BadRequest("limit param must be an integer".into()))?;
                if n < 0 {
                    return Err(Error::BadRequest("limit param must be positive".into()).into());
                }
                limit = n as usize;
            }
            "marker" => {
                marker = Some(
                    Uuid::parse_str(value)
                        .map_err(|_| Error::BadRequest("Invalid marker format".into()))?,
                );
            }
            "sort_key" => sort_key = value.clone(),
            "sort_dir" => {
                if value != "asc" && value != "desc" {
                    return Err(
                        Error::BadRequest(format!("Invalid sort direction: {value}")).into(),
                    );
                }
                sort_dir = value.clone();
            }
            "status" => {
                if !["pending", "processing", "success", "failure"].contains(&value.as_str()) {
                    return Err(Error::BadRequest(format!("Invalid status value: {value}")).into());
                }
                status = Some(value.clone());
            }
            "type" => {
                if !["import", "api_image_import", "location_import"].contains(&value.as_str()) {
                    return Err(Error::BadRequest(format!("Invalid type value: {value}")).into());
                }
                task_type = Some(value.clone());
            }
            _ => {}
        }
    }
    let limit = limit.min(state.config.api_limit_max);
    let mut tasks: Vec<Task> = state
        .registry
        .list_tasks(None)
        .await?
        .into_iter()
        .filter(|t| live(t) && visible_to(&who, t))
        .filter(|t| status.as_deref().is_none_or(|s| status_name(t.status) == s))
        .filter(|t| task_type.as_deref().is_none_or(|ty| t.task_type == ty))
        .collect();
    let key = |t: &Task| -> (String, Uuid) {
        let k = match sort_key.as_str() {
            "updated_at" => t.updated_at.to_rfc3339(),
            "id" => t.id.to_string(),
            "status" => status_name(t.status).to_string(),
            "type" => t.task_type.clone(),
            "owner" => t.owner.clone().unwrap_or_default(),
            _ => t.created_at.to_rfc3339(),
        };
        (k, t.id)
    };
    if !["created_at", "updated_at", "id", "status", "type", "owner"].contains(&sort_key.as_str()) {
        return Err(Error::BadRequest(format!(
            "Unsupported sort_key. Acceptable values: created_at, updated_at, id, status, type, owner ({sort_key})"
        )).into());
    }
    tasks.sort_by_key(key);
    if sort_dir == "desc" {
        tasks.reverse();
    }
    if let Some(marker) = marker {
        let at = tasks
            .iter()
            .position(|t| t.id == marker)
            .ok_or_else(|| Error::BadRequest(format!("Task {marker} could not be found")))?;
        tasks.drain(..=at);
    }
    tasks.truncate(limit);
    let mut query: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "marker")
        .cloned()
        .collect();
    let encode = |q: &[(String, String)]| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish()
    };
    let mut body = json!({
        "tasks": tasks.iter().map(task_stub).collect::<Vec<_>>(),
        "first": if query.is_empty() { "/v2/tasks".to_string() } else { format!("/v2/tasks?{}", encode(&query)) },
        "schema": "/v2/schemas/tasks",
    });
    if limit > 0
        && tasks.len() == limit
        && let Some(last) = tasks.last()
    {
        query.push(("marker".into(), last.id.to_string()));
        body["next"] = format!("/v2/tasks?{}", encode(&query)).into();
    }
    Ok(Json(body).into_response())
}

/// `GET /v2/images/{id}/tasks`.
pub async fn image_tasks(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_image_id(&id)?;
    let image = visible_image(&state, &who, id)
        .await
        .map_err(|_| Error::not_found())?;
    let tasks: Vec<Value> = state
        .registry
        .list_tasks(Some(image.id))
        .await?
        .iter()
        .filter(|t| live(t) && visible_to(&who, t))
        .map(task_record)
        .collect();
    Ok(Json(json!({ "tasks": tasks })))
}

/// `POST /v2/tasks` (Glance's deprecated task API; admin): a task of type `import` creates
/// an image from `input.image_properties` and imports `input.import_from` into it by
/// web-download, answering with the import's task. `import_from` passes the web-download
/// filters and resolves to allowed addresses, or the request is a 400 before anything is
/// created. Other task types are internal to the image import.
pub async fn create(
    State(state): State<AppState>,
    who: Identity,
    request_id: Option<axum::Extension<crate::RequestId>>,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_tasks_access(&state, &who)?;
    let body = crate::json_body(&raw)?;
    let Some(fields) = body.as_object() else {
        return Err(Error::BadRequest("Unexpected body type. Expected list/dict.".into()).into());
    };
    for required in ["type", "input"] {
        if !fields.contains_key(required) {
            return Err(Error::BadRequest(format!("Task '{required}' is required")).into());
        }
    }
    let task_type = fields["type"].as_str().unwrap_or_default();
    if task_type != "import" {
        return Err(Error::BadRequest(format!(
            "Task type '{task_type}' cannot be created through the tasks API; only 'import' \
             can (use POST /v2/images/{{image_id}}/import for the interoperable import)."
        ))
        .into());
    }
    let input = fields["input"].as_object().ok_or_else(|| {
        Error::BadRequest(
            "Provided object does not match schema 'task': input must be an object".into(),
        )
    })?;
    let import_from = input
        .get("import_from")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadRequest("Task input needs import_from".into()))?;
    glass_images::import::web::check_uri_now(&state.config.import.web_download, import_from)
        .await
        .map_err(|why| {
            Error::BadRequest(format!(
                "URI for task import does not pass filtering: {import_from} ({why})"
            ))
        })?;
    let properties = input
        .get("image_properties")
        .cloned()
        .unwrap_or_else(|| json!({}));
    // The image, as `POST /v2/images` makes it (same checks), then its web-download import.
    let image = super::images::create_image(
        &state,
        &who,
        &axum::body::Bytes::from(properties.to_string()),
    )
    .await?;
    let image_id = image.id.to_string();
    let import = json!({"method": {"name": "web-download", "uri": import_from}});
    super::import::import_image(
        State(state.clone()),
        who.clone(),
        Path(image_id.clone()),
        request_id,
        axum::http::HeaderMap::new(),
        axum::body::Bytes::from(import.to_string()),
    )
    .await?;
    let task = state
        .registry
        .list_tasks(Some(image.id))
        .await?
        .into_iter()
        .max_by_key(|t| t.created_at)
        .ok_or_else(|| Error::Internal("the import task was not recorded".into()))?;
    let mut response = (axum::http::StatusCode::CREATED, Json(task_body(&task))).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&location(&task)) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, v);
    }
    Ok(response)
}
