//! [`WasmInspector`]: the disk-image format inspector, a `glass:inspect@0.1.0` component
//! (built in: `plugins/inspect-format`), loaded and called like a store driver or a
//! validator: a [`Plugin`] (the runtime's engine, compiled-component cache and pooling
//! slots, a fresh instance per call with its memory cap and deadline), granted nothing.
//! The image bytes reach it as a `wasi:io` input-stream fed from a bounded channel (the
//! host tees the upload into it); progress on that stream keeps the deadline from cutting a
//! call that is reading, and a guest that returns early simply closes the channel.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use wasmtime_wasi::p2::pipe::{AsyncReadStream, AsyncWriteStream};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use super::call::CallSettings;
use super::plugin::{Plugin, PluginKind, PluginStatus, PluginTotals, check_limits};
use super::worlds::InspectorWorld;
use super::{ComponentSource, Limits, Runtime};
use crate::store::StoreError;

pub use crate::bindings::inspect::exports::glass::inspect::inspector::{
    Decompressed, Detected as InspectDetected, InspectError, Report as InspectReport,
    Violation as InspectViolation,
};

/// The WIT package an inspector must export.
pub const INSPECTOR_WIT: &str = "glass:inspect@0.1.0";

/// The built-in inspector component (`plugins/inspect-format`).
pub const INSPECT_FORMAT: &[u8] = include_bytes!(env!("GLASS_INSPECT_FORMAT_WASM"));

/// Chunks queued between the upload and the inspector.
const FEED_DEPTH: usize = 8;

/// The inspector plugin, loaded and ready: each call instantiates it afresh.
pub struct WasmInspector {
    plugin: Plugin<InspectorWorld>,
    runtime: Runtime,
}

impl Runtime {
    /// Compiles (or loads from the cache) an inspector component, checks that it exports
    /// `glass:inspect/inspector@0.1.0` and asks it for its `info`.
    pub async fn load_inspector(
        &self,
        id: &str,
        component: ComponentSource,
        limits: Limits,
    ) -> anyhow::Result<Arc<WasmInspector>> {
        check_limits(self, PluginKind::Inspector, id, &limits)?;
        let settings = CallSettings::ungranted(id, &limits);
        let plugin = Plugin::load(self, settings, &component).await?;
        Ok(Arc::new(WasmInspector {
            plugin,
            runtime: self.clone(),
        }))
    }
}

/// The feeding end of an inspection: chunks go in until the inspector has its answer.
pub struct InspectFeed {
    tx: Option<mpsc::Sender<Bytes>>,
}

impl InspectFeed {
    /// Hands a chunk to the inspector; false once it stopped reading (it has its answer).
    pub async fn send(&mut self, chunk: Bytes) -> bool {
        match &self.tx {
            Some(tx) => {
                if tx.send(chunk).await.is_ok() {
                    true
                } else {
                    self.tx = None;
                    false
                }
            }
            None => false,
        }
    }

    /// The end of the data.
    pub fn close(&mut self) {
        self.tx = None;
    }
}

/// The answer of a running inspection.
pub type InspectResult = Result<Result<InspectReport, InspectError>, StoreError>;

impl WasmInspector {
    /// Starts inspecting a stream: returns its feed and the task that ends with the report.
    pub fn start(
        self: &Arc<Self>,
        claimed_format: &str,
    ) -> (InspectFeed, tokio::task::JoinHandle<InspectResult>) {
        let (tx, rx) = mpsc::channel::<Bytes>(FEED_DEPTH);
        let progress = Arc::new(AtomicU64::new(0));
        let reader = ChannelReader {
            rx,
            head: Bytes::new(),
            progress: progress.clone(),
        };
        let loaded = self.plugin.current();
        let caller = self.plugin.caller().clone();
        let claimed = claimed_format.to_string();
        let budget = self.runtime.inspector_budget();
        let task = caller.io.clone().spawn(async move {
            let _place = budget.acquire().await?;
            let mut call = caller.start(&loaded, progress).await?;
            let input: DynInputStream = Box::new(AsyncReadStream::new(reader));
            let input = call
                .store
                .data_mut()
                .table
                .push(input)
                .map_err(|e| StoreError::Other(format!("resource table: {e}")))?;
            let result = call
                .instance
                .glass_inspect_inspector()
                .call_inspect(&mut call.store, input, &claimed)
                .await;
            result.map_err(|e| call.fault(&e))
        });
        (InspectFeed { tx: Some(tx) }, task)
    }

    /// Decompresses `data` (gzip or zstd) into `out` inside the sandbox, writing at most
    /// `limit` bytes. `Ok(Err(_))` is the component's verdict (not compressed, corrupt, too
    /// large); `Err` a fault of the plugin.
    pub async fn decompress<R, W>(
        &self,
        data: R,
        out: W,
        limit: u64,
    ) -> Result<Result<Decompressed, InspectError>, StoreError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Sync + Unpin + 'static,
    {
        let progress = Arc::new(AtomicU64::new(0));
        let input = Counted {
            inner: data,
            progress: progress.clone(),
        };
        let output = Counted {
            inner: out,
            progress: progress.clone(),
        };
        let loaded = self.plugin.current();
        let caller = self.plugin.caller().clone();
        let place = self.runtime.inspector_budget().acquire().await?;
        self.plugin
            .caller()
            .run(async move {
                let _place = place;
                let mut call = caller.start(&loaded, progress).await?;
                let input: DynInputStream = Box::new(AsyncReadStream::new(input));
                let output: DynOutputStream = Box::new(AsyncWriteStream::new(64 * 1024, output));
                let table = &mut call.store.data_mut().table;
                let input = table
                    .push(input)
                    .map_err(|e| StoreError::Other(format!("resource table: {e}")))?;
                let output = table
                    .push(output)
                    .map_err(|e| StoreError::Other(format!("resource table: {e}")))?;
                let result = call
                    .instance
                    .glass_inspect_inspector()
                    .call_decompress(&mut call.store, input, output, limit)
                    .await;
                result.map_err(|e| call.fault(&e))
            })
            .await
    }

    /// Calls and faults so far.
    pub fn calls(&self) -> (u64, u64) {
        let totals = self.plugin.totals();
        (totals.calls, totals.faults)
    }

    /// Compiles `component` and swaps it in; inspections in flight finish on the old
    /// version. On error the old version keeps serving.
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

    /// Calls, faults, deadline hits and memory-cap hits over the inspector's lifetime.
    pub fn totals(&self) -> PluginTotals {
        self.plugin.totals()
    }
}

/// The inspector's input: the chunks the host sends, counted for the deadline; the end of
/// the stream when the host closes its side.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    head: Bytes,
    progress: Arc<AtomicU64>,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        while self.head.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => self.head = chunk,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.head.len().min(buf.remaining());
        let chunk = self.head.split_to(n);
        buf.put_slice(&chunk);
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

/// A reader or writer whose bytes count as progress (for the call's deadline).
struct Counted<T> {
    inner: T,
    progress: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.progress.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
