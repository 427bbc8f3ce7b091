//! The embedded registry engine on sled: one named tree per record kind and per index, every
//! multi-tree write in one sled transaction, a flush before each write returns. Writes (which
//! fsync) run on tokio's blocking pool; reads run inline, since sled serves them from its page
//! cache and a hand-off to another thread cost more than the read itself (measured: ~3× on
//! a list of 20).
//!
//! `images.rs` holds the images, members and tasks, `metadef.rs` the metadata definitions,
//! `tx.rs` the transaction helpers both use; this file opens them and implements
//! [`Registry`] over them.

mod cursor;
mod images;
mod index;
mod layout;
mod list;
mod metadef;
mod tx;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::Registry;
use crate::error::{RegistryError, Result};
use crate::metadef::{
    MetadefAssociation, MetadefDefinition, MetadefKind, MetadefNamespace, MetadefObject,
    MetadefProperty, MetadefResourceType, MetadefTag,
};
use crate::model::{Image, Member, Task};
use crate::query::{ImagePage, ImageQuery};
use images::{ImageTrees, TaskTrees};
use metadef::MetadefTrees;
use tx::engine;

struct Inner {
    images: ImageTrees,
    tasks: TaskTrees,
    metadefs: MetadefTrees,
}

/// The sled-backed [`Registry`].
#[derive(Clone)]
pub struct SledRegistry {
    inner: Arc<Inner>,
}

/// How the sled engine is opened.
#[derive(Debug, Clone)]
pub struct SledOptions {
    /// Bytes of sled's page cache: what bounds the registry's resident memory.
    pub cache_bytes: u64,
    /// zstd-compress what a new registry writes (a registry keeps the choice it was made
    /// with: sled cannot change it later, so one made uncompressed stays so).
    pub compression: bool,
}

impl SledOptions {
    pub fn with_cache_mb(mb: u64) -> Self {
        SledOptions {
            cache_bytes: mb.saturating_mul(1024 * 1024),
            compression: true,
        }
    }
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions::with_cache_mb(128)
    }
}

impl SledRegistry {
    /// Opens (or creates) the registry in `dir` with the default options.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, &SledOptions::default())
    }

    /// Opens (or creates) the registry in `dir`.
    pub fn open_with(dir: &Path, options: &SledOptions) -> Result<Self> {
        // Without its `conf`, sled would take an existing registry for a new one and read
        // it with the wrong compression (a panic at every start): refuse instead.
        let conf_len = std::fs::metadata(dir.join("conf")).map_or(0, |m| m.len());
        if dir.join("db").exists() && conf_len <= 8 {
            return Err(RegistryError::Engine(format!(
                "{}: the registry's db file is there but its conf file is missing or empty; \
                 restore it from the same backup",
                dir.display()
            )));
        }
        let config = |compression: bool| {
            sled::Config::new()
                .path(dir)
                .cache_capacity(options.cache_bytes)
                .use_compression(compression)
        };
        let db = match config(options.compression).open() {
            // Made with the other choice (sled keeps it in the registry's `conf` file).
            Err(sled::Error::Unsupported(e)) if e.contains("use_compression") => {
                config(!options.compression).open()
            }
            opened => opened,
        }
        .map_err(engine)?;
        Ok(SledRegistry {
            inner: Arc::new(Inner {
                images: ImageTrees::open(&db)?,
                tasks: TaskTrees::open(&db)?,
                metadefs: MetadefTrees::open(&db)?,
            }),
        })
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| RegistryError::Engine(format!("registry worker failed: {e}")))?
    }
}

#[async_trait]
impl Registry for SledRegistry {
    async fn create_image(&self, image: Image) -> Result<Image> {
        self.blocking(move |inner| inner.images.create(image)).await
    }

    async fn get_image(&self, id: Uuid) -> Result<Option<Image>> {
        self.inner.images.get(id)
    }

