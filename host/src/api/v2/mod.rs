//! Images API v2: one module per resource; this file only routes.

mod access;
pub mod image_data;
pub mod image_list;
pub mod image_view;
pub mod images;
pub mod members;
pub mod patch;
pub mod properties;
pub mod schemas;
pub mod tags;

use axum::Router;
use axum::routing::{get, post, put};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/schemas/{name}", get(schemas::show))
        .route("/images", get(image_list::list).post(images::create))
        .route(
            "/images/{id}",
            get(images::show)
                .patch(images::update)
                .delete(images::delete),
        )
        .route(
            "/images/{id}/file",
            put(image_data::upload).get(image_data::download),
        )
        .route("/images/{id}/actions/deactivate", post(images::deactivate))
        .route("/images/{id}/actions/reactivate", post(images::reactivate))
        .route(
            "/images/{id}/tags/{tag}",
            put(tags::add).delete(tags::delete),
        )
        .route(
            "/images/{id}/members",
            get(members::list).post(members::create),
        )
        .route(
            "/images/{id}/members/{member_id}",
            get(members::show)
                .put(members::update)
                .delete(members::delete),
        )
}
