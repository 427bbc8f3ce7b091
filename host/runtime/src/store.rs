//! Image data stores as the host sees them: the native [`ImageStore`] trait that handlers
//! call. [`crate::WasmStore`] adapts a WebAssembly store component to it; callers never see
//! wasmtime. Bytes move as async streams; hashing happens in the host, never in a store.

use std::pin::Pin;

use async_trait::async_trait;
use tokio::io::AsyncRead;
use uuid::Uuid;

/// A stream of image bytes.
pub type ByteReader = Pin<Box<dyn AsyncRead + Send>>;

/// What a store driver says about itself (`info` in the `glass:store` contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    pub driver: String,
    pub version: String,
    pub can_write: bool,
    pub can_delete: bool,
    pub ranged_reads: bool,
}

/// Where `add` put the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Opaque to the host: only the store that wrote it interprets it.
    pub location: String,
    pub size: u64,
}

/// Errors of a store call: the contract's `store-error` cases, plus the plugin failing
/// itself (trap, CPU deadline, memory cap), which the host reports with the plugin's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("image data not found")]
    NotFound,
    #[error("image data already exists")]
    AlreadyExists,
    #[error("store refused access: {0}")]
    AccessDenied(String),
    #[error("invalid location: {0}")]
    InvalidLocation(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Other(String),
    #[error("store plugin {plugin} failed: {reason}")]
    PluginFault { plugin: String, reason: String },
    /// The bytes given to `add` could not be read (the client went away mid-upload).
    #[error("reading the image data failed: {0}")]
    Input(String),
}

#[async_trait]
pub trait ImageStore: Send + Sync + 'static {
    fn info(&self) -> StoreInfo;

    /// Streams `data` into the store as the data of `image`; `size_hint` is the expected
    /// length when known. Nothing is visible at the returned location unless this succeeds.
    async fn add(
        &self,
        image: Uuid,
        data: ByteReader,
        size_hint: Option<u64>,
    ) -> Result<Stored, StoreError>;

    /// The bytes at `location` from `offset`, `length` of them (all if `None`). A failure
    /// after the first byte surfaces as an error from the reader.
    async fn get(
        &self,
        location: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteReader, StoreError>;

    async fn size(&self, location: &str) -> Result<u64, StoreError>;

    async fn delete(&self, location: &str) -> Result<(), StoreError>;

    /// Removes whatever an unfinished `add` of `image` left behind (after a crash). Through a
    /// [`StoreEntry`], a failure (the backend is down) is not returned: the discard is
    /// deferred to the reaper, which retries it once it is safe (see [`PendingDiscards`]).
    async fn discard_partial(&self, image: Uuid) -> Result<(), StoreError>;
}
