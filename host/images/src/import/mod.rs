//! Interoperable image import (Glance's `api_image_import` flow): the methods glance-direct
//! (from the staging area), web-download (from a URL, `web`), copy-image (between stores)
//! and glance-download (from another Images API endpoint), run as background tokio tasks that
//! outlive the request which started them, with their state persisted as registry `Task`s.
//!
//! An import holds the image's import lock, the property `os_glance_import_task` (set in
//! the same compare-and-swap that moves the image to `importing`), and keeps Glance's
//! progress properties: `os_glance_importing_to_stores` (stores still to do) and
//! `os_glance_failed_import` (stores that failed). Every write it makes to the image
//! re-checks the lock; an import that lost it stops and removes what it wrote.
//!
//! Data moves through the shared upload pipeline (`image_data::stream_into_store`: hashing,
//! size cap and disk-format inspection): staging → each store, or store → store. A failure
//! with `all_stores_must_succeed` (or with no store done) undoes the copies this task made
//! and puts the image back to `queued` (copy-image leaves it `active`). Start-up recovery of
//! imports that died with the process is in `recovery`.

pub mod accept;
pub mod config;
pub mod imports;
pub mod inspect;
pub mod journal;
pub mod network;
pub mod plugins;
pub mod recovery;
pub mod stage;
pub mod staging;
pub mod web;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use glass_registry::{Image, ImageStatus, Location, RegistryError, Task, TaskStatus, now};
use serde_json::{Value, json};
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use crate::Error;
use crate::Service;
use crate::access::modify_image;
use crate::auth::identity::Identity;
use crate::stores::ImageStore;
use crate::upload::{Sizes, Streamed, stream_into_store};
use accept::Formats;
pub use imports::Imports;

/// The image property holding the id of the task that owns the image's import.
pub const LOCK_KEY: &str = "os_glance_import_task";
/// Stores an import still has to write.
pub const IMPORTING_KEY: &str = "os_glance_importing_to_stores";
/// Stores an import failed to write.
pub const FAILED_KEY: &str = "os_glance_failed_import";
/// The task type of an import, as Glance names it.
pub const TASK_TYPE: &str = "api_image_import";

/// Starts loading the built-in disk-format inspector (`plugins/inspect-format`) with the
/// limits of `[image_format]`, in the background: compiling it takes seconds on a cold
/// cache, and only inspections need to wait for it.
pub fn load_inspector(state: &Service, runtime: &glass_runtime::Runtime) {
    if !state.config.image_format.inspect {
        return;
    }
    let cfg = &state.config.image_format;
    let limits = glass_runtime::Limits {
        memory_bytes: cfg.inspector_memory_mb << 20,
        cpu_deadline: std::time::Duration::from_millis(cfg.inspector_deadline_ms.max(1)),
        network_timeout: std::time::Duration::from_secs(1),
    };
    let _ = state.imports.loader.set((runtime.clone(), limits));
    let imports = state.imports.clone();
    tokio::spawn(async move {
        if let Err(e) = imports.inspector().await {
            tracing::error!(error = %e, "loading the disk-format inspector failed");
        }
    });
}

/// The import methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    GlanceDirect,
    WebDownload,
    CopyImage,
    GlanceDownload,
}

impl Method {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "glance-direct" => Method::GlanceDirect,
            "web-download" => Method::WebDownload,
            "copy-image" => Method::CopyImage,
            "glance-download" => Method::GlanceDownload,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::GlanceDirect => "glance-direct",
            Method::WebDownload => "web-download",
            Method::CopyImage => "copy-image",
            Method::GlanceDownload => "glance-download",
        }
    }
}

/// An accepted import request, as the task runs it.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub method: Method,
    /// web-download: the URL; glance-download: the remote image's URL.
    pub uri: Option<String>,
    pub stores: Vec<String>,
    pub all_stores_must_succeed: bool,
    /// glance-download: the remote endpoint and image.
    pub remote: Option<RemoteImage>,
    /// Property injection applies (the caller is not an admin, or `inject_for_admins`).
    pub inject: bool,
}

