//! The PostgreSQL registry engine: what several Glass nodes share. tokio-postgres over a
//! deadpool pool; the schema comes from the versioned SQL files in `registry/migrations`,
//! applied at connect time (`migrations.rs`).
//!
//! Each row keeps the whole record in the registry's versioned codec plus the columns that
//! listings sort and filter on. Compare-and-swap is one statement that locks the row by
//! `WHERE id = $1 AND revision = $2` (that also checks the status transition: `status =
//! ANY(<statuses that may become the new one>)`) and updates what it locked: PostgreSQL
//! re-evaluates the condition on the latest row version after waiting for a concurrent
//! writer, so of two writers from one revision exactly one matches. A zero-row answer is then explained by a second read (missing,
//! stale, or a refused transition). Member changes bump the image's revision in the same
//! transaction, as in the sled engine, and members go with their image (foreign key, cascade).
//! Listing is one query: visibility, filters, keyset pagination from the marker on the full
//! sort order, `ORDER BY` that order, `LIMIT limit + 1` (`list.rs`); a non-admin's scope is
//! a UNION ALL of parts an index each serves in order (`scope.rs`). The row's columns come
//! from the record on every write (`row.rs`), and so do its rows of `image_labels` (one per
//! tag and extra property, keyed in listing order, which tag and property filters join),
//! written in the same statement; `explain.rs` shows the plans to the tests.

mod explain;
mod list;
mod metadef;
mod migrations;
mod row;
mod scope;
mod sql;

use std::str::FromStr;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::Registry;
use crate::codec::{decode, decode_image, encode};
use crate::error::{RegistryError, Result};
use crate::metadef::{
    MetadefAssociation, MetadefDefinition, MetadefKind, MetadefNamespace, MetadefObject,
    MetadefProperty, MetadefResourceType, MetadefTag,
};
use crate::model::{Image, ImageStatus, Member, MemberStatus, Task};
use crate::query::{ImagePage, ImageQuery};
use row::ImageRow;

#[doc(hidden)]
pub use explain::PlanKind;
pub use migrations::{SCHEMA_VERSION, schema_version};

/// The PostgreSQL-backed [`Registry`]. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresRegistry {
    pool: Pool,
}

/// A PostgreSQL error as a registry error, with the server's message when there is one.
pub(crate) fn pg(e: tokio_postgres::Error) -> RegistryError {
    match e.as_db_error() {
        Some(db) => {
            RegistryError::Engine(format!("postgres: {} ({})", db.message(), db.code().code()))
        }
        None => RegistryError::Engine(format!("postgres: {e}")),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> RegistryError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        other => RegistryError::Engine(format!("postgres pool: {other}")),
    }
}

/// A stored u64 as PostgreSQL's bigint.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| RegistryError::Engine(format!("{what} {value} is too large to store")))
}

fn to_u64(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| RegistryError::Corrupt(format!("negative revision {value}")))
}

/// How an extra property is kept in `images.properties`: key length (4 bytes, big-endian),
/// key, value.
pub(crate) fn property_entry(key: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len() + value.len());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value.as_bytes());
    out
}

/// A tag's label in `image_labels`: `t`, then the tag (migration 3's `image_labels_of`).
pub(crate) fn tag_label(tag: &str) -> Vec<u8> {
    [b"t", tag.as_bytes()].concat()
}

/// An extra property's label in `image_labels`: `p`, then its entry ([`property_entry`]).
pub(crate) fn property_label(key: &str, value: &str) -> Vec<u8> {
    [b"p".as_slice(), &property_entry(key, value)].concat()
}

/// The count a write statement of `row.rs` answers with.
fn count(row: std::result::Result<tokio_postgres::Row, tokio_postgres::Error>) -> Result<i64> {
    row.map_err(pg)?.try_get(0).map_err(pg)
}

/// The statuses an image may be in to become `next` (for the compare-and-swap's WHERE).
fn statuses_that_may_become(next: ImageStatus) -> Vec<&'static str> {
    ImageStatus::ALL
        .into_iter()
        .filter(|s| s.can_become(next))
        .map(ImageStatus::as_str)
        .collect()
}

/// An image row read back: the record with the authoritative revision.
fn image_from_row(revision: i64, record: &[u8]) -> Result<Image> {
    let mut image: Image = decode_image(record)?;
    image.revision = to_u64(revision)?;
    Ok(image)
}

