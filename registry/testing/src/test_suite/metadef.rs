//! The metadata definitions part of [`crate::test_suite`]: what any engine must do with
//! namespaces and their contents. Every check uses its own uniquely named namespaces.

use serde_json::json;
use uuid::Uuid;

use glass_registry::{
    MetadefAssociation, MetadefDefinition, MetadefKind, MetadefNamespace, MetadefObject,
    MetadefProperty, MetadefTag, MetadefVisibility, Registry, RegistryError, Timestamp, now,
};

pub(super) async fn run(r: &dyn Registry) {
    create_with_contents(r).await;
    content_crud(r).await;
    tags_in_bulk(r).await;
    delete_contents_and_cascade(r).await;
    rename_moves_contents(r).await;
    import_replaces(r).await;
}

fn unique(label: &str) -> String {
    format!("suite-md-{label}-{}", Uuid::new_v4().simple())
}

fn namespace(name: &str) -> MetadefNamespace {
    let t = now();
    MetadefNamespace {
        namespace: name.to_string(),
        display_name: Some(format!("{name} display")),
        description: None,
        visibility: MetadefVisibility::Private,
        protected: false,
        owner: Some("suite-owner".into()),
        created_at: t,
        updated_at: t,
    }
}

fn property(ns: &str, name: &str) -> MetadefProperty {
    let t = now();
    let schema = json!({"type": "string", "title": name, "enum": ["a", "b"]});
    MetadefProperty {
        namespace: ns.to_string(),
        name: name.to_string(),
        schema: schema.as_object().cloned().unwrap_or_default(),
        created_at: t,
        updated_at: t,
    }
}

fn object(ns: &str, name: &str) -> MetadefObject {
    let t = now();
    let props = json!({"x": {"type": "integer", "title": "X", "minimum": 1}});
    MetadefObject {
        namespace: ns.to_string(),
        name: name.to_string(),
        description: Some("an object".into()),
        required: vec!["x".into()],
        properties: props.as_object().cloned().unwrap_or_default(),
        created_at: t,
        updated_at: t,
    }
}

fn tag(ns: &str, name: &str) -> MetadefTag {
    let t = now();
    MetadefTag {
        namespace: ns.to_string(),
        name: name.to_string(),
        created_at: t,
        updated_at: t,
    }
}

fn association(ns: &str, name: &str, prefix: Option<&str>) -> MetadefAssociation {
    let t = now();
    MetadefAssociation {
        namespace: ns.to_string(),
        name: name.to_string(),
        prefix: prefix.map(String::from),
        properties_target: None,
        created_at: t,
        updated_at: t,
    }
}

fn full(name: &str, rt: &str) -> MetadefDefinition {
    MetadefDefinition {
        namespace: namespace(name),
        properties: vec![property(name, "p1"), property(name, "p2")],
        objects: vec![object(name, "o1")],
        tags: vec![tag(name, "t1"), tag(name, "t2")],
        associations: vec![association(name, rt, Some("pre_"))],
    }
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
    let mut out: Vec<String> = items.iter().map(|i| name(i).to_string()).collect();
    out.sort();
    out
}

fn is_dup(e: &RegistryError, kind: MetadefKind, name: &str) -> bool {
    matches!(e, RegistryError::MetadefDuplicate { kind: k, name: n, .. } if *k == kind && n == name)
}

fn is_missing(e: &RegistryError, kind: MetadefKind, name: &str) -> bool {
    matches!(e, RegistryError::MetadefNotFound { kind: k, name: n, .. } if *k == kind && n == name)
}

async fn definition(r: &dyn Registry, name: &str) -> MetadefDefinition {
    r.get_metadef_definition(name)
        .await
        .unwrap_or_else(|e| panic!("get_metadef_definition({name}): {e:?}"))
        .unwrap_or_else(|| panic!("namespace {name} is missing"))
}

