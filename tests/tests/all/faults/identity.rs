//! Keystone failing under a running Glass (`auth = "keystone"`): the shared Keystone reached
//! through a [`FaultProxy`] that hangs or cuts every connection. Requests needing a token
//! validation get a 503 within the configured deadline, never hang, never pass unchecked;
//! routes without auth keep answering; once Keystone is back, tokens work again and the
//! data written before is intact.

use std::time::{Duration, Instant};

use glass_host::config::AuthMode;
use glass_tests::data::{get_file, pseudo_random};
use glass_tests::faults::{FaultProxy, Mode, sha256};
use glass_tests::keystone::{self, KEYSTONE_URL, SERVICE_PASSWORD, SERVICE_USER};
use glass_tests::{Client, TestServer};
use reqwest::Method;
use serde_json::json;

async fn bounded(client: &Client, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let code = match tokio::time::timeout(Duration::from_secs(60), client.get(path)).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    };
    (code, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keystone_hung_and_cut() {
    let admin = keystone::keystone().await;
    let proxy = FaultProxy::start(&glass_tests::backends::authority(KEYSTONE_URL)).await;
    let server = TestServer::start_with(|c| {
        c.auth = AuthMode::Keystone;
        c.keystone.auth_url = proxy.url();
        c.keystone.username = SERVICE_USER.into();
        c.keystone.password = SERVICE_PASSWORD.into();
        c.keystone.token_cache_time_s = 1;
        // SQLite Keystone with one worker is slow on a busy machine.
        c.keystone.timeout_ms = 10_000;
    })
    .await;
    let project = admin.project("faults").await;
    let owner = admin.account(&project, "member").await;
    let client = Client::with_token(&server.url, &owner.token);
    let image = client
        .create_image(json!({"name": "kept", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap().to_string();
    let data = pseudo_random(1 << 20, 5);
    let r = client
        .request(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);

    for mode in [Mode::Stall, Mode::Cut] {
        proxy.set(mode);
        // Past the token cache (1 s): the token must be validated again.
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        let (code, took) = bounded(&client, &format!("/v2/images/{id}")).await;
        eprintln!("keystone {mode:?}: {code} after {took:?}");
        assert_eq!(code, 503, "keystone {mode:?}: 503 (0: no answer in 60 s)");
        assert!(took < Duration::from_secs(40), "{took:?}");
        // A token never seen before is not let through either.
        let stranger = Client::with_token(&server.url, "gAAAAAnot-validated");
        assert_eq!(bounded(&stranger, "/v2/images").await.0, 503);
        // Routes without auth are not held up.
        let anonymous = Client::new(&server.url, None);
        let (code, took) = bounded(&anonymous, "/versions").await;
        assert_eq!(code, 200);
        assert!(took < Duration::from_secs(5), "{took:?}");
        proxy.set(Mode::Pass);
        let deadline = Instant::now() + Duration::from_secs(30);
        while bounded(&client, &format!("/v2/images/{id}")).await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "keystone back, tokens still refused"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (code, got) = get_file(&client, &id).await;
    assert_eq!(code, 200);
    assert_eq!(sha256(&got.unwrap()), sha256(&data));
}
