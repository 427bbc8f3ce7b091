//! Images API v2 metadata behaviour against an in-process server on a real socket.

use std::collections::HashSet;

use glass_registry::ImageStatus;
use glass_tests::{ADMIN_PROJECT, Client, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

fn ids(body: &Value) -> Vec<String> {
    body["images"]
        .as_array()
        .expect("images array")
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// Marks an image active as an upload would (the data path is a later issue).
async fn make_active(server: &TestServer, id: &str) {
    let id = id.parse().unwrap();
    let mut image = server.state.registry.get_image(id).await.unwrap().unwrap();
    image.status = ImageStatus::Active;
    image.size = Some(1024);
    server.state.registry.update_image(image).await.unwrap();
}

#[tokio::test]
async fn create_show_and_core_attributes() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let image = admin
        .create_image(json!({
            "name": "cirros", "disk_format": "qcow2", "container_format": "bare",
            "os_distro": "cirros", "custom_key": "custom value", "tags": ["a", "b", "a"],
            "min_ram": 64
        }))
        .await;
    let id = image["id"].as_str().unwrap();
    let (status, shown) = admin.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown, image, "show returns what create returned");
    assert_eq!(shown["status"], "queued");
    assert_eq!(shown["visibility"], "shared");
    assert_eq!(shown["owner"], ADMIN_PROJECT);
    assert_eq!(shown["os_distro"], "cirros");
    assert_eq!(shown["custom_key"], "custom value");
    assert_eq!(shown["min_ram"], 64);
    assert_eq!(shown["size"], Value::Null);
    assert_eq!(shown["self"], format!("/v2/images/{id}"));
    assert_eq!(shown["file"], format!("/v2/images/{id}/file"));
    assert_eq!(shown["schema"], "/v2/schemas/image");
    let mut tags: Vec<&str> = shown["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["a", "b"]);
    for key in [
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "virtual_size",
        "protected",
        "os_hidden",
        "min_disk",
        "created_at",
        "updated_at",
    ] {
        assert!(shown.get(key).is_some(), "{key} missing from {shown}");
    }
}

#[tokio::test]
async fn create_with_explicit_id_and_duplicate() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let id = "8a1f3e6c-2b1e-4c59-9d8e-3f2a1b0c9d8e";
    let image = admin.create_image(json!({"id": id, "name": "x"})).await;
    assert_eq!(image["id"], id);
    let (status, body) = admin
        .post_json("/v2/images", &json!({"id": id, "name": "dup"}))
        .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn paging_through_60_images_visits_each_once_in_order() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let mut created = Vec::new();
    for i in 0..60 {
        let image = admin
            .create_image(json!({"name": format!("page-{:02}", i % 7)}))
            .await;
        created.push(image["id"].as_str().unwrap().to_string());
    }
    for (query, check_order) in [
        ("limit=7", "default"),
        ("limit=9&sort=name:asc,created_at:desc", "name"),
        ("limit=11&sort_key=name&sort_dir=desc", "name_desc"),
    ] {
        let (_, everything) = admin
            .get_json(&format!(
                "/v2/images?limit=1000&{}",
                query.split_once('&').map(|x| x.1).unwrap_or("")
            ))
            .await;
        let expected = ids(&everything);
        assert_eq!(expected.len(), 60, "{check_order}");
        let mut seen = Vec::new();
        let mut next = Some(format!("/v2/images?{query}"));
        let mut pages = 0;
        while let Some(path) = next {
            let (status, body) = admin.get_json(&path).await;
            assert_eq!(status, 200, "{path}: {body}");
            seen.extend(ids(&body));
            next = body["next"].as_str().map(String::from);
            pages += 1;
            assert!(pages < 100, "paging does not end");
        }
        assert_eq!(
            seen, expected,
            "paged order equals unpaged order ({check_order})"
        );
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), 60);
    }
    // Default order is newest first.
    let (_, body) = admin.get_json("/v2/images?limit=1000").await;
    let mut newest_first = created.clone();
    newest_first.reverse();
    let times: Vec<&str> = body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["created_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "created_at descending"
    );
    // Names sort ascending with sort=name:asc.
    let (_, body) = admin.get_json("/v2/images?limit=1000&sort=name:asc").await;
    let names: Vec<&str> = body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "{names:?}");
}

