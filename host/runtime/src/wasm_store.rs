//! [`WasmStore`]: an [`ImageStore`] whose every call runs a `glass:store@0.1.0` component.
//!
//! `add` hands the driver the upload as a `wasi:io` input-stream (the caller's reader behind
//! wasmtime-wasi's `AsyncReadStream`); `get` hands it an output-stream whose other end is a
//! bounded in-memory pipe returned to the caller as the reader. Either way at most a few
//! 64 KiB chunks are in flight: memory stays flat whatever the image size. Both run the
//! driver in a task of their own, so an upload whose caller goes away is cancelled through
//! its input (and cleaned up by the driver) instead of being cut mid-call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use std::future::Future;

use tokio::io::AsyncReadExt;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use uuid::Uuid;
use wasmtime::Engine;
use wasmtime_wasi::p2::pipe::{AsyncReadStream, AsyncWriteStream};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use super::budget::Budget;
use super::call::{Call, CallSettings, CallState, CallStats};
use super::streams::{CountingWriter, GetReader, InputWatch, Skip, WatchedReader};
use super::{CallBudgets, ComponentSource, Runtime, StoreSpec};
use crate::bindings::store::{Capabilities, StorePre as DriverPre, WitStoreError};
use crate::store::{ByteReader, ImageStore, StoreError, StoreInfo, Stored};

/// Bytes a driver may queue on a `get` output-stream before the host has written them on.
const WRITE_BUDGET: usize = 64 * 1024;
/// Capacity of the pipe between a `get`'s driver and its reader.
const PIPE_BYTES: usize = 256 * 1024;

/// A store plugin, loaded and ready: each call instantiates it afresh.
pub struct WasmStore {
    runtime: Runtime,
    plugin: Plugin,
    loaded: ArcSwap<Loaded>,
    /// Versions replaced by `reload`, newest last: what `rollback` returns to.
    previous: std::sync::Mutex<Vec<Arc<Loaded>>>,
}

/// One version of the plugin, pre-instantiated. Calls take a snapshot, so a reload never
/// disturbs calls in flight.
struct Loaded {
    pre: DriverPre<CallState>,
    caps: Capabilities,
    info: StoreInfo,
    digest: String,
    /// Where the component came from (a path, or "built-in").
    source: String,
    loaded_at: std::time::SystemTime,
    stats: Arc<CallStats>,
}

/// The WIT package every store driver must export, as the status reports it.
pub const STORE_WIT: &str = "glass:store@0.1.0";

/// What `WasmStore::status` reports about one loaded version of a plugin.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginVersion {
    pub driver: String,
    pub version: String,
    pub wit: &'static str,
    pub capabilities: Vec<&'static str>,
    pub sha256: String,
    pub source: String,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    pub calls: u64,
    pub faults: u64,
}

/// A store plugin's lifetime counters (see [`WasmStore::totals`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct PluginTotals {
    pub calls: u64,
    pub faults: u64,
    pub deadline_hits: u64,
    pub memory_hits: u64,
}

/// A store plugin's status: the version serving now and those `rollback` can return to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginStatus {
    pub store: String,
    pub current: PluginVersion,
    pub previous: Vec<PluginVersion>,
}

/// What a call needs besides the snapshot; cheap to clone into a task.
#[derive(Clone)]
struct Plugin {
    engine: Engine,
    /// Lifetime counters of the store, over every version it ran.
    totals: Arc<CallStats>,
    settings: Arc<CallSettings>,
    /// The runtime's plugin threads: every call runs there (see `RuntimeConfig::io_threads`).
    io: Handle,
    /// This store's places for uploads, downloads and its other calls (`budget`).
    budgets: Arc<StoreBudgets>,
}

struct StoreBudgets {
    uploads: Budget,
    downloads: Budget,
    other: Budget,
    reader_stall: std::time::Duration,
}

