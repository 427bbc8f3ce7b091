//! The interoperable image import API: `GET /v2/info/import` (the methods offered),
//! `PUT /v2/images/{id}/stage` (glance-direct's upload to the staging area: queued →
//! uploading) and `POST /v2/images/{id}/import` (checks the request as Glance does, takes
//! the image's import lock, records the task and starts it in the background: 202). The
//! import itself runs in `glass_images::import`.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use glass_registry::{Image, ImageStatus, TaskStatus, now};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{header_u64, json_body, media_type};
use glass_images::Error;
use glass_images::Identity;
use glass_images::access::{check_image_rule, modify_image, parse_image_id, visible_image};
use glass_images::import::{self, FAILED_KEY, IMPORTING_KEY, ImportRequest, LOCK_KEY, Method};
use glass_images::stores::ImageStore;
use glass_images::upload::{Sizes, stream_into_store};

/// `GET /v2/info/import`: Glance's discovery of import methods.
pub async fn info_import(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": state.config.import.enabled_methods,
        }
    }))
}

/// The response headers Glance adds to an image create: the import methods and the store
/// ids, so a client knows how it may bring data in.
pub fn create_headers(state: &AppState) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if !state.config.import.enabled_methods.is_empty() {
        headers.push((
            "OpenStack-image-import-methods",
            state.config.import.enabled_methods.join(","),
        ));
    }
    let stores: Vec<&str> = state
        .stores
        .entries()
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    if !stores.is_empty() {
        headers.push(("OpenStack-image-store-ids", stores.join(",")));
    }
    headers
}

