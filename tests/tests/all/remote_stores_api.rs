//! Remote stores behind the API, against the real servers of `../shared/backends/`: an
//! image uploaded to S3 and Swift and served back; a swap of the S3 driver during 60 s of
//! concurrent uploads and downloads with zero failed requests, then a rollback; wrong
//! credentials and an unreachable server each give a clear 5xx quickly while the other
//! stores keep serving.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use glass_host::config::StoreConfig;
use glass_tests::TestServer;
use glass_tests::backends;
use glass_tests::data::{get_file, new_image, pseudo_random, put_file_to};

fn settings(pairs: &[(&str, &str)]) -> toml::Table {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
        .collect()
}

fn s3_store(id: &str, b: &backends::Backend, secret: &str, endpoint: Option<&str>) -> StoreConfig {
    let endpoint = endpoint.unwrap_or(b.var("S3_ENDPOINT")).to_string();
    StoreConfig {
        id: id.into(),
        driver: "store-s3".into(),
        default: false,
        directory: None,
        hosts: vec![backends::authority(&endpoint)],
        memory_limit_mb: 128,
        network_timeout_ms: 3_000,
        settings: settings(&[
            ("endpoint", &endpoint),
            // One bucket for every run: SeaweedFS has few volumes and each bucket claims some.
            ("bucket", "glass-api"),
            ("access_key", b.var("S3_ACCESS_KEY")),
            ("secret_key", secret),
            ("create_bucket", "true"),
            ("part_size_mb", "5"),
        ]),
        ..StoreConfig::default_fs()
    }
}

fn swift_store(b: &backends::Backend) -> StoreConfig {
    StoreConfig {
        id: "swift".into(),
        driver: "store-swift".into(),
        default: false,
        directory: Some(PathBuf::from("swift-state")),
        hosts: vec![b.authority("SWIFT_AUTH_URL")],
        memory_limit_mb: 128,
        settings: settings(&[
            ("auth_version", "1"),
            ("auth_url", b.var("SWIFT_AUTH_URL")),
            ("user", b.var("SWIFT_USER")),
            ("key", b.var("SWIFT_KEY")),
            ("container", "glass-api"),
            ("large_object_size_mb", "4"),
            ("segment_size_mb", "2"),
        ]),
        ..StoreConfig::default_fs()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_and_swift_round_trip_and_a_hot_swap_under_load() {
    let (s3, swift) = (backends::s3().await, backends::swift().await);
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.stores = vec![
            StoreConfig::default_fs(),
            s3_store("s3", s3, s3.var("S3_SECRET_KEY"), None),
            swift_store(swift),
        ];
    })
    .await;
    let admin = server.admin();
    for store in ["s3", "swift"] {
        let data = pseudo_random(11 * 1024 * 1024 + 5, 77);
        let id = new_image(&admin).await;
        let (status, body) = put_file_to(&admin, &id, Some(store), data.clone()).await;
        assert_eq!(status, 204, "{store}: {body}");
        let (_, image) = admin.get_json(&format!("/v2/images/{id}")).await;
        assert_eq!(image["stores"], store);
        let (status, got) = get_file(&admin, &id).await;
        assert_eq!(status, 200);
        assert!(got.unwrap() == data, "{store} returned other bytes");
    }

    let seconds = std::env::var("GLASS_SWAP_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let report = glass_tests::load::swap_under_load(
        admin.clone(),
        "s3",
        glass_runtime::STORE_S3.to_vec(),
        4,
        1024 * 1024,
        Duration::from_secs(seconds),
        Duration::from_millis(500),
    )
    .await;
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.swaps >= seconds, "{report:?}");
    assert!(report.cycles >= 20, "{report:?}");
    eprintln!("swap under load: {report:?}");
}

#[tokio::test]
async fn wrong_credentials_and_unreachable_servers_fail_fast_and_alone() {
    let s3 = backends::s3().await;
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.stores = vec![
            StoreConfig::default_fs(),
            s3_store("badkey", s3, "not-the-secret", None),
            s3_store("down", s3, s3.var("S3_SECRET_KEY"), Some(&dead_url)),
        ];
    })
    .await;
    let admin = server.admin();
    for store in ["badkey", "down"] {
        let id = new_image(&admin).await;
        let started = Instant::now();
        let (status, body) = put_file_to(&admin, &id, Some(store), pseudo_random(100_000, 1)).await;
        let took = started.elapsed();
        assert!((500..600).contains(&status), "{store}: {status} {body}");
        assert!(
            body.to_string().contains(store),
            "the error names the store: {body}"
        );
        assert!(took < Duration::from_secs(15), "{store} took {took:?}");
        let (_, image) = admin.get_json(&format!("/v2/images/{id}")).await;
        assert_eq!(
            image["status"], "queued",
            "a failed upload leaves the image queued"
        );
        // The file store keeps serving meanwhile.
        let other = new_image(&admin).await;
        assert_eq!(
            put_file_to(&admin, &other, Some("fs"), b"ok".to_vec())
                .await
                .0,
            204
        );
        assert_eq!(get_file(&admin, &other).await.1.unwrap(), b"ok");
    }
}

#[tokio::test]
async fn s3_images_are_cached_on_first_download_and_served_from_the_cache() {
    let s3 = backends::s3().await;
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.stores = vec![s3_store("s3", s3, s3.var("S3_SECRET_KEY"), None)];
    })
    .await;
    let admin = server.admin();
    let data = pseudo_random(6 * 1024 * 1024 + 3, 12);
    let id = new_image(&admin).await;
    assert_eq!(
        put_file_to(&admin, &id, Some("s3"), data.clone()).await.0,
        204
    );
    let header = |r: &reqwest::Response| {
        r.headers()
            .get("x-glass-cache")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for expected in ["miss", "hit"] {
        let r = admin.get(&format!("/v2/images/{id}/file")).await;
        assert_eq!(header(&r).as_deref(), Some(expected));
        assert!(r.bytes().await.unwrap()[..] == data[..]);
    }
    let (_, state) = admin.get_json("/v2/cache").await;
    assert_eq!(
        state["cached_images"][0]["image_id"],
        id.as_str(),
        "{state}"
    );
    let text = admin.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("glass_cache_downloads_total{result=\"hit\"} 1"),
        "{text}"
    );
    // S3 served the first download only.
    assert!(
        text.contains(&format!(
            "glass_store_bytes_total{{store=\"s3\",direction=\"out\"}} {}",
            data.len()
        )),
        "{text}"
    );
    assert_eq!(
        admin
            .send(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
            .await
            .0,
        204
    );
}
