//! The PostgreSQL engine against the shared registry test suite, on a throwaway cluster
//! started for this test binary; plus what only a real server shows: compare-and-swap
//! between two pools (two nodes), migrations applied once when nodes start together, and
//! a schema newer than this release refused; query plans on a large catalogue (`plans`);
//! migration 3's backfill on a database the previous release wrote (`backfill`); the label
//! rows tag and property filters join, in step with every write (`labels`).

#[path = "postgres/backfill.rs"]
mod backfill;
#[path = "postgres/labels.rs"]
mod labels;
#[path = "postgres/plans.rs"]
mod plans;

use std::sync::Arc;

use glass_registry::postgres::{SCHEMA_VERSION, schema_version};
use glass_registry::{
    Image, ImageStatus, PostgresOptions, PostgresRegistry, Registry, RegistryError,
};
use glass_registry_testing::{TempCluster, test_suite};
use tokio::sync::Barrier;
use uuid::Uuid;

/// A database of its own on the cluster the tests running at the time share (a test holds
/// the cluster until it ends).
fn database(label: &str) -> (Arc<TempCluster>, String) {
    let cluster = TempCluster::shared().unwrap_or_else(|e| panic!("postgres: {e}"));
    let name = format!("{label}_{}", Uuid::new_v4().simple());
    let url = cluster
        .create_database(&name)
        .unwrap_or_else(|e| panic!("create database: {e}"));
    (cluster, url)
}

async fn connect(url: &str) -> PostgresRegistry {
    PostgresRegistry::connect(&PostgresOptions {
        url: url.to_string(),
        pool_size: 8,
    })
    .await
    .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_registry_suite() {
    let (_cluster, url) = database("suite");
    let registry = connect(&url).await;
    test_suite::run(&registry).await;
    assert!(labels::assert_labels_in_step(&url).await > 0);
}

/// The suite again, on the database the first run left behind (the suite must not assume an
/// empty registry), through a second pool as a second node would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_suite_twice_on_one_database() {
    let (_cluster, url) = database("twice");
    test_suite::run(&connect(&url).await).await;
    test_suite::run(&connect(&url).await).await;
    assert!(labels::assert_labels_in_step(&url).await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let (_cluster, url) = database("migrate");
    let barrier = Arc::new(Barrier::new(4));
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                connect(&url).await
            })
        })
        .collect();
    let mut registries = Vec::new();
    for node in nodes {
        registries.push(node.await.expect("node"));
    }
    assert_eq!(
        schema_version(&registries[0]).await.expect("version"),
        SCHEMA_VERSION
    );
    // Each node sees what another wrote.
    let image = registries[0]
        .create_image(Image::new(Uuid::new_v4(), Some("p".into())))
        .await
        .expect("create");
    for r in &registries {
        assert_eq!(
            r.get_image(image.id).await.expect("get"),
            Some(image.clone())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let (_cluster, url) = database("newer");
    let registry = connect(&url).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .expect("insert");
    drop(registry);
    let refused = PostgresRegistry::connect(&PostgresOptions {
        url: url.clone(),
        pool_size: 1,
    })
    .await;
    match refused {
        Err(RegistryError::Engine(message)) => {
            assert!(message.contains("newer"), "{message}")
        }
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(_) => panic!("a database from a newer release must be refused"),
    }
}

/// Two nodes (two pools) racing on one image from one revision: exactly one wins each round,
/// the loser gets `Stale`; for queued -> saving too (two uploads starting at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_across_two_pools() {
    let (_cluster, url) = database("race");
    let nodes = [Arc::new(connect(&url).await), Arc::new(connect(&url).await)];
    for round in 0..20 {
        let image = nodes[0]
            .create_image(Image::new(Uuid::new_v4(), Some("race".into())))
            .await
            .expect("create");
        let barrier = Arc::new(Barrier::new(8));
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let node = nodes[i % 2].clone();
                let barrier = barrier.clone();
                let mut attempt = image.clone();
                attempt.name = Some(format!("writer-{i}"));
                if i < 2 {
                    attempt.status = ImageStatus::Saving;
                }
                tokio::spawn(async move {
                    barrier.wait().await;
                    node.update_image(attempt).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for w in writers {
            results.push(w.await.expect("writer"));
        }
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let stale = results
            .iter()
            .filter(|r| matches!(r, Err(RegistryError::Stale(id)) if *id == image.id))
            .count();
        assert_eq!((ok, stale), (1, 7), "round {round}: {results:?}");
        let stored = nodes[1]
            .get_image(image.id)
            .await
            .expect("get")
            .expect("image");
        assert_eq!(stored.revision, image.revision + 1, "round {round}");
    }
}
