//! Glass's metadata registry: the typed records (images, members, tasks) and the [`Registry`]
//! trait every persistence engine implements. The embedded default engine is sled
//! ([`SledRegistry`]); the behaviour any engine must show is `glass-registry-testing`'s
//! `test_suite`.
//!
//! Invariants: no HTTP and no wasm types here; status transitions and compare-and-swap are
//! enforced by the engine inside one atomic write; every write is durable before it returns.

mod codec;
mod error;
mod metadef;
mod model;
pub mod postgres;
mod query;
mod sled;

use async_trait::async_trait;
use uuid::Uuid;

pub use crate::sled::{SledOptions, SledRegistry};
pub use error::{RegistryError, Result};
pub use metadef::{
    MetadefAssociation, MetadefDefinition, MetadefKind, MetadefNamespace, MetadefObject,
    MetadefProperty, MetadefRecord, MetadefResourceType, MetadefTag, MetadefVisibility,
};
pub use model::{
    Image, ImageStatus, Location, Member, MemberStatus, Task, TaskStatus, Timestamp, Visibility,
    now,
};
pub use postgres::{PostgresOptions, PostgresRegistry};
pub use query::{
    Comparison, DEFAULT_LIST_BUDGET, Filter, ImagePage, ImageQuery, MemberStatusFilter, SortDir,
    SortKey, TextField, TimeField, Viewer, VisibilityScope,
};

