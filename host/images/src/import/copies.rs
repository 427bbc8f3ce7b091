//! Copies an import writes: staged data into a store through the accept gate, recorded in
//! the image (tagged with the task until it ends), and what one store's outcome means.

use std::sync::Arc;

use glass_registry::{Image, ImageStatus, Location};
use serde_json::Value;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use super::FAILED_KEY;
use super::Failure;
use super::IMPORTING_KEY;
use super::ImportRequest;
use super::accept::Formats;
use super::lock::as_task;
use super::lock::merge_store_list;
use crate::Service;
use crate::stores::ImageStore;
use crate::upload::{Sizes, Streamed};

/// Location metadata naming the task that wrote a copy, until the task ends (so a failed
/// task removes exactly its own copies). Cleared on success.
pub(super) const TASK_LOCATION_KEY: &str = "glass_import_task";

/// Where a location's data of `image` came from when a task wrote it.
pub(super) fn task_location(task: Uuid, store: &str, url: String, blake3: String) -> Location {
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert(
        TASK_LOCATION_KEY.to_string(),
        Value::String(task.to_string()),
    );
    Location {
        url,
        metadata,
        store: store.to_string(),
        blake3: Some(blake3),
    }
}

/// One store of an import done (or failed): progress properties, and the failure policy.
pub(super) async fn after_store(
    state: &Service,
    task: Uuid,
    image: Uuid,
    request: &ImportRequest,
    store_id: &str,
    copied: Result<(), Failure>,
) -> Result<(), Failure> {
    let store = vec![store_id.to_string()];
    match copied {
        Ok(()) => {
            as_task(state, task, image, |img| {
                merge_store_list(img, IMPORTING_KEY, &store, true);
                Ok(())
            })
            .await?;
            Ok(())
        }
        Err(reason) => {
            tracing::warn!(task = %task, image = %image, store = store_id, %reason,
                "import to store failed");
            as_task(state, task, image, |img| {
                merge_store_list(img, IMPORTING_KEY, &store, true);
                merge_store_list(img, FAILED_KEY, &store, false);
                Ok(())
            })
            .await?;
            if request.all_stores_must_succeed {
                Err(format!("store {store_id}: {reason}"))
            } else {
                Ok(())
            }
        }
    }
}

/// The image must be active at the end of a non-copy import (Glance's `_VerifyImageState`).
pub(super) async fn verify_active(state: &Service, task: Uuid, image: Uuid) -> Result<(), Failure> {
    let img = as_task(state, task, image, |_| Ok(())).await?;
    if img.status == ImageStatus::Active {
        Ok(())
    } else {
        Err("None of the uploads finished!".into())
    }
}

/// Success: the copies are no longer this task's to undo.
pub(super) async fn clear_task_tags(
    state: &Service,
    task: Uuid,
    image: Uuid,
) -> Result<(), Failure> {
    let tag = task.to_string();
    as_task(state, task, image, |img| {
        for l in &mut img.locations {
            if l.metadata.get(TASK_LOCATION_KEY).and_then(Value::as_str) == Some(&tag) {
                l.metadata.remove(TASK_LOCATION_KEY);
            }
        }
        Ok(())
    })
    .await
    .map(|_| ())
}

/// Where a staged copy goes and what it makes of the image.
pub(super) struct Target<'a> {
    pub(super) store_id: &'a str,
    /// The image becomes active once this copy is recorded.
    pub(super) set_active: bool,
    /// The disk format of the data when a plugin converted it.
    pub(super) disk_format: Option<&'a str>,
}

/// What a recorded copy is: its store, whether it activates the image, its disk format
/// after a conversion, and the image's formats when its data was inspected (checked again
/// in the compare-and-swap that records it).
pub(super) struct Record<'a> {
    pub(super) store_id: &'a str,
    pub(super) set_active: bool,
    pub(super) disk_format: Option<&'a str>,
    pub(super) formats: super::accept::Formats,
}