/// `PUT /v2/images/{id}/stage`: the data of a glance-direct import, into the staging area.
pub async fn stage(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !state.config.import.enabled("glance-direct") {
        return Err(Error::NotFound(
            "'glance-direct' method is not available at this site.".into(),
        )
        .into());
    }
    let media_type = media_type(&headers);
    if media_type != "application/octet-stream" {
        return Err(Error::UnsupportedMediaType(media_type.to_string()).into());
    }
    let id = parse_image_id(&id)?;
    let declared = header_u64(&headers, "x-openstack-image-size")?;
    let content_length = header_u64(&headers, header::CONTENT_LENGTH.as_str())?;
    let staging = state.imports.staging.clone();
    let size_cap = state.config.image_size_cap;
    let too_large = |len: u64, cap: u64| {
        Error::PayloadTooLarge(format!(
            "The incoming image is too large: {len} bytes, at most {cap} may be staged now"
        ))
    };
    let announced = content_length.or(declared);
    if let Some(len) = announced
        && len > size_cap
    {
        return Err(too_large(len, size_cap).into());
    }
    // The room is reserved before a byte is written: two concurrent stages cannot both
    // count on the same free space.
    let covers = vec![id.to_string(), format!("{id}.partial")];
    let reservation = staging
        .reserve(announced, size_cap, covers)
        .map_err(|room| too_large(announced.unwrap_or_default(), room))?;
    let cap = size_cap.min(reservation.bytes());
    // queued → uploading: of two concurrent stages exactly one gets here.
    let image = modify_image(&state, &who, id, |image| {
        check_image_rule(&state, &who, image, "modify_image")?;
        if image.status != ImageStatus::Queued {
            return Err(Error::Conflict(format!(
                "Image status transition from {} to uploading is not allowed",
                image.status
            )));
        }
        image.status = ImageStatus::Uploading;
        Ok(())
    })
    .await?;
    let guard = glass_images::import::stage::guard(&state, id);
    if staging.has(id) {
        guard.undo().await;
        return Err(Error::Conflict(format!("The image {id} has data on staging")).into());
    }
    // Inspected now unless import plugins will decompress it first (then the plugin
    // inspects what it decompressed); every import inspects again on its way to a store.
    let inspect = if state.config.import.plugins.decompress {
        None
    } else {
        import::inspect::session(&state, &image).await?
    };
    let staging_store: Arc<dyn ImageStore> = staging.clone();
    let streamed = stream_into_store(
        &state,
        id,
        "staging",
        &staging_store,
        body.into_data_stream(),
        Sizes {
            declared,
            content_length,
            cap,
        },
        inspect,
    )
    .await;
    let streamed = match streamed {
        Ok(s) => s,
        Err(e) => {
            guard.undo().await;
            return Err(match e {
                Error::PayloadTooLarge(m) => {
                    Error::PayloadTooLarge(format!("The incoming image is too large: {m}"))
                }
                e => e,
            }
            .into());
        }
    };
    let size = streamed.digests.size;
    let recorded = modify_image(&state, &Identity::system(), id, |image| {
        if image.status != ImageStatus::Uploading {
            return Err(Error::Conflict(format!(
                "Image {id} changed to {} while it was staged",
                image.status
            )));
        }
        image.size = Some(size);
        Ok(())
    })
    .await;
    match recorded {
        Ok(_) => {
            guard.disarm();
            tracing::info!(image = %id, size, "image data staged");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => {
            guard.undo().await;
            Err(e.into())
        }
    }
}

/// The fields of an import request body that Glance checks before anything else.
struct Body_ {
    method: Method,
    uri: Option<String>,
    all_stores: bool,
    all_stores_must_succeed: bool,
    stores: Option<Vec<String>>,
    glance_image_id: Option<String>,
    glance_region: Option<String>,
}

fn parse_body(state: &AppState, body: &Value) -> Result<Body_, Error> {
    let Value::Object(fields) = body else {
        return Err(Error::BadRequest(
            "Unexpected body type. Expected list/dict.".into(),
        ));
    };
    let method = fields
        .get("method")
        .ok_or_else(|| Error::BadRequest("Import request requires a 'method' field.".into()))?;
    let name = method
        .get("name")
        .ok_or_else(|| Error::BadRequest("Import request requires a 'name' field.".into()))?;
    let name = name.as_str().unwrap_or_default();
    let parsed = Method::parse(name)
        .filter(|_| state.config.import.enabled(name))
        .ok_or_else(|| Error::BadRequest(format!("Unknown import method name '{name}'.")))?;
    let flag = |key: &str, default: bool| match fields.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Error::BadRequest(format!(
            "'{key}' must be boolean value only"
        ))),
    };
    let all_stores_must_succeed = flag("all_stores_must_succeed", true)?;
    let all_stores = flag("all_stores", false)?;
    let stores = match fields.get("stores") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| {
                    v.as_str().map(String::from).ok_or_else(|| {
                        Error::BadRequest("'stores' must be a list of store ids".into())
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(Error::BadRequest(
                "'stores' must be a list of store ids".into(),
            ));
        }
    };
    let text = |key: &str| method.get(key).and_then(Value::as_str).map(String::from);
    Ok(Body_ {
        method: parsed,
        uri: text("uri"),
        all_stores,
        all_stores_must_succeed,
        stores,
        glance_image_id: text("glance_image_id"),
        glance_region: text("glance_region"),
    })
}

