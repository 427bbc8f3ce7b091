//! The plugin runtime: one wasmtime engine that compiles, caches, limits and calls the
//! WebAssembly components behind Glass's native traits. Handlers never see it: they get an
//! `Arc<dyn ImageStore>` that is a [`WasmStore`].
//!
//! - One [`Engine`] per process: component model, epoch interruption (a ticker thread
//!   advances the epoch every 10 ms), pooling allocator sized by [`RuntimeConfig`].
//! - Components are compiled once and cached as `.cwasm` files keyed by the component's
//!   sha256 and the engine's compatibility hash (`compiled`).
//! - Each plugin (store, validator, inspector) is one generic hot-swappable `Plugin` over its
//!   world: held pre-instantiated in an `ArcSwap`, so a new version can be swapped in while
//!   calls in flight finish on the old one ([`WasmStore::reload`]), with rollback and
//!   per-version counters ([`PluginStatus`]).
//! - Every call gets a fresh `Store` and instance with the plugin's grants, memory cap and
//!   deadline (`call`); a trap, deadline or memory exhaustion becomes
//!   `StoreError::PluginFault` and the next call is unaffected.

mod bindings;
mod budget;
mod call;
mod compiled;
mod config;
mod inspector;
mod outbound;
mod plugin;
pub mod store;
mod streams;
mod validator;
mod wasm_store;
mod worlds;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use budget::Budget;
pub use budget::CallBudgets;
use call::{CallState, TICK};
use compiled::ComponentCache;
pub use config::PluginCallsConfig;

pub use inspector::{
    Decompressed, INSPECT_FORMAT, INSPECTOR_WIT, InspectDetected, InspectError, InspectFeed,
    InspectReport, InspectResult, InspectViolation, WasmInspector,
};
pub use plugin::{PluginKind, PluginStatus, PluginTotals, PluginVersion};
pub use validator::{
    BUILTIN_VALIDATORS, VALIDATOR_METADEF, VALIDATOR_WIT, ValidationInput, ValidatorChange,
    ValidatorChangeOp, ValidatorNamespace, ValidatorProperty, ValidatorPropertyDefinition,
    ValidatorSpec, Violation, WasmValidator, validator_source,
};
pub use wasm_store::{STORE_WIT, WasmStore};

/// The built-in file store component (`plugins/store-fs`), embedded in the binary so
/// `glass serve` needs nothing else on disk.
pub const STORE_FS: &[u8] = include_bytes!(env!("GLASS_STORE_FS_WASM"));
/// The built-in read-only HTTP store component (`plugins/store-http`).
pub const STORE_HTTP: &[u8] = include_bytes!(env!("GLASS_STORE_HTTP_WASM"));

/// The built-in S3 store component (`plugins/store-s3`).
pub const STORE_S3: &[u8] = include_bytes!(env!("GLASS_STORE_S3_WASM"));

/// The built-in Swift store component (`plugins/store-swift`).
pub const STORE_SWIFT: &[u8] = include_bytes!(env!("GLASS_STORE_SWIFT_WASM"));

/// The drivers built into the binary, by the name a configuration uses.
pub const BUILTIN_DRIVERS: &[(&str, &[u8])] = &[
    ("store-fs", STORE_FS),
    ("store-http", STORE_HTTP),
    ("store-s3", STORE_S3),
    ("store-swift", STORE_SWIFT),
];

/// Where a plugin's component comes from.
#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// Component bytes built into the binary, such as [`STORE_FS`].
    Bytes(&'static [u8]),
    /// A component file (`.wasm`) on disk.
    Path(PathBuf),
    /// Component bytes received at run time (a hot swap through the admin API).
    Owned(Arc<[u8]>),
}

impl ComponentSource {
    /// The built-in component called `name` (`"store-fs"`), if there is one.
    pub fn builtin(name: &str) -> Option<Self> {
        BUILTIN_DRIVERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| Self::Bytes(bytes))
    }

    /// A built-in name, or else a path to a component file.
    pub fn from_config(value: &str) -> Self {
        Self::builtin(value).unwrap_or_else(|| Self::Path(PathBuf::from(value)))
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Bytes(b) => format!("built-in component ({} bytes)", b.len()),
            Self::Path(p) => p.display().to_string(),
            Self::Owned(b) => format!("uploaded component ({} bytes)", b.len()),
        }
    }
}

