//! copy-image: the active image's data, from its best copy, into each requested store.

use glass_registry::{ImageStatus, Location};
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use super::Failure;
use super::ImportRequest;
use super::copies::Record;
use super::copies::after_store;
use super::copies::clear_task_tags;
use super::copies::current_image;
use super::copies::record_copy;
use crate::Service;
use crate::upload::Sizes;

/// copy-image: the active image's data, read from its best copy, into each requested store;
/// the bytes are hashed on the way and must match the image's recorded sha512.
pub(super) async fn copy_image(
    state: &Service,
    task: Uuid,
    image: Uuid,
    request: &ImportRequest,
) -> Result<(), Failure> {
    for store_id in &request.stores {
        let copied = copy_to_store(state, task, image, store_id).await;
        after_store(state, task, image, request, store_id, copied).await?;
    }
    clear_task_tags(state, task, image).await
}

pub(super) async fn copy_to_store(
    state: &Service,
    task: Uuid,
    image: Uuid,
    store_id: &str,
) -> Result<(), Failure> {
    let target = state
        .stores
        .get(store_id)
        .ok_or_else(|| format!("unknown store {store_id}"))?
        .clone();
    let current = current_image(state, image).await?;
    if current.status != ImageStatus::Active {
        return Err(format!("image is {}, not active", current.status));
    }
    let mut sources: Vec<&Location> = current
        .locations
        .iter()
        .filter(|l| !crate::periodic::auditor::marked_bad(l) && l.store != store_id)
        .collect();
    sources.sort_by_key(|l| std::cmp::Reverse(state.stores.weight(&l.store)));
    let mut last_error = "the image has no copy to read from".to_string();
    for source in sources {
        let Some(from) = state.stores.get(&source.store) else {
            continue;
        };
        let reader = match from.get(&source.url, 0, None).await {
            Ok(r) => r,
            Err(e) => {
                last_error = format!("reading from store {}: {e}", source.store);
                continue;
            }
        };
        let streamed = crate::upload::into_store(
            state,
            &current,
            store_id,
            &target,
            ReaderStream::with_capacity(reader, 64 * 1024),
            Sizes {
                declared: current.size,
                content_length: None,
                cap: state.config.image_size_cap,
            },
        )
        .await;
        match streamed {
            Ok((streamed, formats)) => {
                let record = Record {
                    store_id,
                    set_active: false,
                    disk_format: None,
                    formats,
                };
                return record_copy(state, task, image, &target, streamed, record).await;
            }
            Err(e) => {
                let _ = target.discard_partial(image).await;
                last_error = format!("copying from store {}: {e}", source.store);
            }
        }
    }
    Err(last_error)
}