#[tokio::test]
async fn list_filters() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let a = admin
        .create_image(json!({"name": "f-a", "disk_format": "raw", "container_format": "bare", "tags": ["t1", "t2"], "os_distro": "debian"}))
        .await;
    let b = admin
        .create_image(json!({"name": "f-b", "disk_format": "qcow2", "container_format": "ovf", "tags": ["t1"], "protected": true}))
        .await;
    let c = admin
        .create_image(json!({"name": "f-c", "os_hidden": true, "visibility": "private"}))
        .await;
    make_active(&server, a["id"].as_str().unwrap()).await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let (a, b, c) = (id(&a), id(&b), id(&c));
    let cases: Vec<(&str, Vec<&String>)> = vec![
        ("name=f-a", vec![&a]),
        ("name=in:f-a,f-b", vec![&a, &b]),
        ("status=active", vec![&a]),
        ("status=queued", vec![&b]),
        ("disk_format=qcow2", vec![&b]),
        ("container_format=bare", vec![&a]),
        ("tag=t1", vec![&a, &b]),
        ("tag=t1&tag=t2", vec![&a]),
        ("protected=true", vec![&b]),
        ("protected=false", vec![&a]),
        ("os_hidden=true", vec![&c]),
        ("visibility=private", vec![]),
        ("visibility=private&os_hidden=true", vec![&c]),
        ("size_min=1000&size_max=2000", vec![&a]),
        ("size_min=2000", vec![]),
        ("size=1024", vec![&a]),
        ("size=1025", vec![]),
        ("os_distro=debian", vec![&a]),
        ("owner=0123456789abcdef0123456789abcdef", vec![&a, &b]),
        ("created_at=gte:2000-01-01T00:00:00Z", vec![&a, &b]),
        ("created_at=lt:2000-01-01T00:00:00Z", vec![]),
        ("updated_at=gt:2999-01-01T00:00:00Z", vec![]),
        ("created_at=neq:2000-01-01T00:00:00Z", vec![&a, &b]),
    ];
    for (query, expected) in cases {
        let (status, body) = admin.get_json(&format!("/v2/images?{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        let mut got = ids(&body);
        got.sort();
        let mut want: Vec<String> = expected.into_iter().cloned().collect();
        want.sort();
        assert_eq!(got, want, "filter {query}");
    }
    for bad in [
        "limit=abc",
        "limit=-1",
        "sort_key=bogus",
        "sort_dir=sideways",
        "sort=name:up",
        "sort=name&sort_key=size",
        "visibility=everyone",
        "member_status=maybe",
        "size_min=big",
        "protected=perhaps",
        "created_at=around:2020-01-01T00:00:00Z",
        "created_at=gt:yesterday",
        "marker=00000000-0000-0000-0000-000000000000",
        "status=bogus",
    ] {
        let (status, body) = admin.get_json(&format!("/v2/images?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn patch_add_replace_remove() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let image = admin
        .create_image(json!({"name": "p", "keep": "1", "drop": "2"}))
        .await;
    let path = format!("/v2/images/{}", image["id"].as_str().unwrap());
    let (status, body) = admin
        .patch(
            &path,
            &json!([
                {"op": "replace", "path": "/name", "value": "renamed"},
                {"op": "add", "path": "/color", "value": "blue"},
                {"op": "replace", "path": "/keep", "value": "one"},
                {"op": "remove", "path": "/drop"},
                {"op": "replace", "path": "/min_disk", "value": 5},
                {"op": "replace", "path": "/visibility", "value": "community"},
                {"op": "replace", "path": "/tags", "value": ["x", "y"]},
                {"op": "add", "path": "/slash~1key", "value": "v"},
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "renamed");
    assert_eq!(body["color"], "blue");
    assert_eq!(body["keep"], "one");
    assert!(body.get("drop").is_none());
    assert_eq!(body["min_disk"], 5);
    assert_eq!(body["visibility"], "community");
    assert_eq!(body["slash/key"], "v");
    assert_eq!(body["tags"].as_array().unwrap().len(), 2);
    let (_, shown) = admin.get_json(&path).await;
    assert_eq!(shown, body, "patch is stored");

    let expect = |ops: Value, code: u16| (ops, code);
    for (ops, code) in [
        expect(json!([{"op": "replace", "path": "/size", "value": 5}]), 403),
        expect(
            json!([{"op": "replace", "path": "/status", "value": "active"}]),
            403,
        ),
        expect(
            json!([{"op": "add", "path": "/os_glance_x", "value": "1"}]),
            403,
        ),
        expect(json!([{"op": "remove", "path": "/name"}]), 403),
        expect(json!([{"op": "remove", "path": "/missing"}]), 409),
        expect(
            json!([{"op": "replace", "path": "/missing", "value": "v"}]),
            409,
        ),
        expect(
            json!([{"op": "replace", "path": "/disk_format", "value": "floppy"}]),
            400,
        ),
        expect(
            json!([{"op": "replace", "path": "/min_ram", "value": -1}]),
            400,
        ),
        expect(json!([{"op": "add", "path": "/color", "value": 7}]), 400),
        expect(json!([{"op": "move", "path": "/name", "value": "x"}]), 400),
        expect(json!({"op": "replace"}), 400),
    ] {
        let (status, body) = admin.patch(&path, &ops).await;
        assert_eq!(status, code, "{ops}: {body}");
    }
    // A failed patch changes nothing, even when its first operation was valid.
    let (status, _) = admin
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/name", "value": "half"}, {"op": "remove", "path": "/missing"}]),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(admin.get_json(&path).await.1["name"], "renamed");

    let r = admin
        .request(Method::PATCH, &path)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let accept_patch = r.headers()["accept-patch"].to_str().unwrap().to_string();
    assert!(accept_patch.contains("application/openstack-images-v2.1-json-patch"));
}

#[tokio::test]
async fn tags_add_and_delete() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let image = admin
        .create_image(json!({"name": "t", "tags": ["one"]}))
        .await;
    let path = format!("/v2/images/{}", image["id"].as_str().unwrap());
    assert_eq!(
        admin.send(Method::PUT, &format!("{path}/tags/two")).await.0,
        204
    );
    assert_eq!(
        admin.send(Method::PUT, &format!("{path}/tags/two")).await.0,
        204
    );
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("{path}/tags/one"))
            .await
            .0,
        204
    );
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("{path}/tags/one"))
            .await
            .0,
        404
    );
    assert_eq!(admin.get_json(&path).await.1["tags"], json!(["two"]));
    let long = "x".repeat(256);
    assert_eq!(
        admin
            .send(Method::PUT, &format!("{path}/tags/{long}"))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn members_across_two_projects() {
    let server = TestServer::start().await;
    let owner = server.client("aaaa0000aaaa0000aaaa0000aaaa0000", "member,reader");
    let other = server.client("bbbb1111bbbb1111bbbb1111bbbb1111", "member,reader");
    let third = server.client("cccc2222cccc2222cccc2222cccc2222", "member,reader");
    let image = owner.create_image(json!({"name": "shared-one"})).await;
    let id = image["id"].as_str().unwrap();
    let members = format!("/v2/images/{id}/members");

    // Not yet a member: invisible.
    assert_eq!(other.get_json(&format!("/v2/images/{id}")).await.0, 404);
    let (status, m) = owner
        .post_json(
            &members,
            &json!({"member": "bbbb1111bbbb1111bbbb1111bbbb1111"}),
        )
        .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["status"], "pending");
    assert_eq!(m["schema"], "/v2/schemas/member");
    let (status, _) = owner
        .post_json(
            &members,
            &json!({"member": "bbbb1111bbbb1111bbbb1111bbbb1111"}),
        )
        .await;
    assert_eq!(status, 409, "duplicate member");
    // A pending member can see the image but it is not in its default list.
    assert_eq!(other.get_json(&format!("/v2/images/{id}")).await.0, 200);
    assert!(!ids(&other.get_json("/v2/images").await.1).contains(&id.to_string()));
    let (_, pending) = other
        .get_json("/v2/images?visibility=shared&member_status=pending")
        .await;
    assert_eq!(ids(&pending), vec![id.to_string()]);
    // Only the member answers; the owner cannot accept for it.
    let me = format!("{members}/bbbb1111bbbb1111bbbb1111bbbb1111");
    assert_eq!(
        owner.put_json(&me, &json!({"status": "accepted"})).await.0,
        403
    );
    assert_eq!(
        other.put_json(&me, &json!({"status": "maybe"})).await.0,
        400
    );
    let (status, m) = other.put_json(&me, &json!({"status": "accepted"})).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["status"], "accepted");
    assert!(ids(&other.get_json("/v2/images").await.1).contains(&id.to_string()));
    // A third project sees nothing and cannot add members.
    assert_eq!(third.get_json(&format!("/v2/images/{id}")).await.0, 404);
    assert_eq!(third.get_json(&me).await.0, 404);
    // The member cannot modify the image or add members.
    let (status, _) = other
        .patch(
            &format!("/v2/images/{id}"),
            &json!([{"op": "replace", "path": "/name", "value": "mine"}]),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = other
        .post_json(
            &members,
            &json!({"member": "cccc2222cccc2222cccc2222cccc2222"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, list) = owner.get_json(&members).await;
    assert_eq!(status, 200);
    assert_eq!(list["members"].as_array().unwrap().len(), 1);
    assert_eq!(list["schema"], "/v2/schemas/members");
    // Removing the member hides the image again.
    assert_eq!(owner.send(Method::DELETE, &me).await.0, 204);
    assert_eq!(other.get_json(&format!("/v2/images/{id}")).await.0, 404);
    // Private images have no members.
    let private = owner
        .create_image(json!({"name": "p", "visibility": "private"}))
        .await;
    let (status, _) = owner
        .post_json(
            &format!("/v2/images/{}/members", private["id"].as_str().unwrap()),
            &json!({"member": "bbbb1111bbbb1111bbbb1111bbbb1111"}),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn visibility_between_projects() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let alice = server.client("a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", "member,reader");
    let bob = server.client("b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2", "member,reader");
    let public = admin
        .create_image(json!({"name": "pub", "visibility": "public"}))
        .await;
    let community = alice
        .create_image(json!({"name": "com", "visibility": "community"}))
        .await;
    let private = alice
        .create_image(json!({"name": "priv", "visibility": "private"}))
        .await;
    let (status, _) = alice
        .post_json(
            "/v2/images",
            &json!({"name": "nope", "visibility": "public"}),
        )
        .await;
    assert_eq!(status, 403, "only admins publish");
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let bob_default = ids(&bob.get_json("/v2/images").await.1);
    assert!(bob_default.contains(&id(&public)));
    assert!(
        !bob_default.contains(&id(&community)),
        "community only when asked"
    );
    assert!(!bob_default.contains(&id(&private)));
    let bob_community = ids(&bob.get_json("/v2/images?visibility=community").await.1);
    assert_eq!(bob_community, vec![id(&community)]);
    assert_eq!(
        bob.get_json(&format!("/v2/images/{}", id(&community)))
            .await
            .0,
        200
    );
    assert_eq!(
        bob.get_json(&format!("/v2/images/{}", id(&private)))
            .await
            .0,
        404
    );
    let alice_default = ids(&alice.get_json("/v2/images").await.1);
    assert!(
        alice_default.contains(&id(&community)),
        "owner sees own community image"
    );
    let admin_default = ids(&admin.get_json("/v2/images").await.1);
    assert!(
        admin_default.contains(&id(&private)),
        "admin sees private images"
    );
    // Non-owners cannot delete.
    assert_eq!(
        bob.send(Method::DELETE, &format!("/v2/images/{}", id(&community)))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn deactivate_reactivate_protect_delete() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let owner_member = server.client(glass_tests::ADMIN_PROJECT, "member,reader");
    let stranger = server.client("dddd3333dddd3333dddd3333dddd3333", "member,reader");
    let image = admin.create_image(json!({"name": "life"})).await;
    let id = image["id"].as_str().unwrap();
    let path = format!("/v2/images/{id}");
    assert_eq!(
        admin
            .send(Method::POST, &format!("{path}/actions/deactivate"))
            .await
            .0,
        403,
        "queued cannot deactivate"
    );
    make_active(&server, id).await;
    assert_eq!(
        stranger
            .send(Method::POST, &format!("{path}/actions/deactivate"))
            .await
            .0,
        404
    );
    assert_eq!(
        owner_member
            .send(Method::POST, &format!("{path}/actions/deactivate"))
            .await
            .0,
        204
    );
    assert_eq!(
        admin
            .send(Method::POST, &format!("{path}/actions/deactivate"))
            .await
            .0,
        204,
        "idempotent"
    );
    assert_eq!(admin.get_json(&path).await.1["status"], "deactivated");
    assert_eq!(
        admin
            .send(Method::POST, &format!("{path}/actions/reactivate"))
            .await
            .0,
        204
    );
    assert_eq!(admin.get_json(&path).await.1["status"], "active");
    let (status, _) = admin
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/protected", "value": true}]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(admin.send(Method::DELETE, &path).await.0, 403);
    let (status, _) = admin
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/protected", "value": false}]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(admin.send(Method::DELETE, &path).await.0, 204);
    assert_eq!(admin.get_json(&path).await.0, 404);
    assert_eq!(admin.send(Method::DELETE, &path).await.0, 404);
}

/// Method, path, optional (content type, body), expected status, expected message part.
type GoldenCase = (
    Method,
    String,
    Option<(&'static str, String)>,
    u16,
    &'static str,
);

/// Error cases captured from a real Glance (`../shared/glance/golden`): status and body shape.
#[tokio::test]
async fn golden_errors_have_glance_status_and_shape() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let image = admin.create_image(json!({"name": "g"})).await;
    let id = image["id"].as_str().unwrap().to_string();
    let json_ct = "application/json";
    let cases: Vec<GoldenCase> = vec![
        (
            Method::POST,
            "/v2/images".into(),
            Some((json_ct, "{\"name\": \"broken\",".into())),
            400,
            "Malformed JSON in request body.",
        ),
        (
            Method::POST,
            "/v2/images".into(),
            Some((
                json_ct,
                "{\"name\":\"x\",\"disk_format\":\"notaformat\"}".into(),
            )),
            400,
            "Provided object does not match schema 'image'",
        ),
        (
            Method::POST,
            "/v2/images".into(),
            Some((json_ct, format!("{{\"id\":\"{id}\",\"name\":\"dup\"}}"))),
            409,
            "already exists",
        ),
        (
            Method::POST,
            "/v2/images".into(),
            Some((json_ct, "{\"status\":\"active\"}".into())),
            403,
            "Attribute 'status' is read-only.",
        ),
        (
            Method::GET,
            "/v2/images/00000000-0000-0000-0000-000000000000".into(),
            None,
            404,
            "No image found with ID 00000000-0000-0000-0000-000000000000",
        ),
        (
            Method::GET,
            "/v2/nonexistent".into(),
            None,
            404,
            "The resource could not be found.",
        ),
        (
            Method::PUT,
            "/v2/images".into(),
            None,
            405,
            "The method PUT is not allowed for this resource.",
        ),
        (
            Method::GET,
            "/v2/images?sort_key=bogus".into(),
            None,
            400,
            "Invalid sort key: bogus.",
        ),
        (
            Method::GET,
            "/v2/images?marker=00000000-0000-0000-0000-000000000000".into(),
            None,
            400,
            "No image found with ID",
        ),
        (
            Method::PATCH,
            format!("/v2/images/{id}"),
            Some((json_ct, "[]".into())),
            415,
            "Image PATCH expects Content-Type one of",
        ),
        (
            Method::PATCH,
            format!("/v2/images/{id}"),
            Some((
                "application/openstack-images-v2.1-json-patch",
                "[{\"op\":\"replace\",\"path\":\"/size\",\"value\":5}]".into(),
            )),
            403,
            "Attribute 'size' is read-only.",
        ),
    ];
    for (method, path, body, code, message) in cases {
        for accept_json in [true, false] {
            let mut rb = admin.request(method.clone(), &path);
            if accept_json {
                rb = rb.header("Accept", "application/json");
            }
            if let Some((ct, text)) = &body {
                rb = rb.header("Content-Type", *ct).body(text.clone());
            }
            let r = rb.send().await.unwrap();
            assert_eq!(r.status().as_u16(), code, "{method} {path}");
            assert!(r.headers().contains_key("x-openstack-request-id"));
            if code == 405 {
                let allow = r.headers()["allow"].to_str().unwrap().to_string();
                assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
            }
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            let text = r.text().await.unwrap();
            if accept_json {
                assert_eq!(ct, "application/json");
                let body: Value = serde_json::from_str(&text).unwrap();
                assert!(
                    body["message"].as_str().unwrap().contains(message),
                    "{path}: {body}"
                );
                assert!(
                    body["code"]
                        .as_str()
                        .unwrap()
                        .starts_with(&code.to_string())
                );
                assert!(body["title"].is_string());
            } else {
                assert!(ct.starts_with("text/html"), "{ct}");
                assert!(text.contains(&format!("<h1>{code} ")), "{text}");
            }
        }
    }
}

#[tokio::test]
async fn versions_schemas_and_health() {
    let server = TestServer::start().await;
    let anon = Client::new(&server.url, None);
    let (status, body) = anon.get_json("/").await;
    assert_eq!(status, 300);
    let versions = body["versions"].as_array().unwrap();
    assert_eq!(versions[0]["id"], "v2.18");
    assert_eq!(versions[0]["status"], "CURRENT");
    assert!(versions.iter().any(|v| v["id"] == "v2.0"));
    assert_eq!(anon.get_json("/versions").await.0, 200);
    assert_eq!(anon.get("/healthcheck").await.status().as_u16(), 200);
    for name in ["image", "images", "member", "members", "task", "tasks"] {
        let (status, schema) = anon.get_json(&format!("/v2/schemas/{name}")).await;
        assert_eq!(status, 200);
        assert_eq!(schema["name"], name);
    }
    let (_, image_schema) = anon.get_json("/v2/schemas/image").await;
    assert_eq!(image_schema["properties"]["status"]["readOnly"], true);
    assert_eq!(image_schema["additionalProperties"]["type"], "string");
}

/// What axum refuses by itself (an oversized metadata body) still answers in Glance's shape.
#[tokio::test]
async fn oversized_metadata_body_is_413_in_glance_shape() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(3 << 20));
    let r = admin
        .request(Method::POST, "/v2/images")
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "413 Payload Too Large");
    assert!(
        body["message"].as_str().unwrap().contains("too large"),
        "{body}"
    );
}

/// `checksum` and `os_hash_value` find an image (as Glance's filters do), and a filter no
/// index serves answers in bounded pages (`[registry] list_budget`) whose `next` links,
/// followed as a client does, lead to every match and nothing else; the metric counts them.
#[tokio::test]
async fn hash_lookups_and_budgeted_pages() {
    let server = TestServer::start_with(|c| {
        c.auth = glass_host::config::AuthMode::TrustedHeaders;
        c.registry.list_budget = 100;
    })
    .await;
    let admin = server.admin();
    let mut created = Vec::new();
    for i in 0..240 {
        let image = admin.create_image(json!({"name": format!("b-{i}")})).await;
        created.push(image["id"].as_str().unwrap().to_string());
    }
    // The two oldest get hashes and a size (the last in the default, newest-first order).
    let registry = &server.state.registry;
    for (i, id) in created[..2].iter().enumerate() {
        let mut image = registry
            .get_image(id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        image.status = ImageStatus::Active;
        image.size = Some(4096);
        image.checksum = Some(format!("{i:032x}"));
        image.os_hash_value = Some(format!("{i:0128x}"));
        registry.update_image(image).await.unwrap();
    }
    for (query, want) in [
        (format!("checksum={:032x}", 1), vec![created[1].clone()]),
        (
            format!("os_hash_value={:0128x}", 0),
            vec![created[0].clone()],
        ),
        ("checksum=ffff".to_string(), vec![]),
    ] {
        let (status, body) = admin.get_json(&format!("/v2/images?{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(ids(&body), want, "{query}");
        assert!(body.get("next").is_none(), "{query}: one page");
    }
    // size_min has no index: each response stops after 100 units of work.
    let mut path = "/v2/images?size_min=1&limit=5".to_string();
    let mut found = Vec::new();
    let mut responses = 0;
    loop {
        let (status, body) = admin.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        responses += 1;
        found.extend(ids(&body));
        match body["next"].as_str() {
            Some(next) => path = next.to_string(),
            None => break,
        }
        assert!(responses < 50, "next links do not end");
    }
    assert_eq!(found, vec![created[1].clone(), created[0].clone()]);
    assert!(
        responses >= 3,
        "{responses} responses: the budget did not bound them"
    );
    let metrics = admin.get("/metrics").await.text().await.unwrap();
    let spent: f64 = metrics
        .lines()
        .find(|l| l.starts_with("glass_registry_list_budget_spent_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .expect("budget metric");
    assert!(spent >= 2.0, "budget-stopped listings counted: {spent}");
}