/// What a plugin may reach. Everything not granted here is denied: no arguments, no
/// sockets, no stdin/stdout (stderr goes to the log), no environment but its settings.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// A host directory the plugin may read and write (created if missing). It is the
    /// plugin's only preopened directory; it cannot reach anything outside it.
    pub dir: Option<PathBuf>,
    /// Authorities (`host:port`; a bare host means its ports 80 and 443) the plugin may send
    /// HTTP requests to through `wasi:http`. Empty: no network at all.
    pub hosts: Vec<String>,
    /// The plugin's settings (endpoint, bucket, credentials, …), given to it as its
    /// environment (`wasi:cli/environment`), keys verbatim.
    pub settings: Vec<(String, String)>,
}

/// Per-call limits of a plugin.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Cap on the linear memory of one call's instance. At most
    /// [`RuntimeConfig::max_memory_bytes`].
    pub memory_bytes: usize,
    /// How long a call may run without moving a byte on its streams before it is stopped
    /// (see the `call` module: long transfers that keep moving are never cut).
    pub cpu_deadline: Duration,
    /// Bound on each phase of an outgoing HTTP request: connecting, waiting for the first
    /// byte of the response, and waiting between two chunks of it.
    pub network_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            cpu_deadline: Duration::from_secs(5),
            network_timeout: Duration::from_secs(30),
        }
    }
}

/// One configured store plugin.
#[derive(Debug, Clone)]
pub struct StoreSpec {
    /// The store's id in the configuration; faults and logs name the plugin by it.
    pub id: String,
    pub component: ComponentSource,
    pub grants: Grants,
    pub limits: Limits,
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components (`.cwasm`) are cached, e.g. `<data_dir>/plugin-cache`.
    pub cache_dir: PathBuf,
    /// Plugin calls that can run at once, all plugins together (pooling allocator slots).
    /// A call beyond that fails with `StoreError::Unavailable`; the budgets below keep each
    /// kind of call within its share.
    pub max_concurrent_calls: u32,
    /// The largest memory cap any plugin may be given (size of a pooled memory slot).
    pub max_memory_bytes: usize,
    /// Threads of the runtime's own tokio runtime, where every plugin call runs.
    pub io_threads: usize,
    /// Let a plugin's file operations block the thread running it instead of hopping to
    /// tokio's blocking pool for each one. Measured with store-fs on 1 GiB: write ≈1.0 GB/s
    /// and read ≈2.7 GB/s with it, ≈0.5 and ≈1.0 GB/s without (native `tokio::fs`: ≈0.8 and
    /// ≈2.0). Safe to leave on because calls run on the plugin threads, never on the
    /// threads serving HTTP: a slow disk (or a long `sync`) stalls plugin calls only.
    pub blocking_file_io: bool,
    /// Concurrent calls of each kind (`budget`); keep `max_concurrent_calls` at least
    /// [`CallBudgets::pool_size`] of the stores loaded, so a call with a place finds a slot.
    pub budgets: CallBudgets,
}

impl RuntimeConfig {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            max_concurrent_calls: 128,
            max_memory_bytes: 1 << 30,
            io_threads: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(2, 8),
            blocking_file_io: true,
            budgets: CallBudgets::default(),
        }
    }
}

/// The engine, the linker with WASI, and the compiled-component cache. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<CallState>,
    cache: ComponentCache,
    config: RuntimeConfig,
    /// Plugin calls run here, apart from the threads that serve HTTP. `Option` only so
    /// `Drop` can take it.
    io: Option<tokio::runtime::Runtime>,
    io_handle: tokio::runtime::Handle,
    /// Places of the inspector's calls and of all validators' calls (stores hold their own).
    inspector_budget: Arc<Budget>,
    validator_budget: Arc<Budget>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        // May run inside another tokio runtime, where a blocking shutdown would panic.
        if let Some(io) = self.io.take() {
            io.shutdown_background();
        }
    }
}

