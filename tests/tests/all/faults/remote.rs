//! Fault injection on the remote stores: SeaweedFS's S3 and Swift, each reached through a
//! [`FaultProxy`] that cuts or stalls every connection in the middle of uploads, downloads,
//! imports and deletes (the shared servers themselves keep running for the other tests).
//! Afterwards, with the backend back: no image is `active` with other bytes than were
//! uploaded, none is left `saving` or `importing`, every acknowledged upload is still there,
//! and once the reaper has run the backend holds no object the registry does not reference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use glass_host::config::{AuthMode, StoreConfig};
use glass_tests::data::{new_image, pseudo_random};
use glass_tests::faults::{FaultProxy, Mode, last_task, s3_listing, sha256, swift_listing};
use glass_tests::import::{import, stage, wait_import};
use glass_tests::{Client, GlassProcess, TestServer, backends};
use reqwest::Method;
use serde_json::{Value, json};

const MIB: usize = 1 << 20;

fn settings(pairs: &[(&str, &str)]) -> toml::Table {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
        .collect()
}

/// A remote store behind a proxy, and how to list what the real backend holds for it.
struct Remote {
    id: &'static str,
    proxy: FaultProxy,
    config: StoreConfig,
    /// Image ids the backend holds data of (objects, segments, unfinished uploads).
    list: Box<dyn Fn() -> Vec<String> + Send + Sync>,
}

async fn s3_remote() -> Remote {
    let b = backends::s3().await;
    let proxy = FaultProxy::start(&b.authority("S3_ENDPOINT")).await;
    let prefix = format!("faults-{}/", uuid::Uuid::new_v4().simple());
    let config = StoreConfig {
        id: "s3".into(),
        driver: "store-s3".into(),
        default: false,
        directory: None,
        hosts: vec![proxy.authority()],
        memory_limit_mb: 128,
        network_timeout_ms: 2_000,
        settings: settings(&[
            ("endpoint", &proxy.url()),
            // The bucket of the other API tests (SeaweedFS has few volumes), under a prefix
            // of this run.
            ("bucket", "glass-api"),
            ("prefix", &prefix),
            ("access_key", b.var("S3_ACCESS_KEY")),
            ("secret_key", b.var("S3_SECRET_KEY")),
            ("create_bucket", "true"),
            ("part_size_mb", "5"),
        ]),
        ..StoreConfig::default_fs()
    };
    let (endpoint, access, secret) = (
        b.var("S3_ENDPOINT").to_string(),
        b.var("S3_ACCESS_KEY").to_string(),
        b.var("S3_SECRET_KEY").to_string(),
    );
    let list = Box::new(move || {
        let (objects, uploads) = s3_listing(&endpoint, &access, &secret, "glass-api", &prefix);
        objects
            .iter()
            .chain(&uploads)
            .map(|k| k.strip_prefix(&prefix).unwrap_or(k).to_string())
            .collect()
    });
    Remote {
        id: "s3",
        proxy,
        config,
        list,
    }
}

async fn swift_remote() -> Remote {
    let b = backends::swift().await;
    let proxy = FaultProxy::start(&b.authority("SWIFT_AUTH_URL")).await;
    let container = format!("faults-{}", uuid::Uuid::new_v4().simple());
    let storage = b
        .var("SWIFT_STORAGE_URL")
        .replace(&b.authority("SWIFT_STORAGE_URL"), &proxy.authority());
    let config = StoreConfig {
        id: "swift".into(),
        driver: "store-swift".into(),
        default: false,
        directory: Some(PathBuf::from("swift-state")),
        hosts: vec![proxy.authority()],
        memory_limit_mb: 128,
        network_timeout_ms: 2_000,
        settings: settings(&[
            ("auth_version", "1"),
            ("auth_url", &format!("{}/auth/v1.0", proxy.url())),
            ("storage_url", &storage),
            ("user", b.var("SWIFT_USER")),
            ("key", b.var("SWIFT_KEY")),
            ("container", &container),
            ("large_object_size_mb", "4"),
            ("segment_size_mb", "2"),
        ]),
        ..StoreConfig::default_fs()
    };
    let (auth, user, key) = (
        b.var("SWIFT_AUTH_URL").to_string(),
        b.var("SWIFT_USER").to_string(),
        b.var("SWIFT_KEY").to_string(),
    );
    let list = Box::new(move || {
        let mut ids = swift_listing(&auth, &user, &key, &container);
        for segment in swift_listing(&auth, &user, &key, &format!("{container}_segments")) {
            ids.push(segment.split('/').next().unwrap_or_default().to_string());
        }
        ids
    });
    Remote {
        id: "swift",
        proxy,
        config,
        list,
    }
}

