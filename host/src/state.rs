//! What every handler shares: the configuration, the registry, the image stores and the
//! metrics.

use std::sync::Arc;

use glass_registry::Registry;

use crate::cache::ImageCache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::periodic::reaper::ScrubQueue;
use crate::store::StoreSet;
use crate::validators::ValidatorSet;

#[derive(Clone)]
pub struct AppState {
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
    pub keystone: Option<Arc<crate::keystone::Keystone>>,
    /// The access rules (Glance's defaults, with the operator's `policy_file` over them).
    pub policy: Arc<crate::policy::Policy>,
}

impl AppState {
    pub fn new(
        config: Config,
        registry: Arc<dyn Registry>,
        stores: StoreSet,
    ) -> std::io::Result<Self> {
        let stores = Arc::new(stores);
        let scrub = Arc::new(ScrubQueue::open(config.data_dir.join("scrub"))?);
        let imports = Arc::new(crate::import::Imports::open(&config)?);
        let metrics = Arc::new(Metrics::new(stores.clone()));
        let keystone = match config.auth {
            crate::config::AuthMode::Keystone => Some(Arc::new(
                crate::keystone::Keystone::new(config.keystone.clone(), metrics.keystone.clone())
                    .map_err(std::io::Error::other)?,
            )),
            _ => None,
        };
        let policy = match &config.policy_file {
            Some(path) => crate::policy::Policy::load(path).map_err(std::io::Error::other)?,
            None => crate::policy::Policy::default(),
        };
        Ok(AppState {
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