impl StoreBudgets {
    fn new(store: &str, b: CallBudgets) -> Self {
        StoreBudgets {
            uploads: Budget::new(
                format!("uploads to store {store}"),
                b.uploads_per_store,
                b.queue_wait,
            ),
            downloads: Budget::new(
                format!("downloads from store {store}"),
                b.downloads_per_store,
                b.queue_wait,
            ),
            other: Budget::new(
                format!("calls to store {store}"),
                b.other_per_store,
                b.queue_wait,
            ),
            reader_stall: b.reader_stall,
        }
    }
}

impl Plugin {
    /// Runs a call on the plugin threads and waits for it. If the caller goes away the call
    /// still runs to its end (an `add` is cancelled through its input instead).
    async fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.io
            .spawn(call)
            .await
            .map_err(|e| StoreError::Other(format!("store task failed: {e}")))?
    }

    async fn start(&self, loaded: &Loaded, progress: Arc<AtomicU64>) -> Result<Call, StoreError> {
        Call::start(
            &self.engine,
            &loaded.pre,
            &self.settings,
            &loaded.stats,
            progress,
        )
        .await
    }

    fn name(&self) -> &str {
        &self.settings.plugin
    }
}

impl WasmStore {
    pub(super) async fn load(runtime: Runtime, spec: StoreSpec) -> anyhow::Result<Arc<Self>> {
        let plugin = Plugin {
            engine: runtime.engine().clone(),
            totals: Default::default(),
            settings: Arc::new(CallSettings {
                plugin: spec.id.as_str().into(),
                dir: spec.grants.dir.clone(),
                hosts: spec.grants.hosts.clone().into(),
                settings: spec.grants.settings.clone().into(),
                network_timeout: spec.limits.network_timeout,
                memory_bytes: spec.limits.memory_bytes,
                deadline: spec.limits.cpu_deadline,
                blocking_file_io: runtime.blocking_file_io(),
            }),
            io: runtime.io_handle(),
            budgets: Arc::new(StoreBudgets::new(&spec.id, runtime.budgets())),
        };
        let loaded = prepare(&runtime, &plugin, &spec.component).await?;
        Ok(Arc::new(Self {
            runtime,
            plugin,
            loaded: ArcSwap::from_pointee(loaded),
            previous: Default::default(),
        }))
    }

    /// The store's configured id (the plugin name in faults and logs).
    pub fn id(&self) -> &str {
        self.plugin.name()
    }

    /// The sha256 of the component now serving.
    pub fn digest(&self) -> String {
        self.loaded.load().digest.clone()
    }

    /// Compiles `component` (or loads it from the cache) and swaps it in. Calls already
    /// running finish on the old version; calls starting afterwards use the new one. On
    /// error the old version keeps serving.
    ///
    /// A component that does not fit is refused before it serves anything: it must export
    /// the driver contract, import nothing the host lacks, need no network unless hosts are
    /// granted, and keep the capabilities the store already relies on (read, and write if
    /// the version serving now writes).
    pub async fn reload(&self, component: ComponentSource) -> anyhow::Result<PluginStatus> {
        let new = prepare(&self.runtime, &self.plugin, &component).await?;
        let old = self.loaded.load_full();
        let needs = old.caps
            & (Capabilities::READ | Capabilities::WRITE | Capabilities::DELETE)
            & !if old.caps.contains(Capabilities::READ_ONLY) {
                Capabilities::WRITE | Capabilities::DELETE
            } else {
                Capabilities::empty()
            };
        let lacking = needs & !new.caps;
        anyhow::ensure!(
            lacking == Capabilities::empty()
                && !(new.caps.contains(Capabilities::READ_ONLY) && old.info.can_write),
            "store {}: {} {} lacks capabilities the store relies on: {}",
            self.id(),
            new.info.driver,
            new.info.version,
            capability_names(if lacking == Capabilities::empty() {
                Capabilities::WRITE
            } else {
                lacking
            })
            .join(", ")
        );
        let mut previous = self.previous.lock().expect("plugin history lock");
        previous.push(self.loaded.swap(Arc::new(new)));
        tracing::info!(store = self.id(), sha256 = %self.digest(), "store plugin swapped in");
        drop(previous);
        Ok(self.status())
    }

