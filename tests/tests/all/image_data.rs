//! Image data through the store-fs WebAssembly component: uploads hashed by the host, ranged
//! downloads, the failure paths that must leave an image queued with no data behind.

use std::time::Duration;

use glass_tests::TestServer;
use glass_tests::data::{new_image, pseudo_random, put_file};
use reqwest::Method;
use serde_json::{Value, json};

/// Files under the server's image directory (data and partials).
fn stored_files(server: &TestServer) -> Vec<String> {
    let dir = server.state.config.data_dir.join("images");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn upload_download_round_trip_with_checksums() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    let data = pseudo_random(3 * 1024 * 1024 + 17, 1);
    let (status, body) = put_file(&admin, &id, data.clone()).await;
    assert_eq!(status, 204, "{body}");
    let (_, image) = admin.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], data.len() as u64);
    assert_eq!(image["virtual_size"], data.len() as u64);
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(image["stores"], "fs");
    let md5 = format!("{:x}", md5_of(&data));
    assert_eq!(image["checksum"], md5);
    assert_eq!(image["os_hash_value"].as_str().unwrap().len(), 128);

    let r = admin.get(&format!("/v2/images/{id}/file")).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-md5"].to_str().unwrap(), md5);
    assert_eq!(
        r.headers()["content-length"].to_str().unwrap(),
        data.len().to_string()
    );
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let got = r.bytes().await.unwrap();
    assert!(got.as_ref() == data.as_slice(), "downloaded bytes differ");

    // A second upload to an active image is refused.
    let (status, _) = put_file(&admin, &id, b"again".to_vec()).await;
    assert_eq!(status, 409);

    // Deleting the image deletes its data.
    assert_eq!(
        stored_files(&server).len(),
        1,
        "{:?}",
        stored_files(&server)
    );
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("/v2/images/{id}"))
            .await
            .0,
        204
    );
    assert!(
        stored_files(&server).is_empty(),
        "{:?}",
        stored_files(&server)
    );
}

fn md5_of(data: &[u8]) -> u128 {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    u128::from_str_radix(hex.split_whitespace().next().unwrap(), 16).unwrap()
}

#[tokio::test]
async fn ranged_reads() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    let data = pseudo_random(100_000, 2);
    assert_eq!(put_file(&admin, &id, data.clone()).await.0, 204);
    let path = format!("/v2/images/{id}/file");
    for (range, start, end) in [
        ("bytes=0-15", 0usize, 15usize),
        ("bytes=99990-", 99_990, 99_999),
        ("bytes=-10", 99_990, 99_999),
        ("bytes=5000-7000", 5000, 7000),
        ("bytes=99000-200000", 99_000, 99_999),
    ] {
        let r = admin
            .request(Method::GET, &path)
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 206, "{range}");
        assert_eq!(
            r.headers()["content-range"].to_str().unwrap(),
            format!("bytes {start}-{end}/100000")
        );
        let got = r.bytes().await.unwrap();
        assert!(got.as_ref() == &data[start..=end], "{range}");
    }
    let r = admin
        .request(Method::GET, &path)
        .header("Range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        "bytes */100000"
    );
}

#[tokio::test]
async fn refused_uploads_leave_the_image_queued_and_no_data() {
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.image_size_cap = 1_000_000;
    })
    .await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    let path = format!("/v2/images/{id}/file");
    // Wrong content type.
    let r = admin
        .request(Method::PUT, &path)
        .header("Content-Type", "text/plain")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // Declared size does not match the body.
    let r = admin
        .request(Method::PUT, &path)
        .header("Content-Type", "application/octet-stream")
        .header("x-openstack-image-size", "10")
        .body(vec![1u8; 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Over the size cap, announced by Content-Length.
    assert_eq!(put_file(&admin, &id, vec![0u8; 1_000_001]).await.0, 413);
    // Over the cap with no length announced (chunked): refused mid-stream.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![7u8; 100_000])).collect();
    let r = admin
        .request(Method::PUT, &path)
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, image) = admin.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(image["status"], "queued");
    assert_eq!(image["size"], Value::Null);
    assert!(
        stored_files(&server).is_empty(),
        "{:?}",
        stored_files(&server)
    );
    // No formats: Glance refuses to save data.
    let bare = admin.create_image(json!({"name": "no-format"})).await;
    let (status, _) = put_file(&admin, bare["id"].as_str().unwrap(), b"x".to_vec()).await;
    assert_eq!(status, 400);
    // Then a good upload still works.
    assert_eq!(put_file(&admin, &id, vec![3u8; 1000]).await.0, 204);
    // Empty image data: 204 on download.
    let empty = new_image(&admin).await;
    assert_eq!(
        admin
            .get(&format!("/v2/images/{empty}/file"))
            .await
            .status()
            .as_u16(),
        204
    );
}

#[tokio::test]
async fn client_disconnect_mid_upload_requeues_and_cleans_up() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|item| (item, rx))
    }));
    let request = admin
        .request(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send();
    let sending = tokio::spawn(request);
    for _ in 0..8 {
        tx.send(Ok(vec![9u8; 256 * 1024])).await.unwrap();
    }
    // Wait until the image is saving, then break the connection.
    for _ in 0..100 {
        if admin.get_json(&format!("/v2/images/{id}")).await.1["status"] == "saving" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(Err(std::io::Error::other("client gone")))
        .await
        .unwrap();
    drop(tx);
    let _ = sending.await;
    let mut status = Value::Null;
    // Up to 30 s: on a loaded machine the store component may take a while to fail.
    for _ in 0..600 {
        status = admin.get_json(&format!("/v2/images/{id}")).await.1["status"].clone();
        if status == "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "queued");
    for _ in 0..50 {
        if stored_files(&server).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        stored_files(&server).is_empty(),
        "{:?}",
        stored_files(&server)
    );
    assert_eq!(
        put_file(&admin, &id, vec![1u8; 10]).await.0,
        204,
        "upload works again"
    );
}

#[tokio::test]
async fn two_concurrent_uploads_one_wins() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for round in 0..5 {
        let id = new_image(&admin).await;
        let a = put_file(&admin, &id, pseudo_random(2 * 1024 * 1024, round));
        let b = put_file(&admin, &id, pseudo_random(2 * 1024 * 1024, round + 100));
        let ((sa, _), (sb, _)) = tokio::join!(a, b);
        let mut codes = [sa, sb];
        codes.sort();
        assert_eq!(codes, [204, 409], "round {round}");
        let (_, image) = admin.get_json(&format!("/v2/images/{id}")).await;
        assert_eq!(image["status"], "active");
        let got = admin
            .get(&format!("/v2/images/{id}/file"))
            .await
            .bytes()
            .await
            .unwrap();
        let winner = if sa == 204 { round } else { round + 100 };
        assert!(got.as_ref() == pseudo_random(2 * 1024 * 1024, winner).as_slice());
    }
}

#[tokio::test]
async fn deactivated_data_is_admin_only() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    assert_eq!(put_file(&admin, &id, vec![5u8; 100]).await.0, 204);
    let path = format!("/v2/images/{id}");
    let (status, _) = admin
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        admin
            .send(Method::POST, &format!("{path}/actions/deactivate"))
            .await
            .0,
        204
    );
    let user = server.client("eeee4444eeee4444eeee4444eeee4444", "member,reader");
    assert_eq!(
        user.get(&format!("{path}/file")).await.status().as_u16(),
        403
    );
    assert_eq!(
        admin.get(&format!("{path}/file")).await.status().as_u16(),
        200
    );
}
