//! Several stores in one deployment: discovery (`/v2/info/stores`), choosing the store of an
//! upload, removing one copy (`DELETE /v2/stores/{store}/{image}`), downloads that fall back
//! to the next location when a store fails up front or mid-way, and the plugin admin API
//! (status, hot swap, rollback).

use std::path::PathBuf;
use std::time::Duration;

use glass_tests::data::{
    add_copy, fs_store, get_file, new_image, pseudo_random, put_file, put_file_to,
};
use glass_tests::{Client, TestServer};
use reqwest::Method;
use serde_json::Value;

/// Two file stores: `fast` (weight 100) and `slow` (weight 10, the default).
async fn two_stores() -> TestServer {
    TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.stores = vec![fs_store("fast", 100, false), fs_store("slow", 10, true)];
    })
    .await
}

fn data_file(server: &TestServer, store: &str, id: &str) -> PathBuf {
    server.state.config.data_dir.join(store).join(id)
}

#[tokio::test]
async fn discovery_lists_stores_and_detail_is_admin_only() {
    let server = two_stores().await;
    let (status, body) = server.admin().get_json("/v2/info/stores").await;
    assert_eq!(status, 200);
    let stores = body["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 2);
    assert_eq!(stores[0]["id"], "fast");
    assert_eq!(stores[0]["description"], "file store fast");
    assert!(stores[0].get("default").is_none());
    assert_eq!(stores[1]["default"], "true");

    let (status, body) = server.admin().get_json("/v2/info/stores/detail").await;
    assert_eq!(status, 200);
    assert_eq!(body["stores"][0]["type"], "file");
    assert_eq!(body["stores"][0]["weight"], 100);
    assert_eq!(body["stores"][0]["properties"]["driver"], "store-fs");

    let user = server.client("p1", "member,reader");
    assert_eq!(user.get_json("/v2/info/stores").await.0, 200);
    assert_eq!(user.get_json("/v2/info/stores/detail").await.0, 403);
}

#[tokio::test]
async fn upload_goes_to_the_named_store_or_the_default() {
    let server = two_stores().await;
    let client = server.admin();
    let a = new_image(&client).await;
    assert_eq!(put_file(&client, &a, b"default".to_vec()).await.0, 204);
    let (_, image) = client.get_json(&format!("/v2/images/{a}")).await;
    assert_eq!(image["stores"], "slow");
    assert!(data_file(&server, "slow", &a).exists());

    let b = new_image(&client).await;
    assert_eq!(
        put_file_to(&client, &b, Some("fast"), b"named".to_vec())
            .await
            .0,
        204
    );
    let (_, image) = client.get_json(&format!("/v2/images/{b}")).await;
    assert_eq!(image["stores"], "fast");
    assert_eq!(get_file(&client, &b).await.1.unwrap(), b"named");

    let c = new_image(&client).await;
    let (status, body) = put_file_to(&client, &c, Some("nowhere"), b"x".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("Unknown scheme 'nowhere'"),
        "{body}"
    );
    let (_, image) = client.get_json(&format!("/v2/images/{c}")).await;
    assert_eq!(image["status"], "queued");
}

#[tokio::test]
async fn delete_from_store_follows_glances_rules() {
    let server = two_stores().await;
    let client = server.admin();
    let data = pseudo_random(300_000, 7);
    let id = new_image(&client).await;
    assert_eq!(put_file(&client, &id, data.clone()).await.0, 204);

    // The only copy cannot be removed this way.
    let path = format!("/v2/stores/slow/{id}");
    assert_eq!(client.send(Method::DELETE, &path).await.0, 403);
    // Unknown store: 409. With one copy, even a store without it answers 403: Glance checks
    // the number of copies first.
    assert_eq!(
        client
            .send(Method::DELETE, &format!("/v2/stores/nowhere/{id}"))
            .await
            .0,
        409
    );
    assert_eq!(
        client
            .send(Method::DELETE, &format!("/v2/stores/fast/{id}"))
            .await
            .0,
        403
    );

    add_copy(&server, &id, "fast", &data).await;
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["stores"], "slow,fast");
    let stranger = server.client("someone-else", "member,reader");
    assert_ne!(stranger.send(Method::DELETE, &path).await.0, 204);

    let (status, body) = client.send(Method::DELETE, &path).await;
    assert_eq!(status, 204, "{body}");
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["stores"], "fast");
    assert!(
        !data_file(&server, "slow", &id).exists(),
        "bytes removed from the store"
    );
    assert_eq!(get_file(&client, &id).await.1.unwrap(), data);
}

