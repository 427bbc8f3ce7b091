//! One client cannot starve the rest (issue 13, item 6 and part of 7), against the real
//! server on loopback: stalled uploads beyond the upload budget leave downloads and
//! metadata calls alone, new uploads get 503 with `Retry-After`, the stalled ones are cut
//! after the body idle time and their images are queued again; half-sent headers and idle
//! keep-alive connections are closed; one client address cannot hold more than its share of
//! connections; invented method names and paths add no metrics series; a flood of one bogus
//! token reaches Keystone once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use glass_host::config::{AuthMode, Config};
use glass_tests::data::{get_file, new_image, pseudo_random, put_file};
use glass_tests::keystone::{self, KEYSTONE_URL, SERVICE_PASSWORD, SERVICE_USER};
use glass_tests::{ADMIN_PROJECT, Client, TestServer};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn addr_of(server: &TestServer) -> SocketAddr {
    server.url.strip_prefix("http://").unwrap().parse().unwrap()
}

/// A connection from `source` (any 127.x.y.z address: loopback takes the whole /8).
async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads until the server closes the connection (EOF or reset), or `within` passes.
/// True if it closed.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// One `GET path` on its own connection from `source`: the status code, or None if the
/// server closed the connection without answering.
async fn raw_get(source: &str, to: SocketAddr, path: &str) -> Option<u16> {
    let mut s = connect_from(source, to).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: glass\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).await.is_err() {
        return None;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// Starts an upload of `len` bytes of which only the headers and the first 512 bytes are
/// sent; the connection is returned open (the client then says nothing).
async fn stalled_upload(to: SocketAddr, id: &str, len: usize) -> TcpStream {
    let mut s = TcpStream::connect(to).await.unwrap();
    let head = format!(
        "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: glass\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\
         X-Project-Id: {ADMIN_PROJECT}\r\nX-User-Id: stalling\r\nX-Roles: admin,member,reader\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&pseudo_random(512, 9)).await.unwrap();
    s
}

async fn status_of(client: &Client, id: &str) -> String {
    let (_, image) = client.get_json(&format!("/v2/images/{id}")).await;
    image["status"].as_str().unwrap_or_default().to_owned()
}

/// Polls until every image in `ids` has `status`, for at most `within`.
async fn wait_all(client: &Client, ids: &[String], status: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let mut other = Vec::new();
        for id in ids {
            let s = status_of(client, id).await;
            if s != status {
                other.push(format!("{id}: {s}"));
            }
        }
        if other.is_empty() || Instant::now() > deadline {
            return other;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The attack of the review: ~130 uploads that send their headers and a little data, then
/// nothing. Before, they held 128 of the 128 plugin instances: every download was a 503 and
/// new uploads a 400, for as long as the clients kept their connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_do_not_starve_downloads_and_are_cut() {
    const STALLED: usize = 130;
    let server = TestServer::start_with(|c| {
        c.auth = AuthMode::TrustedHeaders;
        c.server.body_idle_timeout_s = 6;
        c.plugin_calls.queue_wait_ms = 500;
    })
    .await;
    let admin = server.admin();
    let addr = addr_of(&server);

    // An image to download while the attack runs.
    let data = pseudo_random(300 * 1024, 3);
    let served = new_image(&admin).await;
    let (status, body) = put_file(&admin, &served, data.clone()).await;
    assert_eq!(status, 204, "{body}");

    let mut ids = Vec::new();
    for _ in 0..STALLED {
        ids.push(new_image(&admin).await);
    }
    let mut stalled = Vec::new();
    for id in &ids {
        stalled.push(stalled_upload(addr, id, 8 << 20).await);
    }
    let not_saving = wait_all(&admin, &ids, "saving", Duration::from_secs(60)).await;
    assert!(not_saving.is_empty(), "uploads not started: {not_saving:?}");
    let attack_started = Instant::now();

    // Downloads and metadata calls are served while the uploads stall.
    for _ in 0..5 {
        let (status, got) = get_file(&admin, &served).await;
        assert_eq!(status, 200, "a download during the stalled uploads");
        assert!(got.unwrap() == data, "downloaded bytes differ");
        let (status, _) = admin.get_json(&format!("/v2/images/{served}")).await;
        assert_eq!(status, 200);
        let (status, _) = admin.get_json("/v2/images?limit=5").await;
        assert_eq!(status, 200);
    }
    // A new upload finds the upload budget full: 503 with Retry-After, never a 400.
    let fresh = new_image(&admin).await;
    let r = admin
        .request(Method::PUT, &format!("/v2/images/{fresh}/file"))
        .header("Content-Type", "application/octet-stream")
        .header("Accept", "application/json")
        .body(pseudo_random(64 * 1024, 4))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").cloned();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!(status, 503, "a new upload while the budget is full: {body}");
    assert!(
        body["code"].as_str().unwrap_or_default().starts_with("503"),
        "Glance's error shape: {body}"
    );
    let retry_after = retry_after.expect("503 with Retry-After");
    assert!(retry_after.to_str().unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(status_of(&admin, &fresh).await, "queued");

    // The stalled uploads are cut after the idle time: every image is queued again.
    let still = wait_all(&admin, &ids, "queued", Duration::from_secs(60)).await;
    assert!(still.is_empty(), "stalled uploads not cut: {still:?}");
    assert!(
        attack_started.elapsed() >= Duration::from_secs(3),
        "cut before the idle time"
    );
    // Their places are free again: an upload goes through.
    let (status, body) = put_file(&admin, &fresh, pseudo_random(64 * 1024, 4)).await;
    assert_eq!(
        status, 204,
        "an upload after the stalled ones were cut: {body}"
    );
    drop(stalled);
}

/// Before, 60 half-sent requests stayed open for more than 45 s: hyper had no timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_and_idle_keepalives_are_closed() {
    let server = TestServer::start_with(|c| {
        c.auth = AuthMode::TrustedHeaders;
        c.server.header_read_timeout_s = 2;
    })
    .await;
    let addr = addr_of(&server);
    let mut half_sent = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /versions HTTP/1.1\r\nHost: glass\r\nX-Slow: ")
            .await
            .unwrap();
        half_sent.push(s);
    }
    // A keep-alive connection that answered one request, then sits idle.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: glass\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(30), idle.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let started = Instant::now();
    for (i, s) in half_sent.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(20)).await,
            "half-sent request {i} still open after {:?}",
            started.elapsed()
        );
    }
    assert!(
        closed_within(&mut idle, Duration::from_secs(20)).await,
        "idle keep-alive connection still open"
    );
    // The server still serves.
    assert_eq!(raw_get("127.0.0.1", addr, "/healthcheck").await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_exceed_its_connection_limit() {
    let server = TestServer::start_with(|c| {
        c.auth = AuthMode::TrustedHeaders;
        c.server.max_connections_per_client = 4;
    })
    .await;
    let addr = addr_of(&server);
    // The greedy client holds four connections with half-sent requests.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from("127.0.0.1", addr).await;
        s.write_all(b"GET /versions HTTP/1.1\r\nHost: glass\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    // Let the server accept them all before the next ones.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Its next connections are closed without an answer, many times over.
    for i in 0..20 {
        assert_eq!(
            raw_get("127.0.0.1", addr, "/healthcheck").await,
            None,
            "connection {} over the limit was served",
            i + 5
        );
    }
    // Another client is served all the while.
    for _ in 0..5 {
        assert_eq!(raw_get("127.0.0.2", addr, "/healthcheck").await, Some(200));
    }
    // A connection the greedy client closes gives its place back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match raw_get("127.0.0.1", addr, "/healthcheck").await {
            Some(200) => break,
            other => {
                assert!(Instant::now() < deadline, "place not given back: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Values of `label` in the series of `metric` in a scrape.
fn label_values(scrape: &str, metric: &str, label: &str) -> std::collections::BTreeSet<String> {
    let key = format!("{label}=\"");
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter_map(|l| {
            let start = l.find(&key)? + key.len();
            let end = start + l[start..].find('"')?;
            Some(l[start..end].to_owned())
        })
        .collect()
}

fn series_count(scrape: &str) -> usize {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

/// Before, each invented method name became a label value (the review grew the server's
/// memory by 440 MB with them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_and_paths_add_no_metrics_series() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    // Warm up the series a normal client creates.
    for path in ["/versions", "/v2/images", &format!("/v2/images/{id}")] {
        admin.get(path).await;
        for method in ["FOO", "BAR"] {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            admin.request(m, path).send().await.unwrap();
        }
    }
    admin
        .get(&format!("/v2/images/{}", uuid::Uuid::new_v4()))
        .await;
    let before = admin.get("/metrics").await.text().await.unwrap();

    for i in 0..1000u32 {
        let name = format!("X{}Q{i}", uuid::Uuid::new_v4().simple());
        let method = Method::from_bytes(name.to_uppercase().as_bytes()).unwrap();
        let path = match i % 3 {
            0 => "/versions".to_string(),
            1 => "/v2/images".to_string(),
            _ => format!("/v2/images/{id}"),
        };
        let r = admin.request(method, &path).send().await.unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
    }
    for _ in 0..200 {
        let r = admin
            .get(&format!("/v2/images/{}", uuid::Uuid::new_v4()))
            .await;
        assert_eq!(r.status().as_u16(), 404);
        admin
            .get(&format!(
                "/v2/{}/{}",
                uuid::Uuid::new_v4(),
                uuid::Uuid::new_v4()
            ))
            .await;
    }
    let after = admin.get("/metrics").await.text().await.unwrap();

    let methods = label_values(&after, "glass_http_requests_total", "method");
    let allowed = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
    ];
    for m in &methods {
        assert!(allowed.contains(&m.as_str()), "method label {m:?}");
    }
    let routes = label_values(&after, "glass_http_requests_total", "route");
    assert!(
        routes.iter().all(|r| !r.contains(&id)),
        "a raw path as route label: {routes:?}"
    );
    assert!(routes.len() <= 8, "route labels: {routes:?}");
    let grown = series_count(&after).saturating_sub(series_count(&before));
    assert!(
        grown <= 40,
        "1200 odd requests added {grown} series (methods: {methods:?})"
    );
}

/// A TCP proxy to Keystone that counts token validations (`GET /v3/auth/tokens`) passing
/// through it: what Glass really asked, whatever Glass's own metrics say.
async fn counting_proxy(upstream: &str) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let needle = b"GET /v3/auth/tokens";
                    let mut tail: Vec<u8> = Vec::new();
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        tail.extend_from_slice(&buf[..n]);
                        let hits = tail.windows(needle.len()).filter(|w| w == needle).count();
                        counter.fetch_add(hits as u64, Ordering::Relaxed);
                        let keep = tail.len().min(needle.len() - 1);
                        tail.drain(..tail.len() - keep);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (url, count)
}

fn keystone_config(c: &mut Config, url: &str) {
    c.auth = AuthMode::Keystone;
    c.keystone.auth_url = url.to_string();
    c.keystone.www_authenticate_uri = Some(KEYSTONE_URL.into());
    c.keystone.username = SERVICE_USER.into();
    c.keystone.password = SERVICE_PASSWORD.into();
    c.keystone.invalid_token_cache_time_s = 3;
    c.keystone.timeout_ms = 15_000;
}

/// Before, every request with a bogus token cost a validation call to Keystone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_one_bogus_token_reaches_keystone_once() {
    let admin = keystone::keystone().await;
    let (proxy, validations) = counting_proxy(KEYSTONE_URL).await;
    let server = TestServer::start_with(|c| keystone_config(c, &proxy)).await;
    let bogus = Client::with_token(&server.url, "gAAAAABbogus-token-of-the-flood");
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(bogus.get("/v2/images").await.status().as_u16(), 401);
    }
    let asked = validations.load(Ordering::Relaxed);
    // One validation; a second only if a very slow machine let the entry expire meanwhile
    // (the 49 other answers come from memory, in milliseconds).
    assert!(
        (1..=2).contains(&asked),
        "50 requests with one bogus token: {asked} validations in {:?}",
        started.elapsed()
    );
    let scrape = Client::new(&server.url, None)
        .get("/metrics")
        .await
        .text()
        .await
        .unwrap();
    let counted = scrape
        .lines()
        .find(|l| l.starts_with("glass_keystone_validations_total{result=\"invalid\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(counted, Some(asked), "the validations counted in /metrics");

    // Only briefly: after the negative cache time Keystone is asked again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(bogus.get("/v2/images").await.status().as_u16(), 401);
    assert_eq!(validations.load(Ordering::Relaxed), asked + 1);

    // A valid token is unaffected.
    let project = admin.project("dos").await;
    let account = admin.account(&project, "member").await;
    let user = Client::with_token(&server.url, &account.token);
    assert_eq!(user.get("/v2/images").await.status().as_u16(), 200);
}

/// Downloads whose clients stop reading: each held its download place (and its plugin
/// instance) for as long as the client kept the connection, so `downloads_per_store` such
/// clients made every other download of the store a 503. Now a download whose reader takes
/// nothing for `reader_stall_s` ends and gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_that_nobody_reads_give_their_places_back() {
    let server = TestServer::start_with(|c| {
        c.plugin_calls.downloads_per_store = 2;
        c.plugin_calls.reader_stall_s = 3;
        c.plugin_calls.queue_wait_ms = 500;
    })
    .await;
    let admin = server.admin();
    let addr = addr_of(&server);
    // Larger than what the loopback socket buffers and the pipe can hold.
    let data = pseudo_random(48 << 20, 5);
    let id = new_image(&admin).await;
    let (status, body) = put_file(&admin, &id, data.clone()).await;
    assert_eq!(status, 204, "{body}");

    let mut unread = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /v2/images/{id}/file HTTP/1.1\r\nHost: glass\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        unread.push(s);
    }
    // Both places are taken while the two clients read nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = get_file(&admin, &id).await;
    assert_eq!(
        status, 503,
        "the two unread downloads should hold both places"
    );

    // After the stall limit their calls end: a download gets every byte again.
    let started = Instant::now();
    loop {
        let (status, got) = get_file(&admin, &id).await;
        if status == 200 {
            assert!(
                got.unwrap() == data,
                "a download after the stall got other bytes"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "downloads still refused ({status}) 30 s after their readers stalled"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(unread);
}
