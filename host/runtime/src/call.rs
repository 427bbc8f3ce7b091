//! One call into a plugin: a fresh wasmtime `Store` and instance with the plugin's grants,
//! memory cap and deadline, and the mapping of its failures to `StoreError::PluginFault`.
//!
//! A fresh instance per call is deliberate: an instance that trapped is poisoned, and one
//! that ran out of memory or time is in an unknown state. Dropping the whole `Store` after
//! each call makes every fault harmless to the next call (≈30 µs with the pooling allocator).
//!
//! # The deadline and long streams
//!
//! The deadline bounds guest *computation*, not transfer time. Two rules:
//! - **Progress resets it.** When an epoch check finds the deadline passed, the callback
//!   asks whether any bytes moved on the call's host streams since the last check; if so the
//!   driver is working and the clock restarts. A 2 GiB upload that takes 20 s is never cut.
//! - **Waiting in the host does not count.** A call hook pauses the clock while the guest is
//!   inside a host call (waiting for the client's next bytes, for the client to read, for a
//!   long `sync` of the file), beyond a 1 ms grace per call. So a slow disk or client never
//!   kills a call, and a guest cannot dodge the deadline by spinning on cheap host calls.
//!
//! So a call is stopped after `cpu_deadline` of guest execution without moving a byte: a
//! spinning loop within about a quarter of the deadline after it expires (checks come every
//! `slice`: a quarter of the deadline, at most 100 ms), a call without streams (`size`,
//! `delete`) after `cpu_deadline` of running. Each check that extends the deadline yields to
//! the tokio scheduler so a busy plugin cannot starve other calls on its thread. Not caught:
//! a driver that trickles a byte per deadline and spins in between (CPU, never memory, and
//! the operator chose the plugin), and a peer that stops sending or reading (no CPU; the HTTP
//! layer's timeouts own that).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use wasmtime::component::{Component, InstancePre, ResourceTable};
use wasmtime::{
    CallHook, Engine, PoolConcurrencyLimitError, ResourceLimiter, Store, StoreLimits,
    StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::outbound::OutboundHttp;

use crate::store::StoreError;

/// How often the engine's epoch advances (the ticker thread in `Runtime`).
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// The name under which a granted directory appears to the guest.
const GUEST_DIR: &str = "store";

/// Time in each host call that still counts as guest time (see the module doc).
const HOST_CALL_GRACE: Duration = Duration::from_millis(1);

/// Host resources (streams, descriptors, pollables) one call may hold at once. A driver needs
/// a handful; the bound keeps a misbehaving one from growing host memory.
const MAX_RESOURCES: usize = 1024;

/// Bytes of guest stderr logged per call; the rest is dropped.
const MAX_LOG_BYTES: usize = 16 * 1024;

/// What every call of one plugin gets: its name, grants and limits.
#[derive(Debug)]
pub(crate) struct CallSettings {
    pub plugin: Arc<str>,
    pub dir: Option<PathBuf>,
    /// `host:port` authorities the plugin may reach over `wasi:http`.
    pub hosts: Arc<[String]>,
    /// The plugin's settings, given to it as its environment.
    pub settings: Arc<[(String, String)]>,
    /// Bound on each phase of an outgoing request (connect, first byte, between bytes).
    pub network_timeout: Duration,
    pub memory_bytes: usize,
    pub deadline: Duration,
    /// `RuntimeConfig::blocking_file_io`.
    pub blocking_file_io: bool,
}

impl CallSettings {
    /// The settings of a plugin granted nothing (no directory, hosts or settings): the
    /// validators and the inspector.
    pub fn ungranted(id: &str, limits: &crate::Limits) -> Self {
        CallSettings {
            plugin: id.into(),
            dir: None,
            hosts: Arc::new([]),
            settings: Arc::new([]),
            network_timeout: limits.network_timeout,
            memory_bytes: limits.memory_bytes,
            deadline: limits.cpu_deadline,
            blocking_file_io: false,
        }
    }
}

/// The data of one call's `Store`.
pub(crate) struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: OutboundHttp,
    pub table: ResourceTable,
    limiter: CallLimiter,
    watchdog: Watchdog,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Call counters: of one loaded version of a plugin, which also adds to its `parent` (the
/// plugin's lifetime totals, which never go down across swaps and rollbacks).
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    /// Calls started.
    pub calls: AtomicU64,
    /// Calls that ended in a fault (trap, deadline, memory cap).
    pub faults: AtomicU64,
    /// Of the faults: calls stopped by the deadline.
    pub deadline_hits: AtomicU64,
    /// Of the faults: calls stopped by the memory cap.
    pub memory_hits: AtomicU64,
    pub parent: Option<Arc<CallStats>>,
}

/// Why a call failed, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    Deadline,
    Memory,
    Trap,
}

