//! The real `glass` binary: start-up, configuration errors, restart persistence, and crash
//! consistency after kill -9 in the middle of concurrent writes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use glass_tests::{Client, GlassProcess, glass_binary};
use serde_json::{Value, json};

fn trusted_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("glass.toml");
    std::fs::write(&path, "auth = \"trusted-headers\"\n").unwrap();
    path
}

fn as_project(url: &str, project: &str) -> Client {
    Client::new(
        url,
        Some((project.to_string(), "member,reader".to_string())),
    )
}

/// Every image the listing shows, following `next` links.
async fn list_all(client: &Client) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = Some("/v2/images?limit=100".to_string());
    while let Some(path) = next {
        let (status, body) = client.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        out.extend(body["images"].as_array().unwrap().iter().cloned());
        next = body["next"].as_str().map(String::from);
    }
    out
}

#[tokio::test]
async fn noauth_default_serves_and_unknown_config_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let glass = GlassProcess::start(dir.path(), None).await;
    let client = Client::new(&glass.url, None);
    let image = client.create_image(json!({"name": "noauth"})).await;
    assert_eq!(
        image["owner"],
        glass_tests::ADMIN_PROJECT,
        "noauth acts as the default project"
    );
    glass.stop().await;

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\nbogus_key = 1\n").unwrap();
    let out = std::process::Command::new(glass_binary())
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bogus_key"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
}

#[tokio::test]
async fn restart_keeps_images_and_members() {
    let dir = tempfile::tempdir().unwrap();
    let config = trusted_config(dir.path());
    let glass = GlassProcess::start(dir.path(), Some(&config)).await;
    let owner = as_project(&glass.url, "1111aaaa1111aaaa1111aaaa1111aaaa");
    let mut before = HashMap::new();
    for i in 0..20 {
        let image = owner
            .create_image(
                json!({"name": format!("keep-{i}"), "os_distro": "debian", "tags": ["k"]}),
            )
            .await;
        before.insert(image["id"].as_str().unwrap().to_string(), image);
    }
    let shared = before.keys().next().unwrap().clone();
    let (status, _) = owner
        .post_json(
            &format!("/v2/images/{shared}/members"),
            &json!({"member": "2222bbbb2222bbbb2222bbbb2222bbbb"}),
        )
        .await;
    assert_eq!(status, 200);
    glass.stop().await;

    let glass = GlassProcess::start(dir.path(), Some(&config)).await;
    let owner = as_project(&glass.url, "1111aaaa1111aaaa1111aaaa1111aaaa");
    let after: HashMap<String, Value> = list_all(&owner)
        .await
        .into_iter()
        .map(|i| (i["id"].as_str().unwrap().to_string(), i))
        .collect();
    assert_eq!(after, before, "every image survives a restart unchanged");
    let (status, members) = owner
        .get_json(&format!("/v2/images/{shared}/members"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        members["members"][0]["member_id"],
        "2222bbbb2222bbbb2222bbbb2222bbbb"
    );
    let member = as_project(&glass.url, "2222bbbb2222bbbb2222bbbb2222bbbb");
    assert_eq!(
        member.get_json(&format!("/v2/images/{shared}")).await.0,
        200
    );
    glass.stop().await;
}

/// Creates and patches from 8 concurrent writers, kill -9 mid-burst, restart: every write
/// that was answered is there, the listing and the records agree, nothing is half-written.
#[tokio::test]
async fn kill_9_during_concurrent_writes_leaves_a_consistent_registry() {
    let dir = tempfile::tempdir().unwrap();
    let config = trusted_config(dir.path());
    let glass = GlassProcess::start(dir.path(), Some(&config)).await;
    let project = "3333cccc3333cccc3333cccc3333cccc";
    // Acknowledged state: id -> the "gen" property value last acknowledged (if any).
    let acked: Arc<Mutex<HashMap<String, Option<String>>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let client = as_project(&glass.url, project);
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let body = json!({"name": format!("burst-{w}-{i}"), "writer": w.to_string()});
                let Ok(r) = client
                    .request(reqwest::Method::POST, "/v2/images")
                    .json(&body)
                    .send()
                    .await
                else {
                    return;
                };
                if r.status() != 201 {
                    return;
                }
                let Ok(image) = r.json::<Value>().await else {
                    return;
                };
                let id = image["id"].as_str().unwrap().to_string();
                acked.lock().unwrap().insert(id.clone(), None);
                let generation = format!("g{i}");
                let (status, _) = client
                    .patch(
                        &format!("/v2/images/{id}"),
                        &json!([{"op": "add", "path": "/gen", "value": generation}]),
                    )
                    .await;
                if status == 200 {
                    acked.lock().unwrap().insert(id, Some(generation));
                } else {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    glass.kill9().await;
    for w in writers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), w).await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "the burst wrote something: {}",
        acked.len()
    );

    let glass = GlassProcess::start(dir.path(), Some(&config)).await;
    let client = as_project(&glass.url, project);
    let listed = list_all(&client).await;
    let listed_ids: HashSet<String> = listed
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed_ids.len(), listed.len(), "no image listed twice");
    for (id, generation) in &acked {
        assert!(listed_ids.contains(id), "acknowledged create {id} lost");
        let (status, image) = client.get_json(&format!("/v2/images/{id}")).await;
        assert_eq!(status, 200);
        if let Some(generation) = generation {
            assert_eq!(
                image["gen"],
                generation.as_str(),
                "acknowledged patch of {id} lost"
            );
        }
    }
    for image in &listed {
        let id = image["id"].as_str().unwrap();
        let (status, shown) = client.get_json(&format!("/v2/images/{id}")).await;
        assert_eq!(status, 200, "listed image {id} cannot be shown");
        assert_eq!(&shown, image, "index and record agree for {id}");
        assert!(shown["name"].as_str().unwrap().starts_with("burst-"));
    }
    // The registry still takes writes after recovery.
    client.create_image(json!({"name": "after-crash"})).await;
    glass.stop().await;
}

