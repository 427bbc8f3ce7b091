//! Loading images on behalf of a caller: what they may see, and compare-and-swap changes
//! that re-check permissions on the freshest copy.

use glass_registry::{Image, RegistryError, now};
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::Identity;
use crate::state::AppState;

/// Parses an image id from a path; anything that is not a UUID names no image.
pub fn parse_image_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::image_not_found(raw))
}

/// The image if the caller may see it; 404 otherwise, as Glance hides what you cannot see.
pub async fn visible_image(state: &AppState, who: &Identity, id: Uuid) -> Result<Image, ApiError> {
    let image = state
        .registry
        .get_image(id)
        .await?
        .ok_or_else(|| ApiError::image_not_found(id))?;
    if who.is_admin() || who.viewer().owns(&image) {
        return Ok(image);
    }
    let membership = match &who.project {
        Some(project) => state
            .registry
            .get_member(id, project)
            .await?
            .map(|m| m.status),
        None => None,
    };
    if who.viewer().can_see(&image, membership) {
        Ok(image)
    } else {
        Err(ApiError::image_not_found(id))
    }
}

/// May the caller change this image's metadata? (owner or admin)
pub fn check_owner(who: &Identity, image: &Image, action: &str) -> Result<(), ApiError> {
    if who.is_admin() || who.viewer().owns(image) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "You are not authorized to complete {action} action."
        )))
    }
}

/// Applies `change` to the current image and stores it with compare-and-swap, retrying when
/// another request got there first. `change` sees the freshest copy each time.
pub async fn modify_image<F>(
    state: &AppState,
    who: &Identity,
    id: Uuid,
    mut change: F,
) -> Result<Image, ApiError>
where
    F: FnMut(&mut Image) -> Result<(), ApiError>,
{
    for _ in 0..32 {
        let current = visible_image(state, who, id).await?;
        let mut next = current.clone();
        change(&mut next)?;
        if next == current {
            return Ok(current);
        }
        next.updated_at = now();
        match state.registry.update_image(next).await {
            Ok(stored) => return Ok(stored),
            Err(RegistryError::Stale(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!(
        "Image {id} is being changed by too many requests at once; try again."
    )))
}
