//! Glass's metadata registry: the typed records (images, members, tasks) and the [`Registry`]
//! trait every persistence engine implements. The embedded default engine is sled
//! ([`SledRegistry`]); [`test_suite`] is the behaviour any engine must show.
//!
//! Invariants: no HTTP and no wasm types here; status transitions and compare-and-swap are
//! enforced by the engine inside one atomic write; every write is durable before it returns.

mod codec;
mod error;
mod model;
mod query;
mod sled_engine;
pub mod test_suite;

use async_trait::async_trait;
use uuid::Uuid;

pub use error::{RegistryError, Result};
pub use model::{
    Image, ImageStatus, Location, Member, MemberStatus, Task, TaskStatus, Timestamp, Visibility,
    now,
};
pub use query::{
    Comparison, Filter, ImagePage, ImageQuery, MemberStatusFilter, SortDir, SortKey, TextField,
    TimeField, Viewer, VisibilityScope,
};
pub use sled_engine::SledRegistry;

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
}
