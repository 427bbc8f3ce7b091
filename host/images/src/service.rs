//! What every handler shares: the configuration, the registry, the image stores and the
//! metrics.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use glass_registry::{PostgresOptions, PostgresRegistry, Registry, SledOptions, SledRegistry};
use glass_runtime::{
    CallBudgets, ComponentSource, Grants, Limits, Runtime, RuntimeConfig, StoreSpec,
};

use crate::stores::{StoreEntry, StoreSet};

use crate::cache::ImageCache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::scrub::ScrubQueue;
use crate::validators::set::ValidatorSet;

#[derive(Clone)]
pub struct Service {
    pub config: Arc<Config>,
    pub registry: Arc<dyn Registry>,
    pub stores: Arc<StoreSet>,
    pub metrics: Arc<Metrics>,
    /// The image cache, when enabled.
    pub cache: Option<Arc<ImageCache>>,
    /// Data of deleted images waiting to be removed (`periodic::reaper`).
    pub scrub: Arc<ScrubQueue>,
    /// The metadata validators run on image create and PATCH (`validators`).
    pub validators: Arc<ValidatorSet>,
    /// Image import: the staging area and the disk-format inspector (`import`).
    pub imports: Arc<crate::import::Imports>,
    /// Token validation, with `auth = "keystone"`.
    pub keystone: Option<Arc<crate::auth::keystone::Keystone>>,
    /// The access rules (Glance's defaults, with the operator's `policy_file` over them).
    pub policy: Arc<crate::auth::policy::Policy>,
}

impl Service {
    pub fn new(
        config: Config,
        registry: Arc<dyn Registry>,
        stores: StoreSet,
    ) -> std::io::Result<Self> {
        let stores = Arc::new(stores);
        let scrub = Arc::new(ScrubQueue::open(config.data_dir.join("scrub"))?);
        let imports = Arc::new(crate::import::imports::Imports::open(&config)?);
        let metrics = Arc::new(Metrics::new(stores.clone()));
        let keystone = match config.auth {
            crate::config::AuthMode::Keystone => Some(Arc::new(
                crate::auth::keystone::Keystone::new(
                    config.keystone.clone(),
                    metrics.keystone.clone(),
                )
                .map_err(std::io::Error::other)?,
            )),
            _ => None,
        };
        let policy = match &config.policy_file {
            Some(path) => crate::auth::policy::Policy::load(path).map_err(std::io::Error::other)?,
            None => crate::auth::policy::Policy::default(),
        };
        Ok(Service {
            keystone,
            policy: Arc::new(policy),
            imports,
            scrub,
            config: Arc::new(config),
            registry,
            metrics,
            stores,
            cache: None,
            validators: Default::default(),
        })
    }
}

/// Opens the registry under the configured data directory, loads the store components and
/// sweeps what a crash left behind, then returns the service.
pub async fn open(config: Config) -> anyhow::Result<Service> {
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
    let validators =
        crate::validators::set::ValidatorSet::load(&runtime, &config.validators).await?;
    let cache = match config.image_cache.enabled {
        true => Some(Arc::new(
            crate::cache::ImageCache::open(
                config.data_dir.join(&config.image_cache.directory),
                &config.image_cache,
            )
            .context("opening the image cache")?,
        )),
        false => None,
    };
    let mut state = Service::new(config, registry, stores).context("opening the scrub queue")?;
    state.cache = cache;
    state.validators = Arc::new(validators);
    crate::import::load_inspector(&state, &runtime);
    crate::upload::sweep_unfinished_uploads(&state).await?;
    crate::import::recovery::recover(&state).await?;
    crate::periodic::spawn(&state);
    Ok(state)
}

/// Opens the configured registry engine: sled under `<data_dir>/registry`, or PostgreSQL
/// (connecting and migrating its schema).
pub async fn open_registry(config: &Config) -> anyhow::Result<Arc<dyn Registry>> {
    Ok(match config.registry.backend {
        crate::config::RegistryBackend::Sled => {
            let path = config.data_dir.join("registry");
            Arc::new(
                SledRegistry::open_with(
                    &path,
                    &SledOptions::with_cache_mb(config.registry.cache_mb),
                )
                .with_context(|| format!("opening the sled registry in {}", path.display()))?,
            )
        }
        crate::config::RegistryBackend::Postgres => {
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