/// The image a glance-download pulls.
#[derive(Debug, Clone)]
pub struct RemoteImage {
    pub endpoint: String,
    pub image_id: String,
    pub token: Option<String>,
}

/// A new pending import task for `image`, as Glance records it.
pub fn new_task(image: Uuid, who: &Identity, body: &Value, stores: &[String]) -> Task {
    let input = json!({
        "image_id": image.to_string(),
        "import_req": body,
        "backend": stores,
    });
    pending_task(TASK_TYPE, image, who, input)
}

/// A new pending task of `task_type` on `image`, owned by the caller's project.
pub fn pending_task(task_type: &str, image: Uuid, who: &Identity, input: Value) -> Task {
    let t = now();
    Task {
        id: Uuid::new_v4(),
        task_type: task_type.into(),
        status: TaskStatus::Pending,
        owner: who.project.clone(),
        image_id: Some(image),
        user_id: who.user.clone(),
        request_id: None,
        input,
        result: None,
        message: String::new(),
        expires_at: None,
        created_at: t,
        updated_at: t,
        revision: 0,
    }
}

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

/// Journals an import about to start on this node (before the image is locked, so a crash
/// at any point after leaves a trace for `recovery`).
pub fn journal(state: &Service, task: Uuid, image: Uuid, method: Method, stores: &[String]) {
    let entry = journal::JournalEntry {
        task,
        image,
        method: method.name().into(),
        stores: stores.to_vec(),
    };
    if let Err(e) = state.imports.journal.record(&entry) {
        tracing::error!(task = %task, error = %e, "cannot journal the import");
    }
}

/// Starts `task` in the background (journaled by [`journal`] first); it runs to its end
/// whatever happens to the request.
pub fn spawn(state: Service, task: Task, image: Uuid, request: ImportRequest) {
    tokio::spawn(async move {
        let task_id = task.id;
        tracing::info!(task = %task_id, image = %image, method = request.method.name(),
            stores = ?request.stores, "import started");
        let outcome = match set_task(&state, task_id, |t| t.status = TaskStatus::Processing).await {
            Ok(()) => run(&state, task_id, image, &request).await,
            Err(e) => Err(format!("cannot start the task: {e}")),
        };
        finish(&state, task_id, image, &request, outcome).await;
    });
}

/// Why an import stopped: the message its task fails with.
pub(crate) type Failure = String;

/// The outcome of a whole import, before the task is closed.
async fn run(
    state: &Service,
    task: Uuid,
    image: Uuid,
    request: &ImportRequest,
) -> Result<(), Failure> {
    match request.method {
        Method::CopyImage => copy_image(state, task, image, request).await,
        Method::GlanceDirect => import_staged(state, task, image, request).await,
        Method::WebDownload => {
            let uri = request.uri.clone().unwrap_or_default();
            download_to_staging(state, task, image, &uri, None).await?;
            import_staged(state, task, image, request).await
        }
        Method::GlanceDownload => {
            let remote = request
                .remote
                .clone()
                .ok_or_else(|| "glance-download without a remote image".to_string())?;
            plugins::fetch_remote_metadata(state, task, image, &remote).await?;
            let uri = format!(
                "{}/v2/images/{}/file",
                remote.endpoint.trim_end_matches('/'),
                remote.image_id
            );
            download_to_staging(state, task, image, &uri, remote.token.as_deref()).await?;
            import_staged(state, task, image, request).await
        }
    }
}

