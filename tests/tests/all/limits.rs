//! Input limits of the Images API, as Glance's schemas, columns and quotas set them: extra
//! property names and values, tags, member ids, the per-image quotas, and patch documents
//! built to exhaust the server (huge paths, deep nesting, huge arrays, oversized bodies).
//! Each limit is tried just below and just above, on every route that writes it.

use std::time::{Duration, Instant};

use glass_tests::{ADMIN_PROJECT, Client, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

const V21: &str = "application/openstack-images-v2.1-json-patch";
const V20: &str = "application/openstack-images-v2.0-json-patch";

/// Sends `body` with `content_type`, asking for JSON errors; status and JSON body.
async fn send(
    client: &Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let r = client
        .request(method, path)
        .header("Content-Type", content_type)
        .header("Accept", "application/json")
        .timeout(Duration::from_secs(120))
        .body(body)
        .send()
        .await
        .expect("request");
    glass_tests::into_json(r).await
}

async fn create(client: &Client, body: &Value) -> (u16, Value) {
    send(
        client,
        Method::POST,
        "/v2/images",
        "application/json",
        body.to_string(),
    )
    .await
}

/// One `add` (or `replace`) in the given dialect.
fn op(dialect: &str, op: &str, path: &str, value: Value) -> Value {
    if dialect == V21 {
        json!([{"op": op, "path": path, "value": value}])
    } else {
        json!([{op: path, "value": value}])
    }
}

async fn patch(client: &Client, id: &str, dialect: &str, ops: &Value) -> (u16, Value) {
    send(
        client,
        Method::PATCH,
        &format!("/v2/images/{id}"),
        dialect,
        ops.to_string(),
    )
    .await
}

/// At most 300 characters of a body, for assertion messages (some bodies echo 64 KiB).
fn short(body: &Value) -> String {
    body.to_string().chars().take(300).collect()
}

fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}

/// A 4xx in Glance's shape.
fn assert_glance_error(status: u16, body: &Value, expected: u16, context: &str) {
    assert_eq!(status, expected, "{context}: {}", short(body));
    assert!(
        body["message"].is_string() && body["title"].is_string(),
        "{context}: not Glance's error shape: {}",
        short(body)
    );
    assert_eq!(
        body["code"].as_str().unwrap_or_default().split(' ').next(),
        Some(expected.to_string().as_str()),
        "{context}: {}",
        short(body)
    );
}

