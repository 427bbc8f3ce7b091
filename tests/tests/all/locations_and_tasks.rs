//! The locations API (`POST`/`GET /v2/images/{id}/locations`, Images API 2.17) against a
//! real web server (nginx from `../shared/backends`) behind a `store-http` store, the
//! deprecated `POST /v2/tasks` import, and the request id an import task records.

use std::time::Duration;

use glass_host::config::{AuthMode, StoreConfig};
use glass_tests::data::{fs_store, pseudo_random};
use glass_tests::{Client, TestServer, backends};
use md5::Md5;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

/// A file served by nginx: its URL and bytes.
async fn served_file(label: &str, len: usize) -> (String, Vec<u8>, backends::Backend) {
    let http = backends::http().await.clone();
    let name = format!("glass-{label}-{}.img", uuid::Uuid::new_v4().simple());
    let data = pseudo_random(len, len as u64);
    std::fs::write(
        std::path::Path::new(http.var("HTTP_DOC_ROOT")).join(&name),
        &data,
    )
    .unwrap();
    let url = format!("{}/{name}", http.var("HTTP_BASE_URL").trim_end_matches('/'));
    (url, data, http)
}

async fn server_with_web_store(http: &backends::Backend) -> TestServer {
    let authority = http.authority("HTTP_BASE_URL");
    TestServer::start_with(move |c| {
        c.auth = AuthMode::TrustedHeaders;
        c.stores = vec![
            fs_store("fs", 0, true),
            StoreConfig {
                id: "web".into(),
                driver: "store-http".into(),
                hosts: vec![authority],
                directory: None,
                default: false,
                ..StoreConfig::default_fs()
            },
        ];
        c.import.web_download.allowed_networks = vec!["127.0.0.1".into()];
        c.import.web_download.allowed_ports = vec![];
    })
    .await
}

async fn image_tasks(client: &Client, id: &str) -> Vec<Value> {
    let (status, body) = client.get_json(&format!("/v2/images/{id}/tasks")).await;
    assert_eq!(status, 200, "{body}");
    body["tasks"].as_array().unwrap().clone()
}

