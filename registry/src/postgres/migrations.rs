//! The PostgreSQL schema's versions: the SQL files of `registry/migrations`, embedded in the
//! binary and applied in order, each recorded in `schema_migrations`. All pending ones run
//! in one transaction under an advisory lock, so two nodes starting together take turns and
//! the second finds the work done; a failure leaves the database as it was. A database
//! already migrated past what this release knows is refused rather than used.

use crate::error::{RegistryError, Result};

use super::pg;

/// (version, name, SQL), in order. A released file is never edited: a change is a new file.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "images",
        include_str!("../../migrations/0001_images.sql"),
    ),
    (
        2,
        "metadefs",
        include_str!("../../migrations/0002_metadefs.sql"),
    ),
];

/// The schema version this release writes and reads.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

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
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(version, name, "applying registry migration");
        tx.batch_execute(sql).await.map_err(|e| {
            let e = pg(e);
            RegistryError::Engine(format!("migration {version:04}_{name}: {e}"))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
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
