//! `/v2/images/{id}/locations` (Images API 2.17): `POST` adds the data of a queued image
//! from an http(s) URL served by one of the configured `store-http` stores, as a background
//! `location_import` task that reads the bytes through that store, computes size, md5 and
//! the hash named by `validation_data` (or sha512), checks `validation_data`, and only then,
//! in one compare-and-swap on a still-queued image, records the location and makes the
//! image active. A failed check leaves the image queued with no hashes but with the location
//! (as Glance keeps http locations); the task says why.
//! `GET` lists an image's locations (the service role's rule, `fetch_image_location`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use glass_registry::{Image, ImageStatus, Location, TaskStatus};
use md5::Md5;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{RequestId, json_body};
use glass_images::Error;
use glass_images::Identity;
use glass_images::access::{check_image_rule, modify_image, parse_image_id, visible_image};
use glass_images::import::accept::Formats;

const TASK_TYPE: &str = "location_import";

/// What `validation_data` asks for: the hash algorithm and the expected value.
#[derive(Debug, Clone)]
struct Validation {
    algo: &'static str,
    value: Option<String>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

/// Glance's location schema (url required; `validation_data` with `os_hash_algo` in sha1,
/// sha256, sha512, md5 and `os_hash_value`, each requiring the other) and its hash checks
/// (hexadecimal, the algorithm's size). sha1 is refused: Glass does not compute it.
fn parse_body(body: &Value) -> Result<(String, Validation), Error> {
    let fields = body
        .as_object()
        .ok_or_else(|| bad("Unexpected body type. Expected list/dict."))?;
    let url = fields
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad("Provided object does not match schema 'location': 'url' is a required property")
        })?
        .to_owned();
    let mut validation = Validation {
        algo: "sha512",
        value: None,
    };
    if let Some(data) = fields.get("validation_data") {
        let data = data
            .as_object()
            .ok_or_else(|| bad("validation_data must be an object"))?;
        if let Some(key) = data
            .keys()
            .find(|k| *k != "os_hash_algo" && *k != "os_hash_value")
        {
            return Err(bad(format!(
                "Additional properties are not allowed ('{key}' was unexpected)"
            )));
        }
        let algo = data.get("os_hash_algo").map(|v| v.as_str().unwrap_or(""));
        let value = data.get("os_hash_value").map(|v| v.as_str().unwrap_or(""));
        let (algo, value) = match (algo, value) {
            (Some(a), Some(v)) => (a, v),
            (None, None) => return Ok((url, validation)),
            (Some(_), None) => {
                return Err(bad("'os_hash_value' is a dependency of 'os_hash_algo'"));
            }
            (None, Some(_)) => {
                return Err(bad("'os_hash_algo' is a dependency of 'os_hash_value'"));
            }
        };
        let (algo, size) = match algo {
            "sha256" => ("sha256", 32),
            "sha512" => ("sha512", 64),
            "md5" => ("md5", 16),
            "sha1" => return Err(bad("os_hash_algo sha1 is not supported by this service")),
            other => {
                return Err(bad(format!(
                    "'{other}' is not one of ['sha1', 'sha256', 'sha512', 'md5']"
                )));
            }
        };
        let bytes = hex::decode(value).map_err(|_| {
            bad(format!(
                "os_hash_value ({value}) is not a valid hexadecimal value"
            ))
        })?;
        if bytes.len() != size {
            return Err(bad(format!(
                "os_hash_value: ({value}) is not the correct size for ({algo}) (should be ({size}) bytes)"
            )));
        }
        validation = Validation {
            algo,
            value: Some(value.to_lowercase()),
        };
    }
    Ok((url, validation))
}

/// The `store-http` store that serves `url` (its granted hosts include the URL's).
fn http_store_for(state: &AppState, url: &str) -> Option<String> {
    let authority = url
        .split_once("://")
        .filter(|(scheme, _)| *scheme == "http" || *scheme == "https")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_owned())?;
    let host = authority.split(':').next().unwrap_or(&authority).to_owned();
    state
        .config
        .effective_stores()
        .into_iter()
        .find(|s| s.driver == "store-http" && s.hosts.iter().any(|h| h == &authority || h == &host))
        .map(|s| s.id)
}