impl CallStats {
    pub fn child_of(parent: &Arc<CallStats>) -> Self {
        CallStats {
            parent: Some(parent.clone()),
            ..Default::default()
        }
    }

    fn record_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.record_call();
        }
    }

    fn record_fault(&self, kind: FaultKind) {
        self.faults.fetch_add(1, Ordering::Relaxed);
        match kind {
            FaultKind::Deadline => self.deadline_hits.fetch_add(1, Ordering::Relaxed),
            FaultKind::Memory => self.memory_hits.fetch_add(1, Ordering::Relaxed),
            FaultKind::Trap => 0,
        };
        if let Some(p) = &self.parent {
            p.record_fault(kind);
        }
    }
}

/// The kinds of plugin, as statuses, errors and logs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Store,
    Validator,
    Inspector,
}

impl PluginKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::Validator => "validator",
            Self::Inspector => "inspector",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a world (one WIT contract) tells [`Plugin`]: how to pre-instantiate, instantiate
/// and check a component of it.
pub(crate) trait World: Send + Sync + Sized + 'static {
    const KIND: PluginKind;
    /// The WIT package, as the status reports it.
    const WIT: &'static str;
    /// What a component must export, as a refusal names it.
    const EXPORT: &'static str;
    /// The `Unavailable` message when no instance slot is free.
    const BUSY: &'static str = "too many concurrent plugin calls";

    type Pre: Clone + Send + Sync + 'static;
    type Instance: Send + 'static;
    /// What a loaded version says about itself.
    type Info: Send + Sync + 'static;

    /// Checks the component exports the contract.
    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre>;

    fn instantiate(
        pre: &Self::Pre,
        store: &mut Store<CallState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send;

    /// The `info` call every contract has, asked of each version when it is loaded.
    fn info(
        instance: &Self::Instance,
        store: &mut Store<CallState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Info>> + Send;

    /// The name the component gives itself, and its version.
    fn name(info: &Self::Info) -> &str;
    fn version(info: &Self::Info) -> &str;

    /// What the status lists as the version's capabilities (only stores have any).
    fn capabilities(_info: &Self::Info) -> Vec<&'static str> {
        Vec::new()
    }

    /// Refuses a compiled component before it is linked (e.g. one needing grants it lacks).
    fn check_component(
        _engine: &Engine,
        _settings: &CallSettings,
        _component: &Component,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// Refuses a new version that cannot replace the one serving.
    fn check_swap(_id: &str, _old: &Self::Info, _new: &Self::Info) -> anyhow::Result<()> {
        Ok(())
    }

    /// The load error when the `info` call failed.
    fn info_failed(id: &str, error: StoreError) -> anyhow::Error {
        anyhow::anyhow!("{} {id}: info failed: {error}", Self::KIND)
    }
}

/// A live call: the store and the instantiated component of world `W`.
pub(crate) struct Call<W: World> {
    pub store: wasmtime::Store<CallState>,
    pub instance: W::Instance,
    plugin: Arc<str>,
    stats: Arc<CallStats>,
}

impl<W: World> Call<W> {
    /// A fresh store and instance. `progress` is the byte counter of the call's host streams
    /// (see the module doc); calls without streams pass a counter nobody bumps.
    pub async fn start(
        engine: &Engine,
        pre: &W::Pre,
        settings: &CallSettings,
        stats: &Arc<CallStats>,
        progress: Arc<AtomicU64>,
    ) -> Result<Self, StoreError> {
        let mut store = new_store(engine, settings, stats, progress)?;
        let plugin = settings.plugin.clone();
        match W::instantiate(pre, &mut store).await {
            Ok(instance) => Ok(Call {
                store,
                instance,
                plugin,
                stats: stats.clone(),
            }),
            Err(e) if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                tracing::warn!(plugin = %plugin, error = %e, "no free plugin instance slot");
                Err(StoreError::Unavailable(W::BUSY.into()))
            }
            Err(e) => Err(fault(&plugin, store.data(), stats, &e)),
        }
    }

    /// The `PluginFault` for an error that aborted this call (trap, deadline, memory cap).
    pub fn fault(&self, error: &wasmtime::Error) -> StoreError {
        fault(&self.plugin, self.store.data(), &self.stats, error)
    }
}