/// Copies the staged file `location` into `store_id` through `accept` (hashed, inspected
/// against the image's formats), then records the copy (and the data attributes, if it is
/// the first; active if `set_active`).
pub(super) async fn staged_to_store(
    state: &Service,
    task: Uuid,
    image: Uuid,
    location: &str,
    target: Target<'_>,
) -> Result<(), Failure> {
    let store_id = target.store_id;
    let entry = state
        .stores
        .entry(store_id)
        .ok_or_else(|| format!("unknown store {store_id}"))?;
    let store = entry.store.clone();
    let staging: Arc<dyn ImageStore> = state.imports.staging.clone();
    let size = staging
        .size(location)
        .await
        .map_err(|e| format!("reading the staged data: {e}"))?;
    let reader = staging
        .get(location, 0, None)
        .await
        .map_err(|e| format!("reading the staged data: {e}"))?;
    let mut current = current_image(state, image).await?;
    let formats = super::accept::Formats::of(&current);
    if let Some(f) = target.disk_format {
        current.disk_format = Some(f.to_string());
    }
    let streamed = crate::upload::into_store(
        state,
        &current,
        store_id,
        &store,
        ReaderStream::with_capacity(reader, 64 * 1024),
        Sizes {
            declared: Some(size),
            content_length: None,
            cap: state.config.image_size_cap,
        },
    )
    .await;
    let (streamed, _) = match streamed {
        Ok(streamed) => streamed,
        Err(e) => {
            // What the failed copy left in the store goes now, or (store down) from the
            // reaper's pending discards.
            let _ = store.discard_partial(image).await;
            return Err(e.to_string());
        }
    };
    let record = Record {
        store_id,
        set_active: target.set_active,
        disk_format: target.disk_format,
        formats,
    };
    record_copy(state, task, image, &store, streamed, record).await
}

pub(super) async fn current_image(state: &Service, image: Uuid) -> Result<Image, Failure> {
    state
        .registry
        .get_image(image)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "Image has been deleted, aborting import.".to_string())
}

/// Records a copy just written: the first one sets the data attributes (and every later one
/// must have the same digests); the image becomes active if `set_active`. If the record
/// cannot be written (lock lost, image deleted, formats or digests differ) the data is
/// removed.
pub(super) async fn record_copy(
    state: &Service,
    task: Uuid,
    image: Uuid,
    store: &Arc<dyn ImageStore>,
    streamed: Streamed,
    record: Record<'_>,
) -> Result<(), Failure> {
    let Record {
        store_id,
        set_active,
        disk_format,
        formats,
    } = record;
    let Streamed {
        stored,
        digests,
        virtual_size,
    } = streamed;
    let location = task_location(
        task,
        store_id,
        stored.location.clone(),
        digests.blake3.clone(),
    );
    let recorded = as_task(state, task, image, |img| {
        if img.status == ImageStatus::Deleted || img.status == ImageStatus::PendingDelete {
            return Err("Image has been deleted, aborting import.".into());
        }
        // After a conversion the first record already switched disk_format to the target.
        let converted = Formats {
            disk_format: disk_format.map(str::to_owned),
            ..formats.clone()
        };
        if disk_format.is_none() || converted.still(img).is_err() {
            formats.still(img)?;
        }
        match &img.os_hash_value {
            Some(existing) if img.size.is_some() => {
                if existing != &digests.sha512 || img.size != Some(digests.size) {
                    return Err(format!(
                        "the data written to store {store_id} differs from the image's \
                         ({} bytes, sha512 {}…)",
                        digests.size,
                        &digests.sha512[..16]
                    ));
                }
            }
            _ => {
                img.size = Some(digests.size);
                img.checksum = Some(digests.md5.clone());
                img.os_hash_algo = Some("sha512".into());
                img.os_hash_value = Some(digests.sha512.clone());
                if virtual_size.is_some() {
                    img.virtual_size = virtual_size;
                } else if img.disk_format.as_deref() == Some("raw") {
                    img.virtual_size = Some(digests.size);
                }
            }
        }
        if let Some(f) = disk_format {
            img.disk_format = Some(f.to_string());
        }
        img.locations.retain(|l| l.store != store_id);
        img.locations.push(location.clone());
        if set_active && img.status != ImageStatus::Active {
            img.status = ImageStatus::Active;
        }
        Ok(())
    })
    .await;
    if let Err(reason) = recorded {
        if let Err(e) = store.delete(&stored.location).await {
            tracing::warn!(task = %task, store = store_id, error = %e,
                "removing data the import could not record");
        }
        return Err(reason);
    }
    tracing::info!(task = %task, image = %image, store = store_id, size = digests.size,
        "import copied the data to a store");
    Ok(())
}