/// A metadata store. All methods are atomic; a method that writes returns only once the
/// change is durable.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Stores a new image (revision 1). Fails with `DuplicateImage` if the id is taken.
    async fn create_image(&self, image: Image) -> Result<Image>;

    async fn get_image(&self, id: Uuid) -> Result<Option<Image>>;

    /// Replaces an image if its stored revision is still `image.revision` (compare-and-swap)
    /// and the status change is allowed. Returns the stored image with its new revision.
    async fn update_image(&self, image: Image) -> Result<Image>;

    /// Removes an image with its members, if its stored revision is still `revision`.
    async fn delete_image(&self, id: Uuid, revision: u64) -> Result<()>;

    /// One page of images in the query's order.
    async fn list_images(&self, query: ImageQuery) -> Result<ImagePage>;

    /// Every image id, for sweeps and audits (unordered, unpaged).
    async fn image_ids(&self) -> Result<Vec<Uuid>>;

    /// Adds a member to an existing image. Fails with `DuplicateMember` if present.
    async fn add_member(&self, member: Member) -> Result<Member>;

    async fn get_member(&self, image: Uuid, member: &str) -> Result<Option<Member>>;

    async fn list_members(&self, image: Uuid) -> Result<Vec<Member>>;

    async fn update_member(&self, member: Member) -> Result<Member>;

    async fn delete_member(&self, image: Uuid, member: &str) -> Result<()>;

    async fn create_task(&self, task: Task) -> Result<Task>;

    async fn get_task(&self, id: Uuid) -> Result<Option<Task>>;

    /// Replaces a task if its stored revision is still `task.revision`.
    async fn update_task(&self, task: Task) -> Result<Task>;

    /// Tasks, newest first; with `image` only those of that image.
    async fn list_tasks(&self, image: Option<Uuid>) -> Result<Vec<Task>>;

    // Metadata definitions. Content of a namespace is named by (namespace, name); writes to
    // content fail with `MetadefNamespaceNotFound` when the namespace does not exist,
    // `MetadefNotFound` / `MetadefDuplicate` for a missing or taken name.

    /// Stores a new namespace with all its contents, in one transaction. Resource types its
    /// associations name are created (unprotected) if missing. Fails with `MetadefDuplicate`
    /// if the namespace exists or a name appears twice.
    async fn create_metadef_namespace(&self, def: MetadefDefinition) -> Result<MetadefDefinition>;

    /// Creates the namespace, or replaces it and all its contents, in one transaction
    /// (records that keep their name keep their `created_at`); missing resource types are
    /// created protected. For definition loads.
    async fn import_metadef_namespace(&self, def: MetadefDefinition) -> Result<MetadefDefinition>;

    async fn get_metadef_namespace(&self, name: &str) -> Result<Option<MetadefNamespace>>;

    /// A namespace with all its contents, as of one point in time.
    async fn get_metadef_definition(&self, name: &str) -> Result<Option<MetadefDefinition>>;

    /// Every namespace, unordered; visibility is the caller's business.
    async fn list_metadef_namespaces(&self) -> Result<Vec<MetadefNamespace>>;

    /// Replaces namespace `name`'s attributes (keeping `created_at`); when `ns.namespace`
    /// differs, the contents move to the new name.
    async fn update_metadef_namespace(
        &self,
        name: &str,
        ns: MetadefNamespace,
    ) -> Result<MetadefNamespace>;

    /// Removes a namespace and all its contents, in one transaction.
    async fn delete_metadef_namespace(&self, name: &str) -> Result<()>;

    /// Removes all objects, properties, tags or associations (`kind`) of a namespace.
    async fn delete_metadef_contents(&self, namespace: &str, kind: MetadefKind) -> Result<()>;

    async fn create_metadef_object(&self, object: MetadefObject) -> Result<MetadefObject>;
    async fn get_metadef_object(&self, ns: &str, name: &str) -> Result<Option<MetadefObject>>;
    async fn list_metadef_objects(&self, ns: &str) -> Result<Vec<MetadefObject>>;
    /// Replaces object `name` of `object.namespace` (keeping `created_at`; may rename).
    async fn update_metadef_object(
        &self,
        name: &str,
        object: MetadefObject,
    ) -> Result<MetadefObject>;
    async fn delete_metadef_object(&self, ns: &str, name: &str) -> Result<()>;

    async fn create_metadef_property(&self, property: MetadefProperty) -> Result<MetadefProperty>;
    async fn get_metadef_property(&self, ns: &str, name: &str) -> Result<Option<MetadefProperty>>;
    async fn list_metadef_properties(&self, ns: &str) -> Result<Vec<MetadefProperty>>;
    /// Replaces property `name` of `property.namespace` (keeping `created_at`; may rename).
    async fn update_metadef_property(
        &self,
        name: &str,
        property: MetadefProperty,
    ) -> Result<MetadefProperty>;
    async fn delete_metadef_property(&self, ns: &str, name: &str) -> Result<()>;

    async fn create_metadef_tag(&self, tag: MetadefTag) -> Result<MetadefTag>;
    /// Adds `tags` to namespace `ns` in one transaction; unless `append`, its tags are
    /// removed first. A name taken (or given twice) fails the whole call; an empty list
    /// changes nothing.
    async fn create_metadef_tags(
        &self,
        ns: &str,
        tags: Vec<MetadefTag>,
        append: bool,
    ) -> Result<Vec<MetadefTag>>;
    async fn get_metadef_tag(&self, ns: &str, name: &str) -> Result<Option<MetadefTag>>;
    async fn list_metadef_tags(&self, ns: &str) -> Result<Vec<MetadefTag>>;
    /// Replaces tag `name` of `tag.namespace` (keeping `created_at`; may rename).
    async fn update_metadef_tag(&self, name: &str, tag: MetadefTag) -> Result<MetadefTag>;
    async fn delete_metadef_tag(&self, ns: &str, name: &str) -> Result<()>;

    /// Every resource type, unordered.
    async fn list_metadef_resource_types(&self) -> Result<Vec<MetadefResourceType>>;

    /// Associates a namespace with a resource type, creating the type if missing.
    async fn create_metadef_association(
        &self,
        association: MetadefAssociation,
    ) -> Result<MetadefAssociation>;
    async fn list_metadef_associations(&self, ns: &str) -> Result<Vec<MetadefAssociation>>;
    /// Removes the association of `ns` with resource type `name` (the type stays).
    async fn delete_metadef_association(&self, ns: &str, name: &str) -> Result<()>;
}

/// Every image in `status`, whoever owns it, through the listing's status index (pages
/// followed by their `next` marker): what start-up sweeps look for, without reading the
/// whole catalogue.
pub async fn images_in_status(registry: &dyn Registry, status: ImageStatus) -> Result<Vec<Image>> {
    let mut query = ImageQuery {
        viewer: Viewer {
            project: None,
            is_admin: true,
        },
        visibility: VisibilityScope::All,
        filters: vec![Filter::Text {
            field: TextField::Status,
            values: vec![status.as_str().to_string()],
        }],
        limit: 1000,
        ..ImageQuery::default()
    };
    let mut out = Vec::new();
    loop {
        let page = registry.list_images(query.clone()).await?;
        out.extend(page.images);
        match page.next {
            Some(next) => query.marker = Some(next),
            None => return Ok(out),
        }
    }
}