#[tokio::test]
async fn download_falls_back_when_a_store_fails_up_front_or_mid_way() {
    let server = two_stores().await;
    let client = server.admin();
    let data = pseudo_random(2_000_000, 11);
    let id = new_image(&client).await;
    assert_eq!(put_file(&client, &id, data.clone()).await.0, 204);
    add_copy(&server, &id, "fast", &data).await;

    // `fast` weighs more, so it serves; cut its copy short: the download switches to `slow`
    // where `fast` stopped and the client still gets every byte.
    let fast = data_file(&server, "fast", &id);
    std::fs::write(&fast, &data[..700_000]).unwrap();
    let (status, body) = get_file(&client, &id).await;
    assert_eq!(status, 200);
    assert_eq!(body.unwrap(), data);

    // A range crossing the cut.
    let r = client
        .request(Method::GET, &format!("/v2/images/{id}/file"))
        .header("Range", "bytes=600000-899999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &data[600_000..900_000]);

    // Gone from `fast` altogether: served from `slow` from the first byte.
    std::fs::remove_file(&fast).unwrap();
    assert_eq!(get_file(&client, &id).await.1.unwrap(), data);

    // Both copies damaged: the body breaks off rather than deliver wrong bytes.
    std::fs::write(data_file(&server, "slow", &id), &data[..100_000]).unwrap();
    let (status, body) = get_file(&client, &id).await;
    assert!(
        body.is_err(),
        "a short body must not pass as complete ({status})"
    );

    // No copy at all: a clean status before any byte (204, as Glance answers when the store
    // has no data).
    std::fs::remove_file(data_file(&server, "slow", &id)).unwrap();
    let (status, body) = get_file(&client, &id).await;
    assert_eq!((status, body.unwrap().len()), (204, 0));
}

async fn plugin_call(client: &Client, method: Method, path: &str, body: Vec<u8>) -> (u16, Value) {
    let r = client
        .request(method, path)
        .header("Content-Type", "application/wasm")
        .body(body)
        .send()
        .await
        .unwrap();
    glass_tests::into_json(r).await
}

#[tokio::test]
async fn plugin_admin_api_lists_swaps_and_rolls_back() {
    let server = two_stores().await;
    let admin = server.admin();
    let (status, body) = admin.get_json("/glass/v1/plugins").await;
    assert_eq!(status, 200);
    let plugins = body["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 2);
    assert_eq!(plugins[0]["store"], "fast");
    assert_eq!(plugins[0]["current"]["driver"], "store-fs");
    assert_eq!(plugins[0]["current"]["wit"], "glass:store@0.1.0");

    let user = server.client("p1", "member,reader");
    assert_eq!(user.get_json("/glass/v1/plugins").await.0, 403);

    // Something that is not a component is refused; the old version keeps serving.
    let (status, body) = plugin_call(
        &admin,
        Method::PUT,
        "/glass/v1/plugins/fast",
        b"\0asm junk".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let id = new_image(&admin).await;
    assert_eq!(
        put_file_to(&admin, &id, Some("fast"), b"still".to_vec())
            .await
            .0,
        204
    );

    // A real component is swapped in; the replaced version is listed; rollback returns.
    let (status, body) = plugin_call(
        &admin,
        Method::PUT,
        "/glass/v1/plugins/fast",
        glass_runtime::STORE_FS.to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["plugin"]["current"]["source"]
            .as_str()
            .unwrap()
            .starts_with("uploaded")
    );
    assert_eq!(body["plugin"]["previous"].as_array().unwrap().len(), 1);
    assert_eq!(get_file(&admin, &id).await.1.unwrap(), b"still");
    let (status, body) = plugin_call(
        &admin,
        Method::POST,
        "/glass/v1/plugins/fast/rollback",
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["plugin"]["current"]["source"]
            .as_str()
            .unwrap()
            .starts_with("built-in")
    );
    let (status, _) = plugin_call(
        &admin,
        Method::POST,
        "/glass/v1/plugins/fast/rollback",
        vec![],
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(admin.get_json("/glass/v1/plugins/nowhere").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_swap_under_load_fails_no_request() {
    let server = two_stores().await;
    let report = glass_tests::load::swap_under_load(
        server.admin(),
        "fast",
        glass_runtime::STORE_FS.to_vec(),
        4,
        256 * 1024,
        Duration::from_secs(20),
        Duration::from_millis(200),
    )
    .await;
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.swaps >= 40, "{report:?}");
    // Requests kept flowing through the swaps (each cycle an upload, download and delete; a
    // loaded machine manages about one every two seconds).
    assert!(report.cycles >= 8, "{report:?}");
    // Every swap and rollback was seen by the plugin: it ends on the configured version.
    let (_, body) = server.admin().get_json("/glass/v1/plugins/fast").await;
    assert!(
        body["plugin"]["current"]["calls"].as_u64().unwrap() > 0,
        "{body}"
    );
}

#[tokio::test]
async fn metrics_count_requests_bytes_per_store_and_plugin_calls() {
    let server = two_stores().await;
    let client = server.admin();
    let id = new_image(&client).await;
    assert_eq!(
        put_file_to(&client, &id, Some("fast"), vec![7u8; 12_345])
            .await
            .0,
        204
    );
    assert_eq!(get_file(&client, &id).await.1.unwrap().len(), 12_345);
    let r = client
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics")
    );
    let text = r.text().await.unwrap();
    for expected in [
        "glass_store_bytes_total{store=\"fast\",direction=\"in\"} 12345",
        "glass_store_bytes_total{store=\"fast\",direction=\"out\"} 12345",
        "glass_http_requests_total{method=\"PUT\",route=\"/v2/images/{id}/file\",status=\"204\"} 1",
        "glass_http_request_duration_seconds_count{method=\"GET\",route=\"/v2/images/{id}/file\"} 1",
        "glass_plugin_faults_total{store=\"fast\"} 0",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    let calls = text
        .lines()
        .find_map(|l| l.strip_prefix("glass_plugin_calls_total{store=\"fast\"} "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(calls >= 3, "info + add + get: {calls}");
}