    async fn update_image(&self, image: Image) -> Result<Image> {
        self.blocking(move |inner| inner.images.update(image)).await
    }

    async fn delete_image(&self, id: Uuid, revision: u64) -> Result<()> {
        self.blocking(move |inner| inner.images.delete(id, revision))
            .await
    }

    async fn list_images(&self, query: ImageQuery) -> Result<ImagePage> {
        // A listing can walk far (filters that reject most of the index): off the async
        // workers, so one such call never holds up the requests sharing its thread.
        self.blocking(move |inner| inner.images.list(&query)).await
    }

    async fn image_ids(&self) -> Result<Vec<Uuid>> {
        self.blocking(|inner| inner.images.ids()).await
    }

    async fn add_member(&self, member: Member) -> Result<Member> {
        self.blocking(move |inner| inner.images.add_member(member))
            .await
    }

    async fn get_member(&self, image: Uuid, member: &str) -> Result<Option<Member>> {
        self.inner.images.get_member(image, member)
    }

    async fn list_members(&self, image: Uuid) -> Result<Vec<Member>> {
        self.blocking(move |inner| inner.images.list_members(image))
            .await
    }

    async fn update_member(&self, member: Member) -> Result<Member> {
        self.blocking(move |inner| inner.images.update_member(member))
            .await
    }

    async fn delete_member(&self, image: Uuid, member: &str) -> Result<()> {
        let member = member.to_string();
        self.blocking(move |inner| inner.images.delete_member(image, &member))
            .await
    }

    async fn create_task(&self, task: Task) -> Result<Task> {
        self.blocking(move |inner| inner.tasks.create(task)).await
    }

    async fn get_task(&self, id: Uuid) -> Result<Option<Task>> {
        self.blocking(move |inner| inner.tasks.get(id)).await
    }

    async fn update_task(&self, task: Task) -> Result<Task> {
        self.blocking(move |inner| inner.tasks.update(task)).await
    }

    async fn list_tasks(&self, image: Option<Uuid>) -> Result<Vec<Task>> {
        self.blocking(move |inner| inner.tasks.list(image)).await
    }

    async fn create_metadef_namespace(&self, def: MetadefDefinition) -> Result<MetadefDefinition> {
        self.blocking(move |inner| inner.metadefs.put_definition(def, false))
            .await
    }

    async fn import_metadef_namespace(&self, def: MetadefDefinition) -> Result<MetadefDefinition> {
        self.blocking(move |inner| inner.metadefs.put_definition(def, true))
            .await
    }

    async fn get_metadef_namespace(&self, name: &str) -> Result<Option<MetadefNamespace>> {
        self.inner.metadefs.get_namespace(name)
    }

    async fn get_metadef_definition(&self, name: &str) -> Result<Option<MetadefDefinition>> {
        self.inner.metadefs.get_definition(name)
    }

    async fn list_metadef_namespaces(&self) -> Result<Vec<MetadefNamespace>> {
        self.inner.metadefs.list_namespaces()
    }

    async fn update_metadef_namespace(
        &self,
        name: &str,
        ns: MetadefNamespace,
    ) -> Result<MetadefNamespace> {
        let name = name.to_string();
        self.blocking(move |inner| inner.metadefs.update_namespace(&name, ns))
            .await
    }

    async fn delete_metadef_namespace(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.blocking(move |inner| inner.metadefs.delete_namespace(&name))
            .await
    }

    async fn delete_metadef_contents(&self, namespace: &str, kind: MetadefKind) -> Result<()> {
        let name = namespace.to_string();
        self.blocking(move |inner| inner.metadefs.delete_contents(&name, kind))
            .await
    }

    async fn create_metadef_object(&self, object: MetadefObject) -> Result<MetadefObject> {
        self.blocking(move |inner| inner.metadefs.create(object))
            .await
    }

    async fn get_metadef_object(&self, ns: &str, name: &str) -> Result<Option<MetadefObject>> {
        self.inner.metadefs.get(ns, name)
    }