async fn create_with_contents(r: &dyn Registry) {
    let name = unique("create");
    let rt = unique("rt");
    let def = full(&name, &rt);
    let created = r
        .create_metadef_namespace(def.clone())
        .await
        .expect("create_metadef_namespace");
    assert_eq!(
        created.namespace, def.namespace,
        "created namespace as given"
    );

    let got = definition(r, &name).await;
    assert_eq!(got.namespace, def.namespace);
    assert_eq!(names(&got.properties, |p| &p.name), ["p1", "p2"]);
    assert_eq!(got.properties[0].schema, def.properties[0].schema);
    assert_eq!(got.objects, def.objects, "objects round-trip unchanged");
    assert_eq!(names(&got.tags, |t| &t.name), ["t1", "t2"]);
    assert_eq!(got.associations, def.associations);
    assert_eq!(
        r.get_metadef_namespace(&name).await.expect("get"),
        Some(def.namespace.clone())
    );
    assert!(
        r.list_metadef_namespaces()
            .await
            .expect("list")
            .iter()
            .any(|n| n.namespace == name),
        "a created namespace is listed"
    );
    let rts = r
        .list_metadef_resource_types()
        .await
        .expect("resource types");
    let created_rt = rts.iter().find(|t| t.name == rt);
    assert!(
        created_rt.is_some_and(|t| !t.protected),
        "an association creates its resource type, unprotected: {created_rt:?}"
    );

    match r.create_metadef_namespace(full(&name, &rt)).await {
        Err(e) if is_dup(&e, MetadefKind::Namespace, &name) => {}
        other => panic!("creating {name} twice must be a duplicate: {other:?}"),
    }

    // A name twice in one definition fails the whole create.
    let twice = unique("twice");
    let mut def = MetadefDefinition::empty(namespace(&twice));
    def.tags = vec![tag(&twice, "same"), tag(&twice, "same")];
    match r.create_metadef_namespace(def).await {
        Err(e) if is_dup(&e, MetadefKind::Tag, "same") => {}
        other => panic!("a tag twice must be a duplicate: {other:?}"),
    }
    assert_eq!(
        r.get_metadef_namespace(&twice).await.expect("get"),
        None,
        "a failed create leaves nothing behind"
    );
    assert_eq!(
        r.get_metadef_definition(&unique("none"))
            .await
            .expect("get"),
        None
    );
}