/// A fresh `Store` for one call with the plugin's grants, memory cap and deadline, the call
/// counted; [`Call::start`] instantiates a plugin's component in it.
fn new_store(
    engine: &Engine,
    settings: &CallSettings,
    stats: &Arc<CallStats>,
    progress: Arc<AtomicU64>,
) -> Result<wasmtime::Store<CallState>, StoreError> {
    stats.record_call();
    let wasi = wasi_ctx(settings)?;
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let state = CallState {
        wasi,
        http: WasiHttpCtx::new(),
        outbound: OutboundHttp {
            plugin: settings.plugin.clone(),
            hosts: settings.hosts.clone(),
            timeout: settings.network_timeout,
        },
        table,
        limiter: CallLimiter::new(settings.memory_bytes),
        watchdog: Watchdog {
            progress,
            seen: 0,
            idle_since: Instant::now(),
            in_host_since: None,
            limit: settings.deadline,
            expired: false,
        },
    };
    let mut store = wasmtime::Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.call_hook(|mut ctx, hook| {
        ctx.data_mut().watchdog.on_call_hook(hook);
        Ok(())
    });
    let slice = slice_ticks(settings.deadline);
    // With epochs on, a store's deadline is otherwise already due: set it every time.
    store.set_epoch_deadline(slice);
    store.epoch_deadline_callback(move |mut ctx| {
        if ctx.data_mut().watchdog.expired_now() {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(slice))
        }
    });
    Ok(store)
}

/// Classifies, counts and logs the failure of a call.
fn fault(
    plugin: &Arc<str>,
    state: &CallState,
    stats: &CallStats,
    error: &wasmtime::Error,
) -> StoreError {
    let (kind, reason) = if state.watchdog.expired {
        (
            FaultKind::Deadline,
            format!(
                "deadline: ran {} ms without moving any bytes",
                state.watchdog.limit.as_millis()
            ),
        )
    } else if let Some(desired) = state.limiter.denied {
        (
            FaultKind::Memory,
            format!(
                "memory: tried to grow linear memory to {desired} bytes, over the cap of {} bytes",
                state.limiter.cap
            ),
        )
    } else if let Some(trap) = error.downcast_ref::<Trap>() {
        let text = trap.to_string();
        (
            FaultKind::Trap,
            format!(
                "trap: {}",
                text.strip_prefix("wasm trap: ").unwrap_or(&text)
            ),
        )
    } else {
        (FaultKind::Trap, format!("trap: {error}"))
    };
    stats.record_fault(kind);
    tracing::warn!(plugin = %plugin, %reason, error = ?error, "store plugin call failed");
    StoreError::PluginFault {
        plugin: plugin.to_string(),
        reason,
    }
}