/// Closes the task: success with `{"image_id": …}`, or failure with the reason after undoing
/// what the import did (image back to queued unless copy-image); the lock is dropped.
async fn finish(
    state: &Service,
    task: Uuid,
    image: Uuid,
    request: &ImportRequest,
    outcome: Result<(), Failure>,
) {
    match &outcome {
        Ok(()) => tracing::info!(task = %task, image = %image, "import succeeded"),
        Err(reason) => {
            tracing::warn!(task = %task, image = %image, %reason, "import failed");
            undo(state, task, image, request).await;
        }
    }
    state.imports.staging.remove_all(image).await;
    release_lock(state, task, image, request, outcome.is_err()).await;
    let closed = set_task(state, task, |t| close_task(state, t, image, &outcome)).await;
    if let Err(e) = closed {
        tracing::error!(task = %task, error = %e, "cannot record the end of the import task");
    }
    state.imports.journal.remove(task);
}

/// Ends a task of `image` as `outcome` says (success with the image id as result, or failure
/// with the reason); it expires `task_time_to_live_h` later.
pub fn close_task(state: &Service, t: &mut Task, image: Uuid, outcome: &Result<(), Failure>) {
    match outcome {
        Ok(()) => {
            t.status = TaskStatus::Success;
            t.result = Some(json!({"image_id": image.to_string()}));
        }
        Err(reason) => {
            t.status = TaskStatus::Failure;
            t.message = reason.clone();
        }
    }
    let ttl = chrono::Duration::hours(state.config.import.task_time_to_live_h as i64);
    t.expires_at = Some(now() + ttl);
}

