//! The sled engine against the shared registry test suite, plus what only a real engine on
//! real threads can show: durability across a reopen and compare-and-swap under contention.

use std::sync::Arc;

use glass_registry::{
    Image, ImageStatus, Member, MemberStatus, Registry, RegistryError, SledRegistry, Task,
    TaskStatus,
};
use glass_registry_testing::test_suite;
use tokio::sync::Barrier;
use uuid::Uuid;

fn open(dir: &tempfile::TempDir) -> SledRegistry {
    SledRegistry::open(dir.path()).expect("open sled registry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_passes_the_registry_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(&dir);
    test_suite::run(&registry).await;
}

/// sled cannot change compression on a registry it made: one made without (all made before
/// compression was the default) opens with the default options and keeps its records; one
/// made with it reads back the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_open_whatever_their_compression() {
    for made_compressed in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = glass_registry::SledOptions {
            compression: made_compressed,
            ..Default::default()
        };
        let mut image = Image::new(Uuid::new_v4(), Some("compression".into()));
        image.name = Some("x".repeat(4000));
        {
            let registry = SledRegistry::open_with(dir.path(), &options).expect("made");
            registry.create_image(image.clone()).await.expect("create");
        }
        let conf = std::fs::read(dir.path().join("conf")).expect("sled's conf");
        let conf = String::from_utf8_lossy(&conf);
        assert!(
            conf.contains(&format!("use_compression: {made_compressed}")),
            "{conf}"
        );
        let registry = open(&dir);
        let read = registry
            .get_image(image.id)
            .await
            .expect("get")
            .expect("kept");
        assert_eq!(read.name, image.name);
    }
}

