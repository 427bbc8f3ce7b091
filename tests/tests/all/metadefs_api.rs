//! The metadata definitions API (`/v2/metadefs/*`, `/v2/schemas/metadefs/*`) against
//! Glance's statuses and bodies, and the definitions file loader (`load-metadefs`,
//! `export-metadefs`) with the fixture files in `tests/fixtures/metadefs`.

use glass_tests::metadefs::{FIXTURE_NAMESPACES, fixtures_copy, fixtures_dir, load};
use glass_tests::{ADMIN_PROJECT, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

const NS: &str = "/v2/metadefs/namespaces";

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn namespace_lifecycle() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let body = json!({
        "namespace": "glass-ns",
        "display_name": "Glass NS",
        "description": "made by a test",
        "visibility": "public",
        "properties": {"p1": {"type": "string", "title": "P one", "enum": ["a", "b"], "default": 5}},
        "objects": [{"name": "o1", "required": ["x"], "properties": {"x": {"type": "integer", "title": "X", "minimum": 3}}}],
        "tags": [{"name": "t1"}, {"name": "t2"}],
        "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "p_"}],
    });
    let r = admin
        .request(Method::POST, NS)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        "/v2/metadefs/namespaces/glass-ns"
    );
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["namespace"], "glass-ns");
    assert_eq!(
        created["owner"], ADMIN_PROJECT,
        "owner defaults to the caller's project"
    );
    assert_eq!(created["protected"], false);
    assert_eq!(created["self"], "/v2/metadefs/namespaces/glass-ns");
    assert_eq!(created["schema"], "/v2/schemas/metadefs/namespace");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(created["created_at"], created["updated_at"]);
    assert_eq!(
        created["properties"]["p1"]["default"], "5",
        "a default is kept as text, as Glance does"
    );

    let (status, again) = admin.jpost(NS, &json!({"namespace": "glass-ns"})).await;
    assert_eq!(status, 409);
    assert_eq!(
        message(&again),
        "The metadata definition namespace=glass-ns already exists.<br /><br />\n\n\n"
    );

    let (status, shown) = admin.jget(&format!("{NS}/glass-ns")).await;
    assert_eq!(status, 200);
    assert_eq!(shown["display_name"], "Glass NS");
    assert_eq!(names(&shown["tags"]), ["t2", "t1"], "tags newest first");
    assert_eq!(
        shown["objects"][0]["self"],
        "/v2/metadefs/namespaces/glass-ns/objects/o1"
    );
    assert_eq!(shown["resource_type_associations"][0]["prefix"], "p_");

    // With a resource type, names carry its prefix.
    let (_, prefixed) = admin
        .jget(&format!("{NS}/glass-ns?resource_type=OS::Glance::Image"))
        .await;
    assert!(prefixed["properties"]["p_p1"].is_object(), "{prefixed}");
    assert_eq!(prefixed["objects"][0]["required"], json!(["p_x"]));
    assert!(prefixed["objects"][0]["properties"]["p_x"].is_object());

    // Body checks.
    let (status, b) = admin
        .jpost(NS, &json!({"namespace": "x", "created_at": "now"}))
        .await;
    assert_eq!(
        (status, message(&b)),
        (
            403,
            "Attribute 'created_at' is read-only.<br /><br />\n\n\n"
        )
    );
    let (status, b) = admin
        .jpost(NS, &json!({"namespace": "x", "visibility": "shared"}))
        .await;
    assert_eq!(status, 400, "{b}");
    assert!(message(&b).starts_with("Provided object does not match schema 'namespace'"));
    let (status, _) = admin.jpost(NS, &json!({"display_name": "x"})).await;
    assert_eq!(status, 400, "namespace is required");
    let (status, _) = admin
        .jpost(
            NS,
            &json!({"namespace": "x", "properties": {"p": {"type": "string"}}}),
        )
        .await;
    assert_eq!(status, 400, "a property needs a title");
    let (status, _) = admin
        .jpost(NS, &json!({"namespace": "x", "bogus": 1}))
        .await;
    assert_eq!(status, 400);
    let (status, b) = admin.send_raw(Method::POST, NS, "").await;
    assert_eq!(
        (status, message(&b)),
        (400, "Body expected in request.<br /><br />\n\n\n")
    );
    let (status, b) = admin.send_raw(Method::POST, NS, "{nope").await;
    assert_eq!(
        (status, message(&b)),
        (400, "Malformed JSON in request body.<br /><br />\n\n\n")
    );

    // PUT replaces: what is left out goes back to its default; a new name carries the
    // contents along.
    let (status, updated) = admin
        .jput(
            &format!("{NS}/glass-ns"),
            &json!({"namespace": "glass-ns2", "description": "d", "protected": true}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["namespace"], "glass-ns2");
    assert_eq!(updated["visibility"], "private");
    assert!(updated.get("display_name").is_none());
    assert_eq!(updated["created_at"], created["created_at"]);
    let (status, _) = admin.jget(&format!("{NS}/glass-ns")).await;
    assert_eq!(status, 404);
    let (_, moved) = admin.jget(&format!("{NS}/glass-ns2/objects/o1")).await;
    assert_eq!(moved["name"], "o1");

    // Protected: nothing in it can be deleted.
    let (status, b) = admin.delete(&format!("{NS}/glass-ns2")).await;
    assert_eq!(
        (status, message(&b)),
        (
            403,
            "Metadata definition namespace glass-ns2 is protected and cannot be deleted.<br /><br />\n\n\n"
        )
    );
    let (status, b) = admin.delete(&format!("{NS}/glass-ns2/objects/o1")).await;
    assert_eq!(
        (status, message(&b)),
        (
            403,
            "Metadata definition object o1 is protected and cannot be deleted.<br /><br />\n\n\n"
        )
    );
    for what in ["objects", "properties", "tags"] {
        let (status, _) = admin.delete(&format!("{NS}/glass-ns2/{what}")).await;
        assert_eq!(status, 403, "delete all {what} of a protected namespace");
    }
    let (status, _) = admin.delete(&format!("{NS}/glass-ns2/tags/t1")).await;
    assert_eq!(status, 403);
    let (status, _) = admin
        .delete(&format!("{NS}/glass-ns2/resource_types/OS::Glance::Image"))
        .await;
    assert_eq!(status, 403);

    // Rename onto a taken name.
    admin.jpost(NS, &json!({"namespace": "taken"})).await;
    let (status, _) = admin
        .jput(&format!("{NS}/glass-ns2"), &json!({"namespace": "taken"}))
        .await;
    assert_eq!(status, 409);

    let (status, _) = admin
        .jput(
            &format!("{NS}/glass-ns2"),
            &json!({"namespace": "glass-ns2"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = admin.delete(&format!("{NS}/glass-ns2")).await;
    assert_eq!(status, 204);
    let (status, b) = admin.jget(&format!("{NS}/glass-ns2")).await;
    assert_eq!(
        (status, message(&b)),
        (
            404,
            "Metadata definition namespace=glass-ns2 was not found.<br /><br />\n\n\n"
        )
    );
    let (status, b) = admin.delete(&format!("{NS}/glass-ns2")).await;
    assert_eq!(
        (status, message(&b)),
        (404, "Namespace glass-ns2 not found<br /><br />\n\n\n")
    );
}

#[tokio::test]
async fn visibility_and_admin_only_writes() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let other = server.client("other-project", "member,reader");
    let owner = server.client("owner-project", "member,reader");
    admin
        .jpost(NS, &json!({"namespace": "pub", "visibility": "public"}))
        .await;
    admin.jpost(NS, &json!({"namespace": "priv"})).await;
    admin
        .jpost(NS, &json!({"namespace": "owned", "owner": "owner-project"}))
        .await;

    let listed = |body: &Value| -> Vec<String> {
        body["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["namespace"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, all) = admin.jget(NS).await;
    assert_eq!(listed(&all).len(), 3);
    let (_, seen) = other.jget(NS).await;
    assert_eq!(listed(&seen), ["pub"]);
    let (_, seen) = owner.jget(NS).await;
    let mut seen = listed(&seen);
    seen.sort();
    assert_eq!(seen, ["owned", "pub"]);

    let (status, b) = other.jget(&format!("{NS}/priv")).await;
    assert_eq!(
        (status, message(&b)),
        (404, "The resource could not be found.<br /><br />\n\n\n")
    );
    let (status, _) = other.jget(&format!("{NS}/priv/objects")).await;
    assert_eq!(status, 404);
    let (status, _) = other.jget(&format!("{NS}/pub")).await;
    assert_eq!(status, 200);

    // Writes are for admins: 403 on what the caller sees, 404 on what it does not.
    let (status, b) = other.jpost(NS, &json!({"namespace": "mine"})).await;
    assert_eq!(
        (status, message(&b)),
        (
            403,
            "You are not authorized to complete add_metadef_namespace action.<br /><br />\n\n\n"
        )
    );
    let (status, _) = other.delete(&format!("{NS}/pub")).await;
    assert_eq!(status, 403);
    let (status, _) = other.delete(&format!("{NS}/priv")).await;
    assert_eq!(status, 404);
    let (status, _) = owner
        .jpost(&format!("{NS}/owned/objects"), &json!({"name": "o"}))
        .await;
    assert_eq!(
        status, 403,
        "owners do not write either (Glance's default policy)"
    );

    // Listing: filters, sorting, paging.
    let (status, b) = admin.jget(&format!("{NS}?visibility=shared")).await;
    assert_eq!(
        (status, message(&b)),
        (400, "Invalid visibility value: shared<br /><br />\n\n\n")
    );
    let (_, b) = admin.jget(&format!("{NS}?visibility=public")).await;
    assert_eq!(listed(&b), ["pub"]);
    let (status, _) = admin.jget(&format!("{NS}?sort_dir=up")).await;
    assert_eq!(status, 400);
    let (status, _) = admin.jget(&format!("{NS}?limit=-1")).await;
    assert_eq!(status, 400);
    let (_, page) = admin
        .jget(&format!("{NS}?sort_key=namespace&sort_dir=asc&limit=2"))
        .await;
    assert_eq!(listed(&page), ["owned", "priv"]);
    assert_eq!(
        page["next"],
        "/v2/metadefs/namespaces?sort_key=namespace&sort_dir=asc&limit=2&marker=priv"
    );
    assert_eq!(
        page["first"],
        "/v2/metadefs/namespaces?sort_key=namespace&sort_dir=asc&limit=2"
    );
    assert_eq!(page["schema"], "/v2/schemas/metadefs/namespaces");
    let (_, page2) = admin.jget(page["next"].as_str().unwrap()).await;
    assert_eq!(listed(&page2), ["pub"]);
    assert!(page2.get("next").is_none());
    let (status, _) = admin.jget(&format!("{NS}?marker=nope")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn objects_properties_tags_and_resource_types() {
    let server = TestServer::start().await;
    let admin = server.admin();
    admin.jpost(NS, &json!({"namespace": "ns"})).await;
    let base = format!("{NS}/ns");

    // Objects.
    let (status, o) = admin
        .jpost(
            &format!("{base}/objects"),
            &json!({"name": "o1", "description": "one", "properties": {"y": {"type": "string", "title": "Y"}}}),
        )
        .await;
    assert_eq!(status, 201, "{o}");
    assert_eq!(o["self"], "/v2/metadefs/namespaces/ns/objects/o1");
    assert_eq!(o["schema"], "/v2/schemas/metadefs/object");
    let (status, b) = admin
        .jpost(&format!("{base}/objects"), &json!({"name": "o1"}))
        .await;
    assert_eq!(
        (status, message(&b)),
        (
            409,
            "A metadata definition object with name=o1 already exists in namespace=ns.<br /><br />\n\n\n"
        )
    );
    let (status, _) = admin
        .jpost(&format!("{base}/objects"), &json!({"description": "x"}))
        .await;
    assert_eq!(status, 400);
    admin
        .jpost(&format!("{base}/objects"), &json!({"name": "o2"}))
        .await;
    let (_, list) = admin.jget(&format!("{base}/objects")).await;
    assert_eq!(names(&list["objects"]), ["o1", "o2"]);
    assert_eq!(list["schema"], "v2/schemas/metadefs/objects");
    let (status, renamed) = admin
        .jput(&format!("{base}/objects/o2"), &json!({"name": "o3"}))
        .await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("o3")));
    let (status, _) = admin
        .jput(&format!("{base}/objects/o3"), &json!({"name": "o1"}))
        .await;
    assert_eq!(status, 409);
    let (status, b) = admin.jget(&format!("{base}/objects/o2")).await;
    assert_eq!(
        (status, message(&b)),
        (404, "Could not find metadata object o2<br /><br />\n\n\n")
    );
    let (status, _) = admin.delete(&format!("{base}/objects/o3")).await;
    assert_eq!(status, 204);
    let (status, _) = admin.delete(&format!("{base}/objects")).await;
    assert_eq!(status, 204);
    let (_, list) = admin.jget(&format!("{base}/objects")).await;
    assert_eq!(list["objects"], json!([]));

    // Properties.
    let (status, p) = admin
        .jpost(
            &format!("{base}/properties"),
            &json!({"name": "p2", "type": "integer", "title": "P2", "minimum": 0, "maximum": 10}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        p,
        json!({"name": "p2", "type": "integer", "title": "P2", "minimum": 0, "maximum": 10})
    );
    let (status, _) = admin
        .jpost(
            &format!("{base}/properties"),
            &json!({"name": "p2", "type": "integer", "title": "P2"}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = admin
        .jpost(
            &format!("{base}/properties"),
            &json!({"type": "integer", "title": "P"}),
        )
        .await;
    assert_eq!(status, 400, "a property needs a name");
    let (status, b) = admin
        .jpost(
            &format!("{base}/properties"),
            &json!({"name": "p", "type": "strin", "title": "P"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&b).contains("'strin' is not one of"), "{b}");
    let (status, b) = admin
        .jpost(
            &format!("{base}/properties"),
            &json!({"name": "p", "type": "string", "title": "P", "minimum": "abc"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&b).contains("is not of type 'number'"), "{b}");
    let (_, list) = admin.jget(&format!("{base}/properties")).await;
    assert_eq!(
        list,
        json!({"properties": {"p2": {"type": "integer", "title": "P2", "minimum": 0, "maximum": 10}}})
    );
    let (status, p3) = admin
        .jput(
            &format!("{base}/properties/p2"),
            &json!({"name": "p3", "type": "string", "title": "P3"}),
        )
        .await;
    assert_eq!((status, p3["name"].as_str()), (200, Some("p3")));
    let (status, b) = admin.jget(&format!("{base}/properties/p2")).await;
    assert_eq!(
        (status, message(&b)),
        (404, "Could not find property p2<br /><br />\n\n\n")
    );
    // By its prefixed name, through an association.
    admin
        .jpost(
            &format!("{base}/resource_types"),
            &json!({"name": "OS::Glance::Image", "prefix": "x_"}),
        )
        .await;
    let (status, p) = admin
        .jget(&format!(
            "{base}/properties/x_p3?resource_type=OS::Glance::Image"
        ))
        .await;
    assert_eq!((status, p["name"].as_str()), (200, Some("p3")));
    let (status, b) = admin
        .jget(&format!(
            "{base}/properties/p3?resource_type=OS::Glance::Image"
        ))
        .await;
    assert_eq!(status, 404);
    assert!(
        message(&b)
            .contains("does not start with the expected resource type association prefix of 'x_'")
    );
    let (status, _) = admin.delete(&format!("{base}/properties/p3")).await;
    assert_eq!(status, 204);

    // Tags.
    let tags = format!("{base}/tags");
    let (status, t) = admin.jsend(Method::POST, &format!("{tags}/t3")).await;
    assert_eq!((status, t["name"].as_str()), (201, Some("t3")));
    assert!(t["created_at"].is_string());
    let (status, b) = admin.jsend(Method::POST, &format!("{tags}/t3")).await;
    assert_eq!(status, 409);
    assert!(message(&b).starts_with("A metadata tag with name=t3 already exists in namespace=ns."));
    let (status, b) = admin
        .jpost(&tags, &json!({"tags": [{"name": "a1"}, {"name": "a2"}]}))
        .await;
    assert_eq!(
        (status, b),
        (201, json!({"tags": [{"name": "a1"}, {"name": "a2"}]}))
    );
    let (_, list) = admin.jget(&tags).await;
    assert_eq!(
        names(&list["tags"]),
        ["a2", "a1"],
        "a bulk create replaces the tags"
    );
    let (status, _) = admin
        .send_json_with(
            Method::POST,
            &tags,
            &json!({"tags": [{"name": "b1"}]}),
            Some(("X-Openstack-Append", "True")),
        )
        .await;
    assert_eq!(status, 201);
    let (_, list) = admin.jget(&tags).await;
    assert_eq!(
        names(&list["tags"]),
        ["b1", "a2", "a1"],
        "X-Openstack-Append keeps them"
    );
    let (status, _) = admin
        .send_json_with(
            Method::POST,
            &tags,
            &json!({"tags": [{"name": "b1"}]}),
            Some(("X-Openstack-Append", "true")),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = admin
        .jpost(&tags, &json!({"tags": [{"name": "c1"}, {"name": "c1"}]}))
        .await;
    assert_eq!(status, 409);
    let (_, list) = admin.jget(&tags).await;
    assert_eq!(
        names(&list["tags"]),
        ["b1", "a2", "a1"],
        "a refused bulk create changes nothing"
    );
    let (status, _) = admin
        .jpost(&tags, &json!({"tags": [{"name": "x", "extra": 1}]}))
        .await;
    assert_eq!(status, 400);
    let (_, list) = admin
        .jget(&format!("{tags}?sort_key=name&sort_dir=asc"))
        .await;
    assert_eq!(names(&list["tags"]), ["a1", "a2", "b1"]);
    let (_, list) = admin.jget(&format!("{tags}?limit=1&marker=b1")).await;
    assert_eq!(names(&list["tags"]), ["a2"]);
    let (status, t) = admin
        .jput(&format!("{tags}/a1"), &json!({"name": "a9"}))
        .await;
    assert_eq!((status, t["name"].as_str()), (200, Some("a9")));
    let (status, b) = admin.jget(&format!("{tags}/a1")).await;
    assert_eq!(
        (status, message(&b)),
        (404, "Could not find metadata tag a1<br /><br />\n\n\n")
    );
    let (status, _) = admin.delete(&format!("{tags}/a9")).await;
    assert_eq!(status, 204);
    let (status, _) = admin.delete(&tags).await;
    assert_eq!(status, 204);
    let (_, list) = admin.jget(&tags).await;
    assert_eq!(list, json!({"tags": []}));

    // Resource types and associations.
    let rts = format!("{base}/resource_types");
    let (status, a) = admin
        .jpost(
            &rts,
            &json!({"name": "Custom::Thing", "prefix": "c_", "properties_target": "image"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(a["properties_target"], "image");
    let (status, b) = admin.jpost(&rts, &json!({"name": "Custom::Thing"})).await;
    assert_eq!(
        (status, message(&b)),
        (
            409,
            "The metadata definition resource-type association of resource-type=Custom::Thing to namespace=ns already exists.<br /><br />\n\n\n"
        )
    );
    let (status, _) = admin.jpost(&rts, &json!({"prefix": "c_"})).await;
    assert_eq!(status, 400);
    let (_, list) = admin.jget(&rts).await;
    assert_eq!(
        names(&list["resource_type_associations"]),
        ["OS::Glance::Image", "Custom::Thing"]
    );
    let (_, all) = admin.jget("/v2/metadefs/resource_types").await;
    let all = names(&all["resource_types"]);
    assert!(all.contains(&"Custom::Thing".to_string()), "{all:?}");
    let (_, by_type) = admin
        .jget(&format!("{NS}?resource_types=Custom::Thing,Nope"))
        .await;
    assert_eq!(by_type["namespaces"][0]["namespace"], "ns");
    let (_, by_type) = admin.jget(&format!("{NS}?resource_types=Nope")).await;
    assert_eq!(by_type["namespaces"], json!([]));
    let (status, _) = admin.delete(&format!("{rts}/Custom::Thing")).await;
    assert_eq!(status, 204);
    let (status, b) = admin.delete(&format!("{rts}/Custom::Thing")).await;
    assert_eq!(
        (status, message(&b)),
        (
            404,
            "Failed to find resource type Custom::Thing to delete<br /><br />\n\n\n"
        )
    );
    let (_, all) = admin.jget("/v2/metadefs/resource_types").await;
    assert!(
        names(&all["resource_types"]).contains(&"Custom::Thing".to_string()),
        "the type stays"
    );

    // Under a namespace that does not exist.
    for path in ["objects", "properties", "tags", "resource_types"] {
        let (status, _) = admin.jget(&format!("{NS}/nope/{path}")).await;
        assert_eq!(status, 404, "{path} of a missing namespace");
    }
}

#[tokio::test]
async fn schemas() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for (path, name) in [
        ("namespace", "namespace"),
        ("namespaces", "namespaces"),
        ("object", "object"),
        ("objects", "objects"),
        ("property", "property"),
        ("properties", "properties"),
        ("tag", "tag"),
        ("tags", "tags"),
        ("resource_type", "resource_type_association"),
        ("resource_types", "resource_type_associations"),
    ] {
        let (status, schema) = admin.jget(&format!("/v2/schemas/metadefs/{path}")).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(schema["name"], name, "{path}");
        assert!(schema["properties"].is_object(), "{path}");
    }
    let (_, ns) = admin.jget("/v2/schemas/metadefs/namespace").await;
    assert_eq!(ns["required"], json!(["namespace"]));
    assert_eq!(ns["additionalProperties"], false);
    assert!(
        ns["definitions"]["property"]["additionalProperties"]["properties"]["enum"].is_object()
    );
    let (_, nss) = admin.jget("/v2/schemas/metadefs/namespaces").await;
    assert!(
        nss["definitions"]["property"].is_object(),
        "collections carry the definitions"
    );
    let (status, _) = admin.jget("/v2/schemas/metadefs/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn loading_definition_files() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let loaded = load(&server, &fixtures_dir()).await.expect("load fixtures");
    assert_eq!(loaded, FIXTURE_NAMESPACES);

    let (_, hints) = admin.jget(&format!("{NS}/GLASS::Test::ImageHints")).await;
    assert_eq!(hints["visibility"], "public");
    assert_eq!(hints["protected"], true);
    assert_eq!(
        hints["owner"], "admin",
        "Glance's owner for files without one"
    );
    assert_eq!(
        hints["properties"]["gt_disk_bus"]["enum"],
        json!(["scsi", "virtio", "ide"])
    );
    assert_eq!(hints["properties"]["gt_cpu_count"]["default"], "2");
    assert_eq!(
        hints["resource_type_associations"][1],
        json!({
            "name": "OS::Cinder::Volume",
            "properties_target": "image",
            "created_at": hints["resource_type_associations"][1]["created_at"],
            "updated_at": hints["resource_type_associations"][1]["updated_at"],
        })
    );
    let (_, limits) = admin
        .jget(&format!("{NS}/GLASS::Test::ComputeLimits"))
        .await;
    assert_eq!(names(&limits["objects"]), ["Quota", "Shares"]);
    assert_eq!(limits["objects"][0]["required"], json!(["cpu_period"]));
    assert_eq!(names(&limits["tags"]), ["cpu", "limits"]);
    let (_, sw) = admin
        .jget(&format!("{NS}/GLASS::Test::Software/tags"))
        .await;
    assert_eq!(names(&sw["tags"]), ["SQLite", "MySQL", "PostgreSQL"]);
    let (_, rts) = admin.jget("/v2/metadefs/resource_types").await;
    let rts = names(&rts["resource_types"]);
    for rt in [
        "OS::Glance::Image",
        "OS::Cinder::Volume",
        "OS::Nova::Flavor",
    ] {
        assert!(rts.contains(&rt.to_string()), "{rt} in {rts:?}");
    }
    let (_, for_images) = admin
        .jget(&format!(
            "{NS}?resource_types=OS::Glance::Image&sort_key=namespace&sort_dir=asc"
        ))
        .await;
    let listed: Vec<&str> = for_images["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(listed, FIXTURE_NAMESPACES);

    // Loading again changes nothing: no duplicates, same creation and update times (a
    // second later, so a rewritten timestamp would show); what the API added in between is
    // gone (the files are the definitions).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    admin
        .jpost(
            &format!("{NS}/GLASS::Test::Software/objects"),
            &json!({"name": "Extra"}),
        )
        .await;
    load(&server, &fixtures_dir()).await.expect("reload");
    let (_, again) = admin
        .jget(&format!("{NS}/GLASS::Test::ComputeLimits"))
        .await;
    assert_eq!(again, limits, "a reload leaves a namespace as it was");
    let (_, sw) = admin
        .jget(&format!("{NS}/GLASS::Test::Software/objects"))
        .await;
    assert_eq!(names(&sw["objects"]), ["Database"]);
    let (_, all) = admin.jget(NS).await;
    assert_eq!(all["namespaces"].as_array().unwrap().len(), 3);

    // Export, then load the export into another server: the same definitions.
    let out = tempfile::tempdir().unwrap();
    let files = glass_host::manage::metadefs_files::export(&*server.state.registry, out.path())
        .await
        .expect("export");
    assert_eq!(files.len(), 3);
    let other = TestServer::start().await;
    load(&other, out.path()).await.expect("load the export");
    for ns in FIXTURE_NAMESPACES {
        let (_, a) = admin.jget(&format!("{NS}/{ns}")).await;
        let (_, b) = other.admin().jget(&format!("{NS}/{ns}")).await;
        let strip = |mut v: Value| {
            strip_times(&mut v);
            v
        };
        assert_eq!(strip(a), strip(b), "{ns} survives export and load");
    }
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("created_at");
            map.remove("updated_at");
            map.values_mut().for_each(strip_times);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_times),
        _ => {}
    }
}

#[tokio::test]
async fn a_bad_file_loads_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin();

    // Malformed JSON: the file and the line are named.
    let dir = fixtures_copy();
    std::fs::write(
        dir.path().join("zz-broken.json"),
        "{\n  \"namespace\": \"GLASS::Broken\",\n  \"properties\": {\n    \"p\": {\"title\": \"P\" \"type\": \"string\"}\n  }\n}\n",
    )
    .unwrap();
    let err = load(&server, dir.path())
        .await
        .expect_err("a malformed file");
    assert!(err.contains("zz-broken.json"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    let (_, all) = admin.jget(NS).await;
    assert_eq!(all["namespaces"], json!([]), "nothing was loaded: {err}");

    // Well-formed but not a valid namespace: the file and the rule are named.
    let dir = fixtures_copy();
    std::fs::write(
        dir.path().join("bad-type.json"),
        r#"{"namespace": "GLASS::BadType", "properties": {"p": {"title": "P", "type": "strnig"}}}"#,
    )
    .unwrap();
    let err = load(&server, dir.path())
        .await
        .expect_err("an invalid file");
    assert!(err.contains("bad-type.json"), "{err}");
    assert!(err.contains("'strnig' is not one of"), "{err}");
    let (_, all) = admin.jget(NS).await;
    assert_eq!(all["namespaces"], json!([]));

    // The same namespace in two files.
    let dir = fixtures_copy();
    std::fs::copy(
        dir.path().join("glass-software.json"),
        dir.path().join("glass-software-copy.json"),
    )
    .unwrap();
    let err = load(&server, dir.path())
        .await
        .expect_err("a namespace twice");
    assert!(
        err.contains("GLASS::Test::Software is already defined"),
        "{err}"
    );

    // And a loaded registry stays as it was when a later load is refused.
    load(&server, &fixtures_dir()).await.expect("load");
    let (_, before) = admin
        .jget(&format!("{NS}/GLASS::Test::ComputeLimits"))
        .await;
    let dir = fixtures_copy();
    let limits = dir.path().join("glass-compute-limits.json");
    let text = std::fs::read_to_string(&limits).unwrap();
    std::fs::write(&limits, text.replace("\"limits\"", "\"changed\"")).unwrap();
    std::fs::write(dir.path().join("zz-broken.json"), "{\"namespace\": 3}").unwrap();
    let err = load(&server, dir.path()).await.expect_err("bad file");
    assert!(err.contains("zz-broken.json"), "{err}");
    let (_, after) = admin
        .jget(&format!("{NS}/GLASS::Test::ComputeLimits"))
        .await;
    assert_eq!(before, after, "a refused load changes nothing");
}
