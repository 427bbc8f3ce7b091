//! The Glass host: the Images API v2 over HTTP on top of the metadata registry.
//! `app` builds the router; `serve` runs it on a listener until shutdown.

pub mod api;
pub mod config;
pub mod error;
pub mod identity;
pub mod state;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use glass_registry::SledRegistry;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

/// The whole service as an axum router.
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// Opens the registry under the configured data directory and builds the shared state.
pub fn open_state(config: Config) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&config.data_dir)?;
    let registry = SledRegistry::open(&config.data_dir.join("registry"))?;
    Ok(AppState::new(config, Arc::new(registry)))
}

/// Serves until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