/// A registry whose `conf` was lost is refused, not taken for a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_without_its_conf_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let registry = open(&dir);
        let image = Image::new(Uuid::new_v4(), Some("conf".into()));
        registry.create_image(image).await.expect("create");
    }
    std::fs::remove_file(dir.path().join("conf")).expect("remove conf");
    let refused = SledRegistry::open(dir.path()).err().expect("refused");
    assert!(refused.to_string().contains("conf"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let owner = format!("reopen-{}", Uuid::new_v4().simple());
    let member_id = format!("reopen-member-{}", Uuid::new_v4().simple());

    let (image, member, task) = {
        let registry = open(&dir);
        let mut image = Image::new(Uuid::new_v4(), Some(owner.clone()));
        image.name = Some("kept".into());
        image.tags.insert("durable".into());
        image.properties.insert("k".into(), "v".into());
        let image = registry.create_image(image).await.expect("create_image");
        let mut active = image.clone();
        active.status = ImageStatus::Active;
        active.size = Some(42);
        registry.update_image(active).await.expect("update_image");
        let member = Member {
            image_id: image.id,
            member_id: member_id.clone(),
            status: MemberStatus::Accepted,
            created_at: glass_registry::now(),
            updated_at: glass_registry::now(),
        };
        let member = registry.add_member(member).await.expect("add_member");
        let task = Task {
            id: Uuid::new_v4(),
            task_type: "import".into(),
            status: TaskStatus::Processing,
            owner: Some(owner.clone()),
            image_id: Some(image.id),
            user_id: None,
            request_id: None,
            input: serde_json::json!({"k": "v"}),
            result: None,
            message: String::new(),
            expires_at: None,
            created_at: glass_registry::now(),
            updated_at: glass_registry::now(),
            revision: 0,
        };
        let task = registry.create_task(task).await.expect("create_task");
        let image = registry
            .get_image(image.id)
            .await
            .expect("get")
            .expect("image");
        (image, member, task)
        // `registry` is dropped here, closing the database.
    };

    let registry = open(&dir);
    assert_eq!(
        registry.get_image(image.id).await.expect("get_image"),
        Some(image.clone()),
        "the image must survive a reopen unchanged"
    );
    assert_eq!(
        registry
            .get_member(image.id, &member_id)
            .await
            .expect("get_member"),
        Some(member.clone()),
        "the member must survive a reopen"
    );
    assert_eq!(
        registry.list_members(image.id).await.expect("list_members"),
        vec![member]
    );
    assert_eq!(
        registry.get_task(task.id).await.expect("get_task"),
        Some(task.clone()),
        "the task must survive a reopen"
    );
    assert_eq!(
        registry
            .list_tasks(Some(image.id))
            .await
            .expect("list_tasks"),
        vec![task]
    );
    assert!(
        registry
            .image_ids()
            .await
            .expect("image_ids")
            .contains(&image.id)
    );

    // The indexes survive too: the image is listed, in a sorted listing, to its member.
    let query = glass_registry::ImageQuery {
        viewer: glass_registry::Viewer {
            project: Some(member_id.clone()),
            is_admin: false,
        },
        filters: vec![glass_registry::Filter::Tag("durable".into())],
        sort: vec![(glass_registry::SortKey::Size, glass_registry::SortDir::Asc)],
        ..Default::default()
    };
    let page = registry.list_images(query).await.expect("list_images");
    assert_eq!(page.images, vec![image.clone()], "listing after a reopen");

    // And revisions carry on where they were.
    let mut next = image.clone();
    next.name = Some("still here".into());
    let next = registry
        .update_image(next)
        .await
        .expect("update after reopen");
    assert_eq!(next.revision, image.revision + 1);
    assert!(matches!(
        registry.update_image(image.clone()).await,
        Err(RegistryError::Stale(id)) if id == image.id
    ));
}

/// Runs `attempts` (each an image to write) on spawned tasks released together, and returns
/// their results in order.
async fn race(
    registry: &Arc<SledRegistry>,
    attempts: Vec<Image>,
) -> Vec<glass_registry::Result<Image>> {
    let barrier = Arc::new(Barrier::new(attempts.len()));
    let handles: Vec<_> = attempts
        .into_iter()
        .map(|attempt| {
            let registry = registry.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                registry.update_image(attempt).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("writer task panicked"));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_from_one_revision_have_one_winner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Arc::new(open(&dir));
    let owner = format!("race-{}", Uuid::new_v4().simple());

    for round in 0..20 {
        // Eight writers on one image from one revision.
        let image = registry
            .create_image(Image::new(Uuid::new_v4(), Some(owner.clone())))
            .await
            .expect("create_image");
        let attempts = (0..8)
            .map(|i| {
                let mut attempt = image.clone();
                attempt.name = Some(format!("writer-{i}"));
                attempt
            })
            .collect();
        let results = race(&registry, attempts).await;
        let winners: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one writer wins: {results:?}"
        );
        for (i, result) in results.iter().enumerate() {
            if i != winners[0] {
                assert!(
                    matches!(result, Err(RegistryError::Stale(id)) if *id == image.id),
                    "round {round}: writer {i} must get Stale, got {result:?}"
                );
            }
        }
        let stored = registry
            .get_image(image.id)
            .await
            .expect("get")
            .expect("image");
        assert_eq!(
            stored.name,
            Some(format!("writer-{}", winners[0])),
            "round {round}"
        );
        assert_eq!(
            stored.revision,
            image.revision + 1,
            "round {round}: one write"
        );

        // Two uploads starting at once: queued -> saving from one revision.
        let image = registry
            .create_image(Image::new(Uuid::new_v4(), Some(owner.clone())))
            .await
            .expect("create_image");
        let attempts = (0..2)
            .map(|_| {
                let mut attempt = image.clone();
                attempt.status = ImageStatus::Saving;
                attempt
            })
            .collect();
        let results = race(&registry, attempts).await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let stale = results
            .iter()
            .filter(|r| matches!(r, Err(RegistryError::Stale(id)) if *id == image.id))
            .count();
        assert_eq!(
            (ok, stale),
            (1, 1),
            "round {round}: queued -> saving race: {results:?}"
        );
        let stored = registry
            .get_image(image.id)
            .await
            .expect("get")
            .expect("image");
        assert_eq!(stored.status, ImageStatus::Saving);
        assert_eq!(stored.revision, image.revision + 1);
    }
}

fn md_namespace(name: &str) -> glass_registry::MetadefNamespace {
    let t = glass_registry::now();
    glass_registry::MetadefNamespace {
        namespace: name.to_string(),
        display_name: None,
        description: None,
        visibility: glass_registry::MetadefVisibility::Public,
        protected: false,
        owner: None,
        created_at: t,
        updated_at: t,
    }
}

fn md_tag(ns: &str, name: &str) -> glass_registry::MetadefTag {
    let t = glass_registry::now();
    glass_registry::MetadefTag {
        namespace: ns.to_string(),
        name: name.to_string(),
        created_at: t,
        updated_at: t,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadefs_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("reopen-md-{}", Uuid::new_v4().simple());
    let stored = {
        let registry = open(&dir);
        let mut def = glass_registry::MetadefDefinition::empty(md_namespace(&name));
        def.tags.push(md_tag(&name, "kept"));
        registry
            .create_metadef_namespace(def)
            .await
            .expect("create namespace");
        registry
            .get_metadef_definition(&name)
            .await
            .expect("get")
            .expect("definition")
    };
    let registry = open(&dir);
    assert_eq!(
        registry.get_metadef_definition(&name).await.expect("get"),
        Some(stored),
        "a namespace and its contents survive a reopen"
    );
}

/// Tags written while their namespace is deleted (and created again) never outlive it: the
/// delete lists the contents, then commits only if no write touched the namespace since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_delete_racing_content_writes_leaves_no_orphans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Arc::new(open(&dir));
    let name = format!("race-md-{}", Uuid::new_v4().simple());
    for round in 0..20 {
        registry
            .create_metadef_namespace(glass_registry::MetadefDefinition::empty(md_namespace(
                &name,
            )))
            .await
            .expect("create namespace");
        let barrier = Arc::new(Barrier::new(5));
        let mut writers = Vec::new();
        for w in 0..4 {
            let (registry, barrier, name) = (registry.clone(), barrier.clone(), name.clone());
            writers.push(tokio::spawn(async move {
                barrier.wait().await;
                for i in 0..10 {
                    // Fails once the namespace is gone; that is expected.
                    let _ = registry
                        .create_metadef_tag(md_tag(&name, &format!("t{w}-{i}")))
                        .await;
                }
            }));
        }
        barrier.wait().await;
        registry
            .delete_metadef_namespace(&name)
            .await
            .expect("delete namespace");
        for writer in writers {
            writer.await.expect("writer");
        }
        // Created again, the namespace must start empty.
        registry
            .create_metadef_namespace(glass_registry::MetadefDefinition::empty(md_namespace(
                &name,
            )))
            .await
            .expect("create again");
        let tags = registry.list_metadef_tags(&name).await.expect("tags");
        assert!(tags.is_empty(), "round {round}: orphaned tags {tags:?}");
        registry
            .delete_metadef_namespace(&name)
            .await
            .expect("clean up");
    }
}

/// A query no index serves (a size range matching three images at the far end of the order)
/// spends its budget, answers with a `next` marker, and a client following the markers
/// finds exactly the matches: bounded pages, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unindexed_queries_stop_at_their_budget_and_resume() {
    use glass_registry::{Filter, ImageQuery, Viewer, VisibilityScope};
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(&dir);
    const N: usize = 1500;
    let mut wanted = Vec::new();
    for i in 0..N {
        let mut image = Image::new(Uuid::new_v4(), Some("budget".into()));
        image.created_at = glass_registry::now() - chrono::Duration::seconds((N - i) as i64);
        // The oldest three images (last in the default, newest-first order) are large.
        image.size = Some(if i < 3 { 1 << 40 } else { i as u64 });
        if i < 3 {
            wanted.push(image.id);
        }
        registry.create_image(image).await.expect("create");
    }
    let mut query = ImageQuery {
        viewer: Viewer {
            project: None,
            is_admin: true,
        },
        visibility: VisibilityScope::All,
        filters: vec![Filter::SizeMin(1 << 40)],
        limit: 20,
        budget: 200,
        ..ImageQuery::default()
    };
    let mut found = Vec::new();
    let mut pages = 0;
    loop {
        let page = registry.list_images(query.clone()).await.expect("list");
        pages += 1;
        // An empty page is worth a second budget (clients may stop at one).
        assert!(
            page.examined <= 2 * query.budget + 2,
            "page {pages} spent {} of a budget of {}",
            page.examined,
            query.budget
        );
        found.extend(page.images.iter().map(|i| i.id));
        match page.next {
            Some(next) => query.marker = Some(next),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    wanted.reverse();
    assert_eq!(
        found, wanted,
        "the pages together hold exactly the matches, in order"
    );
    assert!(
        pages >= N / 400,
        "{pages} pages: the budget did not bound the work of each"
    );
}

/// A registry written by the first layout (JSON records, one sort tree per key, a by-project
/// member tree, no layout mark) is upgraded on open: its images are listed through the new
/// index, filters and members included, and the old trees are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_one_registry_is_upgraded_on_open() {
    use glass_registry::{Filter, ImageQuery, TextField, Viewer, VisibilityScope};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut images = Vec::new();
    {
        let db = sled::open(dir.path()).expect("sled");
        let tree = db.open_tree("images").unwrap();
        let members = db.open_tree("members").unwrap();
        db.open_tree("image_sort:name")
            .unwrap()
            .insert(b"stale", &[])
            .unwrap();
        db.open_tree("members_by_project")
            .unwrap()
            .insert(b"stale", &[])
            .unwrap();
        for i in 0..50 {
            let mut image = Image::new(Uuid::new_v4(), Some("old".into()));
            image.name = Some(format!("old-{}", i % 5));
            image.visibility = glass_registry::Visibility::Shared;
            image.tags.insert(format!("t{}", i % 2));
            image.revision = 1;
            let mut bytes = vec![1u8];
            bytes.extend(serde_json::to_vec(&image).unwrap());
            tree.insert(image.id.as_bytes(), bytes).unwrap();
            if i == 7 {
                let member = Member {
                    image_id: image.id,
                    member_id: "guest".into(),
                    status: MemberStatus::Accepted,
                    created_at: glass_registry::now(),
                    updated_at: glass_registry::now(),
                };
                let mut key = image.id.as_bytes().to_vec();
                key.extend_from_slice(b"guest");
                let mut bytes = vec![1u8];
                bytes.extend(serde_json::to_vec(&member).unwrap());
                members.insert(key, bytes).unwrap();
            }
            images.push(image);
        }
        db.flush().unwrap();
    }
    let registry = open(&dir);
    let admin = Viewer {
        project: None,
        is_admin: true,
    };
    let by_name = ImageQuery {
        viewer: admin.clone(),
        visibility: VisibilityScope::All,
        filters: vec![Filter::Text {
            field: TextField::Name,
            values: vec!["old-3".into()],
        }],
        limit: 100,
        ..ImageQuery::default()
    };
    let page = registry.list_images(by_name).await.expect("list");
    assert_eq!(page.images.len(), 10, "old-3 names ten images");
    assert!(
        page.images
            .iter()
            .all(|i| i.name.as_deref() == Some("old-3"))
    );
    let tagged = ImageQuery {
        viewer: admin,
        visibility: VisibilityScope::All,
        filters: vec![Filter::Tag("t1".into())],
        limit: 100,
        ..ImageQuery::default()
    };
    assert_eq!(registry.list_images(tagged).await.unwrap().images.len(), 25);
    let guest = ImageQuery {
        viewer: Viewer {
            project: Some("guest".into()),
            is_admin: false,
        },
        limit: 100,
        ..ImageQuery::default()
    };
    let shared: Vec<Uuid> = registry
        .list_images(guest)
        .await
        .unwrap()
        .images
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(
        shared,
        vec![images[7].id],
        "the member sees the image shared with it"
    );
    // Records still read one by one, and a write works on the upgraded layout.
    let mut one = registry
        .get_image(images[0].id)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(one, images[0]);
    one.name = Some("renamed".into());
    registry.update_image(one).await.expect("update");
    drop(registry);
    let db = sled::open(dir.path()).expect("reopen raw");
    let names: Vec<String> = db
        .tree_names()
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("image_sort:") || n == "members_by_project"),
        "old trees remain: {names:?}"
    );
}

