//! The image cache, on a file store configured as cached (the same code path as a remote
//! store): the first full download fills it while streaming, the second is served from it
//! (`x-glass-cache: hit`, metrics), partial reads never fill it, the cache API lists,
//! queues (prefetch), deletes, cleans a half-written entry and prunes to `max_size_mb`.

use std::path::PathBuf;
use std::time::Duration;

use glass_host::config::StoreConfig;
use glass_tests::data::{new_image, pseudo_random, put_file};
use glass_tests::{Client, TestServer};
use reqwest::Method;
use serde_json::Value;

async fn cached_server(max_size_mb: u64) -> TestServer {
    TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.stores = vec![StoreConfig {
            id: "remote".into(),
            directory: Some(PathBuf::from("remote")),
            cache: Some(true),
            ..StoreConfig::default_fs()
        }];
        c.image_cache.max_size_mb = max_size_mb;
        c.image_cache.interval_s = 3600; // the test drives prefetch and clean itself
    })
    .await
}

async fn download(
    client: &Client,
    id: &str,
    range: Option<&str>,
) -> (u16, Option<String>, Vec<u8>) {
    let mut r = client.request(Method::GET, &format!("/v2/images/{id}/file"));
    if let Some(range) = range {
        r = r.header("Range", range);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let cache = r
        .headers()
        .get("x-glass-cache")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cache, r.bytes().await.unwrap().to_vec())
}

async fn cache_state(client: &Client) -> Value {
    let (status, body) = client.get_json("/v2/cache").await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn second_download_is_served_from_the_cache() {
    let server = cached_server(1024).await;
    let admin = server.admin();
    let data = pseudo_random(3_000_000, 5);
    let id = new_image(&admin).await;
    assert_eq!(put_file(&admin, &id, data.clone()).await.0, 204);

    // A ranged read does not fill the cache.
    let (status, cache, body) = download(&admin, &id, Some("bytes=10-99")).await;
    assert_eq!((status, cache.as_deref()), (206, Some("miss")));
    assert!(body[..] == data[10..100]);
    assert_eq!(
        cache_state(&admin).await["cached_images"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let (status, cache, body) = download(&admin, &id, None).await;
    assert_eq!((status, cache.as_deref()), (200, Some("miss")));
    assert!(body == data);
    let (status, cache, body) = download(&admin, &id, None).await;
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    assert!(body == data);
    let (status, cache, body) = download(&admin, &id, Some("bytes=-1000")).await;
    assert_eq!((status, cache.as_deref()), (206, Some("hit")));
    assert!(body[..] == data[data.len() - 1000..]);

    let state = cache_state(&admin).await;
    assert_eq!(state["cached_images"][0]["image_id"], id.as_str());
    assert_eq!(state["cached_images"][0]["hits"], 2);
    assert_eq!(state["cached_images"][0]["size"], 3_000_000);
    let text = admin.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("glass_cache_downloads_total{result=\"hit\"} 2"),
        "{text}"
    );

    // A cached copy that no longer matches its image is not served: remove the store's copy
    // and corrupt the cached one; the cleaner drops the entry.
    let cache_file = server.state.config.data_dir.join("image-cache").join(&id);
    let mut bytes = std::fs::read(&cache_file).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&cache_file, &bytes).unwrap();
    let (status, body) = admin.send(Method::POST, "/v2/cache/clean").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_files_cleaned"], 1);
    assert_eq!(
        cache_state(&admin).await["cached_images"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let (_, cache, body) = download(&admin, &id, None).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    assert!(body == data);
}

#[tokio::test]
async fn queue_prefetch_delete_clean_and_prune() {
    let server = cached_server(3).await; // 3 MiB
    let admin = server.admin();
    let mut ids = Vec::new();
    for seed in 0..3u64 {
        let id = new_image(&admin).await;
        assert_eq!(
            put_file(&admin, &id, pseudo_random(1_200_000, seed))
                .await
                .0,
            204
        );
        ids.push(id);
    }
    // Queue: only active images, unknown ones 404, users 403.
    assert_eq!(
        admin
            .send(Method::PUT, &format!("/v2/cache/{}", ids[0]))
            .await
            .0,
        202
    );
    assert_eq!(
        admin
            .send(Method::PUT, &format!("/v2/cache/{}", ids[1]))
            .await
            .0,
        202
    );
    let queued = new_image(&admin).await;
    assert_eq!(
        admin
            .send(Method::PUT, &format!("/v2/cache/{queued}"))
            .await
            .0,
        400
    );
    assert_eq!(
        admin
            .send(
                Method::PUT,
                "/v2/cache/00000000-0000-0000-0000-000000000000"
            )
            .await
            .0,
        404
    );
    let user = server.client("p1", "member,reader");
    assert_eq!(user.get_json("/v2/cache").await.0, 403);
    assert_eq!(
        cache_state(&admin).await["queued_images"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The prefetcher fills both and empties the queue.
    let cache = server.state.cache.clone().unwrap();
    glass_images::periodic::prefetch_queued(&server.state, &cache).await;
    let state = cache_state(&admin).await;
    assert_eq!(
        state["cached_images"].as_array().unwrap().len(),
        2,
        "{state}"
    );
    assert_eq!(state["queued_images"].as_array().unwrap().len(), 0);
    assert_eq!(
        download(&admin, &ids[0], None).await.1.as_deref(),
        Some("hit")
    );

    // A third entry takes the cache over 3 MiB: the least recently used (ids[1]) goes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        download(&admin, &ids[2], None).await.1.as_deref(),
        Some("miss")
    );
    let cached: Vec<String> = cache_state(&admin).await["cached_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["image_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cached.len(), 2, "{cached:?}");
    assert!(!cached.contains(&ids[1]), "LRU pruned first: {cached:?}");
    assert!(cache.total_size() <= 3 << 20);

    // A half-written entry stalled past stall_time is removed by clean; a fresh one is not.
    let incomplete = server.state.config.data_dir.join("image-cache/incomplete");
    std::fs::write(incomplete.join(&ids[1]), b"half").unwrap();
    let (_, body) = admin.send(Method::POST, "/v2/cache/clean").await;
    assert_eq!(body["total_files_cleaned"], 0, "fresh fills are left alone");
    let old = std::time::SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(incomplete.join(&ids[1]))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let (_, body) = admin.send(Method::POST, "/v2/cache/clean").await;
    assert_eq!(body["total_files_cleaned"], 1);
    assert!(!incomplete.join(&ids[1]).exists());

    // Delete one entry, then clear everything.
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("/v2/cache/{}", ids[0]))
            .await
            .0,
        204
    );
    let (status, body) = admin.send(Method::DELETE, "/v2/cache").await;
    assert_eq!(status, 200);
    assert_eq!(body["cache_deleted"], 1);
    let (status, body) = admin.send(Method::POST, "/v2/cache/prune").await;
    assert_eq!(status, 200);
    assert_eq!(body["total_files_pruned"], 0);
}