    /// Puts back the version that the last `reload` replaced. Calls in flight finish on the
    /// version they started with.
    pub fn rollback(&self) -> anyhow::Result<PluginStatus> {
        let mut previous = self.previous.lock().expect("plugin history lock");
        let back = previous.pop().ok_or_else(|| {
            anyhow::anyhow!("store {}: no earlier version to roll back to", self.id())
        })?;
        self.loaded.store(back);
        drop(previous);
        tracing::info!(store = self.id(), sha256 = %self.digest(), "store plugin rolled back");
        Ok(self.status())
    }

    /// Calls, faults, deadline hits and memory-cap hits over the store's lifetime (every
    /// version it ran): counters that never go down, for metrics.
    pub fn totals(&self) -> PluginTotals {
        let t = &self.plugin.totals;
        PluginTotals {
            calls: t.calls.load(Ordering::Relaxed),
            faults: t.faults.load(Ordering::Relaxed),
            deadline_hits: t.deadline_hits.load(Ordering::Relaxed),
            memory_hits: t.memory_hits.load(Ordering::Relaxed),
        }
    }

    /// The version serving now, with its call counters, and the earlier versions.
    pub fn status(&self) -> PluginStatus {
        let previous = self.previous.lock().expect("plugin history lock");
        PluginStatus {
            store: self.id().to_owned(),
            current: version_of(&self.loaded.load()),
            previous: previous.iter().rev().map(|l| version_of(l)).collect(),
        }
    }

    /// `add` with the image id passed as is, unchecked: what a buggy host would send. For
    /// tests that check a driver's own validation; the host always goes through `add`.
    pub async fn add_raw(
        &self,
        image_id: &str,
        data: ByteReader,
        size_hint: Option<u64>,
    ) -> Result<Stored, StoreError> {
        let loaded = self.loaded.load_full();
        if !loaded.caps.contains(Capabilities::WRITE)
            || loaded.caps.contains(Capabilities::READ_ONLY)
        {
            return Err(StoreError::AccessDenied(format!(
                "store {} does not accept writes",
                self.id()
            )));
        }
        let progress = Arc::new(AtomicU64::new(0));
        let watch = Arc::new(InputWatch::default());
        // Dropping `_cancel` (this future dropped: the caller went away) fails the input.
        let (_cancel, cancelled) = oneshot::channel::<()>();
        let place = self.plugin.budgets.uploads.acquire().await?;
        let reader = WatchedReader::new(data, progress.clone(), watch.clone(), cancelled);
        let call = add_call(
            self.plugin.clone(),
            loaded,
            image_id.to_owned(),
            reader,
            size_hint,
            progress,
            watch,
        );
        self.plugin
            .run(async move {
                let result = call.await;
                drop(place);
                result
            })
            .await
    }

    /// `discard_partial` with the image id passed as is, unchecked (see [`Self::add_raw`]).
    pub async fn discard_partial_raw(&self, image_id: &str) -> Result<(), StoreError> {
        let loaded = self.loaded.load_full();
        if !loaded.caps.contains(Capabilities::WRITE)
            || loaded.caps.contains(Capabilities::READ_ONLY)
        {
            return Ok(()); // a store that never writes has nothing partial
        }
        let (plugin, image_id) = (self.plugin.clone(), image_id.to_owned());
        let place = self.plugin.budgets.other.acquire().await?;
        self.plugin
            .run(async move {
                let _place = place;
                let mut call = plugin.start(&loaded, idle()).await?;
                let result = call
                    .driver
                    .glass_store_driver()
                    .call_discard_partial(&mut call.store, &image_id)
                    .await;
                finish(&call, result)
            })
            .await
    }

    fn require(
        &self,
        caps: Capabilities,
        need: Capabilities,
        what: &str,
    ) -> Result<(), StoreError> {
        if caps.contains(need) {
            Ok(())
        } else {
            Err(StoreError::AccessDenied(format!(
                "store {} does not support {what}",
                self.id()
            )))
        }
    }
}

