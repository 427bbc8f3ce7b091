//! The `glass` binary's library: opens the [`Service`] and serves the Images API on it
//! ([`open_state`], [`serve`]), and the operator's commands (`manage`).

pub mod manage;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

pub use glass_api::AppState;
pub use glass_images::Service;
pub use glass_images::config::{self, Config};
pub use glass_images::service::open_registry;

/// The whole service as an axum router.
pub fn app(state: AppState) -> Router {
    glass_api::router(state)
}

/// Opens the registry under the configured data directory, loads the plugins and sweeps what
/// a crash left behind, then returns the state the API serves.
pub async fn open_state(config: Config) -> anyhow::Result<AppState> {
    Ok(AppState(glass_images::service::open(config).await?))
}

/// Serves until `shutdown` completes, then lets requests in flight finish; with the
/// configuration's HTTP timeouts and connection limits (`server`).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    glass_api::serve(listener, state, shutdown).await
}
