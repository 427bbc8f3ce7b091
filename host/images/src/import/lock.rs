//! The image's import lock (`os_glance_import_task`) and the store-list progress properties:
//! every change an import makes to its image goes through [`as_task`], which re-checks the lock.

use std::collections::BTreeSet;

use glass_registry::{Image, ImageStatus};
use uuid::Uuid;

use super::Failure;
use super::IMPORTING_KEY;
use super::ImportRequest;
use super::LOCK_KEY;
use super::Method;
use crate::Error;
use crate::Service;
use crate::access::modify_image;
use crate::auth::identity::Identity;

/// Adds or removes stores in a comma-separated store-list property (sorted, as Glance).
pub fn merge_store_list(image: &mut Image, key: &str, stores: &[String], subtract: bool) {
    let mut set: BTreeSet<String> = image
        .properties
        .get(key)
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    for store in stores.iter().filter(|s| !s.is_empty()) {
        if subtract {
            set.remove(store);
        } else {
            set.insert(store.clone());
        }
    }
    let joined = set.into_iter().collect::<Vec<_>>().join(",");
    image.properties.insert(key.into(), joined);
}

/// Changes the image as the import task (system identity), only while the task holds the
/// image's import lock. Errors are the task's failure reason.
pub(super) async fn as_task<F>(
    state: &Service,
    task: Uuid,
    image: Uuid,
    mut change: F,
) -> Result<Image, Failure>
where
    F: FnMut(&mut Image) -> Result<(), Failure>,
{
    let system = Identity::system();
    let mut failure = None;
    let lock = task.to_string();
    let result = modify_image(state, &system, image, |img| {
        if img.properties.get(LOCK_KEY) != Some(&lock) {
            failure = Some(format!(
                "Image {image} import task {task} lost the import lock; aborting"
            ));
            return Err(Error::Conflict(String::new()));
        }
        change(img).map_err(|reason| {
            failure = Some(reason);
            Error::Conflict(String::new())
        })
    })
    .await;
    match result {
        Ok(img) => Ok(img),
        Err(_) if failure.is_some() => Err(failure.unwrap_or_default()),
        Err(Error::NotFound(_)) => Err("Image has been deleted, aborting import.".into()),
        Err(e) => Err(format!("updating the image: {e}")),
    }
}

/// Drops the import lock if this task holds it; on failure also moves the image back.
pub(super) async fn release_lock(
    state: &Service,
    task: Uuid,
    image: Uuid,
    request: &ImportRequest,
    failed: bool,
) {
    let system = Identity::system();
    let lock = task.to_string();
    let result = modify_image(state, &system, image, |img| {
        if img.properties.get(LOCK_KEY) == Some(&lock) {
            img.properties.remove(LOCK_KEY);
            merge_store_list(img, IMPORTING_KEY, &request.stores, true);
            if failed && request.method != Method::CopyImage && img.status != ImageStatus::Active {
                revert_status(img);
            }
        }
        Ok(())
    })
    .await;
    match result {
        Ok(_) | Err(Error::NotFound(_)) => {}
        Err(e) => tracing::warn!(task = %task, image = %image, error = %e,
            "cannot release the import lock"),
    }
}

/// An image whose import failed: back to queued, with no data attributes if no location is
/// left (Glance's revert of `_VerifyImageState`).
pub fn revert_status(img: &mut Image) {
    img.status = ImageStatus::Queued;
    if img.locations.is_empty() {
        img.size = None;
        img.virtual_size = None;
        img.checksum = None;
        img.os_hash_algo = None;
        img.os_hash_value = None;
    }
}