fn public_image(owner: &str, n: usize, of: usize) -> Image {
    let mut image = Image::new(Uuid::new_v4(), Some(owner.into()));
    image.created_at = glass_registry::now() - chrono::Duration::seconds((of - n) as i64);
    image.visibility = glass_registry::Visibility::Public;
    image
}

/// Two filters that never meet, over a scope that holds everything (a non-admin in a
/// mostly public catalogue): each page still moves the walk a budget's worth forward, so a
/// client following `next` finishes in about catalogue ÷ budget requests, not one per image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disjoint_filters_page_forward_a_budget_at_a_time() {
    use glass_registry::{Filter, ImageQuery, Viewer};
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(&dir);
    const N: usize = 1200;
    for i in 0..N {
        let mut image = public_image("others", i, N);
        image.tags.insert(if i % 2 == 0 { "a" } else { "b" }.into());
        registry.create_image(image).await.expect("create");
    }
    let mut query = ImageQuery {
        viewer: Viewer {
            project: Some("viewer".into()),
            is_admin: false,
        },
        filters: vec![Filter::Tag("a".into()), Filter::Tag("b".into())],
        limit: 20,
        budget: 200,
        ..ImageQuery::default()
    };
    let mut pages = 0;
    loop {
        let page = registry.list_images(query.clone()).await.expect("list");
        pages += 1;
        assert!(page.images.is_empty(), "no image carries both tags");
        assert!(
            page.examined <= 3 * query.budget + 10,
            "{} units",
            page.examined
        );
        match page.next {
            Some(next) => query.marker = Some(next),
            None => break,
        }
        assert!(
            pages <= 150,
            "{pages} pages for {N} images: the walk crawls"
        );
    }
}

