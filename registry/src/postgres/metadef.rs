//! The PostgreSQL engine's metadata definitions: one table for namespaces, one per kind of
//! content (keyed by namespace and name, the namespace a foreign key that cascades deletes
//! and renames), one for resource types.
//!
//! Writes to a namespace's contents hold a share lock on the namespace row for their
//! transaction, and whole-namespace operations (replace, rename, delete) take it exclusively:
//! a record added concurrently with a delete is either deleted with the namespace or refused
//! because the namespace is gone, never left behind.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::error::SqlState;

use super::{PostgresRegistry, pg};
use crate::codec::{decode, encode};
use crate::error::{RegistryError, Result};
use crate::metadef::{
    MetadefAssociation, MetadefDefinition, MetadefKind, MetadefNamespace, MetadefObject,
    MetadefProperty, MetadefRecord, MetadefResourceType, MetadefTag,
};
use crate::model::{Timestamp, now};

/// How often a replace starts over when a concurrent create got the name first.
const ATTEMPTS: usize = 16;

/// A record that lives in a namespace, and its table.
pub(crate) trait Content:
    MetadefRecord + Serialize + DeserializeOwned + Send + Sync + 'static
{
    const TABLE: &'static str;
}

macro_rules! content {
    ($ty:ty, $table:literal) => {
        impl Content for $ty {
            const TABLE: &'static str = $table;
        }
    };
}

content!(MetadefObject, "metadef_objects");
content!(MetadefProperty, "metadef_properties");
content!(MetadefTag, "metadef_tags");
content!(MetadefAssociation, "metadef_associations");

const CONTENT_TABLES: [&str; 4] = [
    "metadef_objects",
    "metadef_properties",
    "metadef_tags",
    "metadef_associations",
];

fn duplicate<C: Content>(c: &C) -> RegistryError {
    RegistryError::MetadefDuplicate {
        kind: C::KIND,
        namespace: c.namespace().to_string(),
        name: c.name().to_string(),
    }
}

