//! [`WasmValidator`]: a `glass:metadef@0.1.0` validator component, loaded and called like a
//! store driver. It reuses the runtime's engine, compiled-component cache, pooling slots,
//! per-call fresh instance, memory cap and deadline (`call::new_store`): a trap, a deadline
//! or the memory cap ends that one call with [`StoreError::PluginFault`] and the next call
//! gets a new instance. A validator is granted nothing (no directory, no hosts, no
//! settings). Versions are held in an `ArcSwap` for hot swap, with rollback, like
//! [`super::WasmStore`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use wasmtime::PoolConcurrencyLimitError;

use super::call::{CallSettings, CallState, CallStats, fault, new_store};
use super::{ComponentSource, Limits, PluginTotals, Runtime};
use crate::store::StoreError;

use crate::bindings::metadef::ValidatorPre;
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
    runtime: Runtime,
    settings: Arc<CallSettings>,
    /// Lifetime counters over every version it ran.
    totals: Arc<CallStats>,
    loaded: ArcSwap<Loaded>,
    /// Versions replaced by `reload`, newest last: what `rollback` returns to.
    previous: std::sync::Mutex<Vec<Arc<Loaded>>>,
}

/// One version of the validator, pre-instantiated.
struct Loaded {
    pre: ValidatorPre<CallState>,
    name: String,
    version: String,
    digest: String,
    source: String,
    loaded_at: std::time::SystemTime,
    stats: Arc<CallStats>,
}

/// What the status reports about one loaded version of a validator.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ValidatorVersion {
    /// The name the component gives itself (`info`).
    pub name: String,
    pub version: String,
    pub wit: &'static str,
    pub sha256: String,
    pub source: String,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    pub calls: u64,
    pub faults: u64,
}

/// A validator's status: the version serving now and those `rollback` can return to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ValidatorStatus {
    /// The configured id.
    pub validator: String,
    pub current: ValidatorVersion,
    pub previous: Vec<ValidatorVersion>,
}

impl Runtime {
    /// Compiles (or loads from the cache) the validator component of `spec`, checks that it
    /// exports `glass:metadef/validate@0.1.0` and asks it for its `info`.
    pub async fn load_validator(&self, spec: ValidatorSpec) -> anyhow::Result<Arc<WasmValidator>> {
        anyhow::ensure!(
            spec.limits.memory_bytes <= self.inner.config.max_memory_bytes,
            "validator {}: memory cap of {} bytes is above the runtime's maximum of {} bytes",
            spec.id,
            spec.limits.memory_bytes,
            self.inner.config.max_memory_bytes
        );
        anyhow::ensure!(
            !spec.limits.cpu_deadline.is_zero(),
            "validator {}: the CPU deadline must be positive",
            spec.id
        );
        let settings = Arc::new(CallSettings {
            plugin: spec.id.as_str().into(),
            dir: None,
            hosts: Arc::new([]),
            settings: Arc::new([]),
            network_timeout: spec.limits.network_timeout,
            memory_bytes: spec.limits.memory_bytes,
            deadline: spec.limits.cpu_deadline,
            blocking_file_io: false,
        });
        let totals: Arc<CallStats> = Default::default();
        let loaded = prepare(self, &settings, &totals, &spec.component).await?;
        Ok(Arc::new(WasmValidator {
            runtime: self.clone(),
            settings,
            totals,
            loaded: ArcSwap::from_pointee(loaded),
            previous: Default::default(),
        }))
    }
}

impl WasmValidator {
    /// The validator's configured id.
    pub fn id(&self) -> &str {
        &self.settings.plugin
    }

    /// Runs the validator on `input`: `Ok(Ok(()))` accepts, `Ok(Err(violations))` refuses,
    /// `Err` is a fault of the plugin (trap, deadline, memory cap) or no free slot.
    pub async fn validate(
        &self,
        input: Arc<ValidationInput>,
    ) -> Result<Result<(), Vec<Violation>>, StoreError> {
        let loaded = self.loaded.load_full();
        let (settings, runtime) = (self.settings.clone(), self.runtime.clone());
        let engine = runtime.engine().clone();
        let place = runtime.validator_budget().acquire().await?;
        self.runtime
            .io_handle()
            .spawn(async move {
                let _place = place;
                let (mut store, validator) = start(&engine, &loaded, &settings).await?;
                let result = validator
                    .glass_metadef_validate()
                    .call_validate(&mut store, &input.image, &input.changes, &input.namespaces)
                    .await;
                result.map_err(|e| fault(&settings.plugin, store.data(), &loaded.stats, &e))
            })
            .await
            .map_err(|e| StoreError::Other(format!("validator task failed: {e}")))?
    }

    /// Compiles `component` and swaps it in; calls in flight finish on the old version. On
    /// error (not a component, does not export the contract) the old version keeps serving.
    pub async fn reload(&self, component: ComponentSource) -> anyhow::Result<ValidatorStatus> {
        let new = prepare(&self.runtime, &self.settings, &self.totals, &component).await?;
        let mut previous = self.previous.lock().expect("validator history lock");
        previous.push(self.loaded.swap(Arc::new(new)));
        drop(previous);
        tracing::info!(validator = self.id(), sha256 = %self.loaded.load().digest,
            "validator plugin swapped in");
        Ok(self.status())
    }

