//! Two real `glass` processes sharing one catalogue (a throwaway PostgreSQL cluster) and one
//! image store — SeaweedFS's S3 in one test, a file store on a directory both nodes are
//! granted in the other: an image created and uploaded on node A is listed, shown and
//! downloaded on node B; of two uploads to one image on the two nodes, the one that starts
//! second gets 409 while the first is still streaming, and the first completes; with a shared
//! staging directory, an image staged on A is imported by B (glance-direct).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use glass_registry_testing::TempCluster;
use glass_tests::data::{get_file, pseudo_random, put_file};
use glass_tests::{Client, GlassProcess, backends};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

const PROJECT: &str = "two-nodes-project";

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A node's configuration: trusted headers, the shared PostgreSQL registry, `stores`.
fn node_config(dir: &Path, registry_url: &str, stores: &str) -> PathBuf {
    let path = dir.join("glass.toml");
    let text = format!(
        "auth = \"trusted-headers\"\n\
         [registry]\nbackend = \"postgres\"\nurl = {}\npool_size = 4\n\
         {stores}",
        toml_string(registry_url)
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn s3_stores(b: &backends::Backend) -> String {
    let endpoint = b.var("S3_ENDPOINT");
    format!(
        "[[stores]]\nid = \"s3\"\ndriver = \"store-s3\"\ndefault = true\nhosts = [{}]\n\
         memory_limit_mb = 128\nnetwork_timeout_ms = 10000\n\
         [stores.settings]\nendpoint = {}\nbucket = \"glass-api\"\naccess_key = {}\n\
         secret_key = {}\ncreate_bucket = true\npart_size_mb = 5\n",
        toml_string(&backends::authority(endpoint)),
        toml_string(endpoint),
        toml_string(b.var("S3_ACCESS_KEY")),
        toml_string(b.var("S3_SECRET_KEY")),
    )
}

/// A file store and the import staging area, both on directories the nodes share (as an
/// NFS mount would be).
fn shared_fs_stores(dir: &Path) -> String {
    format!(
        "[import]\nstaging_directory = {}\n\
         [[stores]]\nid = \"shared\"\ndriver = \"store-fs\"\ndefault = true\ndirectory = {}\n",
        toml_string(&dir.join("staging").to_string_lossy()),
        toml_string(&dir.join("images").to_string_lossy())
    )
}

struct Nodes {
    a: GlassProcess,
    b: GlassProcess,
    _cluster: Arc<TempCluster>,
    _dirs: Vec<tempfile::TempDir>,
}

/// Two nodes on a fresh database, started at the same time (their schema migrations take
/// turns under PostgreSQL's advisory lock).
async fn start_nodes(stores: impl Fn(&Path) -> String) -> Nodes {
    let cluster = TempCluster::shared().unwrap_or_else(|e| panic!("postgres: {e}"));
    let url = cluster
        .create_database(&format!("two_nodes_{}", Uuid::new_v4().simple()))
        .unwrap_or_else(|e| panic!("create database: {e}"));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config_a = node_config(dir_a.path(), &url, &stores(dir_a.path()));
    let config_b = node_config(dir_b.path(), &url, &stores(dir_b.path()));
    let (data_a, data_b) = (dir_a.path().join("data"), dir_b.path().join("data"));
    let (a, b) = tokio::join!(
        GlassProcess::start(&data_a, Some(&config_a)),
        GlassProcess::start(&data_b, Some(&config_b)),
    );
    Nodes {
        a,
        b,
        _cluster: cluster,
        _dirs: vec![dir_a, dir_b],
    }
}

fn client(node: &GlassProcess) -> Client {
    Client::new(
        &node.url,
        Some((PROJECT.to_string(), "member,reader".to_string())),
    )
}

async fn status_of(client: &Client, id: &str) -> String {
    let (code, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(code, 200, "GET image {id}: {image}");
    image["status"].as_str().unwrap_or_default().to_string()
}

/// Created and uploaded on A: listed, shown and downloadable on B; deleted on B: gone on A.
async fn created_on_a_is_served_by_b(nodes: &Nodes) {
    let (a, b) = (client(&nodes.a), client(&nodes.b));
    let image = a
        .create_image(
            json!({"name": "made on A", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = image["id"].as_str().unwrap().to_string();
    let data = pseudo_random(3 << 20, 7);
    let (code, body) = put_file(&a, &id, data.clone()).await;
    assert_eq!(code, 204, "upload on A: {body}");

    let (code, listed) = b.get_json("/v2/images?limit=100").await;
    assert_eq!(code, 200, "{listed}");
    let found = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .unwrap_or_else(|| panic!("B does not list A's image {id}: {listed}"));
    assert_eq!(found["status"], "active");
    assert_eq!(found["size"], data.len());
    let (code, shown) = a.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(code, 200);
    let (_, on_b) = b.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(shown, on_b, "both nodes show the same image");

    let (code, bytes) = get_file(&b, &id).await;
    assert_eq!(code, 200);
    assert!(
        bytes.as_ref().is_ok_and(|b| *b == data),
        "B serves the bytes A stored"
    );

    let (code, body) = b.send(Method::DELETE, &format!("/v2/images/{id}")).await;
    assert_eq!(code, 204, "delete on B: {body}");
    let (code, _) = a.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(code, 404, "deleted on B, gone on A");
}

/// A's upload holds the image in `saving` while its body trickles in; B's upload to the same
/// image meanwhile gets 409; A's then completes and B serves A's bytes.
async fn concurrent_uploads_one_wins(nodes: &Nodes) {
    let (a, b) = (client(&nodes.a), client(&nodes.b));
    let image = b
        .create_image(json!({"name": "race", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap().to_string();
    let data = pseudo_random(1 << 20, 11);

    // A's body: the first half, then the rest once `release` fires.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (first, rest) = data.split_at(data.len() / 2);
    let (first, rest) = (first.to_vec(), rest.to_vec());
    let chunks = futures_util::stream::unfold(
        (0, Some(released), first, rest),
        |(step, released, first, rest)| async move {
            match step {
                0 => Some((
                    Ok::<_, std::io::Error>(first.clone()),
                    (1, released, first, rest),
                )),
                1 => {
                    if let Some(r) = released {
                        let _ = r.await;
                    }
                    Some((Ok(rest.clone()), (2, None, first, rest)))
                }
                _ => None,
            }
        },
    );
    let upload_a = a
        .request(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", data.len().to_string())
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let upload_a = tokio::spawn(upload_a);

    // Once B sees A's upload under way, B's own upload must be refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while status_of(&b, &id).await != "saving" {
        assert!(
            std::time::Instant::now() < deadline,
            "A's upload never showed as saving on B"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (code, body) = put_file(&b, &id, pseudo_random(1 << 20, 12)).await;
    assert_eq!(code, 409, "the second upload, on B, gets 409: {body}");

    release.send(()).unwrap();
    let response = upload_a.await.unwrap().expect("A's upload");
    assert_eq!(
        response.status().as_u16(),
        204,
        "the first upload, on A, wins"
    );
    assert_eq!(status_of(&b, &id).await, "active");
    let (code, bytes) = get_file(&b, &id).await;
    assert_eq!(code, 200);
    assert!(
        bytes.is_ok_and(|b| b == data),
        "B serves the winner's bytes"
    );
}

/// glance-direct across nodes: staged on A, imported on B (the staging area is shared).
async fn staged_on_a_imported_on_b(nodes: &Nodes) {
    let (a, b) = (client(&nodes.a), client(&nodes.b));
    let image = a
        .create_image(json!({"name": "staged", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap().to_string();
    let data = pseudo_random(2 << 20, 13);
    let r = a
        .request(Method::PUT, &format!("/v2/images/{id}/stage"))
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "stage on A");
    assert_eq!(status_of(&b, &id).await, "uploading");
    let (code, body) = b
        .post_json(
            &format!("/v2/images/{id}/import"),
            &json!({"method": {"name": "glance-direct"}}),
        )
        .await;
    assert_eq!(code, 202, "import on B: {body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = status_of(&a, &id).await;
        if status == "active" {
            break;
        }
        assert!(
            status == "importing" && std::time::Instant::now() < deadline,
            "the import on B ended as {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, bytes) = get_file(&a, &id).await;
    assert_eq!(code, 200);
    assert!(bytes.is_ok_and(|b| b == data), "A serves what it staged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_postgres_and_s3() {
    let s3 = backends::s3().await;
    let nodes = start_nodes(|_| s3_stores(s3)).await;
    created_on_a_is_served_by_b(&nodes).await;
    concurrent_uploads_one_wins(&nodes).await;
    nodes.a.stop().await;
    nodes.b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_postgres_and_a_file_store() {
    let shared = tempfile::tempdir().unwrap();
    let images = shared.path().to_path_buf();
    let nodes = start_nodes(|_| shared_fs_stores(&images)).await;
    created_on_a_is_served_by_b(&nodes).await;
    concurrent_uploads_one_wins(&nodes).await;
    staged_on_a_imported_on_b(&nodes).await;
    nodes.a.stop().await;
    nodes.b.stop().await;
}