fn task_from_row(revision: i64, record: &[u8]) -> Result<Task> {
    let mut task: Task = decode(record)?;
    task.revision = to_u64(revision)?;
    Ok(task)
}

/// Connection settings of a `[registry]` section: the URL or key/value string libpq takes,
/// and the most connections this process opens.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub url: String,
    pub pool_size: usize,
}

impl PostgresRegistry {
    /// Connects, applies the migrations this release knows that the database lacks (under
    /// an advisory lock, so nodes starting together take turns), and returns the engine.
    /// Refuses a database whose schema is newer than this release.
    pub async fn connect(options: &PostgresOptions) -> Result<Self> {
        let config = tokio_postgres::Config::from_str(&options.url).map_err(|e| {
            RegistryError::Engine(format!("registry url: {e} (postgres://user@host/db)"))
        })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(|e| RegistryError::Engine(format!("postgres pool: {e}")))?;
        let registry = PostgresRegistry { pool };
        let mut client = registry.client().await?;
        migrations::apply(&mut client).await?;
        Ok(registry)
    }

    /// `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of the statement `list_images` runs for
    /// `query`, as a custom or generic plan: what the query plan tests hold the schema to.
    #[doc(hidden)]
    pub async fn explain_list(
        &self,
        query: &ImageQuery,
        kind: PlanKind,
    ) -> Result<serde_json::Value> {
        let client = self.client().await?;
        explain::explain_list(&client, query, kind).await
    }

    /// Stores new images (revision 1) as [`Registry::create_image`] would, many per
    /// statement, in one transaction: for populating tests and benchmarks. An id already
    /// taken fails the whole call.
    #[doc(hidden)]
    pub async fn import_images(&self, images: &[Image]) -> Result<()> {
        /// Rows per statement (PostgreSQL takes at most 65,535 parameters).
        const BATCH: usize = 1000;
        let stored: Vec<Image> = images
            .iter()
            .map(|i| Image {
                revision: 1,
                ..i.clone()
            })
            .collect();
        let rows = stored
            .iter()
            .map(ImageRow::new)
            .collect::<Result<Vec<_>>>()?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        for batch in rows.chunks(BATCH) {
            let stmt = tx
                .prepare(&row::insert_statement(batch.len(), false))
                .await
                .map_err(pg)?;
            let mut params = Vec::with_capacity(batch.len() * (row::COLUMNS.len() + 1));
            for row in batch {
                params.push(row.id());
                params.extend(row.values());
            }
            tx.query_one(&stmt, &params).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Why an image write that matched no row failed: missing, or not at `revision`.
    async fn image_write_failure(
        &self,
        client: &deadpool_postgres::Client,
        id: Uuid,
        revision: u64,
        next: Option<ImageStatus>,
    ) -> RegistryError {
        let sql = "SELECT revision, status FROM images WHERE id = $1";
        let row = match client.prepare_cached(sql).await {
            Ok(stmt) => client.query_opt(&stmt, &[&id]).await,
            Err(e) => Err(e),
        };
        match row {
            Err(e) => pg(e),
            Ok(None) => RegistryError::ImageNotFound(id),
            Ok(Some(row)) => {
                let stored: i64 = row.get(0);
                let status: &str = row.get(1);
                if u64::try_from(stored).ok() != Some(revision) {
                    return RegistryError::Stale(id);
                }
                match (ImageStatus::parse(status), next) {
                    (Some(from), Some(to)) => RegistryError::InvalidTransition { from, to },
                    (None, _) => RegistryError::Corrupt(format!("image {id}: status {status}")),
                    // Neither missing nor stale: the row changed and changed back, which
                    // revisions rule out; report it as a lost race.
                    (Some(_), None) => RegistryError::Stale(id),
                }
            }
        }
    }
}

#[async_trait]
impl Registry for PostgresRegistry {
    async fn create_image(&self, image: Image) -> Result<Image> {
        let mut stored = image;
        stored.revision = 1;
        let row = ImageRow::new(&stored)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&row::insert_statement(1, true))
            .await
            .map_err(pg)?;
        let mut params = vec![row.id()];
        params.extend(row.values());
        let n = count(client.query_one(&stmt, &params).await)?;
        if n == 0 {
            return Err(RegistryError::DuplicateImage(stored.id));
        }
        Ok(stored)
    }

    async fn get_image(&self, id: Uuid) -> Result<Option<Image>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT revision, record FROM images WHERE id = $1")
            .await
            .map_err(pg)?;
        match client.query_opt(&stmt, &[&id]).await.map_err(pg)? {
            Some(row) => Ok(Some(image_from_row(row.get(0), row.get(1))?)),
            None => Ok(None),
        }
    }