/// `PUT …/file` to `store`; the status, or 0 if the connection broke.
async fn upload(client: &Client, id: &str, store: &str, data: Vec<u8>) -> (u16, Value) {
    let sent = client
        .request(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .header("Accept", "application/json")
        .header("X-Image-Meta-Store", store)
        .body(data)
        .send()
        .await;
    match sent {
        Ok(r) => glass_tests::into_json(r).await,
        Err(e) => (0, json!(e.to_string())),
    }
}

/// A download: Ok(bytes) only if the whole body arrived with a 200.
async fn download(client: &Client, id: &str) -> (u16, Result<Vec<u8>, String>) {
    glass_tests::data::get_file(client, id).await
}

async fn status_of(client: &Client, id: &str) -> String {
    let (code, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(code, 200, "{image}");
    image["status"].as_str().unwrap().to_string()
}

/// Waits (bounded) until the image leaves `saving`/`importing`; its status.
async fn settled(client: &Client, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = status_of(client, id).await;
        if status != "saving" && status != "importing" {
            return status;
        }
        assert!(Instant::now() < deadline, "image {id} stuck in {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes every waiting scrub job due now (the reaper backs off 20 s after a failure; the test
/// does not wait that long), then runs the reaper through the admin API.
async fn reap_now(client: &Client, data_dir: &Path) {
    let scrub = data_dir.join("scrub");
    for entry in std::fs::read_dir(&scrub).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let mut job: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            job["due_at"] = json!(0);
            std::fs::write(&path, job.to_string()).unwrap();
        }
    }
    let (code, body) = client
        .send(Method::POST, "/glass/v1/deleted-images/reap")
        .await;
    assert_eq!(code, 200, "{body}");
}

/// The faults, in order, against one remote store; then the checks.
async fn faults_on(remote: Remote, import_cut: bool) {
    let store = remote.id;
    let server = TestServer::start_with(|c| {
        c.auth = AuthMode::TrustedHeaders;
        c.stores = vec![StoreConfig::default_fs(), remote.config.clone()];
    })
    .await;
    let data_dir = server.state.config.data_dir.clone();
    let admin = server.admin();
    let proxy = &remote.proxy;
    // What each image must hold if it is active: sha256 of the bytes uploaded.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut acknowledged = Vec::new();
    // Which fault each image met, for the failure messages.
    let mut roles: BTreeMap<String, &str> = BTreeMap::new();

    // An upload that completes: it must survive everything below.
    let kept = new_image(&admin).await;
    let data = pseudo_random(6 * MIB + 3, 1);
    expected.insert(kept.clone(), sha256(&data));
    let (code, body) = upload(&admin, &kept, store, data).await;
    assert_eq!(code, 204, "{store}: {body}");
    acknowledged.push(kept.clone());
    roles.insert(kept.clone(), "kept");

    // 1. The backend dies in the middle of an upload, and stays down a while.
    let id = new_image(&admin).await;
    let data = pseudo_random(9 * MIB, 2);
    expected.insert(id.clone(), sha256(&data));
    roles.insert(id.clone(), "cut upload");
    proxy.cut_after(3 * MIB as u64);
    let (code, body) = upload(&admin, &id, store, data).await;
    eprintln!("{store}: upload cut mid-way: {code} {body}");
    assert!(
        code == 503 || code == 500,
        "{store}: a dead backend is a 5xx: {code} {body}"
    );
    assert_eq!(settled(&admin, &id).await, "queued", "{store}");
    assert_eq!(proxy.mode(), Mode::Cut);
    proxy.set(Mode::Pass);

    // 2. The backend hangs in the middle of an upload: bounded by the network timeout.
    let id = new_image(&admin).await;
    let data = pseudo_random(9 * MIB, 3);
    expected.insert(id.clone(), sha256(&data));
    roles.insert(id.clone(), "stalled upload");
    let from = proxy.forwarded();
    let started = Instant::now();
    let request = tokio::spawn({
        let (admin, id) = (admin.clone(), id.clone());
        async move { upload(&admin, &id, store, data).await }
    });
    proxy
        .wait_forwarded(from, 2 * MIB as u64, Duration::from_secs(60))
        .await;
    proxy.set(Mode::Stall);
    let (code, body) = request.await.unwrap();
    eprintln!(
        "{store}: upload stalled: {code} after {:?}",
        started.elapsed()
    );
    assert!(
        (500..600).contains(&code),
        "{store}: a hung backend is a 5xx: {code} {body}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    proxy.set(Mode::Pass);
    assert_eq!(settled(&admin, &id).await, "queued", "{store}");

    // 3. Downloads cut and stalled mid-way: never a complete 200 with other bytes.
    for mode in [Mode::Cut, Mode::Stall] {
        let from = proxy.forwarded();
        let started = Instant::now();
        let request = tokio::spawn({
            let (admin, kept) = (admin.clone(), kept.clone());
            async move { download(&admin, &kept).await }
        });
        proxy
            .wait_forwarded(from, MIB as u64, Duration::from_secs(60))
            .await;
        proxy.set(mode);
        let (code, got) = request.await.unwrap();
        eprintln!(
            "{store}: download with {mode:?}: {code}, {} after {:?}",
            match &got {
                Ok(b) => format!("{} bytes", b.len()),
                Err(e) => e.clone(),
            },
            started.elapsed()
        );
        if let (200, Ok(bytes)) = (code, &got) {
            assert_eq!(
                sha256(bytes),
                expected[&kept],
                "{store}: wrong bytes served"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(60));
        proxy.set(Mode::Pass);
    }

    // 4. A delete while the backend is down: acknowledged, the data goes once it is back.
    let gone = new_image(&admin).await;
    let (code, body) = upload(&admin, &gone, store, pseudo_random(MIB, 4)).await;
    assert_eq!(code, 204, "{body}");
    roles.insert(gone.clone(), "deleted while down");
    proxy.set(Mode::Cut);
    let (code, body) = admin
        .send(Method::DELETE, &format!("/v2/images/{gone}"))
        .await;
    assert_eq!(code, 204, "{store}: delete while down: {body}");
    assert_eq!(admin.get_json(&format!("/v2/images/{gone}")).await.0, 404);
    proxy.set(Mode::Pass);

    // 5. An import (glance-direct) to the store, cut while it copies.
    if import_cut {
        let id = new_image(&admin).await;
        let data = pseudo_random(9 * MIB, 5);
        expected.insert(id.clone(), sha256(&data));
        roles.insert(id.clone(), "import cut");
        assert_eq!(stage(&admin, &id, data).await.0, 204);
        proxy.cut_after(2 * MIB as u64);
        let body = json!({"method": {"name": "glance-direct"}, "stores": [store]});
        let (code, answer) = import(&admin, &id, body).await;
        assert_eq!(code, 202, "{answer}");
        let image = wait_import(&admin, &id).await;
        let tasks = [last_task(&admin, &id).await];
        eprintln!(
            "{store}: import cut mid-way: image {}, task {} {}",
            image["status"], tasks[0]["status"], tasks[0]["message"]
        );
        proxy.set(Mode::Pass);
        if image["status"] == "active" {
            // The copy finished before the cut took effect: fine if the bytes are right.
            acknowledged.push(id.clone());
        } else {
            assert_eq!(tasks[0]["status"], "failure", "{tasks:?}");
        }
    }
    // The backend is back: the checks.
    reap_now(&admin, &data_dir).await;
    let (code, listed) = admin.get_json("/v2/images?limit=1000").await;
    assert_eq!(code, 200);
    let mut referenced = Vec::new();
    for image in listed["images"].as_array().unwrap() {
        let id = image["id"].as_str().unwrap().to_string();
        let status = image["status"].as_str().unwrap();
        assert!(
            status != "saving" && status != "importing",
            "{store}: {id} left {status}"
        );
        if status == "active" {
            let (code, got) = download(&admin, &id).await;
            assert_eq!(code, 200, "{store}: active {id} not served");
            assert_eq!(
                sha256(&got.unwrap()),
                expected[&id],
                "{store}: {id} is active with other bytes"
            );
            if image["stores"]
                .as_str()
                .unwrap_or_default()
                .split(',')
                .any(|s| s == store)
            {
                referenced.push(id);
            }
        }
    }
    for id in &acknowledged {
        assert_eq!(status_of(&admin, id).await, "active", "{store}: lost {id}");
    }
    eprintln!("{store}: roles: {roles:?}");
    let mut orphans: Vec<String> = (remote.list)()
        .into_iter()
        .filter(|held| !referenced.contains(held))
        .collect();
    orphans.sort();
    orphans.dedup();
    assert!(
        orphans.is_empty(),
        "{store}: data of these images is left in the backend, unreferenced: {:?}",
        orphans
            .iter()
            .map(|o| (o, roles.get(o)))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_killed_and_stalled_mid_transfer() {
    faults_on(s3_remote().await, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swift_killed_and_stalled_mid_transfer() {
    faults_on(swift_remote().await, false).await;
}

/// The same with an import cut while it copies into the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_killed_during_an_import() {
    faults_on(s3_remote().await, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swift_killed_during_an_import() {
    faults_on(swift_remote().await, true).await;
}

/// Glass killed in the middle of an upload to S3, and S3 down when it restarts: the start-up
/// sweep cannot discard the partial upload, yet Glass starts, the image is queued, and the
/// partial data goes once S3 is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_with_s3_down_after_a_crash_mid_upload() {
    let remote = s3_remote().await;
    let proxy = &remote.proxy;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let c = &remote.config;
    let mut store = toml::Table::new();
    store.insert("id".into(), c.id.clone().into());
    store.insert("driver".into(), c.driver.clone().into());
    store.insert("default".into(), true.into());
    store.insert("hosts".into(), c.hosts.clone().into());
    store.insert(
        "network_timeout_ms".into(),
        (c.network_timeout_ms as i64).into(),
    );
    store.insert("memory_limit_mb".into(), (c.memory_limit_mb as i64).into());
    store.insert("settings".into(), c.settings.clone().into());
    let mut config = toml::Table::new();
    config.insert("stores".into(), toml::Value::Array(vec![store.into()]));
    let config_path = dir.path().join("glass.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();

    let glass = GlassProcess::start(&data_dir, Some(&config_path)).await;
    let client = Client::new(&glass.url, None);
    let id = new_image(&client).await;
    // 12 MiB trickling in: a multipart upload is under way when Glass dies.
    let body = futures_util::stream::iter(0..48).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(if i < 24 { 10 } else { 1000 })).await;
        Ok::<_, std::io::Error>(pseudo_random(256 * 1024, i))
    });
    let sending = tokio::spawn(
        client
            .request(Method::PUT, &format!("/v2/images/{id}/file"))
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    let from = proxy.forwarded();
    proxy
        .wait_forwarded(from, 7 * MIB as u64, Duration::from_secs(60))
        .await;
    glass.kill9().await;
    let _ = sending.await;
    proxy.set(Mode::Cut);

    let glass = tokio::time::timeout(
        Duration::from_secs(90),
        GlassProcess::start(&data_dir, Some(&config_path)),
    )
    .await
    .expect("Glass did not start with S3 down");
    let client = Client::new(&glass.url, None);
    // The reaper's retry of the pending discard holds the image in `saving` (so no upload
    // starts under it) while it tries, then puts it back: queued once that attempt failed.
    let started = std::time::Instant::now();
    loop {
        let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
        if image["status"] == "queued" {
            break;
        }
        assert_eq!(image["status"], "saving", "{image}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still saving after 60 s: {image}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    proxy.set(Mode::Pass);
    eprintln!("partial data before the reaper: {:?}", (remote.list)());
    reap_now(&client, &data_dir).await;
    let left = (remote.list)();
    assert!(left.is_empty(), "partial data left: {left:?}");
    glass.stop().await;
}
