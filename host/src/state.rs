//! What every handler shares: the configuration and the registry.

use std::sync::Arc;

use glass_registry::Registry;

use crate::config::Config;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub registry: Arc<dyn Registry>,
}

impl AppState {
    pub fn new(config: Config, registry: Arc<dyn Registry>) -> Self {
        AppState {
            config: Arc::new(config),
            registry,
        }
    }
}
