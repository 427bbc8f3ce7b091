//! `/v2/images` and `/v2/images/{id}`: create, show, update (JSON patch), delete, and the
//! deactivate/reactivate actions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use glass_registry::{Image, ImageStatus, RegistryError, Visibility};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{json_body, media_type};
use glass_images::Error;
use glass_images::Identity;
use glass_images::access::{check_image_rule, modify_image, parse_image_id, visible_image};
use glass_images::auth::policy::Target;
use glass_images::view::image_body;
use glass_images::{patch, properties};

pub async fn create(
    State(state): State<AppState>,
    who: Identity,
    body: Bytes,
) -> Result<Response, ApiError> {
    let image = create_image(&state, &who, &body).await?;
    let mut response = (StatusCode::CREATED, Json(image_body(&image))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/images/{}", image.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    for (name, value) in super::import::create_headers(&state) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    Ok(response)
}

/// A new queued image from a `POST /v2/images` body, with every check of that call.
pub async fn create_image(state: &AppState, who: &Identity, body: &Bytes) -> Result<Image, Error> {
    if body.is_empty() {
        return Err(Error::BadRequest("Body expected in request.".into()));
    }
    let Value::Object(fields) = json_body(body)? else {
        return Err(Error::BadRequest(
            "Unexpected body type. Expected list/dict.".into(),
        ));
    };
    let id = match fields.get("id") {
        None | Some(Value::Null) => Uuid::new_v4(),
        Some(Value::String(s)) if properties::is_uuid(s) => {
            Uuid::parse_str(s).map_err(|_| Error::BadRequest(format!("Invalid image id '{s}'")))?
        }
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "Provided object does not match schema 'image': {other} does not match the UUID pattern (attribute 'id')"
            )));
        }
    };
    let mut image = Image::new(id, who.project.clone());
    for (name, value) in &fields {
        match name.as_str() {
            "id" => continue,
            "locations" => {
                return Err(Error::Forbidden(
                    "Attribute 'locations' is reserved.".into(),
                ));
            }
            "owner" if !who.is_admin() && value.as_str() != who.project.as_deref() => {
                return Err(Error::Forbidden(format!(
                    "You are not permitted to create images owned by '{}'",
                    value.as_str().unwrap_or_default()
                )));
            }
            extra if !properties::is_core(extra) && extra.chars().count() > 255 => {
                return Err(Error::BadRequest(
                    "Custom property should not be greater than 255 characters.".into(),
                ));
            }
            _ => {}
        }
        properties::set(&mut image, name, value, who)?;
    }
    let owner = image.owner.as_deref();
    let target = Target::own_project(who).with("owner", owner);
    if !state.policy.allows("add_image", who, &target) {
        return Err(Error::Forbidden(match owner {
            Some(owner) if Some(owner) != who.project.as_deref() => {
                format!("You are not permitted to create images owned by '{owner}'")
            }
            _ => "You are not authorized to complete add_image action.".into(),
        }));
    }
    check_visibility_rule(state, who, &image)?;
    check_quotas(state, &image)?;
    glass_images::validators::check_create(state, &image, &fields).await?;
    let image = state.registry.create_image(image).await?;
    tracing::info!(image = %image.id, "image created");
    Ok(image)
}

/// Glance's per-image quotas on tags and extra properties.
pub fn check_quotas(state: &AppState, image: &Image) -> Result<(), Error> {
    let over = |what: &str, attempted: usize, maximum: usize| {
        Error::PayloadTooLarge(format!(
            "The limit has been exceeded on the number of allowed image {what}. Attempted: {attempted}, Maximum: {maximum}"
        ))
    };
    let config = &state.config;
    if image.tags.len() > config.image_tag_quota {
        return Err(over("tags", image.tags.len(), config.image_tag_quota));
    }
    // Glance does not count its own `os_glance_*` properties (the import lock, …).
    let properties = image
        .properties
        .keys()
        .filter(|k| !k.starts_with("os_glance"))
        .count();
    if properties > config.image_property_quota {
        return Err(over("properties", properties, config.image_property_quota));
    }
    Ok(())
}

pub async fn show(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_image_id(&id)?;
    let image = visible_image(&state, &who, id).await?;
    Ok(Json(image_body(&image)).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let media_type = media_type(&headers);
    let dialect = patch::Dialect::from_media_type(media_type)
        .ok_or_else(|| Error::PatchMediaType(media_type.to_string()))?;
    let id = parse_image_id(&id)?;
    let changes = patch::parse(&json_body(&body)?, dialect)?;
    glass_images::validators::check_patch(&state, &who, id, &changes).await?;
    let image = modify_image(&state, &who, id, |image| {
        check_image_rule(&state, &who, image, "modify_image")?;
        let before = image.visibility;
        for change in &changes {
            patch::apply(image, change, &who)?;
        }
        if image.visibility != before {
            check_visibility_rule(&state, &who, image)?;
        }
        check_quotas(&state, image)
    })
    .await?;
    Ok(Json(image_body(&image)).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_image_id(&id)?;
    for _ in 0..32 {
        let image = match visible_image(&state, &who, id).await {
            Err(Error::NotFound(_)) => {
                return Err(Error::NotFound(format!("Failed to find image {id} to delete")).into());
            }
            other => other?,
        };
        check_image_rule(&state, &who, &image, "delete_image")?;
        if image.protected {
            return Err(Error::Forbidden(format!(
                "Image {id} is protected and cannot be deleted."
            ))
            .into());
        }
        match state.registry.delete_image(id, image.revision).await {
            Ok(()) => {
                tracing::info!(image = %id, "image deleted");
                glass_images::upload::delete_data(&state, &image).await;
                return Ok(StatusCode::NO_CONTENT);
            }
            Err(RegistryError::Stale(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict(format!("Image {id} is busy; try again.")).into())
}

pub async fn deactivate(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    Ok(change_activation(&state, &who, &id, ImageStatus::Deactivated).await?)
}

pub async fn reactivate(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    Ok(change_activation(&state, &who, &id, ImageStatus::Active).await?)
}

/// Making an image public or community has rules of its own (`publicize_image`,
/// `communitize_image`), on create and on PATCH.
fn check_visibility_rule(state: &AppState, who: &Identity, image: &Image) -> Result<(), Error> {
    let rule = match image.visibility {
        Visibility::Public => "publicize_image",
        Visibility::Community => "communitize_image",
        _ => return Ok(()),
    };
    let target = Target::new()
        .with("project_id", image.owner.as_deref())
        .with("owner", image.owner.as_deref())
        .with("visibility", Some(image.visibility.as_str()));
    state.policy.enforce(rule, who, &target)
}

async fn change_activation(
    state: &AppState,
    who: &Identity,
    id: &str,
    target: ImageStatus,
) -> Result<StatusCode, Error> {
    let id = parse_image_id(id)?;
    let action = match target {
        ImageStatus::Active => "reactivate",
        _ => "deactivate",
    };
    modify_image(state, who, id, |image| {
        check_image_rule(state, who, image, action)?;
        match image.status {
            ImageStatus::Active | ImageStatus::Deactivated => {
                image.status = target;
                Ok(())
            }
            status => Err(Error::Forbidden(format!(
                "Not allowed to {action} image in status '{status}'"
            ))),
        }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
