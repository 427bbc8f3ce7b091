//! Metadata validators (`[[validators]]`, `glass:metadef@0.1.0`) on image create and PATCH:
//! the built-in `validator-metadef` against the fixture namespaces (type, enum, minimum and
//! maximum, pattern, min/maxLength, items, association prefixes), warn mode, validators that
//! trap or spin failing closed (503) or open, hot swap and rollback through
//! `/glass/v1/plugins`, and a vendor validator built outside the workspace
//! (`examples/validator-require-os-distro`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glass_host::config::{AuthMode, ValidatorConfig, ValidatorFailure, ValidatorMode};
use glass_tests::metadefs::{fixtures_dir, load};
use glass_tests::{Client, TestServer, into_json};
use reqwest::Method;
use serde_json::{Value, json};

/// `target/wasm-plugins/wasm32-wasip2/release`, where host/build.rs builds the guest
/// workspace (the fixtures among it), found from this test's executable
/// (`target/<profile>/deps/<test>`).
fn wasm_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    target_dir(&exe).join("wasm-plugins/wasm32-wasip2/release")
}

fn target_dir(exe: &Path) -> PathBuf {
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn fixture(stem: &str) -> String {
    let path = wasm_dir().join(format!("{stem}.wasm"));
    assert!(path.is_file(), "{} is not built", path.display());
    path.display().to_string()
}

fn validator(
    id: &str,
    component: &str,
    mode: ValidatorMode,
    on_failure: ValidatorFailure,
) -> ValidatorConfig {
    ValidatorConfig {
        id: id.into(),
        component: component.into(),
        mode,
        on_failure,
        memory_limit_mb: 32,
        cpu_deadline_ms: 300,
    }
}

fn metadef(mode: ValidatorMode) -> ValidatorConfig {
    validator(
        "metadef",
        "validator-metadef",
        mode,
        ValidatorFailure::Closed,
    )
}

async fn server_with(validators: Vec<ValidatorConfig>) -> TestServer {
    let server = TestServer::start_with(move |c| {
        c.auth = AuthMode::TrustedHeaders;
        c.validators = validators;
    })
    .await;
    load(&server, &fixtures_dir())
        .await
        .expect("load the fixture namespaces");
    server
}

/// POST /v2/images with JSON errors.
async fn create(client: &Client, body: &Value) -> (u16, Value) {
    client.jpost("/v2/images", body).await
}

/// PATCH (v2.1 dialect) with JSON errors.
async fn patch(client: &Client, id: &str, ops: &Value) -> (u16, Value) {
    let r = client
        .jrequest(Method::PATCH, &format!("/v2/images/{id}"))
        .header(
            "Content-Type",
            "application/openstack-images-v2.1-json-patch",
        )
        .body(ops.to_string())
        .send()
        .await
        .expect("PATCH");
    into_json(r).await
}

fn message(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().to_string()
}

/// Asserts a 400 whose message names `property` and `rule`.
fn assert_refused(status: u16, body: &Value, property: &str, rule: &str) {
    assert_eq!(status, 400, "{body}");
    let m = message(body);
    assert!(
        m.contains(&format!("Property '{property}' violates rule '{rule}'")),
        "message should name {property} and {rule}: {m}"
    );
    assert_eq!(
        body["code"], "400 Bad Request",
        "Glance's error shape: {body}"
    );
    assert_eq!(body["title"], "Bad Request", "{body}");
}

#[tokio::test]
async fn metadef_rules_on_create_and_patch() {
    let server = server_with(vec![metadef(ValidatorMode::Enforce)]).await;
    let admin = server.admin();

    let cases = [
        (json!({"gt_disk_bus": "sata"}), "gt_disk_bus", "enum"),
        (json!({"gt_cpu_count": "100"}), "gt_cpu_count", "maximum"),
        (json!({"gt_cpu_count": "0"}), "gt_cpu_count", "minimum"),
        (json!({"gt_cpu_count": "two"}), "gt_cpu_count", "type"),
        (json!({"gt_label": "Web"}), "gt_label", "pattern"),
        (json!({"gt_label": "w"}), "gt_label", "minLength"),
        (
            json!({"gt_label": "a-very-long-label-indeed"}),
            "gt_label",
            "maxLength",
        ),
        (
            json!({"gt_features": "acpi,floppy"}),
            "gt_features",
            "items",
        ),
    ];
    for (body, property, rule) in &cases {
        let (status, answer) = create(&admin, body).await;
        assert_refused(status, &answer, property, rule);
    }
    let (status, answer) = create(&admin, &json!({"name": "x", "gt_disk_bus": "sata"})).await;
    assert_refused(status, &answer, "gt_disk_bus", "enum");
    let m = message(&answer);
    assert!(m.contains("'sata'") && m.contains("'virtio'"), "{m}");
    assert!(
        m.contains("GLASS::Test::ImageHints") && m.contains("metadef"),
        "{m}"
    );
    let (_, list) = admin.get_json("/v2/images").await;
    assert_eq!(list["images"], json!([]), "nothing refused was created");

    // Valid values, and properties no namespace defines, pass.
    let (status, image) = create(
        &admin,
        &json!({
            "name": "ok",
            "gt_disk_bus": "virtio",
            "gt_cpu_count": "4",
            "gt_label": "web-1",
            "gt_features": "acpi,pae",
            "anything_else": "free text",
        }),
    )
    .await;
    assert_eq!(status, 201, "{image}");
    let id = image["id"].as_str().unwrap().to_string();

    // PATCH: refused changes leave the image as it was.
    let (status, answer) = patch(
        &admin,
        &id,
        &json!([{"op": "replace", "path": "/gt_cpu_count", "value": "65"}]),
    )
    .await;
    assert_refused(status, &answer, "gt_cpu_count", "maximum");
    let (status, answer) = patch(
        &admin,
        &id,
        &json!([{"op": "add", "path": "/gt_features", "value": "pae,usb"}]),
    )
    .await;
    assert_refused(status, &answer, "gt_features", "items");
    let (_, now) = admin.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(now["gt_cpu_count"], "4");
    assert_eq!(now["gt_features"], "acpi,pae");

    let (status, patched) = patch(
        &admin,
        &id,
        &json!([
            {"op": "replace", "path": "/gt_cpu_count", "value": "64"},
            {"op": "remove", "path": "/gt_label"},
            {"op": "add", "path": "/name", "value": "renamed"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["gt_cpu_count"], "64");

    // Untouched properties are not checked again; a later op in the same PATCH wins.
    let (status, answer) = patch(
        &admin,
        &id,
        &json!([
            {"op": "replace", "path": "/gt_disk_bus", "value": "sata"},
            {"op": "replace", "path": "/gt_disk_bus", "value": "scsi"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // Errors the request has anyway come first: not the owner (404 for a private image).
    let other = server.client("another-project", "member");
    let (status, _) = patch(
        &other,
        &id,
        &json!([{"op": "replace", "path": "/gt_disk_bus", "value": "sata"}]),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn association_prefixes_and_namespace_visibility() {
    let server = server_with(vec![metadef(ValidatorMode::Enforce)]).await;
    let admin = server.admin();
    let (status, ns) = admin
        .jpost(
            "/v2/metadefs/namespaces",
            &json!({
                "namespace": "GLASS::Test::Prefixed",
                "visibility": "public",
                "resource_type_associations": [
                    {"name": "OS::Glance::Image", "prefix": "px_"},
                    {"name": "OS::Nova::Flavor", "prefix": "fl:"},
                ],
                "properties": {"ram_mb": {"title": "RAM", "type": "integer", "minimum": 128}},
            }),
        )
        .await;
    assert_eq!(status, 201, "{ns}");
    let (status, answer) = create(&admin, &json!({"px_ram_mb": "64"})).await;
    assert_refused(status, &answer, "px_ram_mb", "minimum");
    // Without the prefix (or with another resource type's) the definition does not apply.
    let (status, _) = create(&admin, &json!({"ram_mb": "64", "fl:ram_mb": "1"})).await;
    assert_eq!(status, 201);
    let (status, _) = create(&admin, &json!({"px_ram_mb": "512"})).await;
    assert_eq!(status, 201);

    // A private namespace applies to its owner's images only.
    let owner = server.client("owner-project", "member");
    let (status, ns) = admin
        .jpost(
            "/v2/metadefs/namespaces",
            &json!({
                "namespace": "GLASS::Test::Private",
                "visibility": "private",
                "owner": "owner-project",
                "resource_type_associations": [{"name": "OS::Glance::Image"}],
                "properties": {"pv_tier": {"title": "Tier", "type": "string", "enum": ["gold"]}},
            }),
        )
        .await;
    assert_eq!(status, 201, "{ns}");
    let (status, answer) = create(&owner, &json!({"pv_tier": "bronze"})).await;
    assert_refused(status, &answer, "pv_tier", "enum");
    let stranger = server.client("stranger-project", "member");
    let (status, _) = create(&stranger, &json!({"pv_tier": "bronze"})).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn warn_mode_lets_through_and_counts() {
    let server = server_with(vec![metadef(ValidatorMode::Warn)]).await;
    let admin = server.admin();
    let (status, image) = create(&admin, &json!({"gt_disk_bus": "sata"})).await;
    assert_eq!(status, 201, "{image}");
    assert_eq!(image["gt_disk_bus"], "sata");
    let metrics = admin.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("glass_validator_results")
                && l.contains("validator=\"metadef\"")
                && l.contains("result=\"warned\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}

/// Creates fail with 503 (closed) or pass (open); the host keeps serving either way.
#[tokio::test]
async fn trapping_and_spinning_validators_fail_closed_or_open() {
    let trap = fixture("validator_trap");
    let spin = fixture("validator_spin");
    for (component, on_failure) in [
        (&trap, ValidatorFailure::Closed),
        (&spin, ValidatorFailure::Closed),
        (&trap, ValidatorFailure::Open),
        (&spin, ValidatorFailure::Open),
    ] {
        let server = server_with(vec![
            validator("bad", component, ValidatorMode::Enforce, on_failure),
            metadef(ValidatorMode::Enforce),
        ])
        .await;
        let admin = server.admin();
        for _ in 0..2 {
            let started = Instant::now();
            let (status, answer) = create(&admin, &json!({"name": "n"})).await;
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the deadline stops a spinning validator"
            );
            match on_failure {
                ValidatorFailure::Closed => {
                    assert_eq!(status, 503, "{component} closed: {answer}");
                    assert!(
                        message(&answer).contains("validator bad failed"),
                        "{answer}"
                    );
                    assert_eq!(answer["code"], "503 Service Unavailable");
                }
                ValidatorFailure::Open => assert_eq!(status, 201, "{component} open: {answer}"),
            }
        }
        // The chain goes on after a validator that failed open.
        if on_failure == ValidatorFailure::Open {
            let (status, answer) = create(&admin, &json!({"gt_disk_bus": "sata"})).await;
            assert_refused(status, &answer, "gt_disk_bus", "enum");
        }
        // The host still serves, and the plugin API shows the faults.
        let (status, _) = admin.get_json("/v2/images").await;
        assert_eq!(status, 200);
        let (status, plugin) = admin.get_json("/glass/v1/plugins/bad").await;
        assert_eq!(status, 200, "{plugin}");
        assert!(
            plugin["plugin"]["current"]["faults"].as_u64().unwrap() >= 2,
            "{plugin}"
        );
    }
}

#[tokio::test]
async fn validators_hot_swap_and_roll_back() {
    let server = server_with(vec![metadef(ValidatorMode::Enforce)]).await;
    let admin = server.admin();

    let (status, list) = admin.get_json("/glass/v1/plugins").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["plugins"][0]["store"], "fs",
        "stores listed as before: {list}"
    );
    assert_eq!(list["validators"][0]["validator"], "metadef", "{list}");
    assert_eq!(
        list["validators"][0]["current"]["name"],
        "validator-metadef"
    );
    assert_eq!(
        list["validators"][0]["current"]["wit"],
        "glass:metadef@0.1.0"
    );
    assert_eq!(list["validators"][0]["mode"], "enforce");
    assert_eq!(list["validators"][0]["on_failure"], "closed");

    let put = |bytes: Vec<u8>| {
        admin
            .jrequest(Method::PUT, "/glass/v1/plugins/metadef")
            .header("Content-Type", "application/wasm")
            .body(bytes)
            .send()
    };
    // A store driver is not a validator: refused, nothing changes.
    let store_fs = std::fs::read(wasm_dir().join("store_fs.wasm")).expect("store_fs.wasm");
    let (status, answer) = into_json(put(store_fs).await.unwrap()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        message(&answer).contains("glass:metadef/validate"),
        "{answer}"
    );

    let trap = std::fs::read(fixture("validator_trap")).unwrap();
    let (status, swapped) = into_json(put(trap).await.unwrap()).await;
    assert_eq!(status, 200, "{swapped}");
    assert_eq!(swapped["plugin"]["current"]["name"], "validator-trap");
    assert_eq!(
        swapped["plugin"]["previous"][0]["name"],
        "validator-metadef"
    );
    let (status, _) = create(&admin, &json!({"gt_disk_bus": "sata"})).await;
    assert_eq!(status, 503, "the swapped-in trap fails closed");

    let (status, back) = admin
        .jsend(Method::POST, "/glass/v1/plugins/metadef/rollback")
        .await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["plugin"]["current"]["name"], "validator-metadef");
    let (status, answer) = create(&admin, &json!({"gt_disk_bus": "sata"})).await;
    assert_refused(status, &answer, "gt_disk_bus", "enum");
    let (status, _) = admin
        .jsend(Method::POST, "/glass/v1/plugins/metadef/rollback")
        .await;
    assert_eq!(status, 409, "nothing left to roll back to");

    // Stores behave as before.
    let (status, store) = admin.get_json("/glass/v1/plugins/fs").await;
    assert_eq!(status, 200);
    assert_eq!(store["plugin"]["store"], "fs");
    let (status, _) = admin.get_json("/glass/v1/plugins/nope").await;
    assert_eq!(status, 404);
}

/// Builds `examples/validator-require-os-distro` with its own manifest (outside both
/// workspaces) into the shared target directory and returns the component's path.
fn build_vendor_validator() -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/validator-require-os-distro")
        .canonicalize()
        .expect("examples/validator-require-os-distro");
    // Beside the guest workspace's build, whose dependencies it shares.
    let target = target_dir(&std::env::current_exe().unwrap()).join("wasm-plugins");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .current_dir(&example)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target);
    for key in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(key);
    }
    let output = command.output().expect("running cargo build");
    assert!(
        output.status.success(),
        "building the example failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/validator_require_os_distro.wasm");
    assert!(wasm.is_file(), "{}", wasm.display());
    wasm
}

#[tokio::test]
async fn vendor_validator_built_outside_the_workspace() {
    let wasm = tokio::task::spawn_blocking(build_vendor_validator)
        .await
        .unwrap();

    // Loaded by configuration.
    let server = server_with(vec![validator(
        "vendor",
        &wasm.display().to_string(),
        ValidatorMode::Enforce,
        ValidatorFailure::Closed,
    )])
    .await;
    let admin = server.admin();
    let (status, answer) = create(&admin, &json!({"name": "p", "visibility": "public"})).await;
    assert_refused(status, &answer, "os_distro", "required");
    let (status, _) = create(
        &admin,
        &json!({"name": "p", "visibility": "public", "os_distro": "ubuntu"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, private) = create(&admin, &json!({"name": "q"})).await;
    assert_eq!(status, 201);
    let id = private["id"].as_str().unwrap();
    let (status, answer) = patch(
        &admin,
        id,
        &json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
    )
    .await;
    assert_refused(status, &answer, "os_distro", "required");
    let (status, _) = patch(
        &admin,
        id,
        &json!([
            {"op": "add", "path": "/os_distro", "value": "debian"},
            {"op": "replace", "path": "/visibility", "value": "public"},
        ]),
    )
    .await;
    assert_eq!(status, 200);
    drop(server);

    // Loaded through the plugins API in place of the built-in validator.
    let server = server_with(vec![metadef(ValidatorMode::Enforce)]).await;
    let admin = server.admin();
    let (status, _) = create(&admin, &json!({"visibility": "public"})).await;
    assert_eq!(status, 201, "validator-metadef has no such rule");
    let r = admin
        .jrequest(Method::PUT, "/glass/v1/plugins/metadef")
        .header("Content-Type", "application/wasm")
        .body(std::fs::read(&wasm).unwrap())
        .send()
        .await
        .unwrap();
    let (status, swapped) = into_json(r).await;
    assert_eq!(status, 200, "{swapped}");
    assert_eq!(
        swapped["plugin"]["current"]["name"],
        "validator-require-os-distro"
    );
    let (status, answer) = create(&admin, &json!({"visibility": "public"})).await;
    assert_refused(status, &answer, "os_distro", "required");
}
