//! Import tasks: created pending, journaled, run in the background to their end, closed
//! with success or the failure reason (what the import wrote undone).

use glass_registry::{ImageStatus, Location, RegistryError, Task, TaskStatus, now};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Failure;
use super::ImportRequest;
use super::Method;
use super::TASK_TYPE;
use super::copies::TASK_LOCATION_KEY;
use super::copy_image::copy_image;
use super::glance_direct::import_staged;
use super::lock::release_lock;
use super::lock::revert_status;
use super::web_download::download_to_staging;
use crate::Error;
use crate::Service;
use crate::access::modify_image;
use crate::auth::identity::Identity;

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

/// Journals an import about to start on this node (before the image is locked, so a crash
/// at any point after leaves a trace for `recovery`).
pub fn journal(state: &Service, task: Uuid, image: Uuid, method: Method, stores: &[String]) {
    let entry = super::journal::JournalEntry {
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

/// The outcome of a whole import, before the task is closed.
pub(super) async fn run(
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
            super::steps::fetch_remote_metadata(state, task, image, &remote).await?;
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
pub(super) async fn finish(
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

/// Removes the copies this task wrote (locations tagged with its id) after a failure, and
/// their data.
pub(super) async fn undo(state: &Service, task: Uuid, image: Uuid, request: &ImportRequest) {
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