    /// Puts back the version that the last `reload` replaced.
    pub fn rollback(&self) -> anyhow::Result<ValidatorStatus> {
        let mut previous = self.previous.lock().expect("validator history lock");
        let back = previous.pop().ok_or_else(|| {
            anyhow::anyhow!(
                "validator {}: no earlier version to roll back to",
                self.id()
            )
        })?;
        self.loaded.store(back);
        drop(previous);
        tracing::info!(validator = self.id(), sha256 = %self.loaded.load().digest,
            "validator plugin rolled back");
        Ok(self.status())
    }

    /// The version serving now, with its call counters, and the earlier versions.
    pub fn status(&self) -> ValidatorStatus {
        let previous = self.previous.lock().expect("validator history lock");
        ValidatorStatus {
            validator: self.id().to_owned(),
            current: version_of(&self.loaded.load()),
            previous: previous.iter().rev().map(|l| version_of(l)).collect(),
        }
    }

    /// Calls and faults over the validator's lifetime (every version it ran).
    pub fn totals(&self) -> PluginTotals {
        let t = &self.totals;
        PluginTotals {
            calls: t.calls.load(Ordering::Relaxed),
            faults: t.faults.load(Ordering::Relaxed),
            deadline_hits: t.deadline_hits.load(Ordering::Relaxed),
            memory_hits: t.memory_hits.load(Ordering::Relaxed),
        }
    }
}

fn version_of(loaded: &Loaded) -> ValidatorVersion {
    ValidatorVersion {
        name: loaded.name.clone(),
        version: loaded.version.clone(),
        wit: VALIDATOR_WIT,
        sha256: loaded.digest.clone(),
        source: loaded.source.clone(),
        loaded_at: loaded.loaded_at.into(),
        calls: loaded.stats.calls.load(Ordering::Relaxed),
        faults: loaded.stats.faults.load(Ordering::Relaxed),
    }
}

/// A fresh store and instance of `loaded` (nothing moves on streams: the deadline is the
/// call's total running time).
async fn start(
    engine: &wasmtime::Engine,
    loaded: &Loaded,
    settings: &CallSettings,
) -> Result<
    (
        wasmtime::Store<CallState>,
        crate::bindings::metadef::Validator,
    ),
    StoreError,
> {
    let mut store = new_store(engine, settings, &loaded.stats, Arc::new(AtomicU64::new(0)))?;
    match loaded.pre.instantiate_async(&mut store).await {
        Ok(validator) => Ok((store, validator)),
        Err(e) if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
            tracing::warn!(plugin = %settings.plugin, error = %e, "no free plugin instance slot");
            Err(StoreError::Unavailable(
                "too many concurrent plugin calls".into(),
            ))
        }
        Err(e) => Err(fault(&settings.plugin, store.data(), &loaded.stats, &e)),
    }
}

/// Compiles, pre-instantiates (which checks the component exports the contract and imports
/// nothing the linker lacks) and asks the validator for its `info`.
async fn prepare(
    runtime: &Runtime,
    settings: &Arc<CallSettings>,
    totals: &Arc<CallStats>,
    source: &ComponentSource,
) -> anyhow::Result<Loaded> {
    let id = settings.plugin.clone();
    let compiled = runtime.compile(source).await?;
    let instance_pre = runtime
        .linker()
        .instantiate_pre(&compiled.component)
        .map_err(|e| anyhow::anyhow!("validator {id}: cannot link the component: {e}"))?;
    let pre = ValidatorPre::new(instance_pre).map_err(|e| {
        anyhow::anyhow!(
            "validator {id}: the component does not export glass:metadef/validate@0.1.0: {e}"
        )
    })?;
    let loaded = Arc::new(Loaded {
        pre,
        name: String::new(),
        version: String::new(),
        digest: compiled.digest,
        source: source.describe(),
        loaded_at: std::time::SystemTime::now(),
        stats: Arc::new(CallStats::child_of(totals)),
    });
    let (engine, task_loaded, task_settings) =
        (runtime.engine().clone(), loaded.clone(), settings.clone());
    let info = runtime
        .io_handle()
        .spawn(async move {
            let (mut store, validator) = start(&engine, &task_loaded, &task_settings).await?;
            let result = validator
                .glass_metadef_validate()
                .call_info(&mut store)
                .await;
            result.map_err(|e| fault(&task_settings.plugin, store.data(), &task_loaded.stats, &e))
        })
        .await
        .map_err(|e| anyhow::anyhow!("validator {id}: info task failed: {e}"))?
        .map_err(|e| anyhow::anyhow!("validator {id}: info failed: {e}"))?;
    let mut loaded = Arc::into_inner(loaded).expect("the info call has ended");
    loaded.name = info.name;
    loaded.version = info.version;
    tracing::info!(
        validator = %id,
        name = %loaded.name,
        version = %loaded.version,
        sha256 = %loaded.digest,
        from_cache = compiled.from_cache,
        "validator plugin loaded"
    );
    Ok(loaded)
}
