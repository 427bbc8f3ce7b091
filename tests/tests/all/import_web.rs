//! web-download cannot be turned against the deployment (SSRF): loopback and other
//! non-public addresses without allow-listing, host names resolving to them, redirects to
//! them, cloud metadata, `file://`, unlisted ports, numeric host shorthands; and the size
//! and time caps of a download.

use glass_tests::data::new_image;
use glass_tests::import::{Reply, WebServer, image_tasks, import, wait_import};
use glass_tests::{Client, TestServer};
use serde_json::json;

async fn server(adjust: impl FnOnce(&mut glass_host::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        adjust(c);
    })
    .await
}

fn web_download(uri: &str) -> serde_json::Value {
    json!({"method": {"name": "web-download", "uri": uri}})
}

/// Starts a web-download of `uri`; the import must be accepted, then fail. The task's
/// message.
async fn fails_in_task(client: &Client, uri: &str) -> String {
    let id = new_image(client).await;
    let (status, body) = import(client, &id, web_download(uri)).await;
    assert_eq!(status, 202, "{uri}: {body}");
    let image = wait_import(client, &id).await;
    assert_eq!(image["status"], "queued", "{uri}: {image}");
    let task = &image_tasks(client, &id).await[0];
    assert_eq!(task["status"], "failure", "{uri}: {task}");
    task["message"].as_str().unwrap().to_string()
}

/// A web-download refused up front (400, filtering).
async fn refused(client: &Client, uri: &str) -> String {
    let id = new_image(client).await;
    let (status, body) = import(client, &id, web_download(uri)).await;
    assert_eq!(status, 400, "{uri}: {body}");
    let message = body["message"].as_str().unwrap().to_string();
    assert!(message.contains("does not pass filtering"), "{message}");
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "queued");
    message
}

#[tokio::test]
async fn non_public_targets_are_refused_by_default() {
    let web = WebServer::start().await;
    web.serve("/disk", b"secret".to_vec());
    // The port is allowed; loopback is not.
    let server = server(|c| c.import.web_download.allowed_ports = vec![80, 443, web.port]).await;
    let client = server.admin();
    let m = refused(&client, &web.url("/disk")).await;
    assert!(m.contains("loopback"), "{m}");
    let m = refused(&client, "http://169.254.169.254/latest/meta-data/").await;
    assert!(m.contains("metadata"), "{m}");
    refused(&client, "http://10.0.0.1/disk").await;
    refused(&client, "http://[::1]/disk").await;
    refused(&client, "http://[::ffff:127.0.0.1]/disk").await;
    refused(&client, "http://2130706433/disk").await;
    refused(&client, "http://127.1/disk").await;
    refused(&client, "http://0x7f000001/disk").await;
    refused(&client, "file:///etc/passwd").await;
    refused(&client, "ftp://example.com/disk").await;
    let m = refused(&client, "http://example.com:8080/disk").await;
    assert!(m.contains("port 8080"), "{m}");
    // A name that resolves to loopback: resolved and refused when the import is asked for
    // (the download resolves and checks again), without telling what it resolved to.
    let m = refused(&client, &format!("http://localhost:{}/disk", web.port)).await;
    assert!(
        m.contains("localhost") && m.contains("may not reach"),
        "{m}"
    );
    assert!(
        !m.contains("127.0.0.1") && !m.contains("::1") && !m.contains("loopback"),
        "the resolved address is echoed: {m}"
    );
}

#[tokio::test]
async fn redirects_are_checked_like_the_first_url() {
    // The source is on 127.0.0.2, the only non-public address allowed.
    let web = WebServer::start_on("127.0.0.2".parse().unwrap()).await;
    let inner = WebServer::start().await;
    inner.serve("/secret", b"internal".to_vec());
    web.serve("/ok", b"public data".to_vec());
    web.route("/to-loopback", Reply::Redirect(inner.url("/secret")));
    web.route(
        "/to-metadata",
        Reply::Redirect("http://169.254.169.254/latest/meta-data/".into()),
    );
    web.route("/to-file", Reply::Redirect("file:///etc/passwd".into()));
    web.route(
        "/to-port",
        Reply::Redirect(format!("http://127.0.0.2:{}/ok", inner.port)),
    );
    web.route("/loop", Reply::Redirect(web.url("/loop")));
    let server = server(|c| {
        let w = &mut c.import.web_download;
        w.allowed_networks = vec!["127.0.0.2/32".into()];
        w.allowed_ports = vec![web.port];
    })
    .await;
    let client = server.admin();

    let id = new_image(&client).await;
    assert_eq!(
        import(&client, &id, web_download(&web.url("/ok"))).await.0,
        202
    );
    assert_eq!(wait_import(&client, &id).await["status"], "active");

    let m = fails_in_task(&client, &web.url("/to-loopback")).await;
    assert!(m.contains("127.0.0.1"), "{m}");
    let m = fails_in_task(&client, &web.url("/to-metadata")).await;
    assert!(m.contains("metadata"), "{m}");
    let m = fails_in_task(&client, &web.url("/to-file")).await;
    assert!(m.contains("scheme"), "{m}");
    let m = fails_in_task(&client, &web.url("/to-port")).await;
    assert!(m.contains("port"), "{m}");
    let m = fails_in_task(&client, &web.url("/loop")).await;
    assert!(m.contains("redirects"), "{m}");
}

#[tokio::test]
async fn downloads_are_capped_in_size_and_time() {
    let web = WebServer::start().await;
    web.serve("/big", vec![1u8; 5000]);
    web.route("/slow", Reply::Slow(100));
    let server = server(|c| {
        c.image_size_cap = 4000;
        let w = &mut c.import.web_download;
        w.allowed_networks = vec!["127.0.0.1".into()];
        w.allowed_ports = vec![web.port];
        w.timeout_s = 1;
    })
    .await;
    let client = server.admin();
    let m = fails_in_task(&client, &web.url("/big")).await;
    assert!(m.contains("4000"), "{m}");
    let m = fails_in_task(&client, &web.url("/slow")).await;
    assert!(
        m.contains("longer than allowed") || m.contains("timed out"),
        "{m}"
    );
}
