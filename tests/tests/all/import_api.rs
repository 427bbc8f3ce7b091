//! The interoperable import API end to end: discovery and create headers, glance-direct
//! (stage → import), web-download from a loopback server allowed by configuration,
//! copy-image between stores (`stores`, `all_stores`, `all_stores_must_succeed`), Glance's
//! preconditions and errors, the import lock, and the tasks API.

use glass_tests::data::{fs_store, get_file, new_image, pseudo_random, put_file};
use glass_tests::import::{Reply, WebServer, image_tasks, import, method, stage, wait_import};
use glass_tests::{Client, TestServer};
use serde_json::{Value, json};

/// Two file stores, `alpha` (default) and `beta`; web-download may reach loopback on
/// `port` (a test server).
async fn server_with(port: Option<u16>) -> TestServer {
    TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.stores = vec![fs_store("alpha", 10, true), fs_store("beta", 5, false)];
        if let Some(port) = port {
            let web = &mut c.import.web_download;
            web.allowed_networks = vec!["127.0.0.0/8".into()];
            web.allowed_ports = vec![80, 443, port];
        }
    })
    .await
}

async fn image(client: &Client, id: &str) -> Value {
    client.get_json(&format!("/v2/images/{id}")).await.1
}

#[tokio::test]
async fn discovery_and_create_headers() {
    let server = server_with(None).await;
    let (status, body) = server.admin().get_json("/v2/info/import").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"import-methods": {"description": "Import methods available.", "type": "array",
            "value": ["glance-direct", "web-download", "copy-image"]}})
    );
    let r = server
        .admin()
        .request(reqwest::Method::POST, "/v2/images")
        .json(&json!({"name": "h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["openstack-image-import-methods"],
        "glance-direct,web-download,copy-image"
    );
    assert_eq!(r.headers()["openstack-image-store-ids"], "alpha,beta");
}

#[tokio::test]
async fn glance_direct_stages_then_imports_to_the_default_store() {
    let server = server_with(None).await;
    let client = server.client("p1", "member,reader");
    let id = new_image(&client).await;
    let data = pseudo_random(300_000, 1);
    let (status, body) = stage(&client, &id, data.clone()).await;
    assert_eq!(status, 204, "{body}");
    let staged = image(&client, &id).await;
    assert_eq!(staged["status"], "uploading");
    assert_eq!(staged["size"], 300_000);
    assert!(
        server
            .state
            .config
            .data_dir
            .join("staging")
            .join(&id)
            .exists()
    );
    // Staging twice is refused: the image is no longer queued.
    assert_eq!(stage(&client, &id, b"again".to_vec()).await.0, 409);

    let (status, body) = import(&client, &id, method("glance-direct")).await;
    assert_eq!(status, 202, "{body}");
    let done = wait_import(&client, &id).await;
    assert_eq!(done["status"], "active", "{done}");
    assert_eq!(done["stores"], "alpha");
    assert_eq!(done["size"], 300_000);
    assert_eq!(done["virtual_size"], 300_000);
    assert_eq!(done["os_glance_importing_to_stores"], "");
    assert_eq!(done["os_glance_failed_import"], "");
    assert_eq!(done["os_hash_algo"], "sha512");
    let (status, bytes) = get_file(&client, &id).await;
    assert_eq!(status, 200);
    assert_eq!(bytes.unwrap(), data);
    assert!(
        !server
            .state
            .config
            .data_dir
            .join("staging")
            .join(&id)
            .exists(),
        "staged data removed after the import"
    );

    let tasks = image_tasks(&client, &id).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let task = &tasks[0];
    assert_eq!(task["status"], "success");
    assert_eq!(task["type"], "api_image_import");
    assert_eq!(task["result"], json!({"image_id": id}));
    assert_eq!(
        task["input"]["import_req"]["method"]["name"],
        "glance-direct"
    );
    assert_eq!(task["input"]["backend"], json!(["alpha"]));
    assert_eq!(task["owner"], "p1");
    assert!(task["expires_at"].is_string());

    // The tasks API is for admins (Glance's tasks_api_access).
    let task_id = task["id"].as_str().unwrap();
    assert_eq!(
        client.get_json(&format!("/v2/tasks/{task_id}")).await.0,
        403
    );
    assert_eq!(client.get_json("/v2/tasks").await.0, 403);
    let (status, shown) = server
        .admin()
        .get_json(&format!("/v2/tasks/{task_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["status"], "success");
    assert_eq!(shown["image_id"], id.as_str());
    assert_eq!(shown["self"], format!("/v2/tasks/{task_id}"));
    assert_eq!(shown["schema"], "/v2/schemas/task");
    let (status, list) = server.admin().get_json("/v2/tasks?status=success").await;
    assert_eq!(status, 200);
    assert!(
        list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == task_id)
    );
    assert_eq!(list["first"], "/v2/tasks?status=success");
    assert_eq!(
        server
            .admin()
            .get_json(&format!("/v2/tasks/{}", uuid::Uuid::new_v4()))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn glance_direct_to_several_stores() {
    let server = server_with(None).await;
    let client = server.admin();
    let id = new_image(&client).await;
    assert_eq!(stage(&client, &id, pseudo_random(5000, 2)).await.0, 204);
    let body = json!({"method": {"name": "glance-direct"}, "stores": ["beta", "alpha"]});
    assert_eq!(import(&client, &id, body).await.0, 202);
    let done = wait_import(&client, &id).await;
    assert_eq!(done["status"], "active");
    assert_eq!(done["stores"], "beta,alpha");
}

#[tokio::test]
async fn import_preconditions_are_glances() {
    let server = server_with(None).await;
    let owner = server.client("p1", "member,reader");
    let id = new_image(&owner).await;
    // Not staged yet.
    let (status, body) = import(&owner, &id, method("glance-direct")).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("staged"),
        "{body}"
    );
    // Malformed requests.
    assert_eq!(import(&owner, &id, json!({})).await.0, 400);
    assert_eq!(import(&owner, &id, json!({"method": {}})).await.0, 400);
    assert_eq!(import(&owner, &id, method("magic")).await.0, 400);
    assert_eq!(import(&owner, &id, method("glance-download")).await.0, 400);
    let bad_flag = json!({"method": {"name": "glance-direct"}, "all_stores": "yes"});
    assert_eq!(import(&owner, &id, bad_flag).await.0, 400);
    // Not the owner: another project cannot see it at all.
    let other = server.client("p2", "member,reader");
    assert_eq!(import(&other, &id, method("glance-direct")).await.0, 404);
    // An image without formats cannot be imported.
    let bare = owner.create_image(json!({"name": "no formats"})).await;
    let bare = bare["id"].as_str().unwrap();
    assert_eq!(stage(&owner, bare, b"x".to_vec()).await.0, 204);
    let (status, body) = import(&owner, bare, method("glance-direct")).await;
    assert_eq!(status, 409, "{body}");
    // Unknown store, store and header together, all_stores with stores.
    assert_eq!(stage(&owner, &id, b"data".to_vec()).await.0, 204);
    let unknown = json!({"method": {"name": "glance-direct"}, "stores": ["nope"]});
    assert_eq!(import(&owner, &id, unknown).await.0, 409);
    let both =
        json!({"method": {"name": "glance-direct"}, "all_stores": true, "stores": ["alpha"]});
    assert_eq!(import(&owner, &id, both).await.0, 400);
    // Active images are no target for import (except copy-image).
    let active = new_image(&owner).await;
    assert_eq!(put_file(&owner, &active, b"x".to_vec()).await.0, 204);
    assert_eq!(
        import(&owner, &active, method("glance-direct")).await.0,
        409
    );
    // copy-image needs an active image and the admin role.
    assert_eq!(import(&owner, &active, method("copy-image")).await.0, 403);
    assert_eq!(
        import(&server.admin(), &id, method("copy-image")).await.0,
        409
    );
}

#[tokio::test]
async fn web_download_from_an_allowed_loopback_server() {
    let web = WebServer::start().await;
    let data = pseudo_random(200_000, 3);
    web.serve("/disk.raw", data.clone());
    web.route("/moved", Reply::Redirect(web.url("/disk.raw")));
    let server = server_with(Some(web.port)).await;
    let client = server.client("p1", "member,reader");

    let id = new_image(&client).await;
    let body = json!({"method": {"name": "web-download", "uri": web.url("/moved")}});
    let (status, answer) = import(&client, &id, body).await;
    assert_eq!(status, 202, "{answer}");
    let done = wait_import(&client, &id).await;
    assert_eq!(done["status"], "active", "{done}");
    assert_eq!(done["size"], 200_000);
    assert_eq!(get_file(&client, &id).await.1.unwrap(), data);
    assert_eq!(image_tasks(&client, &id).await[0]["status"], "success");

    // A URL that answers 404: the task fails, the image is queued again with no data and
    // the store is named in os_glance_failed_import... the failure happens before any store,
    // so the image simply goes back to queued.
    let id = new_image(&client).await;
    let body = json!({"method": {"name": "web-download", "uri": web.url("/missing")}});
    assert_eq!(import(&client, &id, body).await.0, 202);
    let failed = wait_import(&client, &id).await;
    assert_eq!(failed["status"], "queued", "{failed}");
    assert!(failed["size"].is_null());
    let task = &image_tasks(&client, &id).await[0];
    assert_eq!(task["status"], "failure");
    assert!(task["message"].as_str().unwrap().contains("404"), "{task}");
    // It can be imported again once the source is there.
    web.serve("/missing", b"now here".to_vec());
    let body = json!({"method": {"name": "web-download", "uri": web.url("/missing")}});
    assert_eq!(import(&client, &id, body).await.0, 202);
    assert_eq!(wait_import(&client, &id).await["status"], "active");

    // A body cut short fails the import.
    web.route(
        "/short",
        Reply::Truncated {
            len: 10_000,
            sent: 100,
        },
    );
    let id = new_image(&client).await;
    let body = json!({"method": {"name": "web-download", "uri": web.url("/short")}});
    assert_eq!(import(&client, &id, body).await.0, 202);
    assert_eq!(wait_import(&client, &id).await["status"], "queued");
}

#[tokio::test]
async fn copy_image_between_stores() {
    let server = server_with(None).await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    let data = pseudo_random(100_000, 4);
    assert_eq!(put_file(&admin, &id, data.clone()).await.0, 204);
    assert_eq!(image(&admin, &id).await["stores"], "alpha");

    // Already there.
    let body = json!({"method": {"name": "copy-image"}, "stores": ["alpha"]});
    assert_eq!(import(&admin, &id, body).await.0, 400);

    let body = json!({"method": {"name": "copy-image"}, "stores": ["beta"]});
    assert_eq!(import(&admin, &id, body).await.0, 202);
    let done = wait_import(&admin, &id).await;
    assert_eq!(done["status"], "active");
    assert_eq!(done["stores"], "alpha,beta");
    assert!(server.state.config.data_dir.join("beta").join(&id).exists());

    // all_stores when every store has it: nothing to do, still 202.
    let body = json!({"method": {"name": "copy-image"}, "all_stores": true});
    assert_eq!(import(&admin, &id, body).await.0, 202);

    // all_stores copies where it is missing.
    let id2 = new_image(&admin).await;
    assert_eq!(put_file(&admin, &id2, data.clone()).await.0, 204);
    let body = json!({"method": {"name": "copy-image"}, "all_stores": true});
    assert_eq!(import(&admin, &id2, body).await.0, 202);
    assert_eq!(wait_import(&admin, &id2).await["stores"], "alpha,beta");
    let tasks = image_tasks(&admin, &id2).await;
    assert_eq!(tasks[0]["input"]["backend"], json!(["beta"]));
}

#[tokio::test]
async fn copy_image_failure_is_recorded() {
    let server = server_with(None).await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    assert_eq!(put_file(&admin, &id, pseudo_random(1000, 5)).await.0, 204);
    // The beta store's directory becomes a file: writes to it fail.
    let beta = server.state.config.data_dir.join("beta");
    std::fs::remove_dir_all(&beta).unwrap();
    std::fs::write(&beta, b"not a directory").unwrap();

    let body = json!({"method": {"name": "copy-image"}, "stores": ["beta"],
        "all_stores_must_succeed": false});
    assert_eq!(import(&admin, &id, body).await.0, 202);
    let done = wait_import(&admin, &id).await;
    assert_eq!(done["status"], "active");
    assert_eq!(done["stores"], "alpha");
    assert_eq!(done["os_glance_failed_import"], "beta");
    assert_eq!(image_tasks(&admin, &id).await[0]["status"], "success");

    let body = json!({"method": {"name": "copy-image"}, "stores": ["beta"]});
    assert_eq!(import(&admin, &id, body).await.0, 202);
    let done = wait_import(&admin, &id).await;
    assert_eq!(
        done["status"], "active",
        "copy-image leaves the image active"
    );
    assert_eq!(done["os_glance_failed_import"], "beta");
    assert_eq!(image_tasks(&admin, &id).await[0]["status"], "failure");
}

#[tokio::test]
async fn import_lock_refuses_a_second_import() {
    let web = WebServer::start().await;
    web.route("/slow", Reply::Slow(30));
    let server = server_with(Some(web.port)).await;
    let client = server.admin();
    let id = new_image(&client).await;
    let body = json!({"method": {"name": "web-download", "uri": web.url("/slow")}});
    assert_eq!(import(&client, &id, body.clone()).await.0, 202);
    let busy = image(&client, &id).await;
    assert_eq!(busy["status"], "importing");
    assert!(busy["os_glance_import_task"].is_string());
    assert_eq!(busy["os_glance_importing_to_stores"], "alpha");
    // A second import: the image is importing (409 either way).
    assert_eq!(import(&client, &id, body).await.0, 409);
    // One task, still running (it may not have left `pending` yet on a busy machine).
    let (_, tasks) = client.get_json("/v2/tasks").await;
    let running: Vec<_> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "pending" || t["status"] == "processing")
        .collect();
    assert_eq!(running.len(), 1, "{tasks}");
    assert_eq!(wait_import(&client, &id).await["status"], "active");
}

/// glance-download from another Images API endpoint (a second Glass, noauth): the data, the
/// formats and the allowed properties come over; an unknown region is a 400, a remote image
/// that is not active fails the task.
#[tokio::test]
async fn glance_download_pulls_from_another_endpoint() {
    // Random bytes labelled qcow2, on both sides.
    let source =
        TestServer::start_with(|c| c.image_format.require_image_format_match = false).await;
    let remote = Client::new(&source.url, None);
    let data = pseudo_random(300_000, 9);
    let original = remote
        .create_image(json!({"name": "far away", "disk_format": "qcow2",
            "container_format": "bare", "hw_disk_bus": "scsi", "os_distro": "debian",
            "internal_note": "stays there"}))
        .await;
    let remote_id = original["id"].as_str().unwrap().to_owned();
    assert_eq!(put_file(&remote, &remote_id, data.clone()).await.0, 204);
    let queued = remote.create_image(json!({"name": "no data"})).await;
    let queued_id = queued["id"].as_str().unwrap().to_owned();

    let source_port: u16 = source.url.rsplit(':').next().unwrap().parse().unwrap();
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.stores = vec![fs_store("alpha", 10, true)];
        c.import.enabled_methods.push("glance-download".into());
        c.import
            .glance_download
            .endpoints
            .insert("RegionTwo".into(), source.url.clone());
        c.import.web_download.allowed_networks = vec!["127.0.0.0/8".into()];
        c.import.web_download.allowed_ports = vec![source_port];
        c.image_format.require_image_format_match = false;
    })
    .await;
    let client = server.client("p1", "member,reader");
    let pull = |id: &str, region: &str| {
        json!({"method": {"name": "glance-download", "glance_image_id": id,
            "glance_region": region, "glance_service_interface": "public"}})
    };

    // Glance wants formats before any import; the remote's replace them.
    let id = client
        .create_image(json!({"name": "pulled", "disk_format": "raw", "container_format": "bare"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = import(&client, &id, pull(&remote_id, "RegionNine")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = import(&client, &id, pull(&remote_id, "RegionTwo")).await;
    assert_eq!(status, 202, "{body}");
    let done = wait_import(&client, &id).await;
    assert_eq!(done["status"], "active", "{done}");
    assert_eq!(done["disk_format"], "qcow2");
    assert_eq!(done["container_format"], "bare");
    assert_eq!(done["hw_disk_bus"], "scsi");
    assert_eq!(done["os_distro"], "debian");
    assert!(done.get("internal_note").is_none(), "{done}");
    assert_eq!(
        done["checksum"],
        original_checksum(&remote, &remote_id).await
    );
    assert_eq!(get_file(&client, &id).await.1.unwrap(), data);

    let id = client
        .create_image(
            json!({"name": "pull queued", "disk_format": "raw", "container_format": "bare"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        import(&client, &id, pull(&queued_id, "RegionTwo")).await.0,
        202
    );
    let failed = wait_import(&client, &id).await;
    assert_eq!(failed["status"], "queued", "{failed}");
    let task = &image_tasks(&client, &id).await[0];
    assert_eq!(task["status"], "failure");
    assert!(
        task["message"].as_str().unwrap().contains("not active"),
        "{task}"
    );
}

async fn original_checksum(client: &Client, id: &str) -> Value {
    client.get_json(&format!("/v2/images/{id}")).await.1["checksum"].clone()
}
