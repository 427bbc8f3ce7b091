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

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use uuid::Uuid;
use wasmtime_wasi::p2::pipe::{AsyncReadStream, AsyncWriteStream};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use super::budget::Budget;
use super::call::{Call, CallSettings};
use super::plugin::{Caller, Loaded, Plugin, PluginStatus, PluginTotals, idle};
use super::streams::{CountingWriter, GetReader, InputWatch, Skip, WatchedReader};
use super::worlds::StoreWorld;
use super::{CallBudgets, ComponentSource, Runtime, StoreSpec};
use crate::bindings::store::{Capabilities, WitStoreError};
use crate::store::{ByteReader, ImageStore, StoreError, StoreInfo, Stored};

/// Bytes a driver may queue on a `get` output-stream before the host has written them on.
const WRITE_BUDGET: usize = 64 * 1024;
/// Capacity of the pipe between a `get`'s driver and its reader.
const PIPE_BYTES: usize = 256 * 1024;

/// A store plugin, loaded and ready: each call instantiates it afresh.
pub struct WasmStore {
    plugin: Plugin<StoreWorld>,
    /// This store's places for uploads, downloads and its other calls (`budget`).
    budgets: Arc<StoreBudgets>,
}

/// The WIT package every store driver must export, as the status reports it.
pub const STORE_WIT: &str = "glass:store@0.1.0";

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

impl WasmStore {
    pub(super) async fn load(runtime: Runtime, spec: StoreSpec) -> anyhow::Result<Arc<Self>> {
        let settings = CallSettings {
            plugin: spec.id.as_str().into(),
            dir: spec.grants.dir.clone(),
            hosts: spec.grants.hosts.clone().into(),
            settings: spec.grants.settings.clone().into(),
            network_timeout: spec.limits.network_timeout,
            memory_bytes: spec.limits.memory_bytes,
            deadline: spec.limits.cpu_deadline,
            blocking_file_io: runtime.blocking_file_io(),
        };
        let plugin = Plugin::load(&runtime, settings, &spec.component).await?;
        Ok(Arc::new(Self {
            plugin,
            budgets: Arc::new(StoreBudgets::new(&spec.id, runtime.budgets())),
        }))
    }

    /// The store's configured id (the plugin name in faults and logs).
    pub fn id(&self) -> &str {
        self.plugin.id()
    }

    /// The sha256 of the component now serving.
    pub fn digest(&self) -> String {
        self.plugin.digest()
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
        self.plugin.reload(component).await
    }

    /// Puts back the version that the last `reload` replaced. Calls in flight finish on the
    /// version they started with.
    pub fn rollback(&self) -> anyhow::Result<PluginStatus> {
        self.plugin.rollback()
    }

    /// Calls, faults, deadline hits and memory-cap hits over the store's lifetime (every
    /// version it ran): counters that never go down, for metrics.
    pub fn totals(&self) -> PluginTotals {
        self.plugin.totals()
    }

    /// The version serving now, with its call counters, and the earlier versions.
    pub fn status(&self) -> PluginStatus {
        self.plugin.status()
    }

    fn caller(&self) -> &Caller {
        self.plugin.caller()
    }

    /// `add` with the image id passed as is, unchecked: what a buggy host would send. For
    /// tests that check a driver's own validation; the host always goes through `add`.
    pub async fn add_raw(
        &self,
        image_id: &str,
        data: ByteReader,
        size_hint: Option<u64>,
    ) -> Result<Stored, StoreError> {
        let loaded = self.plugin.current();
        if !loaded.info.caps.contains(Capabilities::WRITE)
            || loaded.info.caps.contains(Capabilities::READ_ONLY)
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
        let place = self.budgets.uploads.acquire().await?;
        let reader = WatchedReader::new(data, progress.clone(), watch.clone(), cancelled);
        let call = add_call(
            self.caller().clone(),
            loaded,
            image_id.to_owned(),
            reader,
            size_hint,
            progress,
            watch,
        );
        self.caller()
            .run(async move {
                let result = call.await;
                drop(place);
                result
            })
            .await
    }

    /// `discard_partial` with the image id passed as is, unchecked (see [`Self::add_raw`]).
    pub async fn discard_partial_raw(&self, image_id: &str) -> Result<(), StoreError> {
        let loaded = self.plugin.current();
        if !loaded.info.caps.contains(Capabilities::WRITE)
            || loaded.info.caps.contains(Capabilities::READ_ONLY)
        {
            return Ok(()); // a store that never writes has nothing partial
        }
        let (plugin, image_id) = (self.caller().clone(), image_id.to_owned());
        let place = self.budgets.other.acquire().await?;
        self.caller()
            .run(async move {
                let _place = place;
                let mut call = plugin.start(&loaded, idle()).await?;
                let result = call
                    .instance
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
        self.plugin.current().info.store.clone()
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
        let loaded = self.plugin.current();
        self.require(loaded.info.caps, Capabilities::READ, "reads")?;
        // A driver without ranged reads is asked for everything; the host skips and cuts.
        let ranged = loaded.info.caps.contains(Capabilities::RANGED_READS);
        let (guest_offset, guest_length) = if ranged { (offset, length) } else { (0, None) };
        let place = self.budgets.downloads.acquire().await?;
        let (driver_end, reader_end) = tokio::io::duplex(PIPE_BYTES);
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let plugin = self.caller().clone();
        let location = location.to_owned();
        let stall = self.budgets.reader_stall;
        self.caller().io.spawn(async move {
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
        let loaded = self.plugin.current();
        self.require(loaded.info.caps, Capabilities::READ, "reads")?;
        let (plugin, location) = (self.caller().clone(), location.to_owned());
        let place = self.budgets.other.acquire().await?;
        self.caller()
            .run(async move {
                let _place = place;
                let mut call = plugin.start(&loaded, idle()).await?;
                let result = call
                    .instance
                    .glass_store_driver()
                    .call_size(&mut call.store, &location)
                    .await;
                finish(&call, result)
            })
            .await
    }

    async fn delete(&self, location: &str) -> Result<(), StoreError> {
        let loaded = self.plugin.current();
        self.require(loaded.info.caps, Capabilities::DELETE, "deletes")?;
        if loaded.info.caps.contains(Capabilities::READ_ONLY) {
            return Err(StoreError::AccessDenied(format!(
                "store {} is read-only",
                self.id()
            )));
        }
        let (plugin, location) = (self.caller().clone(), location.to_owned());
        let place = self.budgets.other.acquire().await?;
        self.caller()
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

/// The body of `add`, in its own task. Checks the driver's answer against what the host
/// saw of the input: a failed input is reported as `Input`, and a driver that claims success
/// without having read everything (or claims another size) has its data removed and is
/// reported as faulty.
async fn add_call(
    plugin: Caller,
    loaded: Arc<Loaded<StoreWorld>>,
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
        .instance
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
    plugin: &Caller,
    loaded: &Loaded<StoreWorld>,
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
        .instance
        .glass_store_driver()
        .call_get(&mut call.store, location, offset, length, sink)
        .await;
    finish(&call, result)
}

async fn delete_call(
    plugin: &Caller,
    loaded: &Loaded<StoreWorld>,
    location: &str,
) -> Result<(), StoreError> {
    let mut call = plugin.start(loaded, idle()).await?;
    let result = call
        .instance
        .glass_store_driver()
        .call_delete(&mut call.store, location)
        .await;
    finish(&call, result)
}

fn finish<T>(
    call: &Call<StoreWorld>,
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
