//! Images API v2: one module per resource; this file only routes.

pub mod cache;
pub mod image_data;
pub mod image_download;
pub mod image_list;
pub mod images;
pub mod import;
pub mod info;
pub mod locations;
pub mod members;
pub mod metadefs;
pub mod schemas;
pub mod stores;
pub mod tags;
pub mod tasks;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/schemas/{name}", get(schemas::show))
        .route("/schemas/metadefs/{name}", get(metadefs::schemas::show))
        .nest("/metadefs", metadefs::router())
        .route("/cache", get(cache::state_of_cache).delete(cache::clear))
        .route("/cache/clean", post(cache::clean))
        .route("/cache/prune", post(cache::prune))
        .route(
            "/cache/{image_id}",
            put(cache::queue_image).delete(cache::delete_entry),
        )
        .route("/info/import", get(import::info_import))
        .route("/info/stores", get(info::stores))
        .route("/info/stores/detail", get(info::stores_detail))
        .route(
            "/stores/{store_id}/{image_id}",
            delete(stores::delete_from_store),
        )
        .route("/images", get(image_list::list).post(images::create))
        .route(
            "/images/{id}",
            get(images::show)
                .patch(images::update)
                .delete(images::delete),
        )
        .route(
            "/images/{id}/file",
            put(image_data::upload).get(image_download::download),
        )
        .route("/images/{id}/stage", put(import::stage))
        .route("/images/{id}/import", post(import::import_image))
        .route("/images/{id}/tasks", get(tasks::image_tasks))
        .route(
            "/images/{id}/locations",
            get(locations::list).post(locations::add),
        )
        .route("/tasks", get(tasks::list).post(tasks::create))
        .route("/tasks/{id}", get(tasks::show))
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
