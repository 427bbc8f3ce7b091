//! Image bytes in: an upload streams from the client through the host's parallel hashing
//! into a store's component (the one the client names, else the default); the image goes
//! queued → saving → active, or back to queued if anything fails (including the client going
//! away, via an [`UndoGuard`]). The same pipeline ([`stream_into_store`]) serves stage and
//! import. Downloads are in `download`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use glass_registry::{Image, ImageStatus, Location};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;
use uuid::Uuid;

use crate::Error;
use crate::Service;
use crate::access::{check_image_rule, modify_image};
use crate::auth::identity::Identity;
use crate::hashing::{Digests, ParallelHasher};
use crate::metrics::Direction;
use crate::stores::{ImageStore, StoreError};
use crate::undo::UndoGuard;

/// Chunks in flight between the request body and the store component.
const PIPE_DEPTH: usize = 16;

/// What undoes a failed upload: its partial data discarded, the image queued again.
async fn undo_upload(state: Service, store: Arc<dyn ImageStore>, id: Uuid) {
    if let Err(e) = store.discard_partial(id).await {
        tracing::warn!(image = %id, error = %e, "discarding partial upload failed");
    }
    if let Err(e) = revert_to_queued(&state, id).await {
        tracing::warn!(image = %id, error = %e, "reverting failed upload to queued");
    }
}

/// Glance's answer to a failed upload: the image is queued again, with no data attributes.
pub async fn revert_to_queued(state: &Service, id: Uuid) -> Result<(), Error> {
    let system = Identity::system();
    match modify_image(state, &system, id, |image| {
        if image.status == ImageStatus::Saving {
            image.status = ImageStatus::Queued;
            image.size = None;
            image.virtual_size = None;
            image.checksum = None;
            image.os_hash_algo = None;
            image.os_hash_value = None;
        }
        Ok(())
    })
    .await
    {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The store an upload goes to: the one named by `X-Image-Meta-Store`, else the default.
/// An unknown store is a 400 and a read-only one a 410, as in Glance.
fn target_store(
    state: &Service,
    name: Option<&str>,
) -> Result<(String, Arc<dyn ImageStore>), Error> {
    let entry = match name {
        Some(name) => state
            .stores
            .entry(name)
            .ok_or_else(|| Error::BadRequest(format!("Unknown scheme '{name}' found in URI")))?,
        None => {
            let (id, _) = state
                .stores
                .default_store()
                .ok_or_else(|| Error::Unavailable("No image store is configured.".into()))?;
            state
                .stores
                .entry(id)
                .expect("the default store is in the set")
        }
    };
    if !entry.store.info().can_write {
        return Err(Error::Gone(
            "Error in store configuration. Adding images to store is disabled.".into(),
        ));
    }
    Ok((entry.id.clone(), entry.store.clone()))
}

/// A store failure as the client sees it, naming the store.
pub fn store_failure(store_id: &str, e: StoreError) -> Error {
    match e {
        StoreError::NotFound | StoreError::Input(_) => store_error(e),
        e => {
            let message = format!("store {store_id}: {e}");
            match e {
                StoreError::Unavailable(_) | StoreError::AccessDenied(_) => {
                    tracing::warn!(store = store_id, error = %e, "store unavailable");
                    Error::Unavailable(message)
                }
                _ => {
                    tracing::error!(store = store_id, error = %e, "store failure");
                    Error::Internal(message)
                }
            }
        }
    }
}

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::Input(msg) => Error::BadRequest(format!("Error reading the image data: {msg}")),
        StoreError::PluginFault { .. } | StoreError::Other(_) => {
            tracing::error!(error = %e, "store failure");
            Error::Internal(e.to_string())
        }
        StoreError::Unavailable(_) => Error::Unavailable(e.to_string()),
        StoreError::NotFound => Error::NotFound("Image data not found".into()),
        e => Error::Internal(e.to_string()),
    }
}

/// Why the body pump stopped early; decides the client's status code.
enum PumpError {
    TooLarge(u64),
    SizeMismatch,
    Client(String),
    StoreGone,
    /// The disk-format inspector refused the data.
    Refused(Error),
}