#[async_trait]
impl ImageStore for WasmStore {
    fn info(&self) -> StoreInfo {
        self.loaded.load().info.clone()
    }

    async fn add(
        &self,
        image: Uuid,
        data: ByteReader,
        size_hint: Option<u64>,
    ) -> Result<Stored, StoreError> {
        self.add_raw(&image.to_string(), data, size_hint).await
    }

    async fn get(
        &self,
        location: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteReader, StoreError> {
        let loaded = self.loaded.load_full();
        self.require(loaded.caps, Capabilities::READ, "reads")?;
        // A driver without ranged reads is asked for everything; the host skips and cuts.
        let ranged = loaded.caps.contains(Capabilities::RANGED_READS);
        let (guest_offset, guest_length) = if ranged { (offset, length) } else { (0, None) };
        let place = self.plugin.budgets.downloads.acquire().await?;
        let (driver_end, reader_end) = tokio::io::duplex(PIPE_BYTES);
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let plugin = self.plugin.clone();
        let location = location.to_owned();
        let stall = self.plugin.budgets.reader_stall;
        self.plugin.io.spawn(async move {
            let _place = place;
            let progress = Arc::new(AtomicU64::new(0));
            let sink = CountingWriter::new(driver_end, progress.clone(), stall);
            let outcome = get_call(
                &plugin,
                &loaded,
                &location,
                guest_offset,
                guest_length,
                sink,
                progress,
            )
            .await;
            let _ = outcome_tx.send(outcome);
        });
        let reader = GetReader::new(reader_end, outcome_rx).first_bytes().await?;
        let mut reader: ByteReader = Box::pin(reader);
        if !ranged {
            if offset > 0 {
                reader = Box::pin(Skip::new(reader, offset));
            }
            if let Some(length) = length {
                reader = Box::pin(reader.take(length));
            }
        }
        Ok(reader)
    }

    async fn size(&self, location: &str) -> Result<u64, StoreError> {
        let loaded = self.loaded.load_full();
        self.require(loaded.caps, Capabilities::READ, "reads")?;
        let (plugin, location) = (self.plugin.clone(), location.to_owned());
        let place = self.plugin.budgets.other.acquire().await?;
        self.plugin
            .run(async move {
                let _place = place;
                let mut call = plugin.start(&loaded, idle()).await?;
                let result = call
                    .driver
                    .glass_store_driver()
                    .call_size(&mut call.store, &location)
                    .await;
                finish(&call, result)
            })
            .await
    }

    async fn delete(&self, location: &str) -> Result<(), StoreError> {
        let loaded = self.loaded.load_full();
        self.require(loaded.caps, Capabilities::DELETE, "deletes")?;
        if loaded.caps.contains(Capabilities::READ_ONLY) {
            return Err(StoreError::AccessDenied(format!(
                "store {} is read-only",
                self.id()
            )));
        }
        let (plugin, location) = (self.plugin.clone(), location.to_owned());
        let place = self.plugin.budgets.other.acquire().await?;
        self.plugin
            .run(async move {
                let _place = place;
                delete_call(&plugin, &loaded, &location).await
            })
            .await
    }

    async fn discard_partial(&self, image: Uuid) -> Result<(), StoreError> {
        self.discard_partial_raw(&image.to_string()).await
    }
}

fn version_of(loaded: &Loaded) -> PluginVersion {
    PluginVersion {
        driver: loaded.info.driver.clone(),
        version: loaded.info.version.clone(),
        wit: STORE_WIT,
        capabilities: capability_names(loaded.caps),
        sha256: loaded.digest.clone(),
        source: loaded.source.clone(),
        loaded_at: loaded.loaded_at.into(),
        calls: loaded.stats.calls.load(Ordering::Relaxed),
        faults: loaded.stats.faults.load(Ordering::Relaxed),
    }
}

fn capability_names(caps: Capabilities) -> Vec<&'static str> {
    [
        (Capabilities::READ, "read"),
        (Capabilities::WRITE, "write"),
        (Capabilities::DELETE, "delete"),
        (Capabilities::RANGED_READS, "ranged-reads"),
        (Capabilities::READ_ONLY, "read-only"),
    ]
    .into_iter()
    .filter(|(c, _)| caps.contains(*c))
    .map(|(_, name)| name)
    .collect()
}

