//! Glass's admin API for deleted images whose data is still kept (`periodic::reaper`):
//! - `GET  /glass/v1/deleted-images` — the scrub queue: image id, name, when its data goes,
//!   failed attempts and the last error;
//! - `POST /glass/v1/deleted-images/{id}/restore` — put the image back (with
//!   `delayed_delete`, until its data is due), answering its JSON;
//! - `POST /glass/v1/deleted-images/reap` — run the reaper now.
//!
//! Admin only.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;
use glass_images::view::image_body;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/deleted-images", get(list))
        .route("/deleted-images/reap", post(reap))
        .route("/deleted-images/{id}/restore", post(restore))
}

fn require_admin(who: &Identity) -> Result<(), Error> {
    super::require_admin(who, "Managing deleted images")
}

async fn list(State(state): State<AppState>, who: Identity) -> Result<Json<Value>, ApiError> {
    require_admin(&who)?;
    let jobs: Vec<Value> = state
        .scrub
        .jobs()
        .into_iter()
        .map(|j| {
            json!({
                "image_id": j.image.id,
                "name": j.image.name,
                "due_at": j.due_at,
                "attempts": j.attempts,
                "last_error": j.last_error,
            })
        })
        .collect();
    Ok(Json(json!({ "deleted_images": jobs })))
}

async fn restore(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&who)?;
    let id: Uuid = id
        .parse()
        .map_err(|_| Error::NotFound(format!("No deleted image {id} is waiting for removal.")))?;
    let image = state.scrub.restore(&state, id).await?;
    Ok(Json(
        serde_json::to_value(image_body(&image)).map_err(|e| Error::Internal(e.to_string()))?,
    ))
}

async fn reap(State(state): State<AppState>, who: Identity) -> Result<Json<Value>, ApiError> {
    require_admin(&who)?;
    let (removed, waiting) = state.scrub.reap(&state).await;
    Ok(Json(json!({ "removed": removed, "waiting": waiting })))
}