async fn content_crud(r: &dyn Registry) {
    let name = unique("crud");
    r.create_metadef_namespace(MetadefDefinition::empty(namespace(&name)))
        .await
        .expect("create namespace");

    // Objects.
    let o = r
        .create_metadef_object(object(&name, "o1"))
        .await
        .expect("create object");
    match r.create_metadef_object(object(&name, "o1")).await {
        Err(e) if is_dup(&e, MetadefKind::Object, "o1") => {}
        other => panic!("object twice: {other:?}"),
    }
    assert_eq!(
        r.get_metadef_object(&name, "o1").await.expect("get"),
        Some(o.clone())
    );
    r.create_metadef_object(object(&name, "o2"))
        .await
        .expect("o2");
    let mut renamed = object(&name, "o3");
    renamed.description = None;
    let stored = r
        .update_metadef_object("o1", renamed)
        .await
        .expect("rename o1 -> o3");
    assert_eq!(
        stored.created_at, o.created_at,
        "an update keeps created_at"
    );
    assert_eq!(r.get_metadef_object(&name, "o1").await.expect("get"), None);
    assert_eq!(
        r.get_metadef_object(&name, "o3")
            .await
            .expect("get")
            .and_then(|o| o.description),
        None
    );
    match r.update_metadef_object("o3", object(&name, "o2")).await {
        Err(e) if is_dup(&e, MetadefKind::Object, "o2") => {}
        other => panic!("renaming onto a taken name: {other:?}"),
    }
    match r.update_metadef_object("nope", object(&name, "nope")).await {
        Err(e) if is_missing(&e, MetadefKind::Object, "nope") => {}
        other => panic!("updating a missing object: {other:?}"),
    }
    let listed = r.list_metadef_objects(&name).await.expect("list objects");
    assert_eq!(names(&listed, |o| &o.name), ["o2", "o3"]);
    r.delete_metadef_object(&name, "o2")
        .await
        .expect("delete o2");
    match r.delete_metadef_object(&name, "o2").await {
        Err(e) if is_missing(&e, MetadefKind::Object, "o2") => {}
        other => panic!("deleting twice: {other:?}"),
    }

    // Properties.
    r.create_metadef_property(property(&name, "p1"))
        .await
        .expect("p1");
    match r.create_metadef_property(property(&name, "p1")).await {
        Err(e) if is_dup(&e, MetadefKind::Property, "p1") => {}
        other => panic!("property twice: {other:?}"),
    }
    let mut p2 = property(&name, "p2");
    p2.schema.insert("type".into(), json!("integer"));
    r.update_metadef_property("p1", p2.clone())
        .await
        .expect("rename p1 -> p2");
    let got = r
        .get_metadef_property(&name, "p2")
        .await
        .expect("get")
        .expect("p2");
    assert_eq!(got.schema, p2.schema);
    assert_eq!(
        names(
            &r.list_metadef_properties(&name).await.expect("list"),
            |p| &p.name
        ),
        ["p2"]
    );
    r.delete_metadef_property(&name, "p2")
        .await
        .expect("delete p2");
    assert_eq!(
        r.get_metadef_property(&name, "p2").await.expect("get"),
        None
    );

    // Tags.
    r.create_metadef_tag(tag(&name, "t1")).await.expect("t1");
    match r.create_metadef_tag(tag(&name, "t1")).await {
        Err(e) if is_dup(&e, MetadefKind::Tag, "t1") => {}
        other => panic!("tag twice: {other:?}"),
    }
    r.update_metadef_tag("t1", tag(&name, "t9"))
        .await
        .expect("rename tag");
    assert!(r.get_metadef_tag(&name, "t9").await.expect("get").is_some());
    r.delete_metadef_tag(&name, "t9").await.expect("delete tag");
    assert!(r.list_metadef_tags(&name).await.expect("list").is_empty());

    // Associations.
    let rt = unique("rt");
    r.create_metadef_association(association(&name, &rt, Some("x_")))
        .await
        .expect("associate");
    match r
        .create_metadef_association(association(&name, &rt, None))
        .await
    {
        Err(e) if is_dup(&e, MetadefKind::Association, &rt) => {}
        other => panic!("association twice: {other:?}"),
    }
    let assoc = r.list_metadef_associations(&name).await.expect("list");
    assert_eq!(assoc.len(), 1);
    assert_eq!(assoc[0].prefix.as_deref(), Some("x_"));
    r.delete_metadef_association(&name, &rt)
        .await
        .expect("dissociate");
    match r.delete_metadef_association(&name, &rt).await {
        Err(e) if is_missing(&e, MetadefKind::Association, &rt) => {}
        other => panic!("dissociating twice: {other:?}"),
    }
    assert!(
        r.list_metadef_resource_types()
            .await
            .expect("types")
            .iter()
            .any(|t| t.name == rt),
        "the resource type stays after its association goes"
    );

    // Content of a namespace that does not exist.
    let missing = unique("missing");
    let not_found = |e: &RegistryError| matches!(e, RegistryError::MetadefNamespaceNotFound(n) if *n == missing);
    match r.create_metadef_object(object(&missing, "o")).await {
        Err(e) if not_found(&e) => {}
        other => panic!("object in a missing namespace: {other:?}"),
    }
    match r.create_metadef_tag(tag(&missing, "t")).await {
        Err(e) if not_found(&e) => {}
        other => panic!("tag in a missing namespace: {other:?}"),
    }
    match r.list_metadef_properties(&missing).await {
        Err(e) if not_found(&e) => {}
        other => panic!("properties of a missing namespace: {other:?}"),
    }
    match r.delete_metadef_namespace(&missing).await {
        Err(e) if not_found(&e) => {}
        other => panic!("deleting a missing namespace: {other:?}"),
    }
}