    async fn list_metadef_objects(&self, ns: &str) -> Result<Vec<MetadefObject>> {
        self.inner.metadefs.list(ns)
    }

    async fn update_metadef_object(
        &self,
        name: &str,
        object: MetadefObject,
    ) -> Result<MetadefObject> {
        let name = name.to_string();
        self.blocking(move |inner| inner.metadefs.update(&name, object))
            .await
    }

    async fn delete_metadef_object(&self, ns: &str, name: &str) -> Result<()> {
        let (ns, name) = (ns.to_string(), name.to_string());
        self.blocking(move |inner| inner.metadefs.delete::<MetadefObject>(&ns, &name))
            .await
    }

    async fn create_metadef_property(&self, property: MetadefProperty) -> Result<MetadefProperty> {
        self.blocking(move |inner| inner.metadefs.create(property))
            .await
    }

    async fn get_metadef_property(&self, ns: &str, name: &str) -> Result<Option<MetadefProperty>> {
        self.inner.metadefs.get(ns, name)
    }

    async fn list_metadef_properties(&self, ns: &str) -> Result<Vec<MetadefProperty>> {
        self.inner.metadefs.list(ns)
    }

    async fn update_metadef_property(
        &self,
        name: &str,
        property: MetadefProperty,
    ) -> Result<MetadefProperty> {
        let name = name.to_string();
        self.blocking(move |inner| inner.metadefs.update(&name, property))
            .await
    }

    async fn delete_metadef_property(&self, ns: &str, name: &str) -> Result<()> {
        let (ns, name) = (ns.to_string(), name.to_string());
        self.blocking(move |inner| inner.metadefs.delete::<MetadefProperty>(&ns, &name))
            .await
    }

    async fn create_metadef_tag(&self, tag: MetadefTag) -> Result<MetadefTag> {
        self.blocking(move |inner| inner.metadefs.create(tag)).await
    }

    async fn create_metadef_tags(
        &self,
        ns: &str,
        tags: Vec<MetadefTag>,
        append: bool,
    ) -> Result<Vec<MetadefTag>> {
        let ns = ns.to_string();
        self.blocking(move |inner| inner.metadefs.put_tags(&ns, tags, append))
            .await
    }

    async fn get_metadef_tag(&self, ns: &str, name: &str) -> Result<Option<MetadefTag>> {
        self.inner.metadefs.get(ns, name)
    }

    async fn list_metadef_tags(&self, ns: &str) -> Result<Vec<MetadefTag>> {
        self.inner.metadefs.list(ns)
    }

    async fn update_metadef_tag(&self, name: &str, tag: MetadefTag) -> Result<MetadefTag> {
        let name = name.to_string();
        self.blocking(move |inner| inner.metadefs.update(&name, tag))
            .await
    }

    async fn delete_metadef_tag(&self, ns: &str, name: &str) -> Result<()> {
        let (ns, name) = (ns.to_string(), name.to_string());
        self.blocking(move |inner| inner.metadefs.delete::<MetadefTag>(&ns, &name))
            .await
    }

    async fn list_metadef_resource_types(&self) -> Result<Vec<MetadefResourceType>> {
        self.inner.metadefs.list_resource_types()
    }

    async fn create_metadef_association(
        &self,
        association: MetadefAssociation,
    ) -> Result<MetadefAssociation> {
        self.blocking(move |inner| inner.metadefs.create(association))
            .await
    }

    async fn list_metadef_associations(&self, ns: &str) -> Result<Vec<MetadefAssociation>> {
        self.inner.metadefs.list(ns)
    }

    async fn delete_metadef_association(&self, ns: &str, name: &str) -> Result<()> {
        let (ns, name) = (ns.to_string(), name.to_string());
        self.blocking(move |inner| inner.metadefs.delete::<MetadefAssociation>(&ns, &name))
            .await
    }
}
