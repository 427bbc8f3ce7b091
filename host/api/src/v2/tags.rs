//! `/v2/images/{id}/tags/{tag}`: add and remove one tag.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::images::check_quotas;
use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;
use glass_images::access::{check_image_rule, modify_image, parse_image_id};
use glass_images::properties;

pub async fn add(
    State(state): State<AppState>,
    who: Identity,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = parse_image_id(&id)?;
    properties::tag(&tag)?;
    modify_image(&state, &who, id, |image| {
        check_image_rule(&state, &who, image, "modify_image")?;
        image.tags.insert(tag.clone());
        let maximum = state.config.image_tag_quota;
        if image.tags.len() > maximum {
            // Glance's message on this route wraps the quota's own.
            return Err(Error::PayloadTooLarge(format!(
                "Image tag limit exceeded for image {id}: The limit has been exceeded on the number of allowed image tags. Attempted: {}, Maximum: {maximum}:",
                image.tags.len()
            )));
        }
        check_quotas(&state, image)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(state): State<AppState>,
    who: Identity,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = parse_image_id(&id)?;
    modify_image(&state, &who, id, |image| {
        check_image_rule(&state, &who, image, "modify_image")?;
        if image.tags.remove(&tag) {
            Ok(())
        } else {
            Err(Error::not_found())
        }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