/// A sort whose groups of equal values must be sorted whole (mixed directions) over one huge
/// group is refused with `TooCostly` after a bounded amount of work, not walked entire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sort_group_beyond_the_budget_is_refused() {
    use glass_registry::{ImageQuery, SortDir, SortKey, Viewer, VisibilityScope};
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(&dir);
    for i in 0..900 {
        let mut image = Image::new(Uuid::new_v4(), Some("p".into()));
        image.name = Some(format!("n{i:04}"));
        registry.create_image(image).await.expect("create");
    }
    let query = ImageQuery {
        viewer: Viewer {
            project: None,
            is_admin: true,
        },
        visibility: VisibilityScope::All,
        sort: vec![
            (SortKey::Status, SortDir::Asc),
            (SortKey::Name, SortDir::Desc),
        ],
        limit: 10,
        budget: 100,
        ..ImageQuery::default()
    };
    match registry.list_images(query.clone()).await {
        Err(RegistryError::TooCostly(_)) => {}
        other => panic!("expected TooCostly, got {other:?}"),
    }
    // With a budget that covers the group, the same sort answers, in order.
    let page = registry
        .list_images(ImageQuery {
            budget: 10_000,
            ..query
        })
        .await
        .expect("list");
    let names: Vec<_> = page
        .images
        .iter()
        .map(|i| i.name.clone().unwrap())
        .collect();
    assert_eq!(names[0], "n0899");
    assert_eq!(names[9], "n0890");
}

