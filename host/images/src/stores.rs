//! The stores a deployment has: each configured store's entry (its plugin and what
//! `GET /v2/info/stores` shows), the default one, and the discards the reaper retries.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use uuid::Uuid;

use glass_runtime::WasmStore;
pub use glass_runtime::store::{ByteReader, ImageStore, StoreError, StoreInfo, Stored};

use crate::config::StoreConfig;

/// One configured store: its driver and what `GET /v2/info/stores` says about it.
pub struct StoreEntry {
    pub id: String,
    pub description: Option<String>,
    pub weight: i64,
    pub default: bool,
    /// Downloads from this store go through the image cache.
    pub cacheable: bool,
    /// The configured driver: a built-in name or a component path.
    pub driver: String,
    /// What `GET /v2/info/stores/detail` shows: the settings, except secrets.
    pub properties: serde_json::Map<String, serde_json::Value>,
    pub store: Arc<dyn ImageStore>,
    /// The same store as a plugin, for status, hot swap and rollback.
    pub plugin: Arc<WasmStore>,
    /// Discards of unfinished uploads that failed, for the reaper to retry.
    pub pending_discards: Arc<PendingDiscards>,
}

impl StoreEntry {
    pub fn new(config: &StoreConfig, plugin: Arc<WasmStore>) -> Self {
        let pending_discards = Arc::new(PendingDiscards::default());
        let store = Arc::new(DeferredDiscard {
            id: config.id.clone(),
            inner: plugin.clone(),
            pending: pending_discards.clone(),
        });
        StoreEntry {
            id: config.id.clone(),
            description: config.description.clone(),
            weight: config.weight,
            default: config.default,
            cacheable: config.cacheable(),
            driver: config.driver.clone(),
            properties: public_properties(config),
            store,
            plugin,
            pending_discards,
        }
    }
}

/// A store's settings fit to show an admin: everything but credentials.
fn public_properties(config: &StoreConfig) -> serde_json::Map<String, serde_json::Value> {
    const SECRET_WORDS: &[&str] = &["key", "secret", "password", "token", "credential"];
    let mut properties = serde_json::Map::new();
    for (name, value) in &config.settings {
        let lower = name.to_ascii_lowercase();
        if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
            continue;
        }
        if let Ok(value) = serde_json::to_value(value) {
            properties.insert(name.clone(), value);
        }
    }
    if let Some(dir) = &config.directory {
        properties.insert("directory".into(), dir.display().to_string().into());
    }
    properties
}

/// The stores a deployment has, in configuration order, and the one new data goes to.
#[derive(Default)]
pub struct StoreSet {
    default_id: Option<String>,
    entries: Vec<StoreEntry>,
}

impl StoreSet {
    /// Adds a store; the first one added is the default until another is marked default.
    pub fn insert(&mut self, mut entry: StoreEntry) {
        if entry.default || self.default_id.is_none() {
            self.default_id = Some(entry.id.clone());
        }
        self.entries.retain(|e| e.id != entry.id);
        entry.default = false;
        self.entries.push(entry);
        let default_id = self.default_id.clone();
        for e in &mut self.entries {
            e.default = Some(&e.id) == default_id.as_ref();
        }
    }

    /// The store id and store that new image data goes to, if any store is configured.
    pub fn default_store(&self) -> Option<(&str, &Arc<dyn ImageStore>)> {
        let id = self.default_id.as_deref()?;
        Some((id, self.get(id)?))
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn ImageStore>> {
        self.entry(id).map(|e| &e.store)
    }

    pub fn entry(&self, id: &str) -> Option<&StoreEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Every store, in configuration order.
    pub fn entries(&self) -> &[StoreEntry] {
        &self.entries
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<dyn ImageStore>)> {
        self.entries.iter().map(|e| (&e.id, &e.store))
    }

    /// The weight of a store (0 for an unknown one), to order an image's locations.
    pub fn weight(&self, id: &str) -> i64 {
        self.entry(id).map_or(0, |e| e.weight)
    }
}

/// Image ids whose partial data a store could not discard (the backend was down or hung when
/// an upload or import failed): without a retry, an unfinished multipart upload or a segment
/// set would stay in the backend for good. The reaper (`periodic::reaper`) persists them and
/// retries each once no upload can be running into that store for the image.
#[derive(Default)]
pub struct PendingDiscards(Mutex<BTreeSet<Uuid>>);

impl PendingDiscards {
    pub fn add(&self, image: Uuid) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(image);
    }

    /// Every pending id, leaving none.
    pub fn take(&self) -> Vec<Uuid> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }
}

/// A store whose failed `discard_partial` is recorded in [`PendingDiscards`] instead of
/// failing its caller (an upload's clean-up, the start-up sweep); everything else passes
/// through.
struct DeferredDiscard {
    id: String,
    inner: Arc<WasmStore>,
    pending: Arc<PendingDiscards>,
}

#[async_trait]
impl ImageStore for DeferredDiscard {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }

    async fn add(
        &self,
        image: Uuid,
        data: ByteReader,
        size_hint: Option<u64>,
    ) -> Result<Stored, StoreError> {
        self.inner.add(image, data, size_hint).await
    }

    async fn get(
        &self,
        location: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteReader, StoreError> {
        self.inner.get(location, offset, length).await
    }

    async fn size(&self, location: &str) -> Result<u64, StoreError> {
        self.inner.size(location).await
    }

    async fn delete(&self, location: &str) -> Result<(), StoreError> {
        self.inner.delete(location).await
    }

    async fn discard_partial(&self, image: Uuid) -> Result<(), StoreError> {
        match self.inner.discard_partial(image).await {
            Ok(()) => Ok(()),
            Err(e @ (StoreError::InvalidLocation(_) | StoreError::AccessDenied(_))) => Err(e),
            Err(e) => {
                tracing::warn!(store = %self.id, image = %image, error = %e,
                    "discarding an unfinished upload failed; the reaper will retry");
                self.pending.add(image);
                Ok(())
            }
        }
    }
}