async fn tags_in_bulk(r: &dyn Registry) {
    let name = unique("tags");
    r.create_metadef_namespace(MetadefDefinition::empty(namespace(&name)))
        .await
        .expect("create namespace");
    r.create_metadef_tag(tag(&name, "old")).await.expect("old");
    let tags = |list: &[&str]| list.iter().map(|t| tag(&name, t)).collect::<Vec<_>>();

    let out = r
        .create_metadef_tags(&name, tags(&["a", "b"]), false)
        .await
        .expect("replace tags");
    assert_eq!(names(&out, |t| &t.name), ["a", "b"]);
    let now_tags = r.list_metadef_tags(&name).await.expect("list");
    assert_eq!(
        names(&now_tags, |t| &t.name),
        ["a", "b"],
        "replace drops old tags"
    );

    r.create_metadef_tags(&name, tags(&["c"]), true)
        .await
        .expect("append");
    let now_tags = r.list_metadef_tags(&name).await.expect("list");
    assert_eq!(
        names(&now_tags, |t| &t.name),
        ["a", "b", "c"],
        "append keeps tags"
    );

    match r.create_metadef_tags(&name, tags(&["a"]), true).await {
        Err(e) if is_dup(&e, MetadefKind::Tag, "a") => {}
        other => panic!("appending a present tag: {other:?}"),
    }
    match r.create_metadef_tags(&name, tags(&["x", "x"]), false).await {
        Err(e) if is_dup(&e, MetadefKind::Tag, "x") => {}
        other => panic!("a tag twice in one call: {other:?}"),
    }
    let now_tags = r.list_metadef_tags(&name).await.expect("list");
    assert_eq!(
        names(&now_tags, |t| &t.name),
        ["a", "b", "c"],
        "a failed bulk create changes nothing"
    );
    r.create_metadef_tags(&name, Vec::new(), false)
        .await
        .expect("empty");
    assert_eq!(
        r.list_metadef_tags(&name).await.expect("list").len(),
        3,
        "empty list: no change"
    );
}

async fn delete_contents_and_cascade(r: &dyn Registry) {
    let name = unique("cascade");
    let rt = unique("rt");
    r.create_metadef_namespace(full(&name, &rt))
        .await
        .expect("create");

    r.delete_metadef_contents(&name, MetadefKind::Tag)
        .await
        .expect("delete tags");
    let def = definition(r, &name).await;
    assert!(def.tags.is_empty(), "all tags gone");
    assert_eq!(def.properties.len(), 2, "properties stay");
    r.delete_metadef_contents(&name, MetadefKind::Object)
        .await
        .expect("delete objects");
    r.delete_metadef_contents(&name, MetadefKind::Property)
        .await
        .expect("delete props");
    let def = definition(r, &name).await;
    assert!(def.objects.is_empty() && def.properties.is_empty());
    assert_eq!(def.associations.len(), 1, "associations stay");

    let name = unique("cascade");
    r.create_metadef_namespace(full(&name, &rt))
        .await
        .expect("create");
    r.delete_metadef_namespace(&name)
        .await
        .expect("delete namespace");
    assert_eq!(r.get_metadef_namespace(&name).await.expect("get"), None);
    // A namespace created again under that name starts empty.
    r.create_metadef_namespace(MetadefDefinition::empty(namespace(&name)))
        .await
        .expect("create again");
    let def = definition(r, &name).await;
    assert!(
        def.objects.is_empty()
            && def.properties.is_empty()
            && def.tags.is_empty()
            && def.associations.is_empty(),
        "a deleted namespace's contents went with it: {def:?}"
    );
}

