//! Removal of deleted images' data, persisted so that none is lost to a crash or a failing
//! store: the reaper that works the scrub queue (`scrub`).
//!
//! When an image is deleted its record leaves the registry at once (the API answers 404,
//! as Glance does for a deleted image) and a job — the whole image record and when its data
//! is due to go — is written to `<data_dir>/scrub/<id>.json` (temp file, fsync, rename).
//! With `delayed_delete` the job is due `scrub_time_s` later and an admin can restore the
//! image until then (`POST /glass/v1/deleted-images/{id}/restore`); without it the job is
//! due at once and is run right away. The reaper runs due jobs: it deletes each copy from its
//! store and drops the job when every copy is gone; a failure keeps the job with exponential
//! backoff (10 s doubling up to an hour), so a store that is down only delays the removal.
//!
//! The reaper also retries the discards of unfinished uploads that a store could not do when
//! the upload or import failed (`store::PendingDiscards`), persisted as
//! `<data_dir>/scrub/<id>.discard.json`: at once if the image is gone, after claiming it
//! (queued → saving, so no upload can start meanwhile) if it is queued, never while data of
//! the image is recorded in that store (the partial's key is then the live copy's).

use std::path::PathBuf;

use glass_registry::{Image, ImageStatus};
use uuid::Uuid;

use crate::Error;
use crate::Service;
use crate::scrub::{DiscardJob, ScrubQueue, now};
use crate::stores::{ImageStore, StoreError};

impl ScrubQueue {
    /// Persists the discards the stores could not do, then retries those that are safe now.
    /// Returns how many are still waiting.
    async fn retry_discards(&self, state: &Service) -> usize {
        for entry in state.stores.entries() {
            for id in entry.pending_discards.take() {
                let path = self.discard_path(id);
                let mut job: DiscardJob = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                if !job.stores.contains(&entry.id) {
                    job.stores.push(entry.id.clone());
                }
                if let Err(e) = self.write_json(&path, &job) {
                    tracing::error!(image = %id, error = %e, "cannot persist a pending discard");
                    entry.pending_discards.add(id);
                }
            }
        }
        let mut waiting = 0;
        let files: Vec<(Uuid, PathBuf)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                Some((name.strip_suffix(".discard.json")?.parse().ok()?, e.path()))
            })
            .collect();
        for (id, path) in files {
            let Some(job) = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<DiscardJob>(&b).ok())
            else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let mut left = Vec::new();
            for store in job.stores {
                if !discard_now(state, id, &store).await {
                    left.push(store);
                }
            }
            waiting += left.len();
            let written = if left.is_empty() {
                std::fs::remove_file(&path)
            } else {
                self.write_json(&path, &DiscardJob { stores: left })
            };
            if let Err(e) = written {
                tracing::warn!(image = %id, error = %e, "updating a pending discard failed");
            }
        }
        waiting
    }

    /// Puts a deleted image back in the registry, if its data has not been removed yet.
    pub async fn restore(&self, state: &Service, id: Uuid) -> Result<Image, Error> {
        let _guard = self.lock.lock().await;
        let job = self.read(id).ok_or_else(|| {
            Error::NotFound(format!("No deleted image {id} is waiting for removal."))
        })?;
        if job.attempts > 0 || job.copies_only {
            return Err(Error::Conflict(format!(
                "The data of image {id} is already being removed; it cannot be restored."
            )));
        }
        let mut image = job.image;
        image.revision = 0;
        let restored = state.registry.create_image(image).await?;
        let _ = std::fs::remove_file(self.path(id));
        tracing::info!(image = %id, "deleted image restored");
        Ok(restored)
    }

    /// Runs every due job once. Returns (data removed, jobs still waiting).
    pub async fn reap(&self, state: &Service) -> (usize, usize) {
        let _guard = self.lock.lock().await;
        let discards = self.retry_discards(state).await;
        if discards > 0 {
            tracing::info!(
                waiting = discards,
                "discards of unfinished uploads still waiting"
            );
        }
        let (mut done, mut waiting) = (0, 0);
        for mut job in self.jobs() {
            if job.due_at > now() {
                waiting += 1;
                continue;
            }
            let id = job.image.id;
            let live = state.registry.get_image(id).await;
            if job.copies_only {
                // Keep any copy the live image references again.
                if let Ok(Some(current)) = &live {
                    job.image.locations.retain(|gone| {
                        !current
                            .locations
                            .iter()
                            .any(|l| l.store == gone.store && l.url == gone.url)
                    });
                }
            } else if matches!(live, Ok(Some(_))) {
                // Restored, or the delete never reached the registry: the data is in use.
                let _ = std::fs::remove_file(self.path(id));
                continue;
            }
            match remove_copies(state, &job.image).await {
                Ok(()) => {
                    let _ = std::fs::remove_file(self.path(id));
                    tracing::info!(image = %id, "deleted image's data removed");
                    done += 1;
                }
                Err(e) => {
                    job.attempts += 1;
                    let backoff = 10u64.saturating_mul(1 << job.attempts.min(9)).min(3600);
                    job.due_at = now() + backoff;
                    tracing::warn!(image = %id, attempts = job.attempts, retry_in_s = backoff,
                        error = %e, "removing a deleted image's data failed; will retry");
                    job.last_error = Some(e);
                    if let Err(e) = self.write(&job) {
                        tracing::error!(image = %id, error = %e, "cannot persist the scrub job");
                    }
                    waiting += 1;
                }
            }
        }
        (done, waiting)
    }
}

/// Deletes every copy; a copy already gone counts as deleted.
async fn remove_copies(state: &Service, image: &Image) -> Result<(), String> {
    let mut errors = Vec::new();
    for location in &image.locations {
        let Some(store) = state.stores.get(&location.store) else {
            errors.push(format!("store {} is not configured", location.store));
            continue;
        };
        match store.delete(&location.url).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => errors.push(format!("store {}: {e}", location.store)),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Discards what an unfinished upload of `id` left in `store_id`, if that cannot touch live
/// data: the image is gone, or it is queued and claimed (queued → saving) for the discard.
/// True when nothing is left to do.
async fn discard_now(state: &Service, id: Uuid, store_id: &str) -> bool {
    let Some(entry) = state.stores.entry(store_id) else {
        return true; // the store is no longer configured
    };
    let image = match state.registry.get_image(id).await {
        Ok(image) => image,
        Err(_) => return false,
    };
    let claimed = match image {
        None => None,
        // The image's data is in this store: the partial's key is the live copy now.
        Some(image) if image.locations.iter().any(|l| l.store == store_id) => return true,
        Some(image) if image.status == ImageStatus::Queued => {
            let mut claim = image;
            claim.status = ImageStatus::Saving;
            match state.registry.update_image(claim).await {
                Ok(claimed) => Some(claimed),
                Err(_) => return false, // changed meanwhile: next pass
            }
        }
        // Saving, importing, or staged: an upload may be running; next pass.
        Some(_) => return false,
    };
    let result = entry.plugin.discard_partial(id).await;
    if claimed.is_some()
        && let Err(e) = crate::upload::revert_to_queued(state, id).await
    {
        // The start-up sweep puts it back if this process dies first.
        tracing::error!(image = %id, error = %e, "putting a claimed image back to queued failed");
    }
    match result {
        Ok(()) | Err(StoreError::NotFound) => {
            tracing::info!(image = %id, store = store_id, "unfinished upload discarded");
            true
        }
        Err(e) => {
            tracing::warn!(image = %id, store = store_id, error = %e,
                "discarding an unfinished upload failed again; will retry");
            false
        }
    }
}
