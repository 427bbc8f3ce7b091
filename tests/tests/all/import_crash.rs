//! Crash safety of imports with the real binary: `kill -9` while an import runs (and while a
//! stage runs), then a restart: the task ends in failure, the image is not stuck in
//! `importing` (queued again, the store named in `os_glance_failed_import`), no lock is
//! left, and the staging area is clean.

use std::path::Path;
use std::time::Duration;

use glass_tests::data::pseudo_random;
use glass_tests::import::{Reply, WebServer, image_tasks, import, stage, wait_import};
use glass_tests::{Client, GlassProcess};
use reqwest::Method;
use serde_json::json;

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("glass.toml");
    std::fs::write(
        &path,
        "[import.web_download]\nallowed_networks = [\"127.0.0.1\"]\nallowed_ports = []\n",
    )
    .unwrap();
    path
}

fn staging_files(data: &Path) -> Vec<String> {
    std::fs::read_dir(data.join("staging"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn kill_during_an_import_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let web = WebServer::start().await;
    web.route("/slow", Reply::Slow(600));

    let glass = GlassProcess::start(&data, Some(&config)).await;
    let client = Client::new(&glass.url, None);
    let image = client
        .create_image(json!({"name": "crash", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap().to_string();
    let body = json!({"method": {"name": "web-download", "uri": web.url("/slow")}});
    assert_eq!(import(&client, &id, body).await.0, 202);
    // The download is under way: bytes are arriving in the staging area.
    wait_for("staged bytes", || {
        staging_files(&data).iter().any(|f| f.ends_with(".partial"))
    })
    .await;
    let (_, busy) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(busy["status"], "importing");
    glass.kill9().await;

    let glass = GlassProcess::start(&data, Some(&config)).await;
    let client = Client::new(&glass.url, None);
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "queued", "{image}");
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
    assert_eq!(image["os_glance_importing_to_stores"], "");
    assert_eq!(image["os_glance_failed_import"], "fs");
    assert!(image["size"].is_null());
    let tasks = image_tasks(&client, &id).await;
    assert_eq!(tasks[0]["status"], "failure", "{tasks:?}");
    assert!(
        tasks[0]["message"]
            .as_str()
            .unwrap()
            .contains("interrupted")
    );
    assert!(
        staging_files(&data).is_empty(),
        "{:?}",
        staging_files(&data)
    );
    assert_eq!(
        std::fs::read_dir(data.join("import-tasks"))
            .unwrap()
            .count(),
        0,
        "journal emptied"
    );

    // The image can be imported again.
    web.serve("/fast", pseudo_random(10_000, 1));
    let body = json!({"method": {"name": "web-download", "uri": web.url("/fast")}});
    assert_eq!(import(&client, &id, body).await.0, 202);
    assert_eq!(wait_import(&client, &id).await["status"], "active");
    glass.stop().await;
}

#[tokio::test]
async fn kill_during_a_stage_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let glass = GlassProcess::start(&data, Some(&config)).await;
    let client = Client::new(&glass.url, None);
    let image = client
        .create_image(json!({"name": "stage", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap().to_string();
    // A second image staged completely: it must survive the restart, still uploading.
    let kept = client
        .create_image(json!({"name": "kept", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let kept = kept["id"].as_str().unwrap().to_string();
    assert_eq!(stage(&client, &kept, pseudo_random(5000, 2)).await.0, 204);

    // A body that trickles in: the stage never finishes.
    let body = futures_util::stream::unfold(0u32, |n| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        (n < 10_000).then(|| (Ok::<_, std::io::Error>(vec![7u8; 1024]), n + 1))
    });
    let staging = client
        .request(Method::PUT, &format!("/v2/images/{id}/stage"))
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let request = tokio::spawn(staging);
    wait_for("a partial stage", || {
        staging_files(&data).iter().any(|f| f.ends_with(".partial"))
    })
    .await;
    glass.kill9().await;
    let _ = request.await;

    let glass = GlassProcess::start(&data, Some(&config)).await;
    let client = Client::new(&glass.url, None);
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "queued", "{image}");
    let (_, other) = client.get_json(&format!("/v2/images/{kept}")).await;
    assert_eq!(other["status"], "uploading", "{other}");
    assert_eq!(staging_files(&data), vec![kept.clone()]);
    assert_eq!(
        import(&client, &kept, json!({"method": {"name": "glance-direct"}}))
            .await
            .0,
        202
    );
    assert_eq!(wait_import(&client, &kept).await["status"], "active");
    assert!(staging_files(&data).is_empty());
    glass.stop().await;
}

/// An import killed after it made the image active but before it released its lock (the
/// state is written straight into the registry and the journal while Glass is down, since
/// the window is too narrow to hit with a kill): Glass restarts, the image stays active
/// with its data, and the lock is gone. Glass used to refuse to start ("Image status
/// transition from active to queued is not allowed"), and then discarded the "partial"
/// upload in the store that held the live copy (active, 204): both found by the faults test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_activation_before_the_lock_was_released() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let glass = GlassProcess::start(&data, Some(&config)).await;
    let client = Client::new(&glass.url, None);
    let image = client
        .create_image(json!({"name": "done", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap().to_string();
    let bytes = pseudo_random(200_000, 3);
    let r = client
        .request(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    glass.stop().await;

    let task = uuid::Uuid::new_v4();
    {
        use glass_registry::Registry;
        let registry = glass_registry::SledRegistry::open(&data.join("registry")).unwrap();
        let mut img = registry
            .get_image(id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(img.status, glass_registry::ImageStatus::Active);
        img.properties
            .insert("os_glance_import_task".into(), task.to_string());
        img.properties
            .insert("os_glance_importing_to_stores".into(), String::new());
        registry.update_image(img).await.unwrap();
    }
    let journal = data.join("import-tasks");
    std::fs::create_dir_all(&journal).unwrap();
    std::fs::write(
        journal.join(format!("{task}.json")),
        json!({"task": task, "image": id, "method": "glance-direct", "stores": ["fs"]}).to_string(),
    )
    .unwrap();

    let glass = GlassProcess::start(&data, Some(&config)).await;
    let client = Client::new(&glass.url, None);
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "active", "{image}");
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
    let r = client.get(&format!("/v2/images/{id}/file")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[..]);
}