/// Glance's `get_stores_from_request`: `all_stores`, else the body's `stores`, else the
/// `X-Image-Meta-Store` header, else the default store. Unknown stores are a 409 (as in
/// Glance's import).
fn requested_stores(
    state: &AppState,
    headers: &HeaderMap,
    body: &Body_,
) -> Result<Vec<String>, Error> {
    let header_store = headers
        .get("x-image-meta-store")
        .map(|v| v.to_str().unwrap_or_default().trim().to_string());
    let stores = if body.all_stores {
        if body.stores.is_some() || header_store.is_some() {
            return Err(Error::BadRequest(
                "All_stores parameter can't be used with x-image-meta-store header or stores parameter".into(),
            ));
        }
        state
            .stores
            .entries()
            .iter()
            .filter(|e| e.store.info().can_write)
            .map(|e| e.id.clone())
            .collect()
    } else {
        match (&body.stores, header_store) {
            (Some(_), Some(_)) => {
                return Err(Error::BadRequest(
                    "Stores parameter and x-image-meta-store header can't be both specified".into(),
                ));
            }
            (Some(stores), None) => stores.clone(),
            (None, Some(store)) => vec![store],
            (None, None) => vec![
                state
                    .stores
                    .default_store()
                    .map(|(id, _)| id.to_string())
                    .ok_or_else(|| Error::Unavailable("No image store is configured.".into()))?,
            ],
        }
    };
    for store in &stores {
        let entry = state
            .stores
            .entry(store)
            .ok_or_else(|| Error::Conflict(format!("Unknown scheme '{store}' found in URI")))?;
        if !entry.store.info().can_write {
            return Err(Error::Conflict(format!(
                "Store {store} is read-only: images cannot be imported to it"
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    Ok(stores
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect())
}

/// `POST /v2/images/{id}/import`.
pub async fn import_image(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
    request_id: Option<axum::Extension<crate::RequestId>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_image_id(&id)?;
    let body_json = json_body(&raw)?;
    let body = parse_body(&state, &body_json)?;
    let image = visible_image(&state, &who, id).await?;
    check_status(&image, body.method)?;
    if body.method == Method::GlanceDownload {
        check_glance_download(&body)?;
    }
    // copy-image is an admin action (Glance's copy_image policy); the others change the
    // image's data, which only its owner (or an admin) may.
    let rule = match body.method {
        Method::CopyImage => "copy_image",
        _ => "modify_image",
    };
    check_image_rule(&state, &who, &image, rule)?;
    let busted = check_lock(&state, &image).await?;
    let mut stores = requested_stores(&state, &headers, &body)?;
    if body.method == Method::CopyImage {
        let present: Vec<&str> = image.locations.iter().map(|l| l.store.as_str()).collect();
        if body.all_stores {
            stores.retain(|s| !present.contains(&s.as_str()));
            if stores.is_empty() {
                tracing::info!(image = %id, "copy-image: the image is in every store already");
                return Ok(StatusCode::ACCEPTED.into_response());
            }
        } else if let Some(store) = stores.iter().find(|s| present.contains(&s.as_str())) {
            return Err(
                Error::BadRequest(format!("Image is already present at store '{store}'")).into(),
            );
        }
    }
    let uri = match body.method {
        Method::WebDownload => {
            let uri = body.uri.clone().unwrap_or_default();
            import::web::check_uri_now(&state.config.import.web_download, &uri)
                .await
                .map_err(|why| {
                    tracing::info!(image = %id, %uri, %why, "web-download URI refused");
                    Error::BadRequest(format!(
                        "URI for web-download does not pass filtering: {uri} ({why})"
                    ))
                })?;
            Some(uri)
        }
        _ => None,
    };
    let remote = match body.method {
        Method::GlanceDownload => Some(import::steps::remote_image(
            &state,
            headers
                .get("x-auth-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body.glance_region.as_deref().unwrap_or_default(),
            body.glance_image_id.as_deref().unwrap_or_default(),
        )?),
        _ => None,
    };
    let mut task = import::new_task(id, &who, &body_json, &stores);
    task.request_id = request_id.map(|axum::Extension(r)| r.0);
    let task_id = task.id.to_string();
    // The lock, the status and the progress properties in one compare-and-swap.
    let method = body.method;
    let previous_lock = image.properties.get(LOCK_KEY).cloned();
    import::journal(&state, task.id, id, method, &stores);
    let locked = modify_image(&state, &who, id, |img| {
        check_status(img, method)?;
        if img.properties.get(LOCK_KEY) != previous_lock.as_ref()
            || (img.properties.contains_key(LOCK_KEY) && busted.is_none())
        {
            return Err(Error::Conflict(format!(
                "New operation on image '{id}' is not permitted as prior operation is still in progress"
            )));
        }
        img.properties.insert(LOCK_KEY.into(), task_id.clone());
        if let Some(old) = &busted {
            // Glance's _cleanup_stale_task_progress: the stale task's stores.
            import::merge_store_list(img, IMPORTING_KEY, old, true);
            import::merge_store_list(img, FAILED_KEY, old, true);
        }
        if method != Method::CopyImage {
            img.status = ImageStatus::Importing;
        }
        import::merge_store_list(img, IMPORTING_KEY, &stores, false);
        import::merge_store_list(img, FAILED_KEY, &stores, true);
        img.properties.remove("os_glance_stage_host");
        Ok(())
    })
    .await;
    if let Err(e) = locked {
        state.imports.journal.remove(task.id);
        return Err(e.into());
    }
    let created = state.registry.create_task(task.clone()).await;
    let task = match created {
        Ok(t) => t,
        Err(e) => {
            let _ = modify_image(&state, &Identity::system(), id, |img| {
                if img.properties.get(LOCK_KEY) == Some(&task_id) {
                    img.properties.remove(LOCK_KEY);
                    import::merge_store_list(img, IMPORTING_KEY, &stores, true);
                    if method != Method::CopyImage {
                        img.status = image.status;
                    }
                }
                Ok(())
            })
            .await;
            state.imports.journal.remove(task.id);
            return Err(e.into());
        }
    };
    let inject = state.config.import.plugins.inject_for_admins || !who.is_admin();
    import::spawn(
        state.0.clone(),
        task,
        id,
        ImportRequest {
            method,
            uri,
            stores,
            all_stores_must_succeed: body.all_stores_must_succeed,
            remote,
            inject,
        },
    );
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Glance's status preconditions of each method, and the formats an import needs.
fn check_status(image: &Image, method: Method) -> Result<(), Error> {
    let conflict = |m: &str| Err(Error::Conflict(m.to_string()));
    match (image.status, method) {
        (ImageStatus::Active, m) if m != Method::CopyImage => {
            return conflict("Image with status active cannot be target for import");
        }
        (s, Method::CopyImage) if s != ImageStatus::Active => {
            return conflict("Only images with status active can be targeted for copying");
        }
        (s, Method::WebDownload | Method::GlanceDownload) if s != ImageStatus::Queued => {
            return Err(Error::Conflict(format!(
                "Image needs to be in 'queued' state to use '{}' method",
                method.name()
            )));
        }
        (s, Method::GlanceDirect) if s != ImageStatus::Uploading => {
            return conflict("Image needs to be staged before 'glance-direct' method can be used");
        }
        _ => {}
    }
    if image.container_format.is_none() {
        return conflict("'container_format' needs to be set before import");
    }
    if image.disk_format.is_none() {
        return conflict("'disk_format' needs to be set before import");
    }
    Ok(())
}

fn check_glance_download(body: &Body_) -> Result<(), Error> {
    if body.glance_region.is_none() {
        return Err(Error::BadRequest(
            "'glance_region' needs to be set for glance-download import method".into(),
        ));
    }
    let Some(remote) = &body.glance_image_id else {
        return Err(Error::BadRequest(
            "'glance_image_id' needs to be set for glance-download import method".into(),
        ));
    };
    if Uuid::parse_str(remote).is_err() {
        return Err(Error::BadRequest(format!(
            "Remote image id does not look like a UUID: {remote}"
        )));
    }
    Ok(())
}

/// Glance's import lock: an image whose `os_glance_import_task` names a live task is busy
/// (409). A lock whose task is gone, or finished or stuck past the expiry (twice as long
/// while pending), may be taken over: the stale task is failed and its stores are returned,
/// so their progress properties can be cleaned.
async fn check_lock(state: &AppState, image: &Image) -> Result<Option<Vec<String>>, Error> {
    let Some(holder) = image.properties.get(LOCK_KEY) else {
        return Ok(None);
    };
    let task = match Uuid::parse_str(holder) {
        Ok(t) => state.registry.get_task(t).await?,
        Err(_) => None,
    };
    let Some(task) = task else {
        tracing::warn!(image = %image.id, task = %holder,
            "image has a non-existent import task; considering it stale");
        return Ok(Some(Vec::new()));
    };
    let mut expiry = chrono::Duration::minutes(state.config.import.lock_expiry_min as i64);
    if task.status == TaskStatus::Pending {
        expiry = expiry * 2;
    }
    let age = now() - task.updated_at;
    if age < expiry {
        return Err(Error::Conflict("Image has active task".into()));
    }
    if matches!(task.status, TaskStatus::Pending | TaskStatus::Processing) {
        let _ = import::set_task(state, task.id, |t| {
            t.status = TaskStatus::Failure;
            t.message = "Expired lock preempted".into();
        })
        .await;
    }
    tracing::warn!(image = %image.id, task = %task.id, "removed an expired import lock");
    let stores = task
        .input
        .get("backend")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(stores))
}