async fn rename_moves_contents(r: &dyn Registry) {
    let name = unique("rename");
    let rt = unique("rt");
    let created = r
        .create_metadef_namespace(full(&name, &rt))
        .await
        .expect("create");
    let new_name = unique("renamed");
    let mut ns = namespace(&new_name);
    ns.protected = true;
    ns.visibility = MetadefVisibility::Public;
    let stored = r.update_metadef_namespace(&name, ns).await.expect("rename");
    assert_eq!(
        stored.created_at, created.namespace.created_at,
        "rename keeps created_at"
    );
    assert_eq!(r.get_metadef_namespace(&name).await.expect("get"), None);
    let def = definition(r, &new_name).await;
    assert!(def.namespace.protected);
    assert_eq!(def.objects.len(), 1);
    assert_eq!(
        def.objects[0].namespace, new_name,
        "contents follow the new name"
    );
    assert_eq!(names(&def.tags, |t| &t.name), ["t1", "t2"]);
    assert_eq!(def.associations.len(), 1);
    assert!(
        r.get_metadef_object(&new_name, "o1")
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        r.get_metadef_object(&name, "o1")
            .await
            .expect("get")
            .is_none()
    );

    let other = unique("other");
    r.create_metadef_namespace(MetadefDefinition::empty(namespace(&other)))
        .await
        .expect("create other");
    match r
        .update_metadef_namespace(&new_name, namespace(&other))
        .await
    {
        Err(e) if is_dup(&e, MetadefKind::Namespace, &other) => {}
        other => panic!("renaming onto a taken name: {other:?}"),
    }
    match r
        .update_metadef_namespace(&unique("gone"), namespace(&other))
        .await
    {
        Err(RegistryError::MetadefNamespaceNotFound(_)) => {}
        other => panic!("updating a missing namespace: {other:?}"),
    }
}

async fn import_replaces(r: &dyn Registry) {
    let name = unique("import");
    let rt = unique("rt");
    let first = r
        .import_metadef_namespace(full(&name, &rt))
        .await
        .expect("import");
    let types = r.list_metadef_resource_types().await.expect("types");
    assert!(
        types.iter().any(|t| t.name == rt && t.protected),
        "an import creates protected resource types"
    );
    r.create_metadef_tag(tag(&name, "added-by-api"))
        .await
        .expect("tag");

    // The same definition again: same contents, no duplicates, created_at kept, and
    // updated_at too where nothing changed (a reload is not an update); the object changed.
    let later: Timestamp = now() + chrono::Duration::seconds(5);
    let mut again = full(&name, &rt);
    again.namespace.created_at = later;
    again.namespace.updated_at = later;
    again.objects[0].created_at = later;
    again.objects[0].updated_at = later;
    again.objects[0].description = Some("changed".into());
    again.properties[0].updated_at = later;
    r.import_metadef_namespace(again)
        .await
        .expect("import again");
    let def = definition(r, &name).await;
    assert_eq!(
        names(&def.tags, |t| &t.name),
        ["t1", "t2"],
        "the file is the truth"
    );
    assert_eq!(def.objects.len(), 1);
    assert_eq!(def.namespace.created_at, first.namespace.created_at);
    assert_eq!(def.objects[0].created_at, first.objects[0].created_at);
    assert_eq!(def.namespace.updated_at, first.namespace.updated_at);
    assert_eq!(def.properties[0].updated_at, first.properties[0].updated_at);
    assert_eq!(
        def.objects[0].updated_at, later,
        "a changed record is updated"
    );

    // A smaller definition drops what it no longer lists.
    let mut smaller = MetadefDefinition::empty(namespace(&name));
    smaller.properties = vec![property(&name, "p2")];
    r.import_metadef_namespace(smaller)
        .await
        .expect("import smaller");
    let def = definition(r, &name).await;
    assert_eq!(names(&def.properties, |p| &p.name), ["p2"]);
    assert!(def.objects.is_empty() && def.tags.is_empty() && def.associations.is_empty());
}
