//! What every handler shares: the configuration, the registry and the image stores.

use std::sync::Arc;

use glass_registry::Registry;

use crate::config::Config;
use crate::store::StoreSet;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub registry: Arc<dyn Registry>,
    pub stores: Arc<StoreSet>,
}

impl AppState {
    pub fn new(config: Config, registry: Arc<dyn Registry>, stores: StoreSet) -> Self {
        AppState {
            config: Arc::new(config),
            registry,
            stores: Arc::new(stores),
        }
    }
}