/// `POST /v2/images/{id}/locations`.
pub async fn add(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
    request_id: Option<axum::Extension<RequestId>>,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = parse_image_id(&id)?;
    let (url, validation) = parse_body(&json_body(&raw)?)?;
    let image = visible_image(&state, &who, id).await?;
    if image.status != ImageStatus::Queued {
        return Err(Error::Conflict(format!(
            "It's not allowed to add locations if image status is {}.",
            image.status
        ))
        .into());
    }
    check_image_rule(&state, &who, &image, "add_image_location")?;
    let Some(store) = http_store_for(&state, &url) else {
        return Err(Error::Forbidden(
            "http store must be enabled to use location API by normal user.".into(),
        )
        .into());
    };
    if image
        .properties
        .contains_key(glass_images::import::LOCK_KEY)
    {
        return Err(Error::Conflict(format!(
            "New operation on image '{id}' is not permitted as prior operation is still in progress"
        ))
        .into());
    }
    let input = json!({
        "image_id": id.to_string(),
        "loc_url": url,
        "validation_data": validation.value.as_ref().map(|v| json!({
            "os_hash_algo": validation.algo, "os_hash_value": v})).unwrap_or(json!({})),
    });
    let mut task = glass_images::import::pending_task(TASK_TYPE, id, &who, input);
    task.request_id = request_id.map(|axum::Extension(r)| r.0);
    let task = state.registry.create_task(task).await?;
    tokio::spawn(run(state, task.id, id, url, store, validation));
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The background half of [`add`]: read, hash, check, then activate or fail.
async fn run(
    state: AppState,
    task: Uuid,
    image: Uuid,
    url: String,
    store: String,
    validation: Validation,
) {
    let _ =
        glass_images::import::set_task(&state, task, |t| t.status = TaskStatus::Processing).await;
    let outcome = match read_and_hash(&state, image, &store, &url, validation.algo).await {
        Ok(found) => match &validation.value {
            Some(want) if *want != found.hash => Err(format!(
                "os_hash_value: ({want}) not matched with actual os_hash_value: ({})",
                found.hash
            )),
            _ => activate(&state, image, &url, &store, validation.algo, &found).await,
        },
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        // As Glance: an http location stays on the image (it "cannot be deleted"), which
        // stays queued without hashes.
        keep_failed_location(&state, image, &url, &store).await;
    }
    let result = glass_images::import::set_task(&state, task, |t| {
        glass_images::import::close_task(&state, t, image, &outcome)
    })
    .await;
    match (&outcome, result) {
        (Ok(()), Ok(())) => tracing::info!(%image, %url, "location added"),
        (Err(why), _) => tracing::info!(%image, %url, reason = %why, "location import failed"),
        (_, Err(e)) => tracing::warn!(%task, error = %e, "cannot record the location task"),
    }
}

struct Found {
    size: u64,
    md5: String,
    hash: String,
    /// The inspector's virtual size, when the data was inspected.
    virtual_size: Option<u64>,
    /// The image's formats the data was inspected against.
    formats: Formats,
}

/// Reads the location's data once: hashed and inspected (`import::accept`) against the
/// image's formats as they are now.
async fn read_and_hash(
    state: &AppState,
    image: Uuid,
    store: &str,
    url: &str,
    algo: &str,
) -> Result<Found, String> {
    let current = state
        .registry
        .get_image(image)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("image {image} is gone"))?;
    let (mut inspect, formats) = glass_images::import::accept::inspection(state, &current)
        .await
        .map_err(|e| e.to_string())?;
    let entry = state
        .stores
        .entry(store)
        .ok_or_else(|| format!("store {store} is gone"))?;
    let mut reader = entry
        .store
        .get(url, 0, None)
        .await
        .map_err(|e| format!("cannot read {url}: {e}"))?;
    let mut md5 = Md5::new();
    let mut sha256 = Sha256::new();
    let mut sha512 = Sha512::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading {url}: {e}"))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if let Some(session) = inspect.as_mut() {
            session
                .feed(&Bytes::copy_from_slice(&buf[..n]))
                .await
                .map_err(|e| e.to_string())?;
        }
        md5.update(&buf[..n]);
        match algo {
            "sha256" => sha256.update(&buf[..n]),
            "sha512" => sha512.update(&buf[..n]),
            _ => {}
        }
    }
    let md5 = hex::encode(md5.finalize());
    let hash = match algo {
        "sha256" => hex::encode(sha256.finalize()),
        "md5" => md5.clone(),
        _ => hex::encode(sha512.finalize()),
    };
    let virtual_size = match inspect {
        Some(session) => session.finish(size).await.map_err(|e| e.to_string())?,
        None => None,
    };
    Ok(Found {
        size,
        md5,
        hash,
        virtual_size,
        formats,
    })
}

async fn activate(
    state: &AppState,
    image: Uuid,
    url: &str,
    store: &str,
    algo: &str,
    found: &Found,
) -> Result<(), String> {
    modify_image(state, &Identity::system(), image, |img: &mut Image| {
        if img.status != ImageStatus::Queued || !img.locations.is_empty() {
            return Err(Error::Conflict(format!(
                "image {image} changed while its location was checked (now {})",
                img.status
            )));
        }
        found.formats.still(img).map_err(Error::Conflict)?;
        img.locations.push(Location {
            url: url.to_owned(),
            metadata: Default::default(),
            store: store.to_owned(),
            blake3: None,
        });
        img.size = Some(found.size);
        if found.virtual_size.is_some() {
            img.virtual_size = found.virtual_size;
        }
        img.checksum = Some(found.md5.clone());
        img.os_hash_algo = Some(algo.to_owned());
        img.os_hash_value = Some(found.hash.clone());
        img.status = ImageStatus::Active;
        Ok(())
    })
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

async fn keep_failed_location(state: &AppState, image: Uuid, url: &str, store: &str) {
    let kept = modify_image(state, &Identity::system(), image, |img: &mut Image| {
        if img.status == ImageStatus::Queued && img.locations.is_empty() {
            img.locations.push(Location {
                url: url.to_owned(),
                metadata: Default::default(),
                store: store.to_owned(),
                blake3: None,
            });
        }
        Ok(())
    })
    .await;
    if let Err(e) = kept {
        tracing::warn!(%image, error = %e, "cannot record the failed location");
    }
}

/// `GET /v2/images/{id}/locations`.
pub async fn list(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_image_id(&id)?;
    let image = visible_image(&state, &who, id).await?;
    check_image_rule(&state, &who, &image, "fetch_image_location")?;
    let locations: Vec<Value> = image
        .locations
        .iter()
        .map(|l| {
            let mut metadata = l.metadata.clone();
            metadata.insert("store".into(), l.store.clone().into());
            json!({"url": l.url, "metadata": metadata})
        })
        .collect();
    Ok(Json(Value::Array(locations)))
}
