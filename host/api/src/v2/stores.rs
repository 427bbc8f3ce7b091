//! `DELETE /v2/stores/{store_id}/{image_id}`: removes one copy of an active image's data
//! (Images API 2.10), with Glance's rules: the store must exist (409 otherwise), the image
//! must be active, and its last copy cannot be removed this way (403: delete the image).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use glass_registry::ImageStatus;

use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;
use glass_images::access::{check_image_rule, modify_image, parse_image_id, visible_image};

pub async fn delete_from_store(
    State(state): State<AppState>,
    who: Identity,
    Path((store_id, image_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state.stores.get(&store_id).is_none() {
        return Err(Error::Conflict(format!(
            "The selected store {store_id} is not available on this node."
        ))
        .into());
    }
    let id = parse_image_id(&image_id)
        .map_err(|_| Error::NotFound(format!("Failed to find image {image_id}")))?;
    let image = visible_image(&state, &who, id).await.map_err(|e| match e {
        Error::NotFound(_) => Error::NotFound(format!("Failed to find image {id}")),
        e => e,
    })?;
    check_image_rule(&state, &who, &image, "delete_image_location")?;
    let mut removed = None;
    modify_image(&state, &who, id, |image| {
        if image.status != ImageStatus::Active {
            return Err(Error::Conflict(
                "It's not allowed to remove image data from store if image status is not 'active'"
                    .into(),
            ));
        }
        if image.locations.len() == 1 {
            return Err(Error::Forbidden(
                "Cannot delete image data from the only store containing it. Consider deleting \
                 the image instead."
                    .into(),
            ));
        }
        let Some(pos) = image.locations.iter().position(|l| l.store == store_id) else {
            return Err(Error::NotFound(format!(
                "Image {id} is not stored in store {store_id}."
            )));
        };
        removed = Some(image.locations.remove(pos));
        Ok(())
    })
    .await?;
    // The registry no longer points at the copy; its bytes go through the scrub queue, so a
    // store that fails now is retried later instead of leaving the data behind.
    if let Some(location) = removed {
        let mut gone = image.clone();
        gone.locations = vec![location];
        if let Err(e) = state.scrub.schedule_copies(&gone).await {
            tracing::error!(image = %id, store = %store_id, error = %e,
                "cannot record the removal of a copy");
        }
        state.scrub.reap(&state).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
