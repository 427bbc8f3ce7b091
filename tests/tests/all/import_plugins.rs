//! Import plugins: decompression of gzip and zstd inside the sandbox (with its size cap),
//! conversion with qemu-img only after inspection (checked with `qemu-img compare`), and
//! property injection.

use std::path::Path;

use glass_tests::data::{get_file, pseudo_random};
use glass_tests::import::{
    WebServer, have_qemu_img, image_tasks, import, make_image, method, qemu_img, stage, wait_import,
};
use glass_tests::{Client, TestServer};
use serde_json::{Value, json};

async fn new_image(client: &Client, disk_format: &str, container_format: &str) -> String {
    let image = client
        .create_image(json!({"name": "plugins", "disk_format": disk_format,
            "container_format": container_format}))
        .await;
    image["id"].as_str().unwrap().to_string()
}

/// Compresses `data` with the `gzip` or `zstd` command.
fn compress(tool: &str, data: &[u8], dir: &Path) -> Vec<u8> {
    let path = dir.join(format!("plain-{tool}"));
    std::fs::write(&path, data).unwrap();
    let out = std::process::Command::new(tool)
        .args(["-c", "-q"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

/// Stages `data` and imports it with glance-direct; the image once the import ended.
async fn direct(client: &Client, id: &str, data: Vec<u8>) -> Value {
    let (status, body) = stage(client, id, data).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = import(client, id, method("glance-direct")).await;
    assert_eq!(status, 202, "{body}");
    wait_import(client, id).await
}

#[tokio::test]
async fn gzip_and_zstd_are_decompressed_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let web = WebServer::start().await;
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.import.plugins.decompress = true;
        c.import.web_download.allowed_networks = vec!["127.0.0.1".into()];
        c.import.web_download.allowed_ports = vec![];
        c.image_size_cap = 4 << 20;
    })
    .await;
    let client = server.client("p1", "member,reader");
    let plain = pseudo_random(1 << 20, 11);

    // glance-direct with gzip data.
    let id = new_image(&client, "raw", "bare").await;
    let image = direct(&client, &id, compress("gzip", &plain, dir.path())).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["size"], plain.len());
    assert_eq!(get_file(&client, &id).await.1.unwrap(), plain);

    // web-download with zstd data.
    web.serve("/disk.zst", compress("zstd", &plain, dir.path()));
    let id = new_image(&client, "raw", "bare").await;
    let body = json!({"method": {"name": "web-download", "uri": web.url("/disk.zst")}});
    assert_eq!(import(&client, &id, body).await.0, 202);
    let image = wait_import(&client, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(get_file(&client, &id).await.1.unwrap(), plain);

    // A bomb: 64 MiB of zeros in a few KiB, over the 4 MiB cap.
    let bomb = compress("gzip", &vec![0u8; 64 << 20], dir.path());
    assert!(bomb.len() < 1 << 20);
    let id = new_image(&client, "raw", "bare").await;
    let image = direct(&client, &id, bomb).await;
    assert_eq!(image["status"], "queued", "{image}");
    let task = &image_tasks(&client, &id).await[0];
    assert!(
        task["message"]
            .as_str()
            .unwrap()
            .contains("decompresses to more than"),
        "{task}"
    );
    let staging = server.state.config.data_dir.join("staging");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);

    // container_format compressed: left as it is.
    let gz = compress("gzip", b"keep me compressed", dir.path());
    let id = new_image(&client, "raw", "compressed").await;
    let image = direct(&client, &id, gz.clone()).await;
    assert_eq!(image["status"], "active");
    assert_eq!(get_file(&client, &id).await.1.unwrap(), gz);
}

#[tokio::test]
async fn qcow2_is_converted_to_raw_after_inspection() {
    if !have_qemu_img() {
        eprintln!("qemu-img missing (apt-get install qemu-utils): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.import.plugins.convert_to = Some("raw".into());
        c.import.plugins.convert_timeout_s = 60;
    })
    .await;
    let client = server.admin();

    // A qcow2 with some data in it: a raw file with a pattern, converted by qemu-img.
    let raw = d.join("source.raw");
    let mut content = pseudo_random(3 << 20, 5);
    content.extend(vec![0u8; 5 << 20]);
    std::fs::write(&raw, &content).unwrap();
    let qcow2 = d.join("source.qcow2");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw.to_str().unwrap(),
        qcow2.to_str().unwrap(),
    ]);
    let id = new_image(&client, "qcow2", "bare").await;
    let image = direct(&client, &id, std::fs::read(&qcow2).unwrap()).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["disk_format"], "raw");
    assert_eq!(image["virtual_size"], content.len());
    assert_eq!(image["size"], content.len());
    let (status, bytes) = get_file(&client, &id).await;
    assert_eq!(status, 200);
    let downloaded = d.join("downloaded.raw");
    std::fs::write(&downloaded, bytes.unwrap()).unwrap();
    let compare = std::process::Command::new("qemu-img")
        .args(["compare", "-f", "qcow2", "-F", "raw"])
        .arg(&qcow2)
        .arg(&downloaded)
        .output()
        .unwrap();
    assert!(
        compare.status.success(),
        "qemu-img compare: {}",
        String::from_utf8_lossy(&compare.stdout)
    );

    // A qcow2 with a backing file in a container that is not inspected on upload
    // (`ovf`): the conversion inspects it and refuses.
    make_image(d, "base.qcow2", "qcow2", "16M", &[]);
    let backed = make_image(
        d,
        "backed.qcow2",
        "qcow2",
        "16M",
        &[
            &format!("backing_file={}", d.join("base.qcow2").display()),
            "backing_fmt=qcow2",
        ],
    );
    let id = new_image(&client, "qcow2", "ovf").await;
    let image = direct(&client, &id, backed).await;
    assert_eq!(image["status"], "queued", "{image}");
    assert_eq!(image["disk_format"], "qcow2");
    let task = &image_tasks(&client, &id).await[0];
    let message = task["message"].as_str().unwrap();
    assert!(message.contains("cannot be converted"), "{message}");
    assert!(message.contains("backing-file"), "{message}");

    // Raw data claimed qcow2 (not inspected on upload): not converted either.
    let id = new_image(&client, "qcow2", "ovf").await;
    let image = direct(&client, &id, pseudo_random(100_000, 1)).await;
    assert_eq!(image["status"], "queued", "{image}");
}

#[tokio::test]
async fn configured_properties_are_injected() {
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.import.plugins.inject = [
            ("hw_injected".to_string(), "yes".to_string()),
            ("os_glance_sneaky".to_string(), "no".to_string()),
        ]
        .into();
    })
    .await;
    let user = server.client("p1", "member,reader");
    let id = new_image(&user, "raw", "bare").await;
    let image = direct(&user, &id, b"data".to_vec()).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["hw_injected"], "yes");
    assert!(image.get("os_glance_sneaky").is_none());
    // Admins' imports are left alone (Glance's ignore_user_roles = admin).
    let admin = server.admin();
    let id = new_image(&admin, "raw", "bare").await;
    let image = direct(&admin, &id, b"data".to_vec()).await;
    assert!(image.get("hw_injected").is_none(), "{image}");
}
