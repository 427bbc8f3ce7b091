//! `glass replicate` with the real binary: Glass → Glass (livecopy, compare, idempotence,
//! metadata-only updates, dump and load) and from a real Glance
//! (`../shared/glance/start.sh`, started if not running) into Glass.

use std::process::Command;

use glass_tests::data::{pseudo_random, put_file};
use glass_tests::{Client, GlassProcess};
use serde_json::{Value, json};

fn replicate(args: &[&str]) -> (bool, String, String) {
    glass_tests::run_glass(&[&["replicate"], args].concat())
}

/// Images of every kind the replicator must carry: active with data, tags and properties;
/// queued without data; hidden; public and community.
async fn populate(client: &Client, salt: u64) -> Vec<(String, Vec<u8>)> {
    let mut made = Vec::new();
    for (i, extra) in [
        json!({"visibility": "private", "tags": ["b", "a"], "hw_disk_bus": "virtio"}),
        json!({"visibility": "public", "os_hidden": true, "min_ram": 512}),
        json!({"visibility": "community", "os_distro": "cirros"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = json!({"name": format!("repl-{salt}-{i}"), "disk_format": "raw", "container_format": "bare"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let image = client.create_image(body).await;
        let id = image["id"].as_str().unwrap().to_string();
        let data = pseudo_random(200_000 + i * 77_777, salt + i as u64);
        assert_eq!(put_file(client, &id, data.clone()).await.0, 204);
        made.push((id, data));
    }
    let queued = client
        .create_image(json!({"name": format!("repl-{salt}-queued"), "disk_format": "qcow2", "container_format": "bare", "note": "no data yet"}))
        .await;
    made.push((queued["id"].as_str().unwrap().to_string(), Vec::new()));
    made
}

fn report_field(stdout: &str, field: &str) -> u64 {
    let at = stdout
        .find(&format!("{field}: "))
        .unwrap_or_else(|| panic!("{field} in {stdout}"));
    stdout[at + field.len() + 2..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn glass_to_glass_livecopy_compare_dump_and_load() {
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let a = GlassProcess::start(dirs[0].path(), None).await;
    let b = GlassProcess::start(dirs[1].path(), None).await;
    let source = Client::new(&a.url, None);
    let made = populate(&source, 40).await;

    let (ok, stdout, _) = replicate(&["compare", &a.url, &b.url]);
    assert!(!ok);
    assert_eq!(
        stdout.matches("missing on the target").count(),
        made.len(),
        "{stdout}"
    );

    let (ok, stdout, stderr) = replicate(&["livecopy", &a.url, &b.url]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(report_field(&stdout, "created"), 4);
    assert_eq!(report_field(&stdout, "data_copied"), 3);
    let (ok, stdout, stderr) = replicate(&["compare", &a.url, &b.url]);
    assert!(ok && stdout.contains("no differences"), "{stdout}{stderr}");

    // Bytes and checksums made it across.
    let target = Client::new(&b.url, None);
    for (id, data) in made.iter().filter(|(_, d)| !d.is_empty()) {
        let body = target
            .get(&format!("/v2/images/{id}/file"))
            .await
            .bytes()
            .await
            .unwrap();
        assert!(body[..] == data[..], "data of {id}");
    }
    let (_, copy) = target.get_json(&format!("/v2/images/{}", made[0].0)).await;
    assert_eq!(copy["hw_disk_bus"], "virtio");
    let (_, original) = source.get_json(&format!("/v2/images/{}", made[0].0)).await;
    assert_eq!(copy["checksum"], original["checksum"]);
    assert_eq!(copy["os_hash_value"], original["os_hash_value"]);

    // A second run copies nothing; a metadata change travels alone.
    let (ok, stdout, _) = replicate(&["livecopy", &a.url, &b.url]);
    assert!(ok);
    assert_eq!(report_field(&stdout, "created"), 0);
    assert_eq!(report_field(&stdout, "data_copied"), 0);
    assert_eq!(report_field(&stdout, "unchanged"), 4);
    let (status, _) = source
        .patch(
            &format!("/v2/images/{}", made[1].0),
            &json!([{"op": "replace", "path": "/min_ram", "value": 1024}]),
        )
        .await;
    assert_eq!(status, 200);
    let (ok, stdout, _) = replicate(&["livecopy", &a.url, &b.url]);
    assert!(ok);
    assert_eq!(report_field(&stdout, "metadata_updated"), 1);
    assert_eq!(report_field(&stdout, "data_copied"), 0);
    let (_, copy) = target.get_json(&format!("/v2/images/{}", made[1].0)).await;
    assert_eq!(copy["min_ram"], 1024);

    // dump + load into a third deployment.
    let dump = dirs[2].path().join("dump");
    let (ok, _, stderr) = replicate(&["dump", &a.url, dump.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, stdout, _) = replicate(&["dump", &a.url, dump.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(
        report_field(&stdout, "unchanged"),
        4,
        "a second dump rewrites nothing"
    );
    let c = GlassProcess::start(&dirs[2].path().join("c"), None).await;
    let (ok, stdout, stderr) = replicate(&["load", dump.to_str().unwrap(), &c.url]);
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, _) = replicate(&["compare", &a.url, &c.url]);
    assert!(ok && stdout.contains("no differences"), "{stdout}");
    for p in [a, b, c] {
        p.stop().await;
    }
}

/// The reference Glance from `../shared/glance/start.sh` (started if it is not running).
fn reference_glance() -> String {
    let url = "http://127.0.0.1:9696".to_string();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/glance/start.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("run glance/start.sh");
    assert!(status.success(), "{} failed", script.display());
    url
}

#[tokio::test]
async fn livecopy_from_a_real_glance_then_compare_is_clean_and_idempotent() {
    let glance_url = reference_glance();
    let glance = Client::new(&glance_url, None);
    let made = populate(&glance, 90).await;

    let dir = tempfile::tempdir().unwrap();
    let glass = GlassProcess::start(dir.path(), None).await;
    let (ok, stdout, stderr) = replicate(&["livecopy", &glance_url, &glass.url]);
    let (cmp_ok, cmp, _) = replicate(&["compare", &glance_url, &glass.url]);
    let (again_ok, again, _) = replicate(&["livecopy", &glance_url, &glass.url]);

    // Leave the reference as it was before asserting.
    for (id, _) in &made {
        glance
            .send(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
            .await;
    }
    assert!(ok, "{stdout}{stderr}");
    assert!(report_field(&stdout, "data_copied") >= 3, "{stdout}");
    assert!(cmp_ok && cmp.contains("no differences"), "{cmp}");
    assert!(again_ok);
    assert_eq!(report_field(&again, "data_copied"), 0, "{again}");
    assert_eq!(report_field(&again, "created"), 0, "{again}");
    let target = Client::new(&glass.url, None);
    let (_, copy) = target.get_json(&format!("/v2/images/{}", made[0].0)).await;
    let copy: &Value = &copy;
    assert_eq!(copy["status"], "active");
    assert_eq!(copy["tags"].as_array().unwrap().len(), 2);
    glass.stop().await;
}