/// Refuses a component that needs outgoing HTTP when the store grants it no host: every
/// call would fail, so it is better to say so when it is loaded.
fn check_imports(
    runtime: &Runtime,
    plugin: &Plugin,
    component: &wasmtime::component::Component,
) -> anyhow::Result<()> {
    let ty = component.component_type();
    let wants_http = ty
        .imports(runtime.engine())
        .any(|(name, _)| name.starts_with("wasi:http/outgoing-handler@"));
    anyhow::ensure!(
        !wants_http || !plugin.settings.hosts.is_empty(),
        "store {}: the component needs network access (it imports wasi:http/outgoing-handler) \
         but the store grants it no hosts (set `hosts` in its configuration)",
        plugin.name()
    );
    Ok(())
}

/// Compiles, pre-instantiates (which checks the component exports the contract and imports
/// nothing the linker lacks) and asks the driver for its `info`.
async fn prepare(
    runtime: &Runtime,
    plugin: &Plugin,
    source: &ComponentSource,
) -> anyhow::Result<Loaded> {
    let compiled = runtime.compile(source).await?;
    check_imports(runtime, plugin, &compiled.component)?;
    let instance_pre = runtime
        .linker()
        .instantiate_pre(&compiled.component)
        .map_err(|e| anyhow::anyhow!("store {}: cannot link the component: {e}", plugin.name()))?;
    let pre = DriverPre::new(instance_pre).map_err(|e| {
        anyhow::anyhow!(
            "store {}: the component does not export glass:store/driver@0.1.0: {e}",
            plugin.name()
        )
    })?;
    let loaded = Loaded {
        pre,
        caps: Capabilities::empty(),
        info: StoreInfo {
            driver: String::new(),
            version: String::new(),
            can_write: false,
            can_delete: false,
            ranged_reads: false,
        },
        digest: compiled.digest,
        source: source.describe(),
        loaded_at: std::time::SystemTime::now(),
        stats: Arc::new(CallStats::child_of(&plugin.totals)),
    };
    let loaded = Arc::new(loaded);
    let (task_plugin, task_loaded) = (plugin.clone(), loaded.clone());
    let info = plugin
        .run(async move {
            let mut call = task_plugin.start(&task_loaded, idle()).await?;
            let result = call
                .driver
                .glass_store_driver()
                .call_info(&mut call.store)
                .await;
            result.map_err(|e| call.fault(&e))
        })
        .await?;
    let mut loaded = Arc::into_inner(loaded).expect("the info call has ended");
    let caps = info.capabilities;
    let read_only = caps.contains(Capabilities::READ_ONLY);
    loaded.caps = caps;
    loaded.info = StoreInfo {
        driver: info.name,
        version: info.version,
        can_write: caps.contains(Capabilities::WRITE) && !read_only,
        can_delete: caps.contains(Capabilities::DELETE) && !read_only,
        ranged_reads: caps.contains(Capabilities::RANGED_READS),
    };
    tracing::info!(
        store = plugin.name(),
        driver = %loaded.info.driver,
        version = %loaded.info.version,
        sha256 = %loaded.digest,
        from_cache = compiled.from_cache,
        "store plugin loaded"
    );
    Ok(loaded)
}

