//! Crash safety of imports. Every import this node runs is journaled
//! (`<data_dir>/import-tasks/<task>.json`, fsynced, removed when the task ends), so at
//! start-up — before the listener opens — [`recover`] finds the imports the previous process
//! died in (and only this node's: with a shared registry another node's running imports are
//! left alone) and fails them cleanly: the task ends in `failure`, the copies it had written
//! are removed (partial data discarded in every target store), the import lock is dropped,
//! the stores it had not finished go to `os_glance_failed_import`, and an image left
//! `importing` goes back to `queued` (copy-image leaves it `active`). Then the staging area
//! is swept: only the complete staged data of an image still `uploading` (staged, waiting
//! for its import) stays; a stage that died half-way puts its image back to `queued`.

use std::path::Path;

use glass_registry::{ImageStatus, Location, TaskStatus, now};
use serde_json::Value;
use uuid::Uuid;

use super::copies::TASK_LOCATION_KEY;
use super::journal::JournalEntry;
use super::lock::{merge_store_list, revert_status};
use super::{FAILED_KEY, IMPORTING_KEY, LOCK_KEY};
use crate::Error;
use crate::Service;
use crate::access::modify_image;
use crate::auth::identity::Identity;

/// Fails the imports a crash interrupted and sweeps the staging area.
pub async fn recover(state: &Service) -> Result<(), Error> {
    for (path, entry) in state.imports.journal.entries() {
        match entry {
            Some(entry) => fail_interrupted(state, &entry).await?,
            None => tracing::warn!(file = %path.display(), "unreadable import journal entry"),
        }
        let _ = std::fs::remove_file(&path);
    }
    sweep_staging(state).await
}

const INTERRUPTED: &str = "The import was interrupted: the server stopped while it ran";

async fn fail_interrupted(state: &Service, entry: &JournalEntry) -> Result<(), Error> {
    tracing::warn!(task = %entry.task, image = %entry.image, method = %entry.method,
        "failing an import interrupted by a restart");
    if let Some(task) = state.registry.get_task(entry.task).await?
        && matches!(task.status, TaskStatus::Pending | TaskStatus::Processing)
    {
        let ttl = chrono::Duration::hours(state.config.import.task_time_to_live_h as i64);
        super::task::set_task(state, entry.task, |t| {
            t.status = TaskStatus::Failure;
            t.message = INTERRUPTED.into();
            t.expires_at = Some(now() + ttl);
        })
        .await?;
    }
    let lock = entry.task.to_string();
    let copy = entry.method == "copy-image";
    let mut removed: Vec<Location> = Vec::new();
    // Stores holding a recorded copy of the image: a partial's key there is the live copy's.
    let mut live: Vec<String> = Vec::new();
    let result = modify_image(state, &Identity::system(), entry.image, |img| {
        removed.clear();
        live = img.locations.iter().map(|l| l.store.clone()).collect();
        if img.properties.get(LOCK_KEY) != Some(&lock) {
            return Ok(());
        }
        // An import that had already made the image active (killed before it released its
        // lock) recorded verified copies: they stay, only its unfinished stores failed.
        let committed =
            !copy && matches!(img.status, ImageStatus::Active | ImageStatus::Deactivated);
        if !committed {
            let (mine, keep): (Vec<Location>, Vec<Location>) =
                img.locations.drain(..).partition(|l| {
                    l.metadata.get(TASK_LOCATION_KEY).and_then(Value::as_str) == Some(lock.as_str())
                });
            img.locations = keep;
            removed.extend(mine);
        }
        let unfinished: Vec<String> = img
            .properties
            .get(IMPORTING_KEY)
            .map(|v| {
                v.split(',')
                    .filter(|s| entry.stores.iter().any(|t| t == s))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let mut failed = unfinished;
        failed.extend(removed.iter().map(|l| l.store.clone()));
        merge_store_list(img, IMPORTING_KEY, &entry.stores, true);
        merge_store_list(img, FAILED_KEY, &failed, false);
        img.properties.remove(LOCK_KEY);
        if !copy && !committed && img.status != ImageStatus::Queued {
            revert_status(img);
        }
        live = img.locations.iter().map(|l| l.store.clone()).collect();
        Ok(())
    })
    .await;
    match result {
        Ok(_) | Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    for location in &removed {
        if let Some(store) = state.stores.get(&location.store)
            && let Err(e) = store.delete(&location.url).await
        {
            tracing::warn!(store = %location.store, error = %e,
                "removing a copy written by an interrupted import");
        }
    }
    for store_id in entry.stores.iter().filter(|s| !live.contains(s)) {
        if let Some(store) = state.stores.get(store_id)
            && let Err(e) = store.discard_partial(entry.image).await
        {
            tracing::warn!(store = %store_id, error = %e,
                "discarding partial data of an interrupted import");
        }
    }
    state.imports.staging.remove_all(entry.image).await;
    Ok(())
}

/// Keeps only the complete staged data of images still `uploading` without an import;
/// everything else in the staging area goes. An `uploading` image whose stage died goes
/// back to `queued`.
async fn sweep_staging(state: &Service) -> Result<(), Error> {
    let staging = state.imports.staging.clone();
    let (images, strays) = staging.staged_images();
    for stray in strays {
        remove_path(&stray);
    }
    for id in images {
        let image = state.registry.get_image(id).await?;
        let waiting = image.as_ref().is_some_and(|i| {
            i.status == ImageStatus::Uploading && !i.properties.contains_key(LOCK_KEY)
        });
        if waiting && staging.has(id) {
            // Staged and waiting for its import: only derived and partial files go.
            for suffix in ["partial", "uc", "converted"] {
                if let Ok(p) = staging.path(&format!("{id}.{suffix}")) {
                    remove_path(&p);
                }
            }
            continue;
        }
        staging.remove_all(id).await;
        if waiting {
            revert_dead_stage(state, id).await?;
        }
        tracing::info!(image = %id, "staging area: removed data of a finished or dead import");
    }
    // Images left uploading with nothing staged at all (the stage died before writing).
    // Only with the embedded registry: with a shared one, another node may hold the data.
    if state.config.registry.backend != crate::config::RegistryBackend::Sled {
        return Ok(());
    }
    for image in glass_registry::images_in_status(&*state.registry, ImageStatus::Uploading).await? {
        if !image.properties.contains_key(LOCK_KEY) && !staging.has(image.id) {
            revert_dead_stage(state, image.id).await?;
        }
    }
    Ok(())
}

async fn revert_dead_stage(state: &Service, id: Uuid) -> Result<(), Error> {
    tracing::warn!(image = %id, "a stage interrupted by a restart: the image is queued again");
    let result = modify_image(state, &Identity::system(), id, |img| {
        if img.status == ImageStatus::Uploading && !img.properties.contains_key(LOCK_KEY) {
            img.status = ImageStatus::Queued;
            img.size = None;
        }
        Ok(())
    })
    .await;
    match result {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn remove_path(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), error = %e, "staging sweep");
    }
}