/// Uploads `body` as the data of image `id` into store `store` (else the default store):
/// queued → saving → active, or queued again on any failure.
pub async fn upload<S, E>(
    state: &Service,
    who: &Identity,
    id: Uuid,
    store: Option<&str>,
    body: S,
    sizes: Sizes,
) -> Result<(), Error>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let cap = sizes.cap;
    if let Some(len) = sizes.content_length.or(sizes.declared)
        && len > cap
    {
        return Err(too_large(len, cap));
    }
    if let (Some(d), Some(l)) = (sizes.declared, sizes.content_length)
        && d != l
    {
        return Err(size_mismatch(d, l));
    }
    let (store_id, store) = target_store(state, store)?;
    // queued → saving: of two concurrent uploads exactly one gets here.
    let image = modify_image(state, who, id, |image| {
        check_image_rule(state, who, image, "upload_image")?;
        if image.status == ImageStatus::Queued
            && (image.disk_format.is_none() || image.container_format.is_none())
        {
            return Err(Error::BadRequest(
                "Properties disk_format, container_format must be set prior to saving data.".into(),
            ));
        }
        if image.status != ImageStatus::Queued {
            return Err(Error::Conflict(format!(
                "Image status transition from {} to saving is not allowed",
                image.status
            )));
        }
        image.status = ImageStatus::Saving;
        Ok(())
    })
    .await?;
    let guard = UndoGuard::new(undo_upload(state.clone(), store.clone(), id));
    let inspect = crate::import::accept::inspection(state, &image).await?;
    match transfer(state, id, &store_id, store, body, sizes, inspect).await {
        Ok(response) => {
            guard.disarm();
            Ok(response)
        }
        Err(e) => {
            // Put the image back before answering, so the client sees it queued again.
            guard.undo().await;
            Err(e)
        }
    }
}

/// The sizes an upload announced, and the cap.
pub struct Sizes {
    pub declared: Option<u64>,
    pub content_length: Option<u64>,
    pub cap: u64,
}

/// What [`stream_into_store`] produced: where the bytes are, their digests, and the
/// inspector's virtual size when the data was inspected.
pub struct Streamed {
    pub stored: crate::stores::Stored,
    pub digests: Digests,
    pub virtual_size: Option<u64>,
}

/// Streams the body into the store while hashing it, then activates the image. On error
/// the caller's guard undoes the upload.
async fn transfer<S, E>(
    state: &Service,
    id: Uuid,
    store_id: &str,
    store: Arc<dyn ImageStore>,
    body: S,
    sizes: Sizes,
    (inspect, formats): (
        Option<crate::import::inspect::InspectSession>,
        crate::import::accept::Formats,
    ),
) -> Result<(), Error>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let streamed = stream_into_store(state, id, store_id, &store, body, sizes, inspect).await?;
    let Streamed {
        stored,
        digests,
        virtual_size,
    } = streamed;
    match activate(
        state,
        id,
        store_id,
        &stored.location,
        &digests,
        virtual_size,
        &formats,
    )
    .await
    {
        Ok(()) => {
            tracing::info!(image = %id, size = digests.size, store = %store_id, "image data stored");
            Ok(())
        }
        Err(e) => {
            let _ = store.delete(&stored.location).await;
            Err(e)
        }
    }
}

/// The upload pipeline shared by upload, stage and import: pumps `source` chunk by chunk
/// into `store` (as the `wasi:io` input-stream of its `add`) while hashing it and, with
/// `inspect`, teeing it to the disk-format inspector; checks the size cap and the declared
/// size while streaming. On error the complete data (if `add` finished) is deleted here;
/// partial data is the caller's to discard (its guard).
pub async fn stream_into_store<S, E>(
    state: &Service,
    id: Uuid,
    store_id: &str,
    store: &Arc<dyn ImageStore>,
    source: S,
    sizes: Sizes,
    mut inspect: Option<crate::import::inspect::InspectSession>,
) -> Result<Streamed, Error>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let Sizes {
        declared,
        content_length,
        cap,
    } = sizes;
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(PIPE_DEPTH);
    let reader = StreamReader::new(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut hasher = ParallelHasher::new();
    let pump = async {
        let mut stream = std::pin::pin!(source);
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return Err(PumpError::Client(e.to_string()));
                }
            };
            hasher.update(&chunk).await;
            let problem = if hasher.size() > cap {
                Some(PumpError::TooLarge(hasher.size()))
            } else if declared.is_some_and(|d| hasher.size() > d) {
                Some(PumpError::SizeMismatch)
            } else if let Some(session) = inspect.as_mut()
                && let Err(refusal) = session.feed(&chunk).await
            {
                Some(PumpError::Refused(refusal))
            } else {
                None
            };
            if let Some(problem) = problem {
                let _ = tx.send(Err(std::io::Error::other("upload refused"))).await;
                return Err(problem);
            }
            if tx.send(Ok(chunk)).await.is_err() {
                return Err(PumpError::StoreGone);
            }
        }
        drop(tx);
        Ok(())
    };
    let (pumped, added) = tokio::join!(
        pump,
        store.add(id, Box::pin(reader), declared.or(content_length))
    );
    let digests = hasher.finish().await;
    state
        .metrics
        .store_bytes(store_id, Direction::In, digests.size);
    if let Err(problem) = pumped {
        if let Ok(stored) = &added {
            let _ = store.delete(&stored.location).await;
        }
        return Err(match problem {
            PumpError::TooLarge(n) => too_large(n, cap),
            PumpError::SizeMismatch => size_mismatch(declared.unwrap_or_default(), digests.size),
            PumpError::Client(msg) => {
                Error::BadRequest(format!("Error reading the image data: {msg}"))
            }
            PumpError::Refused(refusal) => refusal,
            PumpError::StoreGone => match added {
                Err(e) => store_failure(store_id, e),
                Ok(_) => Error::Internal("store stopped reading early".into()),
            },
        });
    }
    let stored = added.map_err(|e| store_failure(store_id, e))?;
    if let Some(d) = declared
        && d != digests.size
    {
        // The guard reverts the image; the complete data must go too.
        let _ = store.delete(&stored.location).await;
        return Err(size_mismatch(d, digests.size));
    }
    if stored.size != digests.size {
        let _ = store.delete(&stored.location).await;
        return Err(Error::Internal(format!(
            "store {store_id} reports {} bytes stored, {} were sent",
            stored.size, digests.size
        )));
    }
    let virtual_size = match inspect {
        Some(session) => match session.finish(digests.size).await {
            Ok(v) => v,
            Err(refusal) => {
                let _ = store.delete(&stored.location).await;
                return Err(refusal);
            }
        },
        None => None,
    };
    Ok(Streamed {
        stored,
        digests,
        virtual_size,
    })
}