/// The body of `add`, in its own task. Checks the driver's answer against what the host
/// saw of the input: a failed input is reported as `Input`, and a driver that claims success
/// without having read everything (or claims another size) has its data removed and is
/// reported as faulty.
async fn add_call(
    plugin: Plugin,
    loaded: Arc<Loaded>,
    image_id: String,
    reader: WatchedReader,
    size_hint: Option<u64>,
    progress: Arc<AtomicU64>,
    watch: Arc<InputWatch>,
) -> Result<Stored, StoreError> {
    let mut call = plugin.start(&loaded, progress.clone()).await?;
    let input: DynInputStream = Box::new(AsyncReadStream::new(reader));
    let input = call
        .store
        .data_mut()
        .table
        .push(input)
        .map_err(|e| StoreError::Other(format!("resource table: {e}")))?;
    let result = call
        .driver
        .glass_store_driver()
        .call_add(&mut call.store, &image_id, input, size_hint)
        .await;
    let stored = match result {
        Err(trap) => return Err(call.fault(&trap)),
        Ok(Err(e)) => {
            return Err(match watch.error() {
                Some(reason) => StoreError::Input(reason),
                None => e.into(),
            });
        }
        Ok(Ok(stored)) => stored,
    };
    drop(call);
    let delivered = progress.load(Ordering::Relaxed);
    let problem = if let Some(reason) = watch.error() {
        Some(StoreError::Input(reason))
    } else if !watch.reached_eof() || stored.size != delivered {
        let reason = format!(
            "contract violation: add reported {} bytes stored, the input had {delivered}{}",
            stored.size,
            if watch.reached_eof() {
                ""
            } else {
                " and was not read to its end"
            }
        );
        tracing::warn!(plugin = plugin.name(), %reason, "store plugin call failed");
        Some(StoreError::PluginFault {
            plugin: plugin.name().to_owned(),
            reason,
        })
    } else {
        None
    };
    match problem {
        None => Ok(Stored {
            location: stored.location,
            size: stored.size,
        }),
        Some(problem) => {
            if let Err(e) = delete_call(&plugin, &loaded, &stored.location).await {
                tracing::warn!(plugin = plugin.name(), location = %stored.location, error = %e,
                    "could not remove data of a failed add");
            }
            Err(problem)
        }
    }
}

/// The body of `get`, in its own task; the bytes go to `sink`, the result to the reader.
async fn get_call(
    plugin: &Plugin,
    loaded: &Loaded,
    location: &str,
    offset: u64,
    length: Option<u64>,
    sink: CountingWriter,
    progress: Arc<AtomicU64>,
) -> Result<u64, StoreError> {
    let mut call = plugin.start(loaded, progress).await?;
    let sink: DynOutputStream = Box::new(AsyncWriteStream::new(WRITE_BUDGET, sink));
    let sink = call
        .store
        .data_mut()
        .table
        .push(sink)
        .map_err(|e| StoreError::Other(format!("resource table: {e}")))?;
    let result = call
        .driver
        .glass_store_driver()
        .call_get(&mut call.store, location, offset, length, sink)
        .await;
    finish(&call, result)
}

async fn delete_call(plugin: &Plugin, loaded: &Loaded, location: &str) -> Result<(), StoreError> {
    let mut call = plugin.start(loaded, idle()).await?;
    let result = call
        .driver
        .glass_store_driver()
        .call_delete(&mut call.store, location)
        .await;
    finish(&call, result)
}

/// A progress counter for calls without streams: nothing bumps it, so their deadline is
/// their total running time.
fn idle() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(0))
}

fn finish<T>(
    call: &Call,
    result: wasmtime::Result<Result<T, WitStoreError>>,
) -> Result<T, StoreError> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.into()),
        Err(trap) => Err(call.fault(&trap)),
    }
}

impl From<WitStoreError> for StoreError {
    fn from(e: WitStoreError) -> Self {
        match e {
            WitStoreError::NotFound => StoreError::NotFound,
            WitStoreError::AlreadyExists => StoreError::AlreadyExists,
            WitStoreError::AccessDenied(m) => StoreError::AccessDenied(m),
            WitStoreError::InvalidLocation(m) => StoreError::InvalidLocation(m),
            WitStoreError::Unavailable(m) => StoreError::Unavailable(m),
            WitStoreError::Other(m) => StoreError::Other(m),
        }
    }
}
