//! The stage of a glass-direct import: an [`UndoGuard`] that, when a stage does not finish
//! (or its client goes away), removes the staged data and puts the image back to `queued`.

use glass_registry::ImageStatus;
use uuid::Uuid;

use super::LOCK_KEY;
use crate::access::modify_image;
use crate::stores::ImageStore;
use crate::undo::UndoGuard;
use crate::{Error, Identity, Service};

/// Armed while image `id`'s data is being staged.
pub fn guard(state: &Service, id: Uuid) -> UndoGuard {
    UndoGuard::new(unstage(state.clone(), id))
}

async fn unstage(state: Service, id: Uuid) {
    let _ = state.imports.staging.discard_partial(id).await;
    state.imports.staging.remove_all(id).await;
    let result = modify_image(&state, &Identity::system(), id, |image| {
        if image.status == ImageStatus::Uploading && !image.properties.contains_key(LOCK_KEY) {
            image.status = ImageStatus::Queued;
            image.size = None;
        }
        Ok(())
    })
    .await;
    if let Err(e) = result
        && !matches!(e, Error::NotFound(_))
    {
        tracing::warn!(image = %id, error = %e, "reverting a failed stage to queued");
    }
}
