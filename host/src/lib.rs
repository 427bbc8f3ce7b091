//! The Glass host: the Images API v2 over HTTP on top of the metadata registry.
//! `app` builds the router; `serve` runs it on a listener until shutdown.

pub mod admin_cli;
pub mod api;
pub mod cache;
pub mod config;
pub mod error;
pub mod hashing;
pub mod identity;
pub mod import;
pub mod keystone;
pub mod metadefs_files;
pub mod metrics;
pub mod migrate;
pub mod periodic;
pub mod policy;
pub mod replicate;
pub mod server;
pub mod state;
pub mod store;
pub mod validators;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use axum::Router;
use glass_registry::{PostgresOptions, PostgresRegistry, Registry, SledRegistry};
use glass_runtime::{
    CallBudgets, ComponentSource, Grants, Limits, Runtime, RuntimeConfig, StoreSpec,
};
use store::{StoreEntry, StoreSet};
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

/// The whole service as an axum router.
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// Opens the registry under the configured data directory, loads the store components and
/// sweeps what a crash left behind, then returns the shared state.
pub async fn open_state(config: Config) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&config.data_dir)?;
    let registry = open_registry(&config).await?;
    config.validate().map_err(anyhow::Error::msg)?;
    let mut runtime_config = RuntimeConfig::new(config.data_dir.join("plugin-cache"));
    runtime_config.budgets = CallBudgets::from_config(&config.plugin_calls);
    runtime_config.max_concurrent_calls = runtime_config
        .budgets
        .pool_size(config.effective_stores().len());
    let runtime = Runtime::with_config(runtime_config)?;
    let mut stores = StoreSet::default();
    for spec in config.effective_stores() {
        let settings = spec.settings_env().map_err(anyhow::Error::msg)?;
        let store = runtime
            .load_store(StoreSpec {
                id: spec.id.clone(),
                component: ComponentSource::from_config(&spec.driver),
                grants: Grants {
                    dir: spec.directory.as_ref().map(|d| config.data_dir.join(d)),
                    hosts: spec.hosts.clone(),
                    settings,
                },
                limits: Limits {
                    memory_bytes: spec.memory_limit_mb << 20,
                    cpu_deadline: Duration::from_millis(spec.cpu_deadline_ms),
                    network_timeout: Duration::from_millis(spec.network_timeout_ms),
                },
            })
            .await
            .with_context(|| format!("loading store {}", spec.id))?;
        stores.insert(StoreEntry::new(&spec, store));
    }
    let validators = validators::ValidatorSet::load(&runtime, &config.validators).await?;
    let cache = match config.image_cache.enabled {
        true => Some(Arc::new(
            cache::ImageCache::open(
                config.data_dir.join(&config.image_cache.directory),
                &config.image_cache,
            )
            .context("opening the image cache")?,
        )),
        false => None,
    };
    let mut state = AppState::new(config, registry, stores).context("opening the scrub queue")?;
    state.cache = cache;
    state.validators = Arc::new(validators);
    import::load_inspector(&state, &runtime);
    api::v2::image_data::sweep_unfinished_uploads(&state).await?;
    import::recovery::recover(&state).await?;
    periodic::spawn(&state);
    Ok(state)
}

/// Opens the configured registry engine: sled under `<data_dir>/registry`, or PostgreSQL
/// (connecting and migrating its schema).
pub async fn open_registry(config: &Config) -> anyhow::Result<Arc<dyn Registry>> {
    Ok(match config.registry.backend {
        config::RegistryBackend::Sled => {
            let path = config.data_dir.join("registry");
            Arc::new(
                SledRegistry::open(&path)
                    .with_context(|| format!("opening the sled registry in {}", path.display()))?,
            )
        }
        config::RegistryBackend::Postgres => {
            let url = config.registry.url.clone().unwrap_or_default();
            let options = PostgresOptions {
                url,
                pool_size: config.registry.pool_size,
            };
            Arc::new(
                PostgresRegistry::connect(&options)
                    .await
                    .context("opening the PostgreSQL registry ([registry] url)")?,
            )
        }
    })
}

/// Serves until `shutdown` completes, then lets requests in flight finish; with the
/// configuration's HTTP timeouts and connection limits (`server`).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = server::Limits::of(&state.config.server);
    server::serve(listener, app(state), limits, shutdown).await
}