async fn new_image(client: &Client) -> String {
    let (status, image) = create(client, &json!({"name": "limits"})).await;
    assert_eq!(status, 201, "{image}");
    image["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn property_values_are_bounded_on_create_and_patch() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let longest = "v".repeat(65_535);
    let too_long = "v".repeat(65_536);

    let (status, image) = create(&admin, &json!({"name": "ok", "big": longest})).await;
    assert_eq!(status, 201, "{}", short(&image));
    assert_eq!(image["big"].as_str().map(str::len), Some(65_535));
    let (status, body) = create(&admin, &json!({"name": "no", "big": too_long})).await;
    assert_glance_error(status, &body, 400, "create with a 65 536-byte value");
    assert!(message(&body).contains("'big' is too long"), "{body}");

    let id = new_image(&admin).await;
    for dialect in [V21, V20] {
        let (status, body) = patch(
            &admin,
            &id,
            dialect,
            &op(dialect, "add", "/p", json!(too_long)),
        )
        .await;
        assert_glance_error(status, &body, 400, "PATCH add of a 65 536-byte value");
        let (status, body) = patch(
            &admin,
            &id,
            dialect,
            &op(dialect, "add", "/p", json!(longest)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = patch(
            &admin,
            &id,
            dialect,
            &op(dialect, "replace", "/p", json!(too_long)),
        )
        .await;
        assert_glance_error(status, &body, 400, "PATCH replace with a 65 536-byte value");
        // Multi-byte characters: the bound is in bytes.
        let wide = "é".repeat(32_768);
        let (status, body) = patch(
            &admin,
            &id,
            dialect,
            &op(dialect, "replace", "/p", json!(wide)),
        )
        .await;
        assert_glance_error(status, &body, 400, "PATCH replace with 65 536 bytes of 'é'");
    }
    let (_, shown) = admin.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(
        shown["p"].as_str().map(str::len),
        Some(65_535),
        "refused changes left no trace"
    );
}

#[tokio::test]
async fn property_names_are_bounded_in_characters() {
    let server = TestServer::start().await;
    let admin = server.admin();
    // 255 characters of two bytes each: Glance counts characters (Python's len).
    let longest = "é".repeat(255);
    let too_long = "é".repeat(256);
    let refused = "Custom property should not be greater than 255 characters.";

    let (status, image) = create(&admin, &json!({longest.clone(): "x"})).await;
    assert_eq!(status, 201, "{image}");
    let (status, body) = create(&admin, &json!({too_long.clone(): "x"})).await;
    assert_glance_error(status, &body, 400, "create with a 256-character name");
    assert!(message(&body).starts_with(refused), "{body}");

    let id = new_image(&admin).await;
    for dialect in [V21, V20] {
        let (status, body) = patch(
            &admin,
            &id,
            dialect,
            &op(dialect, "add", &format!("/{longest}"), json!("x")),
        )
        .await;
        assert_eq!(status, 200, "PATCH add of a 255-character name: {body}");
        let (status, body) = patch(
            &admin,
            &id,
            dialect,
            &op(dialect, "add", &format!("/{too_long}"), json!("x")),
        )
        .await;
        assert_glance_error(status, &body, 400, "PATCH add of a 256-character name");
        assert!(message(&body).starts_with(refused), "{body}");
    }
}

#[tokio::test]
async fn tags_are_bounded_on_create_patch_and_put() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let longest = "t".repeat(255);
    let too_long = "t".repeat(256);

    let (status, image) = create(&admin, &json!({"tags": [longest]})).await;
    assert_eq!(status, 201, "{image}");
    let (status, body) = create(&admin, &json!({"tags": [too_long]})).await;
    assert_glance_error(status, &body, 400, "create with a 256-character tag");
    assert!(message(&body).contains("is too long"), "{body}");

    let id = new_image(&admin).await;
    for dialect in [V21, V20] {
        for kind in ["add", "replace"] {
            let (status, body) = patch(
                &admin,
                &id,
                dialect,
                &op(dialect, kind, "/tags", json!([too_long])),
            )
            .await;
            assert_glance_error(status, &body, 400, "PATCH tags with a 256-character tag");
            let (status, body) = patch(
                &admin,
                &id,
                dialect,
                &op(dialect, kind, "/tags", json!([longest])),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    }
    let (status, body) = send(
        &admin,
        Method::PUT,
        &format!("/v2/images/{id}/tags/{too_long}"),
        "",
        "",
    )
    .await;
    assert_glance_error(status, &body, 400, "PUT of a 256-character tag");
    let wide = "%C3%A9".repeat(255);
    let (status, body) = send(
        &admin,
        Method::PUT,
        &format!("/v2/images/{id}/tags/{wide}"),
        "",
        "",
    )
    .await;
    assert_eq!(
        status, 204,
        "PUT of a 255-character tag of two-byte characters: {body}"
    );
    let (_, shown) = admin.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(shown["tags"].as_array().map(Vec::len), Some(2), "{shown}");
}

#[tokio::test]
async fn member_ids_are_bounded() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (status, image) = create(&admin, &json!({"visibility": "shared"})).await;
    assert_eq!(status, 201, "{image}");
    let id = image["id"].as_str().unwrap();
    let members = format!("/v2/images/{id}/members");
    let add = |member: Value| {
        let admin = admin.clone();
        let members = members.clone();
        async move {
            let body = json!({ "member": member }).to_string();
            send(&admin, Method::POST, &members, "application/json", body).await
        }
    };
    let (status, body) = add(json!("m".repeat(255))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["member_id"].as_str().map(str::len), Some(255));
    let (status, body) = add(json!("m".repeat(256))).await;
    assert_glance_error(status, &body, 400, "a 256-character member id");
    let (status, body) = add(json!("é".repeat(256))).await;
    assert_glance_error(
        status,
        &body,
        400,
        "a 256-character member id of two-byte characters",
    );
    // Not a string: no project id, whatever it would print as.
    for member in [json!(12345), json!({"nested": ["x", "x"]}), json!(["a"])] {
        let (status, body) = add(member.clone()).await;
        assert_glance_error(status, &body, 400, &format!("member {member}"));
    }
    let (_, listed) = admin.get_json(&members).await;
    assert_eq!(
        listed["members"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

#[tokio::test]
async fn quotas_just_below_and_just_above() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let tags: Vec<String> = (0..128).map(|i| format!("t{i}")).collect();
    let mut props = serde_json::Map::new();
    for i in 0..128 {
        props.insert(format!("p{i}"), json!("v"));
    }

    // Create: 128 of each is fine, 129 is a 413 with Glance's message.
    let mut body = props.clone();
    body.insert("tags".into(), json!(tags));
    let (status, image) = create(&admin, &Value::Object(body.clone())).await;
    assert_eq!(status, 201, "{image}");
    let id = image["id"].as_str().unwrap().to_owned();
    let mut over = body.clone();
    over.insert("p128".into(), json!("v"));
    let (status, answer) = create(&admin, &Value::Object(over)).await;
    assert_glance_error(status, &answer, 413, "create with 129 properties");
    assert!(
        message(&answer).starts_with(
            "The limit has been exceeded on the number of allowed image properties. Attempted: 129, Maximum: 128"
        ),
        "{answer}"
    );
    let mut over = body.clone();
    over.insert(
        "tags".into(),
        json!([tags.clone(), vec!["t128".to_owned()]].concat()),
    );
    let (status, answer) = create(&admin, &Value::Object(over)).await;
    assert_glance_error(status, &answer, 413, "create with 129 tags");

    // PATCH, both dialects: the 129th property or tag is refused.
    for dialect in [V21, V20] {
        let (status, answer) = patch(
            &admin,
            &id,
            dialect,
            &op(dialect, "add", "/p128", json!("v")),
        )
        .await;
        assert_glance_error(status, &answer, 413, "PATCH adding a 129th property");
        let more = [tags.clone(), vec!["t128".to_owned()]].concat();
        let (status, answer) = patch(
            &admin,
            &id,
            dialect,
            &op(dialect, "replace", "/tags", json!(more)),
        )
        .await;
        assert_glance_error(status, &answer, 413, "PATCH with 129 tags");
        let (status, answer) = patch(
            &admin,
            &id,
            dialect,
            &op(dialect, "replace", "/p0", json!("w")),
        )
        .await;
        assert_eq!(status, 200, "replacing one of 128 properties: {answer}");
    }

    // Tag PUT: Glance wraps the quota's message.
    let (status, answer) = send(
        &admin,
        Method::PUT,
        &format!("/v2/images/{id}/tags/t0"),
        "",
        "",
    )
    .await;
    assert_eq!(status, 204, "re-adding a tag the image has: {answer}");
    let (status, answer) = send(
        &admin,
        Method::PUT,
        &format!("/v2/images/{id}/tags/t128"),
        "",
        "",
    )
    .await;
    assert_glance_error(status, &answer, 413, "PUT of a 129th tag");
    assert_eq!(
        message(&answer).trim_end_matches(['<', 'b', 'r', ' ', '/', '>', '\n']),
        format!(
            "Image tag limit exceeded for image {id}: The limit has been exceeded on the number of allowed image tags. Attempted: 129, Maximum: 128:"
        )
    );

    // Glance does not count its own os_glance_* properties against the quota.
    let uuid = id.parse().unwrap();
    let mut stored = server
        .state
        .registry
        .get_image(uuid)
        .await
        .unwrap()
        .unwrap();
    stored.properties.insert(
        "os_glance_import_task".into(),
        "00000000-0000-0000-0000-000000000000".into(),
    );
    server.state.registry.update_image(stored).await.unwrap();
    let (status, answer) = patch(&admin, &id, V21, &op(V21, "replace", "/name", json!("n"))).await;
    assert_eq!(status, 200, "128 properties and the import lock: {answer}");

    // Members: 128 fine, the 129th a 413 with Glance's message.
    let (status, answer) = patch(
        &admin,
        &id,
        V21,
        &op(V21, "replace", "/visibility", json!("shared")),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let members = format!("/v2/images/{id}/members");
    for i in 0..128 {
        let (status, answer) = admin
            .post_json(&members, &json!({"member": format!("project-{i}")}))
            .await;
        assert_eq!(status, 200, "member {i}: {answer}");
    }
    let (status, answer) = send(
        &admin,
        Method::POST,
        &members,
        "application/json",
        json!({"member": "project-128"}).to_string(),
    )
    .await;
    assert_glance_error(status, &answer, 413, "a 129th member");
    assert!(
        message(&answer).starts_with(&format!(
            "Image member limit exceeded for image {id}: The limit has been exceeded on the number of allowed image members for this image. Attempted: 129, Maximum: 128:"
        )),
        "{answer}"
    );
}

#[tokio::test]
async fn hostile_patch_documents_are_refused_cheaply() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    let started = Instant::now();

    // A path of 1.5 MB.
    let path = format!("/{}", "a".repeat(1_500_000));
    for dialect in [V21, V20] {
        let (status, body) =
            patch(&admin, &id, dialect, &op(dialect, "add", &path, json!("x"))).await;
        assert_glance_error(status, &body, 400, "a 1.5 MB path");
    }
    // Many segments.
    let deep_path = "/a".repeat(200_000);
    let (status, body) = patch(&admin, &id, V21, &op(V21, "add", &deep_path, json!("x"))).await;
    assert_glance_error(status, &body, 400, "a path of 200 000 segments");

    // Nesting far past serde_json's recursion limit, in the value and as the document.
    let deep_value = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let doc = format!(r#"[{{"op":"add","path":"/x","value":{deep_value}}}]"#);
    let (status, body) = send(&admin, Method::PATCH, &format!("/v2/images/{id}"), V21, doc).await;
    assert_glance_error(status, &body, 400, "a value nested 100 000 deep");
    let doc = format!("{}{}", "[".repeat(500_000), "]".repeat(500_000));
    let (status, body) = send(&admin, Method::PATCH, &format!("/v2/images/{id}"), V21, doc).await;
    assert_glance_error(status, &body, 400, "a document nested 500 000 deep");
    // A nested value that parses but is no string.
    let nested = json!([[[[[["x"]]]]]]);
    let (status, body) = patch(&admin, &id, V21, &op(V21, "add", "/x", nested)).await;
    assert_glance_error(status, &body, 400, "a nested array as a property value");

    // A huge array of operations: 40 000 new properties (just under the body cap) is
    // refused by the property quota, all or nothing.
    let ops: Vec<Value> = (0..40_000)
        .map(|i| json!({"op": "add", "path": format!("/k{i}"), "value": "v"}))
        .collect();
    let doc = Value::Array(ops).to_string();
    assert!(doc.len() < 2 * 1024 * 1024, "{} bytes", doc.len());
    let (status, body) = send(&admin, Method::PATCH, &format!("/v2/images/{id}"), V21, doc).await;
    assert_glance_error(status, &body, 413, "40 000 added properties");
    // 40 000 operations on one property are applied in order.
    let ops: Vec<Value> = (0..40_000)
        .map(|i| json!({"op": "add", "path": "/k", "value": format!("{i}")}))
        .collect();
    let (status, body) = send(
        &admin,
        Method::PATCH,
        &format!("/v2/images/{id}"),
        V21,
        Value::Array(ops).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["k"], "39999");

    // Over the 2 MiB body cap: a 413 in Glance's shape, on PATCH, create and member POST.
    let big = format!(
        r#"[{{"op":"add","path":"/x","value":"{}"}}]"#,
        "b".repeat(3 << 20)
    );
    let (status, body) = send(&admin, Method::PATCH, &format!("/v2/images/{id}"), V21, big).await;
    assert_glance_error(status, &body, 413, "a 3 MiB patch");
    let big = format!(r#"{{"name":"{}"}}"#, "b".repeat(3 << 20));
    let (status, body) = send(&admin, Method::POST, "/v2/images", "application/json", big).await;
    assert_glance_error(status, &body, 413, "a 3 MiB create");
    let big = format!(r#"{{"member":"{}"}}"#, "b".repeat(3 << 20));
    let path = format!("/v2/images/{id}/members");
    let (status, body) = send(&admin, Method::POST, &path, "application/json", big).await;
    assert_glance_error(status, &body, 413, "a 3 MiB member body");

    // The image is as the last accepted change left it, and the server still answers.
    let (status, shown) = admin.get_json(&format!("/v2/images/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown["k"], "39999");
    assert!(
        shown.get("k0").is_none() && shown.get("x").is_none(),
        "{shown}"
    );
    assert_eq!(shown["owner"], ADMIN_PROJECT);
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "hostile documents took {:?}",
        started.elapsed()
    );
}

/// Sends a request head declaring `length` body bytes, then only `sent` of them, and reads
/// what the server answers (waiting at most 20 s, while the rest of the body never comes).
async fn declare_and_stall(url: &str, head: &str, length: u64, sent: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{head}\r\nHost: {addr}\r\nX-Project-Id: {ADMIN_PROJECT}\r\nX-Roles: admin,member,reader\r\n\
         Accept: application/json\r\nContent-Length: {length}\r\n\r\n{}",
        "[".repeat(sent)
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
        .await
        .expect("no answer within 20 s while the declared body never came")
        .expect("read");
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test]
async fn oversized_documents_are_refused_before_their_body() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let id = new_image(&admin).await;
    let cases = [
        format!("PATCH /v2/images/{id} HTTP/1.1\r\nContent-Type: {V21}"),
        "POST /v2/images HTTP/1.1\r\nContent-Type: application/json".to_owned(),
        format!("POST /v2/images/{id}/members HTTP/1.1\r\nContent-Type: application/json"),
    ];
    for head in &cases {
        let answer = declare_and_stall(&server.url, head, 1 << 30, 10).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{head}: {answer}");
        assert!(
            answer.contains("\"code\":\"413 Request Entity Too Large\"")
                || answer.contains("\"code\":\"413 Payload Too Large\""),
            "{answer}"
        );
    }
    // At the cap the document is read (and refused for what it is, not for its size).
    let answer = declare_and_stall(
        &server.url,
        &format!("PATCH /v2/images/{id} HTTP/1.1\r\nContent-Type: {V21}"),
        2 * 1024 * 1024,
        2 * 1024 * 1024,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // Image data is not a document: an upload's declared length is not refused here (this
    // one is refused for the image's missing formats).
    let answer = declare_and_stall(
        &server.url,
        &format!("PUT /v2/images/{id}/file HTTP/1.1\r\nContent-Type: application/octet-stream\r\nConnection: close"),
        3,
        3,
    )
    .await;
    assert!(!answer.starts_with("HTTP/1.1 413"), "{answer}");
}
