//! The PostgreSQL schema's versions: the SQL files of `registry/migrations`, embedded in the
//! binary and applied in order, each recorded in `schema_migrations`. All pending ones run
//! in one transaction under an advisory lock, so two nodes starting together take turns and
//! the second finds the work done; a failure leaves the database as it was. A database
//! already migrated past what this release knows is refused rather than used.
//!
//! What SQL cannot do (read a record: the codec is Rust's) is a [`Backfill`] step that runs
//! right after its migration's SQL, in the same transaction.

use uuid::Uuid;

use crate::codec::decode_image;
use crate::error::{RegistryError, Result};
use crate::model::Image;

use super::pg;

/// One schema version: its SQL file and the Rust step after it, if any.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
    backfill: Option<Backfill>,
}

/// A migration's step in Rust.
#[derive(Debug, Clone, Copy)]
enum Backfill {
    /// Version 3: fill `images.checksum` and `images.os_hash_value` from the records.
    ImageHashes,
}

/// In order. A released file is never edited: a change is a new file.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "images",
        sql: include_str!("../../migrations/0001_images.sql"),
        backfill: None,
    },
    Migration {
        version: 2,
        name: "metadefs",
        sql: include_str!("../../migrations/0002_metadefs.sql"),
        backfill: None,
    },
    Migration {
        version: 3,
        name: "listing_indexes",
        sql: include_str!("../../migrations/0003_listing_indexes.sql"),
        backfill: Some(Backfill::ImageHashes),
    },
];

/// The schema version this release writes and reads.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Key of the advisory lock the migrations run under ("glassreg").
const LOCK_KEY: i64 = 0x676c_6173_7372_6567;

pub(super) async fn apply(client: &mut deadpool_postgres::Client) -> Result<()> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version integer PRIMARY KEY, \
             name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(pg)?;
    let applied: Vec<i32> = tx
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if let Some(&newest) = applied.last()
        && newest > SCHEMA_VERSION
    {
        return Err(RegistryError::Engine(format!(
            "the registry database has schema version {newest}, newer than this release's \
             {SCHEMA_VERSION}: upgrade Glass"
        )));
    }
    for Migration {
        version,
        name,
        sql,
        backfill,
    } in MIGRATIONS
    {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(version, name, "applying registry migration");
        let failed =
            |e: RegistryError| RegistryError::Engine(format!("migration {version:04}_{name}: {e}"));
        tx.batch_execute(sql).await.map_err(|e| failed(pg(e)))?;
        match backfill {
            None => {}
            Some(Backfill::ImageHashes) => image_hashes(&tx).await.map_err(failed)?,
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

/// Fills `checksum` and `os_hash_value` of every image row from its record, in batches
/// in id order.
async fn image_hashes(tx: &tokio_postgres::Transaction<'_>) -> Result<()> {
    const BATCH: i64 = 1000;
    let first = tx
        .prepare("SELECT id, record FROM images ORDER BY id LIMIT $1")
        .await
        .map_err(pg)?;
    let next = tx
        .prepare("SELECT id, record FROM images WHERE id > $2 ORDER BY id LIMIT $1")
        .await
        .map_err(pg)?;
    let update = tx
        .prepare(
            "UPDATE images SET checksum = v.checksum, os_hash_value = v.os_hash_value \
             FROM unnest($1::uuid[], $2::bytea[], $3::bytea[]) AS v (id, checksum, os_hash_value) \
             WHERE images.id = v.id",
        )
        .await
        .map_err(pg)?;
    let (mut read, mut filled) = (0usize, 0u64);
    let mut after: Option<Uuid> = None;
    loop {
        let rows = match after {
            None => tx.query(&first, &[&BATCH]).await,
            Some(id) => tx.query(&next, &[&BATCH, &id]).await,
        }
        .map_err(pg)?;
        let (mut ids, mut checksums, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            let id: Uuid = row.get(0);
            let image: Image = decode_image(row.get(1))
                .map_err(|e| RegistryError::Corrupt(format!("image {id}: {e}")))?;
            if image.checksum.is_some() || image.os_hash_value.is_some() {
                ids.push(id);
                checksums.push(image.checksum.map(String::into_bytes));
                hashes.push(image.os_hash_value.map(String::into_bytes));
            }
        }
        if !ids.is_empty() {
            filled += tx
                .execute(&update, &[&ids, &checksums, &hashes])
                .await
                .map_err(pg)?;
        }
        read += rows.len();
        match rows.last() {
            Some(last) if rows.len() == BATCH as usize => after = Some(last.get(0)),
            _ => break,
        }
    }
    tracing::info!(
        read,
        filled,
        "filled checksum and os_hash_value from the records"
    );
    Ok(())
}

/// The newest migration applied to the database behind `registry`.
pub async fn schema_version(registry: &super::PostgresRegistry) -> Result<i32> {
    let client = registry.client().await?;
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg)?;
    Ok(row.get(0))
}