/// kill -9 while a 1 GiB upload streams in, then restart: the image is not active, the
/// start-up sweep leaves no data behind, and the image takes a new upload.
#[tokio::test]
async fn kill_9_during_upload_then_restart_sweeps_partial_data() {
    let dir = tempfile::tempdir().unwrap();
    let glass = GlassProcess::start(dir.path(), None).await;
    let client = Client::new(&glass.url, None);
    let image = client
        .create_image(json!({"name": "big", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap().to_string();
    // 1 GiB announced, streamed in 1 MiB chunks; the server dies long before the end.
    let chunks = futures_util::stream::iter(
        (0..1024).map(|_| Ok::<_, std::io::Error>(vec![0xA5u8; 1 << 20])),
    );
    let upload = client
        .request(reqwest::Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .header("x-openstack-image-size", (1u64 << 30).to_string())
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let uploading = tokio::spawn(upload);
    let images_dir = dir.path().join("images");
    let mut saw_partial = false;
    // Up to 30 s: on a loaded machine (the whole suite at once) the first megabytes of a
    // debug build's upload can take a while, now that they are inspected as they arrive.
    for _ in 0..1200 {
        let partial_bytes: u64 = std::fs::read_dir(&images_dir)
            .map(|it| {
                it.filter_map(|e| e.ok())
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if partial_bytes > 8 << 20 {
            saw_partial = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(saw_partial, "the upload never reached the store");
    glass.kill9().await;
    let _ = uploading.await;
    assert!(
        std::fs::read_dir(&images_dir).unwrap().count() > 0,
        "the crash left partial data to sweep"
    );

    let glass = GlassProcess::start(dir.path(), None).await;
    let client = Client::new(&glass.url, None);
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "queued", "{image}");
    let left: Vec<_> = std::fs::read_dir(&images_dir).unwrap().collect();
    assert!(left.is_empty(), "orphaned data after the sweep: {left:?}");
    let r = client
        .request(reqwest::Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .body(vec![1u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        client.get_json(&format!("/v2/images/{id}")).await.1["status"],
        "active"
    );
    glass.stop().await;
}

/// `glass plugins …` against the real binary: list, load a component file, roll back, and a
/// refused load that leaves the serving version in place.
#[tokio::test]
async fn plugins_cli_lists_loads_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let glass = GlassProcess::start(dir.path(), None).await;
    let cli = |args: &[&str]| {
        glass_tests::run_glass(&[&["plugins", "--url", glass.url.as_str()], args].concat())
    };
    let (ok, stdout, stderr) = cli(&["list"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("fs") && stdout.contains("store-fs"),
        "{stdout}"
    );
    assert!(stdout.contains("glass:store@0.1.0"), "{stdout}");

    let component = dir.path().join("store-fs.wasm");
    std::fs::write(&component, glass_runtime::STORE_FS).unwrap();
    let (ok, stdout, stderr) = cli(&["load", "fs", component.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 earlier version"), "{stdout}");

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not a component").unwrap();
    let (ok, _, stderr) = cli(&["load", "fs", junk.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("400"), "{stderr}");

    let (ok, stdout, stderr) = cli(&["rollback", "fs"]);
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("earlier version"), "{stdout}");
    let (ok, _, stderr) = cli(&["rollback", "fs"]);
    assert!(!ok && stderr.contains("409"), "{stderr}");
    glass.stop().await;
}

/// SIGTERM while an upload streams in: the server stops taking new connections but lets the
/// upload finish (graceful shutdown), then exits 0; after a restart the image is active with
/// the uploaded bytes.
#[tokio::test]
async fn sigterm_lets_an_upload_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let glass = GlassProcess::start(dir.path(), None).await;
    let client = Client::new(&glass.url, None);
    let image = client
        .create_image(json!({"name": "drain", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap().to_string();
    let data = glass_tests::data::pseudo_random(4 << 20, 21);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|item| (item, rx))
    }));
    let upload = client
        .request(reqwest::Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", data.len().to_string())
        .body(body)
        .send();
    let uploading = tokio::spawn(upload);
    let (first, rest) = data.split_at(data.len() / 2);
    tx.send(Ok(first.to_vec())).await.unwrap();
    for _ in 0..400 {
        let (_, shown) = client.get_json(&format!("/v2/images/{id}")).await;
        if shown["status"] == "saving" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    // SIGTERM now, the rest of the body a moment later.
    let url = glass.url.clone();
    let stopping = tokio::spawn(glass.stop());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.send(Ok(rest.to_vec())).await.unwrap();
    drop(tx);
    let response = uploading.await.unwrap().expect("the upload's answer");
    assert_eq!(
        response.status().as_u16(),
        204,
        "the upload in flight finished"
    );
    stopping.await.unwrap();
    assert!(
        reqwest::get(format!("{url}/versions")).await.is_err(),
        "the server has exited"
    );

    let glass = GlassProcess::start(dir.path(), None).await;
    let client = Client::new(&glass.url, None);
    let (_, shown) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(shown["status"], "active");
    let r = client.get(&format!("/v2/images/{id}/file")).await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    glass.stop().await;
}

/// Logs piped to a file or another program are plain text: no terminal colour codes.
#[tokio::test]
async fn logs_outside_a_terminal_have_no_colour_codes() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(glass_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn glass");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut logged = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if line.starts_with("glass listening on ") {
                return;
            }
            logged.push(line);
        }
        panic!("glass exited before listening");
    })
    .await
    .expect("glass did not start within 30 s");
    assert!(
        logged.iter().any(|l| l.contains("plugin loaded")),
        "no log line before listening: {logged:?}"
    );
    let coloured: Vec<&String> = logged.iter().filter(|l| l.contains('\x1b')).collect();
    assert!(coloured.is_empty(), "colour codes in {coloured:?}");
}
