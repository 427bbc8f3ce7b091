//! `auth = "keystone"` against a real Keystone (`../shared/tempest/start-keystone.sh`):
//! tokens validated as keystonemiddleware does, and Glance's default policy between
//! projects and roles — a reader cannot write, a non-member cannot see or download a shared
//! image, community images are listed only when asked for, an admin of another project sees
//! what Glance lets an admin see, a revoked token is refused, Keystone unreachable is a 503.

use glass_host::config::{AuthMode, Config};
use glass_tests::keystone::{self, KEYSTONE_URL, SERVICE_PASSWORD, SERVICE_USER};
use glass_tests::{Client, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

fn keystone_config(c: &mut Config, url: &str) {
    c.auth = AuthMode::Keystone;
    c.keystone.auth_url = url.to_string();
    c.keystone.username = SERVICE_USER.into();
    c.keystone.password = SERVICE_PASSWORD.into();
    c.keystone.token_cache_time_s = 1;
    // SQLite Keystone with one worker can be slow when the machine is busy.
    c.keystone.timeout_ms = 15_000;
}

async fn put_data(client: &Client, id: &str, data: &[u8]) -> u16 {
    client
        .request(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn ids(list: &Value) -> Vec<String> {
    list["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_policy_between_projects() {
    let admin = keystone::keystone().await;
    let server = TestServer::start_with(|c| keystone_config(c, KEYSTONE_URL)).await;
    let url = server.url.clone();

    // No token, a bogus token: 401 pointing at Keystone; versions need none.
    let anonymous = Client::new(&url, None);
    let r = anonymous.get("/v2/images").await;
    assert_eq!(r.status().as_u16(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(challenge, format!("Keystone uri=\"{KEYSTONE_URL}\""));
    assert_eq!(anonymous.get("/versions").await.status().as_u16(), 200);
    assert_eq!(anonymous.get("/healthcheck").await.status().as_u16(), 200);
    let bogus = Client::with_token(&url, "gAAAAABnot-a-token");
    assert_eq!(bogus.get("/v2/images").await.status().as_u16(), 401);
    // Identity headers from the client are not believed.
    let (status, _) = anonymous
        .request(Method::GET, "/v2/images")
        .header("X-Roles", "admin")
        .header("X-Project-Id", "p")
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);

    let p1 = admin.project("p1").await;
    let p2 = admin.project("p2").await;
    let p3 = admin.project("p3").await;
    let owner = admin.account(&p1, "member").await;
    let reader = admin.account(&p1, "reader").await;
    let other = admin.account(&p2, "member").await;
    let boss = admin.account(&p3, "admin").await;
    let owner_c = Client::with_token(&url, &owner.token);
    let reader_c = Client::with_token(&url, &reader.token);
    let other_c = Client::with_token(&url, &other.token);
    let boss_c = Client::with_token(&url, &boss.token);

    // The owner of an image is the token's project.
    let image = owner_c
        .create_image(json!({"name": "p1-image", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    assert_eq!(image["owner"], owner.project_id.as_str());
    assert_eq!(put_data(&owner_c, &id, b"hello keystone").await, 204);

    // A reader of the project reads but does not write or download.
    let (status, body) = reader_c.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!((status, body["id"].as_str()), (200, Some(id.as_str())));
    assert!(ids(&reader_c.get_json("/v2/images").await.1).contains(&id));
    let (status, _) = reader_c
        .patch(
            &format!("/v2/images/{id}"),
            &json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .await;
    assert_eq!(status, 403, "a reader cannot PATCH");
    let (status, _) = reader_c
        .send(Method::DELETE, &format!("/v2/images/{id}"))
        .await;
    assert_eq!(status, 403, "a reader cannot delete");
    let (status, _) = reader_c
        .post_json("/v2/images", &json!({"name": "by-reader"}))
        .await;
    assert_eq!(status, 403, "a reader cannot create");
    assert_eq!(
        reader_c
            .get(&format!("/v2/images/{id}/file"))
            .await
            .status()
            .as_u16(),
        403,
        "a reader cannot download"
    );

    // Another project sees nothing of a private image; a member cannot make it public.
    let (status, _) = other_c.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(
        other_c
            .get(&format!("/v2/images/{id}/file"))
            .await
            .status()
            .as_u16(),
        404
    );
    let (status, _) = owner_c
        .patch(
            &format!("/v2/images/{id}"),
            &json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
        .await;
    assert_eq!(status, 403, "publicize_image is admin-only");

    // Sharing: a pending member sees and downloads it but does not list it; once accepted it
    // is listed. The owner cannot accept on the member's behalf.
    let (status, _) = owner_c
        .patch(
            &format!("/v2/images/{id}"),
            &json!([{"op": "replace", "path": "/visibility", "value": "shared"}]),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = owner_c
        .post_json(
            &format!("/v2/images/{id}/members"),
            &json!({"member": other.project_id}),
        )
        .await;
    assert_eq!(status, 200);
    let member_path = format!("/v2/images/{id}/members/{}", other.project_id);
    assert_eq!(other_c.get_json(&format!("/v2/images/{id}")).await.0, 200);
    let r = other_c.get(&format!("/v2/images/{id}/file")).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello keystone");
    assert!(!ids(&other_c.get_json("/v2/images").await.1).contains(&id));
    let (status, _) = owner_c
        .put_json(&member_path, &json!({"status": "accepted"}))
        .await;
    assert_eq!(status, 403, "the owner cannot accept for the member");
    let (status, _) = other_c
        .put_json(&member_path, &json!({"status": "accepted"}))
        .await;
    assert_eq!(status, 200);
    assert!(ids(&other_c.get_json("/v2/images").await.1).contains(&id));
    let (status, _) = other_c
        .patch(
            &format!("/v2/images/{id}"),
            &json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .await;
    assert_eq!(status, 403, "a member project cannot change the image");
    let (status, _) = other_c
        .post_json(
            &format!("/v2/images/{id}/members"),
            &json!({"member": p3.0}),
        )
        .await;
    assert_eq!(status, 403, "a member project cannot add members");

    // Community: visible to all, listed only when asked for.
    let community = owner_c
        .create_image(json!({"name": "p1-community", "visibility": "community"}))
        .await;
    let cid = community["id"].as_str().unwrap().to_owned();
    assert_eq!(other_c.get_json(&format!("/v2/images/{cid}")).await.0, 200);
    assert!(!ids(&other_c.get_json("/v2/images").await.1).contains(&cid));
    assert!(ids(&other_c.get_json("/v2/images?visibility=community").await.1).contains(&cid));

    // An admin of another project sees and changes any image, and may publish.
    let private = owner_c
        .create_image(json!({"name": "p1-private", "visibility": "private"}))
        .await;
    let pid = private["id"].as_str().unwrap().to_owned();
    assert_eq!(boss_c.get_json(&format!("/v2/images/{pid}")).await.0, 200);
    let (status, body) = boss_c
        .patch(
            &format!("/v2/images/{pid}"),
            &json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
        .await;
    assert_eq!((status, body["visibility"].as_str()), (200, Some("public")));
    assert_eq!(
        boss_c.get_json("/v2/tasks").await.0,
        200,
        "tasks are an admin API"
    );
    assert_eq!(owner_c.get_json("/v2/tasks").await.0, 403);

    // A revoked token is refused once the cache (1 s here) has forgotten it.
    assert_eq!(owner_c.get_json(&format!("/v2/images/{id}")).await.0, 200);
    admin.revoke(&owner.token).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(owner_c.get_json(&format!("/v2/images/{id}")).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_unreachable_is_503() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = TestServer::start_with(|c| {
        keystone_config(c, &format!("http://127.0.0.1:{closed}"));
        c.keystone.timeout_ms = 2_000;
    })
    .await;
    let client = Client::with_token(&server.url, "some-token");
    let started = std::time::Instant::now();
    let (status, body) = client.get_json("/v2/images").await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(
        Client::new(&server.url, None)
            .get("/versions")
            .await
            .status()
            .as_u16(),
        200
    );
}
