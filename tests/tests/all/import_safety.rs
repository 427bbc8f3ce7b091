//! Attacks on the paths that make image data active (issue 13, items 1–4 and part of 7):
//! formats changed while an import runs, an unsafe qcow2 through the locations API, a
//! glance-download and a copy-image, a conversion bomb, two stages racing for the staging
//! quota, and glance-download's token followed across a redirect.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glass_host::config::{AuthMode, StoreConfig};
use glass_tests::data::{fs_store, pseudo_random, put_file};
use glass_tests::import::{
    Reply, WebServer, have_qemu_img, image_tasks, import, make_image, method, stage, wait_import,
};
use glass_tests::{Client, GlassProcess, TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn new_image(client: &Client, disk_format: &str) -> String {
    let image = client
        .create_image(json!({"name": "safety", "disk_format": disk_format,
            "container_format": "bare"}))
        .await;
    image["id"].as_str().unwrap().to_string()
}

/// A qcow2 whose backing file is another file (refused by inspection).
fn backed_qcow2(dir: &Path) -> Vec<u8> {
    make_image(dir, "base.qcow2", "qcow2", "1M", &[]);
    let base = dir.join("base.qcow2");
    make_image(
        dir,
        "backed.qcow2",
        "qcow2",
        "1M",
        &[
            &format!("backing_file={}", base.display()),
            "backing_fmt=qcow2",
        ],
    )
}

/// Waits until every task of the image has ended; the newest.
async fn last_task(client: &Client, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = image_tasks(client, id).await;
        if !tasks.is_empty()
            && tasks
                .iter()
                .all(|t| t["status"] == "success" || t["status"] == "failure")
        {
            return tasks[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tasks of {id} never ended: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn formats_cannot_change_while_an_import_runs() {
    let web = WebServer::start().await;
    web.route("/slow", Reply::Slow(40));
    let server = TestServer::start_with(|c| {
        c.auth = AuthMode::TrustedHeaders;
        c.import.web_download.allowed_networks = vec!["127.0.0.1".into()];
        c.import.web_download.allowed_ports = vec![];
    })
    .await;
    let client = server.client("p1", "member,reader");
    let id = new_image(&client, "raw").await;
    let body = json!({"method": {"name": "web-download", "uri": web.url("/slow")}});
    assert_eq!(import(&client, &id, body).await.0, 202);
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "importing", "{image}");
    for (path, value) in [("/disk_format", "qcow2"), ("/container_format", "ovf")] {
        let r = client
            .request(Method::PATCH, &format!("/v2/images/{id}"))
            .header(
                "Content-Type",
                "application/openstack-images-v2.1-json-patch",
            )
            .header("Accept", "application/json")
            .body(json!([{"op": "replace", "path": path, "value": value}]).to_string())
            .send()
            .await
            .unwrap();
        let (status, body) = glass_tests::into_json(r).await;
        assert_eq!(status, 403, "{path}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("only replaced for a queued image"),
            "{body}"
        );
    }
    let image = wait_import(&client, &id).await;
    assert_eq!(image["disk_format"], "raw", "{image}");
    assert_eq!(image["container_format"], "bare", "{image}");
}

#[tokio::test]
async fn the_locations_task_inspects_what_it_activates() {
    if !have_qemu_img() {
        eprintln!("qemu-img missing: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = backed_qcow2(dir.path());
    let http = backends::http().await.clone();
    let name = format!("glass-backed-{}.qcow2", uuid::Uuid::new_v4().simple());
    std::fs::write(Path::new(http.var("HTTP_DOC_ROOT")).join(&name), &data).unwrap();
    let url = format!("{}/{name}", http.var("HTTP_BASE_URL").trim_end_matches('/'));
    let authority = http.authority("HTTP_BASE_URL");
    let server = TestServer::start_with(move |c| {
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
    })
    .await;
    let client = server.client("p1", "member,reader");
    let id = new_image(&client, "qcow2").await;
    let (status, body) = client
        .post_json(&format!("/v2/images/{id}/locations"), &json!({"url": url}))
        .await;
    assert_eq!(status, 202, "{body}");
    let task = last_task(&client, &id).await;
    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap_or_default();
    assert!(message.contains("backing-file"), "{task}");
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_ne!(image["status"], "active", "{image}");
    assert!(image["os_hash_value"].is_null(), "{image}");
}

#[tokio::test]
async fn glance_download_of_an_unsafe_image_is_refused() {
    if !have_qemu_img() {
        eprintln!("qemu-img missing: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = backed_qcow2(dir.path());
    // The remote deployment does not inspect.
    let source = TestServer::start_with(|c| c.image_format.inspect = false).await;
    let remote = Client::new(&source.url, None);
    let remote_id = new_image(&remote, "qcow2").await;
    assert_eq!(put_file(&remote, &remote_id, data).await.0, 204);

    let source_port: u16 = source.url.rsplit(':').next().unwrap().parse().unwrap();
    let server = TestServer::start_with(|c| {
        c.auth = AuthMode::TrustedHeaders;
        c.import.enabled_methods.push("glance-download".into());
        c.import
            .glance_download
            .endpoints
            .insert("RegionTwo".into(), source.url.clone());
        c.import.web_download.allowed_networks = vec!["127.0.0.0/8".into()];
        c.import.web_download.allowed_ports = vec![source_port];
    })
    .await;
    let client = server.client("p1", "member,reader");
    let id = new_image(&client, "raw").await;
    let body = json!({"method": {"name": "glance-download", "glance_image_id": remote_id,
        "glance_region": "RegionTwo", "glance_service_interface": "public"}});
    let (status, body) = import(&client, &id, body).await;
    assert_eq!(status, 202, "{body}");
    let image = wait_import(&client, &id).await;
    assert_eq!(image["status"], "queued", "{image}");
    assert!(image["os_hash_value"].is_null(), "{image}");
    let task = last_task(&client, &id).await;
    assert_eq!(task["status"], "failure", "{task}");
    assert!(
        task["message"]
            .as_str()
            .unwrap_or_default()
            .contains("backing-file"),
        "{task}"
    );
}

fn two_store_config(dir: &Path, inspect: bool) -> std::path::PathBuf {
    let path = dir.join(format!("glass-{inspect}.toml"));
    let text = format!(
        "[[stores]]\nid = \"one\"\ndriver = \"store-fs\"\ndefault = true\ndirectory = \"one\"\n\n\
         [[stores]]\nid = \"two\"\ndriver = \"store-fs\"\ndirectory = \"two\"\n\n\
         [image_format]\ninspect = {inspect}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn copy_image_of_an_unsafe_image_adds_no_copy() {
    if !have_qemu_img() {
        eprintln!("qemu-img missing: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = backed_qcow2(dir.path());
    // It got in while the deployment did not inspect…
    let glass = GlassProcess::start(&data_dir, Some(&two_store_config(dir.path(), false))).await;
    let client = Client::new(&glass.url, None);
    let id = new_image(&client, "qcow2").await;
    assert_eq!(put_file(&client, &id, data).await.0, 204);
    glass.stop().await;
    // …and is copied once it does.
    let glass = GlassProcess::start(&data_dir, Some(&two_store_config(dir.path(), true))).await;
    let client = Client::new(&glass.url, None);
    let body = json!({"method": {"name": "copy-image"}, "stores": ["two"]});
    let (status, body) = import(&client, &id, body).await;
    assert_eq!(status, 202, "{body}");
    let image = wait_import(&client, &id).await;
    assert_eq!(image["stores"], "one", "{image}");
    assert_eq!(image["os_glance_failed_import"], "two", "{image}");
    let task = last_task(&client, &id).await;
    assert!(
        task["message"]
            .as_str()
            .unwrap_or_default()
            .contains("backing-file"),
        "{task}"
    );
    let copies = std::fs::read_dir(data_dir.join("two"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(copies, 0, "data left in store two");
    glass.stop().await;
}

#[tokio::test]
async fn a_conversion_bomb_is_refused_before_qemu_img_runs() {
    if !have_qemu_img() {
        eprintln!("qemu-img missing: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 4 GiB of virtual disk in a few hundred KiB.
    let bomb = make_image(dir.path(), "bomb.qcow2", "qcow2", "4G", &[]);
    assert!(bomb.len() < 1 << 20);
    let server = TestServer::start_with(|c| {
        c.auth = AuthMode::TrustedHeaders;
        c.image_size_cap = 32 << 20;
        c.import.plugins.convert_to = Some("raw".into());
    })
    .await;
    // The inspector compiled before the stage starts (slow on a cold, busy machine).
    let loaded = server.state.imports.inspector().await;
    assert!(loaded.is_ok_and(|i| i.is_some()));
    let client = server.client("p1", "member,reader");
    let id = new_image(&client, "qcow2").await;
    assert_eq!(stage(&client, &id, bomb).await.0, 204);
    assert_eq!(import(&client, &id, method("glance-direct")).await.0, 202);
    let image = wait_import(&client, &id).await;
    assert_eq!(image["status"], "queued", "{image}");
    let task = last_task(&client, &id).await;
    let message = task["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("virtual size (4294967296 bytes)") && message.contains("not converted"),
        "{task}"
    );
    let staging = server.state.config.data_dir.join("staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in staging: {left:?}");
}

/// `PUT /v2/images/{id}/stage` over a raw socket: `first` bytes, then waits for `go`, then
/// the rest; the status code.
async fn slow_stage(
    url: &str,
    id: &str,
    len: usize,
    first: usize,
    go: tokio::sync::oneshot::Receiver<()>,
) -> u16 {
    let addr = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /v2/images/{id}/stage HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&vec![1u8; first]).await.unwrap();
    let _ = go.await;
    socket.write_all(&vec![1u8; len - first]).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn two_stages_cannot_both_count_on_the_same_room() {
    let server = TestServer::start_with(|c| c.import.staging_quota_mb = 3).await;
    let client = Client::new(&server.url, None);
    let first = new_image(&client, "raw").await;
    let second = new_image(&client, "raw").await;
    let (go, wait) = tokio::sync::oneshot::channel();
    let url = server.url.clone();
    let id = first.clone();
    let running =
        tokio::spawn(async move { slow_stage(&url, &id, 2 << 20, 256 << 10, wait).await });
    // The first stage is under way (its image is uploading) with little of its data written.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, image) = client.get_json(&format!("/v2/images/{first}")).await;
        if image["status"] == "uploading" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{image}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = stage(&client, &second, pseudo_random(2 << 20, 3)).await;
    assert_eq!(status, 413, "the second stage got past the quota: {body}");
    let _ = go.send(());
    assert_eq!(running.await.unwrap(), 204);
    let (_, image) = client.get_json(&format!("/v2/images/{second}")).await;
    assert_eq!(image["status"], "queued", "{image}");
}

/// A loopback HTTP server answering from a table, recording every request head.
struct Recorder {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start(ip: &str, routes: HashMap<String, String>) -> Recorder {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads: Arc<Mutex<Vec<String>>> = Default::default();
        let seen = heads.clone();
        let routes = Arc::new(routes);
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (seen, routes) = (seen.clone(), routes.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    seen.lock().unwrap().push(text);
                    let reply = routes.get(&path).cloned().unwrap_or_else(|| {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .into()
                    });
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Recorder { port, heads, task }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn glance_download_keeps_the_token_from_a_redirect_target() {
    let remote_id = uuid::Uuid::new_v4().to_string();
    let payload = "x".repeat(4096);
    let elsewhere = Recorder::start(
        "127.0.0.2",
        HashMap::from([("/data".to_string(), ok(&payload))]),
    )
    .await;
    let record = json!({"id": remote_id, "status": "active", "disk_format": "raw",
        "container_format": "bare"});
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:{}/data\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n",
        elsewhere.port
    );
    let endpoint = Recorder::start(
        "127.0.0.1",
        HashMap::from([
            (format!("/v2/images/{remote_id}"), ok(&record.to_string())),
            (format!("/v2/images/{remote_id}/file"), redirect),
        ]),
    )
    .await;
    let endpoint_url = format!("http://127.0.0.1:{}", endpoint.port);
    let server = TestServer::start_with(|c| {
        c.auth = AuthMode::TrustedHeaders;
        c.import.enabled_methods.push("glance-download".into());
        c.import
            .glance_download
            .endpoints
            .insert("RegionTwo".into(), endpoint_url);
        c.import.web_download.allowed_networks = vec!["127.0.0.0/8".into()];
        c.import.web_download.allowed_ports = vec![];
    })
    .await;
    let client = server.client("p1", "member,reader");
    let id = new_image(&client, "raw").await;
    let body = json!({"method": {"name": "glance-download", "glance_image_id": remote_id,
        "glance_region": "RegionTwo", "glance_service_interface": "public"}});
    let r = client
        .request(Method::POST, &format!("/v2/images/{id}/import"))
        .header("X-Auth-Token", "user-token-must-not-leak")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let image = wait_import(&client, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["size"], payload.len());
    // The endpoint the token is for got it; the host it redirected to did not.
    let to_endpoint = endpoint.heads();
    assert!(
        to_endpoint
            .iter()
            .all(|h| h.to_ascii_lowercase().contains("x-auth-token: user-token")),
        "{to_endpoint:?}"
    );
    let redirected = elsewhere.heads();
    assert_eq!(redirected.len(), 1, "{redirected:?}");
    assert!(
        !redirected[0].to_ascii_lowercase().contains("x-auth-token"),
        "the token followed the redirect: {redirected:?}"
    );
}
