//! [`WasmValidator`]: a `glass:metadef@0.1.0` validator component, a [`Plugin`] like a store
//! driver: the runtime's engine, compiled-component cache, pooling slots, a fresh instance
//! per call with its memory cap and deadline (a trap, a deadline or the memory cap ends that
//! one call with [`StoreError::PluginFault`] and the next call gets a new instance), hot
//! swap and rollback. A validator is granted nothing (no directory, no hosts, no settings).

use std::sync::Arc;

use super::call::CallSettings;
use super::plugin::{Plugin, PluginKind, PluginStatus, PluginTotals, check_limits, idle};
use super::worlds::ValidatorWorld;
use super::{ComponentSource, Limits, Runtime};
use crate::store::StoreError;

pub use crate::bindings::metadef::exports::glass::metadef::validate::{
    Change as ValidatorChange, ChangeOp as ValidatorChangeOp, Namespace as ValidatorNamespace,
    Property as ValidatorProperty, PropertyDefinition as ValidatorPropertyDefinition, Violation,
};

/// The WIT package every validator must export, as the status reports it.
pub const VALIDATOR_WIT: &str = "glass:metadef@0.1.0";

/// The built-in metadefs validator component (`plugins/validator-metadef`).
pub const VALIDATOR_METADEF: &[u8] = include_bytes!(env!("GLASS_VALIDATOR_METADEF_WASM"));

/// The validators built into the binary, by the name a configuration uses.
pub const BUILTIN_VALIDATORS: &[(&str, &[u8])] = &[("validator-metadef", VALIDATOR_METADEF)];

/// A built-in validator name, or else a path to a component file.
pub fn validator_source(value: &str) -> ComponentSource {
    BUILTIN_VALIDATORS
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, bytes)| ComponentSource::Bytes(bytes))
        .unwrap_or_else(|| ComponentSource::Path(value.into()))
}

/// One configured validator plugin.
#[derive(Debug, Clone)]
pub struct ValidatorSpec {
    /// The validator's id in the configuration; faults and logs name the plugin by it.
    pub id: String,
    pub component: ComponentSource,
    /// Memory cap and deadline of one call (the network timeout is unused: no network).
    pub limits: Limits,
}

/// What a validator is asked: the image after the change, the change, the namespaces.
#[derive(Debug, Clone, Default)]
pub struct ValidationInput {
    pub image: Vec<ValidatorProperty>,
    pub changes: Vec<ValidatorChange>,
    pub namespaces: Vec<ValidatorNamespace>,
}

/// A validator plugin, loaded and ready: each call instantiates it afresh.
pub struct WasmValidator {
    plugin: Plugin<ValidatorWorld>,
    runtime: Runtime,
}

impl Runtime {
    /// Compiles (or loads from the cache) the validator component of `spec`, checks that it
    /// exports `glass:metadef/validate@0.1.0` and asks it for its `info`.
    pub async fn load_validator(&self, spec: ValidatorSpec) -> anyhow::Result<Arc<WasmValidator>> {
        check_limits(self, PluginKind::Validator, &spec.id, &spec.limits)?;
        let settings = CallSettings::ungranted(&spec.id, &spec.limits);
        let plugin = Plugin::load(self, settings, &spec.component).await?;
        Ok(Arc::new(WasmValidator {
            plugin,
            runtime: self.clone(),
        }))
    }
}

impl WasmValidator {
    /// The validator's configured id.
    pub fn id(&self) -> &str {
        self.plugin.id()
    }

    /// Runs the validator on `input`: `Ok(Ok(()))` accepts, `Ok(Err(violations))` refuses,
    /// `Err` is a fault of the plugin (trap, deadline, memory cap) or no free slot.
    pub async fn validate(
        &self,
        input: Arc<ValidationInput>,
    ) -> Result<Result<(), Vec<Violation>>, StoreError> {
        let loaded = self.plugin.current();
        let caller = self.plugin.caller().clone();
        let place = self.runtime.validator_budget().acquire().await?;
        self.plugin
            .caller()
            .run(async move {
                let _place = place;
                let mut call = caller.start(&loaded, idle()).await?;
                let result = call
                    .instance
                    .glass_metadef_validate()
                    .call_validate(
                        &mut call.store,
                        &input.image,
                        &input.changes,
                        &input.namespaces,
                    )
                    .await;
                result.map_err(|e| call.fault(&e))
            })
            .await
    }

    /// Compiles `component` and swaps it in; calls in flight finish on the old version. On
    /// error (not a component, does not export the contract) the old version keeps serving.
    pub async fn reload(&self, component: ComponentSource) -> anyhow::Result<PluginStatus> {
        self.plugin.reload(component).await
    }

    /// Puts back the version that the last `reload` replaced.
    pub fn rollback(&self) -> anyhow::Result<PluginStatus> {
        self.plugin.rollback()
    }

    /// The version serving now, with its call counters, and the earlier versions.
    pub fn status(&self) -> PluginStatus {
        self.plugin.status()
    }

    /// Calls and faults over the validator's lifetime (every version it ran).
    pub fn totals(&self) -> PluginTotals {
        self.plugin.totals()
    }
}