impl Runtime {
    /// A runtime with the default sizing, caching compiled components in `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> anyhow::Result<Self> {
        Self::with_config(RuntimeConfig::new(cache_dir))
    }

    pub fn with_config(config: RuntimeConfig) -> anyhow::Result<Self> {
        let engine = Engine::new(&engine_config(&config))
            .map_err(anyhow::Error::from)
            .context("creating the wasm engine")?;
        start_epoch_ticker(&engine)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking WASI: {e}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking WASI HTTP: {e}"))?;
        let cache = ComponentCache::new(config.cache_dir.clone(), &engine)?;
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.io_threads.max(1))
            .thread_name("glass-plugin")
            .enable_all()
            .build()
            .context("starting the plugin threads")?;
        let io_handle = io.handle().clone();
        let budgets = config.budgets;
        let inspector_budget = Arc::new(Budget::new(
            "inspector calls",
            budgets.inspector,
            budgets.queue_wait,
        ));
        let validator_budget = Arc::new(Budget::new(
            "validator calls",
            budgets.validators,
            budgets.queue_wait,
        ));
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache,
                config,
                io: Some(io),
                io_handle,
                inspector_budget,
                validator_budget,
            }),
        })
    }

    /// Where compiled components are cached.
    pub fn cache_dir(&self) -> &Path {
        self.inner.cache.dir()
    }

    /// Compiles (or loads from the cache) the store component of `spec`, checks that it
    /// exports `glass:store/driver@0.1.0` and asks it for its `info`.
    pub async fn load_store(&self, spec: StoreSpec) -> anyhow::Result<Arc<WasmStore>> {
        plugin::check_limits(self, PluginKind::Store, &spec.id, &spec.limits)?;
        if let Some(dir) = &spec.grants.dir {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "store {}: creating its directory {}",
                    spec.id,
                    dir.display()
                )
            })?;
        }
        WasmStore::load(self.clone(), spec).await
    }

    /// Compiles off the async threads (a component takes hundreds of milliseconds).
    async fn compile(&self, source: &ComponentSource) -> anyhow::Result<compiled::Compiled> {
        let this = self.clone();
        let source = source.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = match &source {
                ComponentSource::Bytes(b) => std::borrow::Cow::Borrowed(*b),
                ComponentSource::Path(p) => std::borrow::Cow::Owned(
                    std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
                ),
                ComponentSource::Owned(b) => std::borrow::Cow::Borrowed(&b[..]),
            };
            this.inner
                .cache
                .load(&this.inner.engine, &bytes)
                .with_context(|| format!("loading {}", source.describe()))
        })
        .await?
    }

    fn io_handle(&self) -> tokio::runtime::Handle {
        self.inner.io_handle.clone()
    }

    fn budgets(&self) -> CallBudgets {
        self.inner.config.budgets
    }

    fn inspector_budget(&self) -> Arc<Budget> {
        self.inner.inspector_budget.clone()
    }

    fn validator_budget(&self) -> Arc<Budget> {
        self.inner.validator_budget.clone()
    }

    fn max_memory_bytes(&self) -> usize {
        self.inner.config.max_memory_bytes
    }

    fn blocking_file_io(&self) -> bool {
        self.inner.config.blocking_file_io
    }

    fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn linker(&self) -> &Linker<CallState> {
        &self.inner.linker
    }
}

/// Component model, epoch interruption, pooling allocator. Changing anything here changes
/// the engine's compatibility hash and so invalidates cached artefacts (by design).
fn engine_config(config: &RuntimeConfig) -> Config {
    let calls = config.max_concurrent_calls.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(calls)
        // A Rust component has a few core instances (its module plus adapter shims) and
        // tables; one memory.
        .total_core_instances(calls.saturating_mul(8))
        .total_tables(calls.saturating_mul(8))
        .total_memories(calls)
        .total_stacks(calls)
        .max_memory_size(config.max_memory_bytes);
    // Memory slots keep wasmtime's default 4 GiB reservation (no bounds checks): reserving
    // only `max_memory_bytes` measured markedly slower uploads. The pool's address space is
    // about max_concurrent_calls × 4 GiB, virtual only (nothing committed until used).
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .parallel_compilation(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}

/// Advances the engine's epoch every `TICK` for as long as the engine lives (components,
/// pre-instances and stores keep it alive; the thread ends soon after the last is dropped).
fn start_epoch_ticker(engine: &Engine) -> anyhow::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("glass-wasm-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .context("starting the epoch ticker thread")?;
    Ok(())
}