/// saving → active, with the digests the host computed and the new location.
async fn activate(
    state: &Service,
    id: Uuid,
    store_id: &str,
    location: &str,
    digests: &Digests,
    virtual_size: Option<u64>,
    formats: &crate::import::accept::Formats,
) -> Result<(), Error> {
    let system = Identity::system();
    modify_image(state, &system, id, |image| {
        if image.status != ImageStatus::Saving {
            return Err(Error::Conflict(format!(
                "Image {id} changed to {} during the upload",
                image.status
            )));
        }
        formats.still(image).map_err(Error::Conflict)?;
        image.status = ImageStatus::Active;
        image.size = Some(digests.size);
        if virtual_size.is_some() {
            image.virtual_size = virtual_size;
        } else if image.disk_format.as_deref() == Some("raw") {
            image.virtual_size = Some(digests.size);
        }
        image.checksum = Some(digests.md5.clone());
        image.os_hash_algo = Some("sha512".into());
        image.os_hash_value = Some(digests.sha512.clone());
        image.locations = vec![Location {
            url: location.to_string(),
            metadata: Default::default(),
            store: store_id.to_string(),
            blake3: Some(digests.blake3.clone()),
        }];
        Ok(())
    })
    .await
    .map(|_| ())
    .map_err(|e| match e {
        Error::NotFound(_) => Error::Conflict(format!("Image {id} was deleted during the upload")),
        e => e,
    })
}

fn too_large(size: u64, cap: u64) -> Error {
    Error::PayloadTooLarge(format!(
        "Image exceeds the storage quota: the maximum image size is {cap} bytes, got at least {size}"
    ))
}

fn size_mismatch(declared: u64, actual: u64) -> Error {
    Error::BadRequest(format!(
        "Provided image size must match the stored image size: {declared} declared, {actual} received"
    ))
}

/// Hands the bytes of an image that was just removed from the registry to the scrub queue
/// (`periodic::reaper`): removed after `scrub_time_s` with `delayed_delete` (restorable until
/// then), else right away — and retried, persisted, if a store fails.
pub async fn delete_data(state: &Service, image: &Image) {
    if image.locations.is_empty() {
        return;
    }
    let delay = if state.config.delayed_delete {
        std::time::Duration::from_secs(state.config.scrub_time_s)
    } else {
        std::time::Duration::ZERO
    };
    if let Err(e) = state.scrub.schedule(image, delay).await {
        tracing::error!(image = %image.id, error = %e, "cannot record the data removal");
        return;
    }
    if delay.is_zero() {
        state.scrub.reap(state).await;
    }
}

/// At start-up, before serving: an image still `saving` belongs to an upload that died with
/// the previous process. Its partial data is removed and it goes back to `queued`.
pub async fn sweep_unfinished_uploads(state: &Service) -> Result<(), Error> {
    for image in glass_registry::images_in_status(&*state.registry, ImageStatus::Saving).await? {
        let id = image.id;
        for (store_id, store) in state.stores.iter() {
            store.discard_partial(id).await.map_err(|e| {
                Error::Internal(format!("store {store_id}: discarding upload of {id}: {e}"))
            })?;
        }
        revert_to_queued(state, id).await?;
        tracing::warn!(image = %id, "unfinished upload from before the restart discarded");
    }
    Ok(())
}

/// Streams `source` into `store` as a copy of `image` (read by the caller just before):
/// hashed, size-capped and inspected against the image's formats. The caller records the
/// copy in a compare-and-swap that checks [`Formats::still`].
pub async fn into_store<S, E>(
    state: &Service,
    image: &Image,
    store_id: &str,
    store: &Arc<dyn ImageStore>,
    source: S,
    sizes: Sizes,
) -> Result<(Streamed, crate::import::accept::Formats), Error>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let (inspect, formats) = crate::import::accept::inspection(state, image).await?;
    let streamed =
        stream_into_store(state, image.id, store_id, store, source, sizes, inspect).await?;
    Ok((streamed, formats))
}