/// Waits until every task of the image has left pending/processing; returns them.
async fn settled_tasks(client: &Client, id: &str) -> Vec<Value> {
    for _ in 0..600 {
        let tasks = image_tasks(client, id).await;
        if !tasks.is_empty()
            && tasks
                .iter()
                .all(|t| t["status"] == "success" || t["status"] == "failure")
        {
            return tasks;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "tasks of {id} never settled: {:?}",
        image_tasks(client, id).await
    );
}

async fn add_location(client: &Client, id: &str, body: Value) -> (u16, Value) {
    client
        .post_json(&format!("/v2/images/{id}/locations"), &body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_api_checks_hashes_before_activating() {
    let (url, data, http) = served_file("location", 3 * 1024 * 1024 + 17).await;
    let server = server_with_web_store(&http).await;
    let owner = server.client("p1", "member,reader");
    let sha256 = hex::encode(Sha256::digest(&data));
    let sha512 = hex::encode(Sha512::digest(&data));
    let md5 = hex::encode(Md5::digest(&data));

    let image = owner
        .create_image(
            json!({"name": "by-location", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    // Malformed validation data: refused before anything happens.
    for bad in [
        json!({"os_hash_algo": "sha512", "os_hash_value": "dbc9e0f80d131e64b94913a7b40bb5"}),
        json!({"os_hash_value": sha512}),
        json!({"os_hash_algo": "sha123", "os_hash_value": sha256}),
        json!({"os_hash_algo": "sha512", "os_hash_value": sha256}),
        json!({"os_hash_algo": "sha256", "os_hash_value": "zz"}),
        json!({"os_hash_algo": "sha256", "os_hash_value": sha256, "checksum": md5}),
    ] {
        let (status, body) =
            add_location(&owner, &id, json!({"url": url, "validation_data": bad})).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert!(image_tasks(&owner, &id).await.is_empty());
    // A URL no http store serves; a project that does not own the image.
    let (status, _) = add_location(&owner, &id, json!({"url": "http://203.0.113.9/x.img"})).await;
    assert_eq!(status, 403);
    let other = server.client("p2", "member,reader");
    assert_eq!(add_location(&other, &id, json!({"url": url})).await.0, 404);

    // The right sha256: the task reads the bytes through the store, the image goes active.
    let (status, body) = add_location(
        &owner,
        &id,
        json!({"url": url, "validation_data": {"os_hash_algo": "sha256", "os_hash_value": sha256}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let tasks = settled_tasks(&owner, &id).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["status"], "success", "{}", tasks[0]);
    assert_eq!(tasks[0]["type"], "location_import");
    let (_, image) = owner.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], data.len() as u64);
    assert_eq!(image["checksum"], md5.as_str());
    assert_eq!(image["os_hash_algo"], "sha256");
    assert_eq!(image["os_hash_value"], sha256.as_str());
    assert_eq!(image["stores"], "web");
    let r = owner.get(&format!("/v2/images/{id}/file")).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    // Only queued images take a location; only the service role (or an admin) lists them.
    assert_eq!(add_location(&owner, &id, json!({"url": url})).await.0, 409);
    assert_eq!(
        owner
            .get_json(&format!("/v2/images/{id}/locations"))
            .await
            .0,
        403
    );
    let (status, locations) = server
        .admin()
        .get_json(&format!("/v2/images/{id}/locations"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(locations[0]["url"], url.as_str());
    assert_eq!(locations[0]["metadata"]["store"], "web");

    // A well-formed but wrong hash: the task fails, the image stays queued without hashes.
    let wrong = owner.create_image(json!({"name": "wrong-hash"})).await;
    let wid = wrong["id"].as_str().unwrap().to_owned();
    let (status, _) = add_location(
        &owner,
        &wid,
        json!({"url": url, "validation_data": {"os_hash_algo": "sha512", "os_hash_value": "beefdead".repeat(16)}}),
    )
    .await;
    assert_eq!(status, 202);
    let tasks = settled_tasks(&owner, &wid).await;
    assert_eq!(tasks[0]["status"], "failure");
    assert!(
        tasks[0]["message"]
            .as_str()
            .unwrap()
            .contains("not matched")
    );
    let (_, image) = owner.get_json(&format!("/v2/images/{wid}")).await;
    assert_eq!(image["status"], "queued");
    assert!(image["checksum"].is_null() && image["os_hash_value"].is_null());
    assert_eq!(
        image["stores"], "web",
        "Glance keeps a failed http location"
    );

    // No validation data: sha512 computed.
    let plain = owner.create_image(json!({"name": "plain"})).await;
    let pid = plain["id"].as_str().unwrap().to_owned();
    assert_eq!(add_location(&owner, &pid, json!({"url": url})).await.0, 202);
    assert_eq!(settled_tasks(&owner, &pid).await[0]["status"], "success");
    let (_, image) = owner.get_json(&format!("/v2/images/{pid}")).await;
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(image["os_hash_value"], sha512.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_import_task_and_request_ids() {
    let (url, data, http) = served_file("task", 256 * 1024 + 3).await;
    let server = server_with_web_store(&http).await;
    let admin = server.admin();
    let member = server.client("p1", "member,reader");

    // POST /v2/tasks: admin only; import_from must pass the web-download filters.
    let task = json!({"type": "import", "input": {
        "import_from": url, "import_from_format": "raw",
        "image_properties": {"name": "from-task", "disk_format": "raw", "container_format": "bare"}}});
    assert_eq!(member.post_json("/v2/tasks", &task).await.0, 403);
    let bad = json!({"type": "import", "input": {
        "import_from": "http://does-not.exist.invalid/x.qcow2", "import_from_format": "qcow2",
        "image_properties": {"name": "never"}}});
    let r = admin
        .request(Method::POST, "/v2/tasks")
        .header("Accept", "application/json")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("does-not.exist.invalid"), "{text}");
    let metadata = json!({"type": "import", "input": {
        "import_from": "http://169.254.169.254/latest", "image_properties": {}}});
    assert_eq!(admin.post_json("/v2/tasks", &metadata).await.0, 400);
    assert_eq!(
        admin
            .post_json("/v2/tasks", &json!({"type": "import"}))
            .await
            .0,
        400
    );
    let (status, created) = admin.post_json("/v2/tasks", &task).await;
    assert_eq!(status, 201, "{created}");
    let task_id = created["id"].as_str().unwrap().to_owned();
    let image_id = created["image_id"].as_str().unwrap().to_owned();
    let mut shown = Value::Null;
    for _ in 0..600 {
        shown = admin.get_json(&format!("/v2/tasks/{task_id}")).await.1;
        if shown["status"] == "success" || shown["status"] == "failure" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shown["status"], "success", "{shown}");
    let (_, image) = admin.get_json(&format!("/v2/images/{image_id}")).await;
    assert_eq!(image["name"], "from-task");
    assert_eq!(image["status"], "active");
    let r = admin.get(&format!("/v2/images/{image_id}/file")).await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());

    // An import's task records the request id of the import call.
    let image = member
        .create_image(json!({"name": "web", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    let r = member
        .request(Method::POST, &format!("/v2/images/{id}/import"))
        .json(&json!({"method": {"name": "web-download", "uri": url}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let request_id = r.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let tasks = settled_tasks(&member, &id).await;
    assert_eq!(tasks[0]["request_id"], request_id.as_str());
    assert_eq!(tasks[0]["status"], "success");
}
