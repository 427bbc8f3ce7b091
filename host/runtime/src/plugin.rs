//! [`Plugin`]: one hot-swappable plugin of any kind (store driver, validator, inspector).
//!
//! A plugin is a component of one world ([`World`]: its pre-instance, its contract, how a
//! freshly loaded version is asked for its `info` and checked), held pre-instantiated in an
//! `ArcSwap`. Every call takes a snapshot of the version serving, so a [`Plugin::reload`]
//! never disturbs calls in flight; the versions it replaced are kept for
//! [`Plugin::rollback`]. Each version counts its calls and faults, and adds them to the
//! plugin's lifetime totals (which never go down across swaps).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::ser::{Serialize, SerializeMap, Serializer};
use tokio::runtime::Handle;
use wasmtime::Engine;

pub use crate::call::PluginKind;
pub(crate) use crate::call::World;
use crate::call::{Call, CallSettings, CallStats};
use crate::store::StoreError;
use crate::{ComponentSource, Limits, Runtime};

/// One version of a plugin, pre-instantiated.
pub(crate) struct Loaded<W: World> {
    pub pre: W::Pre,
    pub info: W::Info,
    digest: String,
    /// Where the component came from (a path, or "built-in").
    source: String,
    loaded_at: SystemTime,
    pub stats: Arc<CallStats>,
}

/// What a call needs besides the version it runs: cheap to clone into a task.
#[derive(Clone)]
pub(crate) struct Caller {
    kind: PluginKind,
    engine: Engine,
    pub settings: Arc<CallSettings>,
    /// The runtime's plugin threads: every call runs there (see `RuntimeConfig::io_threads`).
    pub io: Handle,
}

impl Caller {
    /// The plugin's configured id.
    pub fn name(&self) -> &str {
        &self.settings.plugin
    }

    /// A fresh store and instance of `loaded` (see [`Call::start`]).
    pub async fn start<W: World>(
        &self,
        loaded: &Loaded<W>,
        progress: Arc<AtomicU64>,
    ) -> Result<Call<W>, StoreError> {
        Call::start(
            &self.engine,
            &loaded.pre,
            &self.settings,
            &loaded.stats,
            progress,
        )
        .await
    }

    /// Runs a call on the plugin threads and waits for it. If the caller goes away the call
    /// still runs to its end.
    pub async fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.io
            .spawn(call)
            .await
            .map_err(|e| StoreError::Other(format!("{} task failed: {e}", self.kind)))?
    }
}

/// A progress counter for calls without streams: nothing bumps it, so their deadline is
/// their total running time.
pub(crate) fn idle() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(0))
}

/// A plugin of world `W`, loaded and ready: each call instantiates the version serving.
pub(crate) struct Plugin<W: World> {
    runtime: Runtime,
    caller: Caller,
    /// Lifetime counters, over every version it ran.
    totals: Arc<CallStats>,
    loaded: ArcSwap<Loaded<W>>,
    /// Versions replaced by `reload`, newest last: what `rollback` returns to.
    previous: Mutex<Vec<Arc<Loaded<W>>>>,
}

impl<W: World> Plugin<W> {
    /// Compiles (or loads from the cache) `source`, checks it and asks it for its `info`.
    pub async fn load(
        runtime: &Runtime,
        settings: CallSettings,
        source: &ComponentSource,
    ) -> anyhow::Result<Self> {
        let caller = Caller {
            kind: W::KIND,
            engine: runtime.engine().clone(),
            settings: Arc::new(settings),
            io: runtime.io_handle(),
        };
        let totals: Arc<CallStats> = Default::default();
        let loaded = prepare(runtime, &caller, &totals, source).await?;
        Ok(Self {
            runtime: runtime.clone(),
            caller,
            totals,
            loaded: ArcSwap::from_pointee(loaded),
            previous: Default::default(),
        })
    }

