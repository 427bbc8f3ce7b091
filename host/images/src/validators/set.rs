//! The configured validators, loaded in the order they run.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use glass_runtime::{Limits, Runtime, ValidatorSpec, WasmValidator, validator_source};

use crate::config::{ValidatorConfig, ValidatorFailure, ValidatorMode};

/// One configured validator.
pub struct ValidatorEntry {
    pub id: String,
    pub mode: ValidatorMode,
    pub on_failure: ValidatorFailure,
    pub plugin: Arc<WasmValidator>,
}

/// The configured validators, in the order they run.
#[derive(Default)]
pub struct ValidatorSet {
    entries: Vec<ValidatorEntry>,
}

impl std::fmt::Debug for ValidatorSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.id))
            .finish()
    }
}

impl ValidatorSet {
    /// Loads every configured validator (compiled once, then from the cache).
    pub async fn load(runtime: &Runtime, configs: &[ValidatorConfig]) -> anyhow::Result<Self> {
        let mut entries = Vec::with_capacity(configs.len());
        for config in configs {
            let plugin = runtime
                .load_validator(ValidatorSpec {
                    id: config.id.clone(),
                    component: validator_source(&config.component),
                    limits: Limits {
                        memory_bytes: config.memory_limit_mb << 20,
                        cpu_deadline: Duration::from_millis(config.cpu_deadline_ms),
                        ..Limits::default()
                    },
                })
                .await
                .with_context(|| format!("loading validator {}", config.id))?;
            entries.push(ValidatorEntry {
                id: config.id.clone(),
                mode: config.mode,
                on_failure: config.on_failure,
                plugin,
            });
        }
        Ok(Self { entries })
    }

    pub fn entries(&self) -> &[ValidatorEntry] {
        &self.entries
    }

    /// The validator configured as `id`.
    pub fn get(&self, id: &str) -> Option<&ValidatorEntry> {
        self.entries.iter().find(|e| e.id == id)
    }
}