/// A membership of an image that is no longer shared leaves nothing for the member's
/// listings to walk: they stay cheap and empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_of_unshared_images_are_not_walked() {
    use glass_registry::{ImageQuery, MemberStatusFilter, Viewer, Visibility, VisibilityScope};
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(&dir);
    for i in 0..300 {
        let mut image = Image::new(Uuid::new_v4(), Some("owner".into()));
        image.visibility = Visibility::Shared;
        let image = registry.create_image(image).await.expect("create");
        registry
            .add_member(Member {
                image_id: image.id,
                member_id: "guest".into(),
                status: if i % 2 == 0 {
                    MemberStatus::Pending
                } else {
                    MemberStatus::Accepted
                },
                created_at: glass_registry::now(),
                updated_at: glass_registry::now(),
            })
            .await
            .expect("member");
        let mut private = registry.get_image(image.id).await.unwrap().unwrap();
        private.visibility = Visibility::Private;
        registry.update_image(private).await.expect("unshare");
    }
    let query = ImageQuery {
        viewer: Viewer {
            project: Some("guest".into()),
            is_admin: false,
        },
        visibility: VisibilityScope::Only(Visibility::Shared),
        member_status: MemberStatusFilter::All,
        limit: 20,
        budget: 50,
        ..ImageQuery::default()
    };
    let page = registry.list_images(query).await.expect("list");
    assert!(page.images.is_empty() && page.next.is_none());
    assert!(page.examined <= 10, "{} units for nothing", page.examined);
}
