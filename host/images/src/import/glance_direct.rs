//! glance-direct (and the second half of web-download and glance-download): the staged data
//! through the import steps, then into each store.

use uuid::Uuid;

use super::Failure;
use super::ImportRequest;
use super::copies::Target;
use super::copies::after_store;
use super::copies::clear_task_tags;
use super::copies::staged_to_store;
use super::copies::verify_active;
use crate::Service;

/// glance-direct (and the second half of web-download / glance-download): the staged data
/// through the import plugins, then into each store.
pub(super) async fn import_staged(
    state: &Service,
    task: Uuid,
    image: Uuid,
    request: &ImportRequest,
) -> Result<(), Failure> {
    let staging = state.imports.staging.clone();
    if !staging.has(image) {
        return Err(format!("Image {image} has no staged data"));
    }
    let converted = super::steps::run_plugins(state, task, image, request).await?;
    let location = image.to_string();
    let count = request.stores.len();
    for (index, store_id) in request.stores.iter().enumerate() {
        let set_active = !request.all_stores_must_succeed || index + 1 == count;
        let target = Target {
            store_id,
            set_active,
            disk_format: converted.as_deref(),
        };
        let copied = staged_to_store(state, task, image, &location, target).await;
        after_store(state, task, image, request, store_id, copied).await?;
    }
    verify_active(state, task, image).await?;
    clear_task_tags(state, task, image).await
}