    async fn update_image(&self, image: Image) -> Result<Image> {
        let expected = image.revision;
        let mut stored = image;
        // A revision that cannot be stored cannot match either.
        let Some(next) = expected
            .checked_add(1)
            .filter(|r| i64::try_from(*r).is_ok())
        else {
            return Err(RegistryError::Stale(stored.id));
        };
        stored.revision = next;
        let row = ImageRow::new(&stored)?;
        let from = statuses_that_may_become(stored.status);
        let expected_revision = expected as i64;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&row::update_statement())
            .await
            .map_err(pg)?;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![row.id(), &expected_revision, &from];
        params.extend(row.values());
        let n = count(client.query_one(&stmt, &params).await)?;
        if n == 1 {
            return Ok(stored);
        }
        Err(self
            .image_write_failure(&client, stored.id, expected, Some(stored.status))
            .await)
    }

    async fn delete_image(&self, id: Uuid, revision: u64) -> Result<()> {
        let client = self.client().await?;
        let Ok(rev) = i64::try_from(revision) else {
            return Err(self.image_write_failure(&client, id, revision, None).await);
        };
        let stmt = client
            .prepare_cached(row::DELETE_STATEMENT)
            .await
            .map_err(pg)?;
        if count(client.query_one(&stmt, &[&id, &rev]).await)? == 1 {
            return Ok(());
        }
        Err(self.image_write_failure(&client, id, revision, None).await)
    }

    async fn list_images(&self, query: ImageQuery) -> Result<ImagePage> {
        let client = self.client().await?;
        list::list_images(&client, &query).await
    }

    async fn image_ids(&self) -> Result<Vec<Uuid>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id FROM images", &[])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn add_member(&self, member: Member) -> Result<Member> {
        let record = encode(&member)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Bumping the revision locks the image row: a delete from an older revision now
        // fails, and one already under way makes this find no image.
        let touch = tx
            .prepare_cached("UPDATE images SET revision = revision + 1 WHERE id = $1")
            .await
            .map_err(pg)?;
        if tx.execute(&touch, &[&member.image_id]).await.map_err(pg)? == 0 {
            return Err(RegistryError::ImageNotFound(member.image_id));
        }
        let insert = tx
            .prepare_cached(
                "INSERT INTO image_members (image_id, member, status, created_at, record) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(pg)?;
        let n = tx
            .execute(
                &insert,
                &[
                    &member.image_id,
                    &member.member_id.as_bytes(),
                    &member.status.as_str(),
                    &member.created_at,
                    &record,
                ],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Err(RegistryError::DuplicateMember {
                image: member.image_id,
                member: member.member_id,
            });
        }
        tx.commit().await.map_err(pg)?;
        Ok(member)
    }

    async fn get_member(&self, image: Uuid, member: &str) -> Result<Option<Member>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT record FROM image_members WHERE image_id = $1 AND member = $2")
            .await
            .map_err(pg)?;
        match client
            .query_opt(&stmt, &[&image, &member.as_bytes()])
            .await
            .map_err(pg)?
        {
            Some(row) => Ok(Some(decode(row.get(0))?)),
            None => Ok(None),
        }
    }

    async fn list_members(&self, image: Uuid) -> Result<Vec<Member>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT record FROM image_members WHERE image_id = $1 \
                 ORDER BY created_at, member",
            )
            .await
            .map_err(pg)?;
        let rows = client.query(&stmt, &[&image]).await.map_err(pg)?;
        rows.iter().map(|r| decode(r.get(0))).collect()
    }

    async fn update_member(&self, member: Member) -> Result<Member> {
        let record = encode(&member)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE image_members SET status = $3, created_at = $4, record = $5 \
                 WHERE image_id = $1 AND member = $2",
            )
            .await
            .map_err(pg)?;
        let n = client
            .execute(
                &stmt,
                &[
                    &member.image_id,
                    &member.member_id.as_bytes(),
                    &member.status.as_str(),
                    &member.created_at,
                    &record,
                ],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Err(RegistryError::MemberNotFound {
                image: member.image_id,
                member: member.member_id,
            });
        }
        Ok(member)
    }

    async fn delete_member(&self, image: Uuid, member: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let delete = tx
            .prepare_cached("DELETE FROM image_members WHERE image_id = $1 AND member = $2")
            .await
            .map_err(pg)?;
        if tx
            .execute(&delete, &[&image, &member.as_bytes()])
            .await
            .map_err(pg)?
            == 0
        {
            return Err(RegistryError::MemberNotFound {
                image,
                member: member.to_string(),
            });
        }
        let touch = tx
            .prepare_cached("UPDATE images SET revision = revision + 1 WHERE id = $1")
            .await
            .map_err(pg)?;
        tx.execute(&touch, &[&image]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn create_task(&self, task: Task) -> Result<Task> {
        let mut stored = task;
        stored.revision = 1;
        let record = encode(&stored)?;
        let client = self.client().await?;
        // As the sled engine: a task id given twice replaces the task.
        let stmt = client
            .prepare_cached(
                "INSERT INTO tasks (id, image_id, created_at, revision, record) \
                 VALUES ($1, $2, $3, 1, $4) \
                 ON CONFLICT (id) DO UPDATE SET image_id = EXCLUDED.image_id, \
                 created_at = EXCLUDED.created_at, revision = 1, record = EXCLUDED.record",
            )
            .await
            .map_err(pg)?;
        client
            .execute(
                &stmt,
                &[&stored.id, &stored.image_id, &stored.created_at, &record],
            )
            .await
            .map_err(pg)?;
        Ok(stored)
    }

    async fn get_task(&self, id: Uuid) -> Result<Option<Task>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT revision, record FROM tasks WHERE id = $1")
            .await
            .map_err(pg)?;
        match client.query_opt(&stmt, &[&id]).await.map_err(pg)? {
            Some(row) => Ok(Some(task_from_row(row.get(0), row.get(1))?)),
            None => Ok(None),
        }
    }

    async fn update_task(&self, task: Task) -> Result<Task> {
        let expected = task.revision;
        let mut stored = task;
        let Some(next) = expected
            .checked_add(1)
            .filter(|r| i64::try_from(*r).is_ok())
        else {
            return Err(RegistryError::Stale(stored.id));
        };
        stored.revision = next;
        let record = encode(&stored)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE tasks SET revision = revision + 1, image_id = $3, created_at = $4, \
                 record = $5 WHERE id = $1 AND revision = $2",
            )
            .await
            .map_err(pg)?;
        let n = client
            .execute(
                &stmt,
                &[
                    &stored.id,
                    &(expected as i64),
                    &stored.image_id,
                    &stored.created_at,
                    &record,
                ],
            )
            .await
            .map_err(pg)?;
        if n == 1 {
            return Ok(stored);
        }
        let exists = client
            .query_opt("SELECT 1 FROM tasks WHERE id = $1", &[&stored.id])
            .await
            .map_err(pg)?;
        Err(match exists {
            Some(_) => RegistryError::Stale(stored.id),
            None => RegistryError::TaskNotFound(stored.id),
        })
    }

    async fn list_tasks(&self, image: Option<Uuid>) -> Result<Vec<Task>> {
        let client = self.client().await?;
        let rows = match image {
            None => {
                let stmt = client
                    .prepare_cached(
                        "SELECT revision, record FROM tasks ORDER BY created_at DESC, id",
                    )
                    .await
                    .map_err(pg)?;
                client.query(&stmt, &[]).await.map_err(pg)?
            }
            Some(image) => {
                let stmt = client
                    .prepare_cached(
                        "SELECT revision, record FROM tasks WHERE image_id = $1 \
                         ORDER BY created_at DESC, id",
                    )
                    .await
                    .map_err(pg)?;
                client.query(&stmt, &[&image]).await.map_err(pg)?
            }
        };
        rows.iter()
            .map(|r| task_from_row(r.get(0), r.get(1)))
            .collect()
    }

    async fn create_metadef_namespace(&self, def: MetadefDefinition) -> Result<MetadefDefinition> {
        metadef::put_definition(self, def, false).await
    }

    async fn import_metadef_namespace(&self, def: MetadefDefinition) -> Result<MetadefDefinition> {
        metadef::put_definition(self, def, true).await
    }

    async fn get_metadef_namespace(&self, name: &str) -> Result<Option<MetadefNamespace>> {
        let client = self.client().await?;
        metadef::get_namespace(&client, name).await
    }

    async fn get_metadef_definition(&self, name: &str) -> Result<Option<MetadefDefinition>> {
        metadef::get_definition(self, name).await
    }

    async fn list_metadef_namespaces(&self) -> Result<Vec<MetadefNamespace>> {
        metadef::list_namespaces(self).await
    }

    async fn update_metadef_namespace(
        &self,
        name: &str,
        ns: MetadefNamespace,
    ) -> Result<MetadefNamespace> {
        metadef::update_namespace(self, name, ns).await
    }

    async fn delete_metadef_namespace(&self, name: &str) -> Result<()> {
        metadef::delete_namespace(self, name).await
    }

    async fn delete_metadef_contents(&self, namespace: &str, kind: MetadefKind) -> Result<()> {
        metadef::delete_contents(self, namespace, kind).await
    }

    async fn create_metadef_object(&self, object: MetadefObject) -> Result<MetadefObject> {
        metadef::create(self, object).await
    }

    async fn get_metadef_object(&self, ns: &str, name: &str) -> Result<Option<MetadefObject>> {
        metadef::get(self, ns, name).await
    }

    async fn list_metadef_objects(&self, ns: &str) -> Result<Vec<MetadefObject>> {
        metadef::list(self, ns).await
    }

    async fn update_metadef_object(
        &self,
        name: &str,
        object: MetadefObject,
    ) -> Result<MetadefObject> {
        metadef::update(self, name, object).await
    }

    async fn delete_metadef_object(&self, ns: &str, name: &str) -> Result<()> {
        metadef::delete::<MetadefObject>(self, ns, name).await
    }

    async fn create_metadef_property(&self, property: MetadefProperty) -> Result<MetadefProperty> {
        metadef::create(self, property).await
    }

    async fn get_metadef_property(&self, ns: &str, name: &str) -> Result<Option<MetadefProperty>> {
        metadef::get(self, ns, name).await
    }

    async fn list_metadef_properties(&self, ns: &str) -> Result<Vec<MetadefProperty>> {
        metadef::list(self, ns).await
    }

    async fn update_metadef_property(
        &self,
        name: &str,
        property: MetadefProperty,
    ) -> Result<MetadefProperty> {
        metadef::update(self, name, property).await
    }

    async fn delete_metadef_property(&self, ns: &str, name: &str) -> Result<()> {
        metadef::delete::<MetadefProperty>(self, ns, name).await
    }

    async fn create_metadef_tag(&self, tag: MetadefTag) -> Result<MetadefTag> {
        metadef::create(self, tag).await
    }

    async fn create_metadef_tags(
        &self,
        ns: &str,
        tags: Vec<MetadefTag>,
        append: bool,
    ) -> Result<Vec<MetadefTag>> {
        metadef::put_tags(self, ns, tags, append).await
    }

    async fn get_metadef_tag(&self, ns: &str, name: &str) -> Result<Option<MetadefTag>> {
        metadef::get(self, ns, name).await
    }

    async fn list_metadef_tags(&self, ns: &str) -> Result<Vec<MetadefTag>> {
        metadef::list(self, ns).await
    }

    async fn update_metadef_tag(&self, name: &str, tag: MetadefTag) -> Result<MetadefTag> {
        metadef::update(self, name, tag).await
    }

    async fn delete_metadef_tag(&self, ns: &str, name: &str) -> Result<()> {
        metadef::delete::<MetadefTag>(self, ns, name).await
    }

    async fn list_metadef_resource_types(&self) -> Result<Vec<MetadefResourceType>> {
        metadef::list_resource_types(self).await
    }

    async fn create_metadef_association(
        &self,
        association: MetadefAssociation,
    ) -> Result<MetadefAssociation> {
        metadef::create(self, association).await
    }

    async fn list_metadef_associations(&self, ns: &str) -> Result<Vec<MetadefAssociation>> {
        metadef::list(self, ns).await
    }

    async fn delete_metadef_association(&self, ns: &str, name: &str) -> Result<()> {
        metadef::delete::<MetadefAssociation>(self, ns, name).await
    }
}

/// The viewer's member status on an image, as the listing and marker checks need it.
pub(crate) fn member_status(s: Option<&str>) -> Result<Option<MemberStatus>> {
    match s {
        None => Ok(None),
        Some(s) => MemberStatus::parse(s)
            .map(Some)
            .ok_or_else(|| RegistryError::Corrupt(format!("member status {s}"))),
    }
}