/// Deny by default: no arguments, no stdin or stdout, no sockets; the environment holds the
/// plugin's settings and nothing else, plus the granted directory (if any) and stderr, which
/// goes to the log. Outgoing HTTP is checked per request (`outbound`).
fn wasi_ctx(settings: &CallSettings) -> Result<WasiCtx, StoreError> {
    let mut builder = WasiCtxBuilder::new();
    builder
        // Before the preopen: the directory captures this setting.
        .allow_blocking_current_thread(settings.blocking_file_io)
        .stderr(GuestStderr(settings.plugin.clone()))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .envs(&settings.settings);
    if let Some(dir) = &settings.dir {
        builder
            .preopened_dir(dir, GUEST_DIR, FsPerms::ReadWrite)
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot open the directory granted to {}: {}: {e}",
                    settings.plugin,
                    dir.display()
                ))
            })?;
    }
    Ok(builder.build())
}

/// Epoch ticks between two deadline checks: a quarter of the deadline, at least one tick,
/// at most 100 ms.
fn slice_ticks(deadline: Duration) -> u64 {
    let ticks = deadline.as_millis() / TICK.as_millis() / 4;
    ticks.clamp(1, 10) as u64
}

struct Watchdog {
    progress: Arc<AtomicU64>,
    /// The byte count at the last check.
    seen: u64,
    /// Start of the current stretch without progress, moved forward by time spent waiting
    /// in host calls.
    idle_since: Instant,
    in_host_since: Option<Instant>,
    limit: Duration,
    expired: bool,
}

impl Watchdog {
    fn on_call_hook(&mut self, hook: CallHook) {
        match hook {
            CallHook::CallingHost => self.in_host_since = Some(Instant::now()),
            CallHook::ReturningFromHost => {
                if let Some(entered) = self.in_host_since.take() {
                    let waited = entered.elapsed().saturating_sub(HOST_CALL_GRACE);
                    self.idle_since += waited;
                }
            }
            CallHook::CallingWasm | CallHook::ReturningFromWasm => {}
        }
    }

    /// Called at each deadline check: true when the guest ran for `limit` without a byte
    /// moving.
    fn expired_now(&mut self) -> bool {
        let now = Instant::now();
        let moved = self.progress.load(Ordering::Relaxed);
        if moved != self.seen {
            self.seen = moved;
            self.idle_since = now;
        }
        self.expired = now.saturating_duration_since(self.idle_since) >= self.limit;
        self.expired
    }
}

/// `StoreLimits` (memory cap, grow failures trap) that also remembers that it refused
/// memory, so the fault can say "memory" rather than a generic trap.
struct CallLimiter {
    inner: StoreLimits,
    cap: usize,
    denied: Option<usize>,
}

impl CallLimiter {
    fn new(cap: usize) -> Self {
        Self {
            inner: StoreLimitsBuilder::new()
                .memory_size(cap)
                .trap_on_grow_failure(true)
                .build(),
            cap,
            denied: None,
        }
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let verdict = self.inner.memory_growing(current, desired, maximum);
        if !matches!(verdict, Ok(true)) {
            self.denied = Some(desired);
        }
        verdict
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied.get_or_insert(0);
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// A guest's stderr: each line goes to the log as a warning tagged with the plugin's name
/// (a Rust driver's panic message lands here), at most `MAX_LOG_BYTES` per stream.
struct GuestStderr(Arc<str>);

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            plugin: self.0.clone(),
            line: Vec::new(),
            logged: 0,
            dropped: false,
        })
    }
}

struct LineLogger {
    plugin: Arc<str>,
    line: Vec<u8>,
    logged: usize,
    dropped: bool,
}

impl LineLogger {
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        if self.logged < MAX_LOG_BYTES {
            let text = String::from_utf8_lossy(&self.line);
            tracing::warn!(plugin = %self.plugin, "plugin stderr: {}", text.trim_end());
        } else if !self.dropped {
            self.dropped = true;
            tracing::warn!(plugin = %self.plugin, "plugin stderr: further output dropped");
        }
        self.logged += self.line.len();
        self.line.clear();
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        for &b in buf {
            if b == b'\n' || self.line.len() >= 4096 {
                self.emit();
            }
            if b != b'\n' {
                self.line.push(b);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
    }
}
