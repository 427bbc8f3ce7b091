//! The sled engine against the shared registry test suite, plus what only a real engine on
//! real threads can show: durability across a reopen and compare-and-swap under contention.

use std::sync::Arc;

use glass_registry::{
    Image, ImageStatus, Member, MemberStatus, Registry, RegistryError, SledRegistry, Task,
    TaskStatus, test_suite,
};
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