    /// The plugin's configured id.
    pub fn id(&self) -> &str {
        self.caller.name()
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The version serving now: a call runs on the snapshot it takes.
    pub fn current(&self) -> Arc<Loaded<W>> {
        self.loaded.load_full()
    }

    /// The sha256 of the component now serving.
    pub fn digest(&self) -> String {
        self.loaded.load().digest.clone()
    }

    /// Compiles `component` (or loads it from the cache) and swaps it in. Calls already
    /// running finish on the old version; calls starting afterwards use the new one. On
    /// error (not a component, does not fit the contract or the plugin) the old version
    /// keeps serving.
    pub async fn reload(&self, component: ComponentSource) -> anyhow::Result<PluginStatus> {
        let new = prepare(&self.runtime, &self.caller, &self.totals, &component).await?;
        W::check_swap(self.id(), &self.loaded.load().info, &new.info)?;
        let mut previous = self.previous.lock().expect("plugin history lock");
        previous.push(self.loaded.swap(Arc::new(new)));
        drop(previous);
        tracing::info!(plugin = self.id(), sha256 = %self.digest(), "{} plugin swapped in", W::KIND);
        Ok(self.status())
    }

    /// Puts back the version that the last `reload` replaced. Calls in flight finish on the
    /// version they started with.
    pub fn rollback(&self) -> anyhow::Result<PluginStatus> {
        let mut previous = self.previous.lock().expect("plugin history lock");
        let back = previous.pop().ok_or_else(|| {
            anyhow::anyhow!(
                "{} {}: no earlier version to roll back to",
                W::KIND,
                self.id()
            )
        })?;
        self.loaded.store(back);
        drop(previous);
        tracing::info!(plugin = self.id(), sha256 = %self.digest(), "{} plugin rolled back", W::KIND);
        Ok(self.status())
    }

    /// The version serving now, with its call counters, and the earlier versions.
    pub fn status(&self) -> PluginStatus {
        let previous = self.previous.lock().expect("plugin history lock");
        PluginStatus {
            kind: W::KIND,
            id: self.id().to_owned(),
            current: version_of(&self.loaded.load()),
            previous: previous.iter().rev().map(|l| version_of(l)).collect(),
        }
    }

    /// Calls, faults, deadline hits and memory-cap hits over the plugin's lifetime (every
    /// version it ran): counters that never go down, for metrics.
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

/// Refuses limits the runtime cannot give: a memory cap above its pooled slots, no deadline.
pub(crate) fn check_limits(
    runtime: &Runtime,
    kind: PluginKind,
    id: &str,
    limits: &Limits,
) -> anyhow::Result<()> {
    let max = runtime.max_memory_bytes();
    anyhow::ensure!(
        limits.memory_bytes <= max,
        "{kind} {id}: memory cap of {} bytes is above the runtime's maximum of {max} bytes",
        limits.memory_bytes,
    );
    anyhow::ensure!(
        !limits.cpu_deadline.is_zero(),
        "{kind} {id}: the CPU deadline must be positive"
    );
    Ok(())
}

/// Compiles, pre-instantiates (which checks the component exports the contract and imports
/// nothing the linker lacks) and asks the component for its `info`.
async fn prepare<W: World>(
    runtime: &Runtime,
    caller: &Caller,
    totals: &Arc<CallStats>,
    source: &ComponentSource,
) -> anyhow::Result<Loaded<W>> {
    let (kind, id) = (W::KIND, caller.name());
    let compiled = runtime.compile(source).await?;
    W::check_component(runtime.engine(), &caller.settings, &compiled.component)?;
    let instance_pre = runtime
        .linker()
        .instantiate_pre(&compiled.component)
        .map_err(|e| anyhow::anyhow!("{kind} {id}: cannot link the component: {e}"))?;
    let pre = W::pre(instance_pre).map_err(|e| {
        anyhow::anyhow!(
            "{kind} {id}: the component does not export {}: {e}",
            W::EXPORT
        )
    })?;
    let stats = Arc::new(CallStats::child_of(totals));
    let (task_caller, task_pre, task_stats) = (caller.clone(), pre.clone(), stats.clone());
    let info = caller
        .run(async move {
            let mut call = Call::<W>::start(
                &task_caller.engine,
                &task_pre,
                &task_caller.settings,
                &task_stats,
                idle(),
            )
            .await?;
            let result = W::info(&call.instance, &mut call.store).await;
            result.map_err(|e| call.fault(&e))
        })
        .await
        .map_err(|e| W::info_failed(id, e))?;
    tracing::info!(
        plugin = id,
        name = W::name(&info),
        version = W::version(&info),
        sha256 = %compiled.digest,
        from_cache = compiled.from_cache,
        "{kind} plugin loaded"
    );
    Ok(Loaded {
        pre,
        info,
        digest: compiled.digest,
        source: source.describe(),
        loaded_at: SystemTime::now(),
        stats,
    })
}

fn version_of<W: World>(loaded: &Loaded<W>) -> PluginVersion {
    PluginVersion {
        kind: W::KIND,
        name: W::name(&loaded.info).to_owned(),
        version: W::version(&loaded.info).to_owned(),
        wit: W::WIT,
        capabilities: W::capabilities(&loaded.info),
        sha256: loaded.digest.clone(),
        source: loaded.source.clone(),
        loaded_at: loaded.loaded_at.into(),
        calls: loaded.stats.calls.load(Ordering::Relaxed),
        faults: loaded.stats.faults.load(Ordering::Relaxed),
    }
}

/// A plugin's lifetime counters (see [`Plugin::totals`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct PluginTotals {
    pub calls: u64,
    pub faults: u64,
    pub deadline_hits: u64,
    pub memory_hits: u64,
}

/// A plugin's status: the version serving now and those `rollback` can return to.
/// Rendered as `{"<kind>": id, "current": …, "previous": […]}`.
#[derive(Debug, Clone)]
pub struct PluginStatus {
    pub kind: PluginKind,
    /// The configured id.
    pub id: String,
    pub current: PluginVersion,
    pub previous: Vec<PluginVersion>,
}

/// What the status reports about one loaded version of a plugin. A store's version is
/// rendered with its name as `driver` and its `capabilities`; the other kinds' as `name`,
/// without capabilities.
#[derive(Debug, Clone)]
pub struct PluginVersion {
    pub kind: PluginKind,
    /// The name the component gives itself (`info`).
    pub name: String,
    pub version: String,
    pub wit: &'static str,
    pub capabilities: Vec<&'static str>,
    pub sha256: String,
    pub source: String,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    pub calls: u64,
    pub faults: u64,
}

impl Serialize for PluginStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry(self.kind.as_str(), &self.id)?;
        map.serialize_entry("current", &self.current)?;
        map.serialize_entry("previous", &self.previous)?;
        map.end()
    }
}

impl Serialize for PluginVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let store = self.kind == PluginKind::Store;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(if store { "driver" } else { "name" }, &self.name)?;
        map.serialize_entry("version", &self.version)?;
        map.serialize_entry("wit", self.wit)?;
        if store {
            map.serialize_entry("capabilities", &self.capabilities)?;
        }
        map.serialize_entry("sha256", &self.sha256)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("loaded_at", &self.loaded_at)?;
        map.serialize_entry("calls", &self.calls)?;
        map.serialize_entry("faults", &self.faults)?;
        map.end()
    }
}