fn namespace_duplicate(name: &str) -> RegistryError {
    RegistryError::MetadefDuplicate {
        kind: MetadefKind::Namespace,
        namespace: name.to_string(),
        name: name.to_string(),
    }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A content record read from namespace `ns` (the column, not the stored field, names it).
fn content_from<C: Content>(ns: &str, record: &[u8]) -> Result<C> {
    let mut item: C = decode(record)?;
    item.set_namespace(ns);
    Ok(item)
}

/// Locks namespace `ns` for the transaction (shared, or exclusive for whole-namespace work)
/// and returns it; `MetadefNamespaceNotFound` if it does not exist.
async fn lock_namespace(
    tx: &deadpool_postgres::Transaction<'_>,
    ns: &str,
    exclusive: bool,
) -> Result<MetadefNamespace> {
    let sql = if exclusive {
        "SELECT record FROM metadef_namespaces WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT record FROM metadef_namespaces WHERE name = $1 FOR SHARE"
    };
    let stmt = tx.prepare_cached(sql).await.map_err(pg)?;
    match tx.query_opt(&stmt, &[&ns.as_bytes()]).await.map_err(pg)? {
        Some(row) => decode(row.get(0)),
        None => Err(RegistryError::MetadefNamespaceNotFound(ns.to_string())),
    }
}

async fn insert_content<C: Content>(
    tx: &deadpool_postgres::Transaction<'_>,
    item: &C,
) -> Result<bool> {
    let sql = format!(
        "INSERT INTO {} (namespace, name, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        C::TABLE
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(pg)?;
    let n = tx
        .execute(
            &stmt,
            &[
                &item.namespace().as_bytes(),
                &item.name().as_bytes(),
                &encode(item)?,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(n == 1)
}

async fn ensure_resource_type(
    tx: &deadpool_postgres::Transaction<'_>,
    name: &str,
    protected: bool,
    at: Timestamp,
) -> Result<()> {
    let rt = MetadefResourceType {
        name: name.to_string(),
        protected,
        created_at: at,
        updated_at: at,
    };
    let stmt = tx
        .prepare_cached(
            "INSERT INTO metadef_resource_types (name, record) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg)?;
    tx.execute(&stmt, &[&name.as_bytes(), &encode(&rt)?])
        .await
        .map_err(pg)?;
    Ok(())
}

/// Every record of kind `C` in namespace `ns`, by name.
async fn scan<C: Content>(client: &tokio_postgres::Client, ns: &str) -> Result<Vec<C>> {
    let sql = format!(
        "SELECT record FROM {} WHERE namespace = $1 ORDER BY name",
        C::TABLE
    );
    client
        .query(&sql, &[&ns.as_bytes()])
        .await
        .map_err(pg)?
        .iter()
        .map(|r| content_from(ns, r.get(0)))
        .collect()
}

/// The first record whose name appears earlier in `items`, as a duplicate error.
fn first_repeat<C: Content>(items: &[C]) -> Option<RegistryError> {
    let mut seen = std::collections::HashSet::new();
    items.iter().find(|i| !seen.insert(i.name())).map(duplicate)
}

/// The records a replace removes, by name (their timestamps carry over).
async fn stored_by_name<C: Content>(
    tx: &deadpool_postgres::Transaction<'_>,
    ns: &str,
) -> Result<std::collections::HashMap<String, C>> {
    Ok(scan::<C>(tx.client(), ns)
        .await?
        .into_iter()
        .map(|c| (c.name().to_string(), c))
        .collect())
}

async fn insert_all<C: Content>(
    tx: &deadpool_postgres::Transaction<'_>,
    items: &mut [C],
    old: &std::collections::HashMap<String, C>,
) -> Result<()> {
    for item in items.iter_mut() {
        if let Some(stored) = old.get(item.name()) {
            item.keep_stored_timestamps(stored);
        }
        if !insert_content(tx, item).await? {
            return Err(duplicate(item));
        }
    }
    Ok(())
}

pub(super) async fn put_definition(
    registry: &PostgresRegistry,
    def: MetadefDefinition,
    replace: bool,
) -> Result<MetadefDefinition> {
    let mut def = def;
    let name = def.namespace.namespace.clone();
    def.properties
        .iter_mut()
        .for_each(|c| c.set_namespace(&name));
    def.objects.iter_mut().for_each(|c| c.set_namespace(&name));
    def.tags.iter_mut().for_each(|c| c.set_namespace(&name));
    def.associations
        .iter_mut()
        .for_each(|c| c.set_namespace(&name));
    if let Some(e) = first_repeat(&def.properties)
        .or_else(|| first_repeat(&def.objects))
        .or_else(|| first_repeat(&def.tags))
        .or_else(|| first_repeat(&def.associations))
    {
        return Err(e);
    }
    let mut client = registry.client().await?;
    for _ in 0..ATTEMPTS {
        let tx = client.transaction().await.map_err(pg)?;
        let mut out = def.clone();
        let insert_ns = tx
            .prepare_cached(
                "INSERT INTO metadef_namespaces (name, record) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(pg)?;
        let created = tx
            .execute(&insert_ns, &[&name.as_bytes(), &encode(&out.namespace)?])
            .await
            .map_err(pg)?
            == 1;
        if !created {
            if !replace {
                return Err(namespace_duplicate(&name));
            }
            let old = match lock_namespace(&tx, &name, true).await {
                Ok(old) => old,
                // Deleted since the insert found it: start over.
                Err(RegistryError::MetadefNamespaceNotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            out.namespace.keep_stored_timestamps(&old);
            let properties = stored_by_name::<MetadefProperty>(&tx, &name).await?;
            let objects = stored_by_name::<MetadefObject>(&tx, &name).await?;
            let tags = stored_by_name::<MetadefTag>(&tx, &name).await?;
            let associations = stored_by_name::<MetadefAssociation>(&tx, &name).await?;
            for table in CONTENT_TABLES {
                let sql = format!("DELETE FROM {table} WHERE namespace = $1");
                tx.execute(&sql, &[&name.as_bytes()]).await.map_err(pg)?;
            }
            tx.execute(
                "UPDATE metadef_namespaces SET record = $2 WHERE name = $1",
                &[&name.as_bytes(), &encode(&out.namespace)?],
            )
            .await
            .map_err(pg)?;
            insert_all(&tx, &mut out.properties, &properties).await?;
            insert_all(&tx, &mut out.objects, &objects).await?;
            insert_all(&tx, &mut out.tags, &tags).await?;
            insert_all(&tx, &mut out.associations, &associations).await?;
        } else {
            let none = std::collections::HashMap::new();
            insert_all(&tx, &mut out.properties, &none).await?;
            let none = std::collections::HashMap::new();
            insert_all(&tx, &mut out.objects, &none).await?;
            let none = std::collections::HashMap::new();
            insert_all(&tx, &mut out.tags, &none).await?;
            let none = std::collections::HashMap::new();
            insert_all(&tx, &mut out.associations, &none).await?;
        }
        for a in &out.associations {
            ensure_resource_type(&tx, &a.name, replace, a.created_at).await?;
        }
        tx.commit().await.map_err(pg)?;
        return Ok(out);
    }
    Err(RegistryError::Engine(format!(
        "metadata definition namespace {name} kept changing; try again"
    )))
}

pub(super) async fn get_namespace(
    client: &tokio_postgres::Client,
    name: &str,
) -> Result<Option<MetadefNamespace>> {
    let row = client
        .query_opt(
            "SELECT record FROM metadef_namespaces WHERE name = $1",
            &[&name.as_bytes()],
        )
        .await
        .map_err(pg)?;
    row.map(|r| decode(r.get(0))).transpose()
}

pub(super) async fn get_definition(
    registry: &PostgresRegistry,
    name: &str,
) -> Result<Option<MetadefDefinition>> {
    let mut client = registry.client().await?;
    // One snapshot for the namespace and all its contents.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg)?;
    let Some(namespace) = get_namespace(tx.client(), name).await? else {
        return Ok(None);
    };
    let def = MetadefDefinition {
        namespace,
        properties: scan(tx.client(), name).await?,
        objects: scan(tx.client(), name).await?,
        tags: scan(tx.client(), name).await?,
        associations: scan(tx.client(), name).await?,
    };
    tx.commit().await.map_err(pg)?;
    Ok(Some(def))
}

pub(super) async fn list_namespaces(registry: &PostgresRegistry) -> Result<Vec<MetadefNamespace>> {
    let client = registry.client().await?;
    client
        .query("SELECT record FROM metadef_namespaces ORDER BY name", &[])
        .await
        .map_err(pg)?
        .iter()
        .map(|r| decode(r.get(0)))
        .collect()
}

pub(super) async fn update_namespace(
    registry: &PostgresRegistry,
    name: &str,
    ns: MetadefNamespace,
) -> Result<MetadefNamespace> {
    let mut client = registry.client().await?;
    let tx = client.transaction().await.map_err(pg)?;
    let old = lock_namespace(&tx, name, true).await?;
    let mut stored = ns;
    stored.created_at = old.created_at;
    let new_name = stored.namespace.clone();
    if new_name != name
        && tx
            .query_opt(
                "SELECT 1 FROM metadef_namespaces WHERE name = $1",
                &[&new_name.as_bytes()],
            )
            .await
            .map_err(pg)?
            .is_some()
    {
        return Err(namespace_duplicate(&new_name));
    }
    // A new name cascades to the contents (ON UPDATE CASCADE).
    tx.execute(
        "UPDATE metadef_namespaces SET name = $2, record = $3 WHERE name = $1",
        &[&name.as_bytes(), &new_name.as_bytes(), &encode(&stored)?],
    )
    .await
    .map_err(|e| match is_unique_violation(&e) {
        true => namespace_duplicate(&new_name),
        false => pg(e),
    })?;
    tx.commit().await.map_err(pg)?;
    Ok(stored)
}

pub(super) async fn delete_namespace(registry: &PostgresRegistry, name: &str) -> Result<()> {
    let client = registry.client().await?;
    let n = client
        .execute(
            "DELETE FROM metadef_namespaces WHERE name = $1",
            &[&name.as_bytes()],
        )
        .await
        .map_err(pg)?;
    if n == 0 {
        return Err(RegistryError::MetadefNamespaceNotFound(name.to_string()));
    }
    Ok(())
}

pub(super) async fn delete_contents(
    registry: &PostgresRegistry,
    name: &str,
    kind: MetadefKind,
) -> Result<()> {
    let table = match kind {
        MetadefKind::Object => MetadefObject::TABLE,
        MetadefKind::Property => MetadefProperty::TABLE,
        MetadefKind::Tag => MetadefTag::TABLE,
        MetadefKind::Association => MetadefAssociation::TABLE,
        MetadefKind::Namespace => return delete_namespace(registry, name).await,
    };
    let mut client = registry.client().await?;
    let tx = client.transaction().await.map_err(pg)?;
    lock_namespace(&tx, name, false).await?;
    let sql = format!("DELETE FROM {table} WHERE namespace = $1");
    tx.execute(&sql, &[&name.as_bytes()]).await.map_err(pg)?;
    tx.commit().await.map_err(pg)
}

pub(super) async fn put_tags(
    registry: &PostgresRegistry,
    ns: &str,
    tags: Vec<MetadefTag>,
    append: bool,
) -> Result<Vec<MetadefTag>> {
    let mut client = registry.client().await?;
    let tx = client.transaction().await.map_err(pg)?;
    lock_namespace(&tx, ns, false).await?;
    if tags.is_empty() {
        tx.commit().await.map_err(pg)?;
        return Ok(Vec::new());
    }
    let mut out = tags;
    out.iter_mut().for_each(|t| t.set_namespace(ns));
    if let Some(e) = first_repeat(&out) {
        return Err(e);
    }
    if !append {
        tx.execute(
            "DELETE FROM metadef_tags WHERE namespace = $1",
            &[&ns.as_bytes()],
        )
        .await
        .map_err(pg)?;
    }
    for tag in &out {
        if !insert_content(&tx, tag).await? {
            return Err(duplicate(tag));
        }
    }
    tx.commit().await.map_err(pg)?;
    Ok(out)
}

pub(super) async fn create<C: Content>(registry: &PostgresRegistry, item: C) -> Result<C> {
    let mut client = registry.client().await?;
    let tx = client.transaction().await.map_err(pg)?;
    lock_namespace(&tx, item.namespace(), false).await?;
    if !insert_content(&tx, &item).await? {
        return Err(duplicate(&item));
    }
    if C::KIND == MetadefKind::Association {
        ensure_resource_type(&tx, item.name(), false, now()).await?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(item)
}

pub(super) async fn get<C: Content>(
    registry: &PostgresRegistry,
    ns: &str,
    name: &str,
) -> Result<Option<C>> {
    let client = registry.client().await?;
    let sql = format!(
        "SELECT record FROM {} WHERE namespace = $1 AND name = $2",
        C::TABLE
    );
    let stmt = client.prepare_cached(&sql).await.map_err(pg)?;
    client
        .query_opt(&stmt, &[&ns.as_bytes(), &name.as_bytes()])
        .await
        .map_err(pg)?
        .map(|r| content_from(ns, r.get(0)))
        .transpose()
}

pub(super) async fn list<C: Content>(registry: &PostgresRegistry, ns: &str) -> Result<Vec<C>> {
    let client = registry.client().await?;
    // One statement: no row means no namespace, a NULL record an empty one.
    let sql = format!(
        "SELECT c.record FROM metadef_namespaces n LEFT JOIN {} c ON c.namespace = n.name \
         WHERE n.name = $1 ORDER BY c.name",
        C::TABLE
    );
    let stmt = client.prepare_cached(&sql).await.map_err(pg)?;
    let rows = client.query(&stmt, &[&ns.as_bytes()]).await.map_err(pg)?;
    if rows.is_empty() {
        return Err(RegistryError::MetadefNamespaceNotFound(ns.to_string()));
    }
    rows.iter()
        .filter_map(|r| r.get::<_, Option<&[u8]>>(0))
        .map(|record| content_from(ns, record))
        .collect()
}

pub(super) async fn update<C: Content>(
    registry: &PostgresRegistry,
    name: &str,
    item: C,
) -> Result<C> {
    let mut client = registry.client().await?;
    let tx = client.transaction().await.map_err(pg)?;
    let ns = item.namespace().to_string();
    lock_namespace(&tx, &ns, false).await?;
    let sql = format!(
        "SELECT record FROM {} WHERE namespace = $1 AND name = $2 FOR UPDATE",
        C::TABLE
    );
    let Some(row) = tx
        .query_opt(&sql, &[&ns.as_bytes(), &name.as_bytes()])
        .await
        .map_err(pg)?
    else {
        return Err(RegistryError::MetadefNotFound {
            kind: C::KIND,
            namespace: ns,
            name: name.to_string(),
        });
    };
    let old: C = content_from(&ns, row.get(0))?;
    let mut stored = item;
    stored.keep_created_at(&old);
    if stored.name() != name {
        let sql = format!(
            "SELECT 1 FROM {} WHERE namespace = $1 AND name = $2",
            C::TABLE
        );
        if tx
            .query_opt(&sql, &[&ns.as_bytes(), &stored.name().as_bytes()])
            .await
            .map_err(pg)?
            .is_some()
        {
            return Err(duplicate(&stored));
        }
    }
    let sql = format!(
        "UPDATE {} SET name = $3, record = $4 WHERE namespace = $1 AND name = $2",
        C::TABLE
    );
    tx.execute(
        &sql,
        &[
            &ns.as_bytes(),
            &name.as_bytes(),
            &stored.name().as_bytes(),
            &encode(&stored)?,
        ],
    )
    .await
    .map_err(|e| match is_unique_violation(&e) {
        true => duplicate(&stored),
        false => pg(e),
    })?;
    tx.commit().await.map_err(pg)?;
    Ok(stored)
}

pub(super) async fn delete<C: Content>(
    registry: &PostgresRegistry,
    ns: &str,
    name: &str,
) -> Result<()> {
    let mut client = registry.client().await?;
    let tx = client.transaction().await.map_err(pg)?;
    lock_namespace(&tx, ns, false).await?;
    let sql = format!(
        "DELETE FROM {} WHERE namespace = $1 AND name = $2",
        C::TABLE
    );
    if tx
        .execute(&sql, &[&ns.as_bytes(), &name.as_bytes()])
        .await
        .map_err(pg)?
        == 0
    {
        return Err(RegistryError::MetadefNotFound {
            kind: C::KIND,
            namespace: ns.to_string(),
            name: name.to_string(),
        });
    }
    tx.commit().await.map_err(pg)
}

pub(super) async fn list_resource_types(
    registry: &PostgresRegistry,
) -> Result<Vec<MetadefResourceType>> {
    let client = registry.client().await?;
    client
        .query(
            "SELECT record FROM metadef_resource_types ORDER BY name",
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| decode(r.get(0)))
        .collect()
}