/// Changes a task (compare-and-swap, retried).
pub async fn set_task(
    state: &Service,
    id: Uuid,
    mut change: impl FnMut(&mut Task),
) -> Result<(), Error> {
    for _ in 0..32 {
        let Some(mut task) = state.registry.get_task(id).await? else {
            return Err(RegistryError::TaskNotFound(id).into());
        };
        change(&mut task);
        task.updated_at = now();
        match state.registry.update_task(task).await {
            Ok(_) => return Ok(()),
            Err(RegistryError::Stale(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict(format!("task {id} is busy")))
}

/// Changes the image as the import task (system identity), only while the task holds the
/// image's import lock. Errors are the task's failure reason.
async fn as_task<F>(
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
async fn release_lock(
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

/// Removes the copies this task wrote (locations tagged with its id) after a failure, and
/// their data.
async fn undo(state: &Service, task: Uuid, image: Uuid, request: &ImportRequest) {
    let tag = task.to_string();
    let mut removed: Vec<Location> = Vec::new();
    let result = modify_image(state, &Identity::system(), image, |img| {
        removed.clear();
        let (mine, keep): (Vec<Location>, Vec<Location>) = img
            .locations
            .drain(..)
            .partition(|l| l.metadata.get(TASK_LOCATION_KEY).and_then(Value::as_str) == Some(&tag));
        img.locations = keep;
        removed.extend(mine);
        if request.method != Method::CopyImage
            && img.status == ImageStatus::Active
            && request.all_stores_must_succeed
        {
            revert_status(img);
        }
        Ok(())
    })
    .await;
    if let Err(e) = result
        && !matches!(e, Error::NotFound(_))
    {
        tracing::warn!(task = %task, image = %image, error = %e, "undoing a failed import");
    }
    for location in removed {
        if let Some(store) = state.stores.get(&location.store)
            && let Err(e) = store.delete(&location.url).await
        {
            tracing::warn!(task = %task, store = %location.store, error = %e,
                "removing the data of a failed import");
        }
    }
}

/// Location metadata naming the task that wrote a copy, until the task ends (so a failed
/// task removes exactly its own copies). Cleared on success.
const TASK_LOCATION_KEY: &str = "glass_import_task";

/// Where a location's data of `image` came from when a task wrote it.
fn task_location(task: Uuid, store: &str, url: String, blake3: String) -> Location {
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

/// glance-direct (and the second half of web-download / glance-download): the staged data
/// through the import plugins, then into each store.
async fn import_staged(
    state: &Service,
    task: Uuid,
    image: Uuid,
    request: &ImportRequest,
) -> Result<(), Failure> {
    let staging = state.imports.staging.clone();
    if !staging.has(image) {
        return Err(format!("Image {image} has no staged data"));
    }
    let converted = plugins::run_plugins(state, task, image, request).await?;
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

/// One store of an import done (or failed): progress properties, and the failure policy.
async fn after_store(
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
async fn verify_active(state: &Service, task: Uuid, image: Uuid) -> Result<(), Failure> {
    let img = as_task(state, task, image, |_| Ok(())).await?;
    if img.status == ImageStatus::Active {
        Ok(())
    } else {
        Err("None of the uploads finished!".into())
    }
}

/// Success: the copies are no longer this task's to undo.
async fn clear_task_tags(state: &Service, task: Uuid, image: Uuid) -> Result<(), Failure> {
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
struct Target<'a> {
    store_id: &'a str,
    /// The image becomes active once this copy is recorded.
    set_active: bool,
    /// The disk format of the data when a plugin converted it.
    disk_format: Option<&'a str>,
}

/// What a recorded copy is: its store, whether it activates the image, its disk format
/// after a conversion, and the image's formats when its data was inspected (checked again
/// in the compare-and-swap that records it).
struct Record<'a> {
    store_id: &'a str,
    set_active: bool,
    disk_format: Option<&'a str>,
    formats: accept::Formats,
}

/// Copies the staged file `location` into `store_id` through `accept` (hashed, inspected
/// against the image's formats), then records the copy (and the data attributes, if it is
/// the first; active if `set_active`).
async fn staged_to_store(
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
    let formats = accept::Formats::of(&current);
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

async fn current_image(state: &Service, image: Uuid) -> Result<Image, Failure> {
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
async fn record_copy(
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

/// copy-image: the active image's data, read from its best copy, into each requested store;
/// the bytes are hashed on the way and must match the image's recorded sha512.
async fn copy_image(
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

async fn copy_to_store(
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

/// web-download / glance-download: the URL's bytes into the staging area (size of the
/// image then recorded, as Glance does), every hop checked by `web`.
async fn download_to_staging(
    state: &Service,
    task: Uuid,
    image: Uuid,
    uri: &str,
    token: Option<&str>,
) -> Result<(), Failure> {
    let staging = state.imports.staging.clone();
    staging.remove_all(image).await;
    let cfg = &state.config.import.web_download;
    let limit = cfg
        .max_size_mb
        .saturating_mul(1 << 20)
        .min(state.config.image_size_cap);
    let download = web::open(cfg, uri, limit, token)
        .await
        .map_err(|e| format!("web-download of {uri} refused or failed: {e}"))?;
    let length = download.length;
    // Room reserved before writing (atomic with other stages and downloads).
    let covers = vec![image.to_string(), format!("{image}.partial")];
    let reservation = staging.reserve(length, limit, covers).map_err(|room| {
        format!("web-download of {uri}: the staging area has room for {room} bytes only")
    })?;
    let cap = limit.min(reservation.bytes());
    let staging_store: Arc<dyn ImageStore> = staging.clone();
    let streamed = stream_into_store(
        state,
        image,
        "staging",
        &staging_store,
        download.body,
        Sizes {
            declared: length,
            content_length: None,
            cap,
        },
        None,
    )
    .await;
    drop(reservation);
    let streamed = match streamed {
        Ok(s) => s,
        Err(e) => {
            let _ = staging_store.discard_partial(image).await;
            return Err(format!("web-download of {uri} failed: {e}"));
        }
    };
    as_task(state, task, image, |img| {
        img.size = Some(streamed.digests.size);
        Ok(())
    })
    .await?;
    tracing::info!(task = %task, image = %image, size = streamed.digests.size,
        "web-download staged");
    Ok(())
}

/// A byte stream of downloaded data, as the pipeline takes it.
pub type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Maps any byte stream to a [`BodyStream`].
pub fn body_stream<S, E>(s: S) -> BodyStream
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    Box::pin(s.map(|r| r.map_err(|e| std::io::Error::other(e.to_string()))))
}
