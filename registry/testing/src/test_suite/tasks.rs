//! Tasks: create, get, update, list (per image too).

use std::collections::BTreeSet;

use uuid::Uuid;

use super::helpers::{assert_err, at, create, new_image, unique};
use glass_registry::{Registry, RegistryError, Task, TaskStatus, Timestamp};

fn new_task(owner: &str, image: Option<Uuid>, created_at: Timestamp) -> Task {
    Task {
        id: Uuid::new_v4(),
        task_type: "import".into(),
        status: TaskStatus::Pending,
        owner: Some(owner.to_string()),
        image_id: image,
        user_id: Some("user".into()),
        request_id: Some("req-1".into()),
        input: serde_json::json!({"import_from": "http://example.com/x", "n": 1}),
        result: None,
        message: String::new(),
        expires_at: None,
        created_at,
        updated_at: created_at,
        revision: 0,
    }
}

async fn create_task(r: &dyn Registry, task: Task) -> Task {
    let id = task.id;
    r.create_task(task)
        .await
        .unwrap_or_else(|e| panic!("create_task({id}) failed: {e:?}"))
}

pub(super) async fn tasks(r: &dyn Registry) {
    let owner = unique("tasks");
    let image = create(r, new_image(&owner)).await.id;
    let other_image = create(r, new_image(&owner)).await.id;

    let task = new_task(&owner, Some(image), at(1, 0));
    let created = create_task(r, task.clone()).await;
    let mut expected = task.clone();
    expected.revision = 1;
    assert_eq!(
        created, expected,
        "create_task returns the task at revision 1"
    );
    assert_eq!(
        r.get_task(task.id).await.expect("get_task"),
        Some(expected.clone())
    );
    assert_eq!(
        r.get_task(Uuid::new_v4()).await.expect("get_task"),
        None,
        "missing task"
    );

    let mut next = created.clone();
    next.status = TaskStatus::Success;
    next.result = Some(serde_json::json!({"image_id": image.to_string()}));
    next.message = "done".into();
    next.expires_at = Some(at(86_400, 0));
    next.updated_at = at(5, 0);
    let stored = r.update_task(next.clone()).await.expect("update_task");
    let mut expected = next.clone();
    expected.revision = 2;
    assert_eq!(
        stored, expected,
        "update_task returns the task at revision + 1"
    );
    assert_eq!(
        r.get_task(task.id).await.expect("get_task"),
        Some(expected.clone())
    );

    let mut late = created.clone();
    late.status = TaskStatus::Failure;
    assert_err!(
        r.update_task(late).await,
        RegistryError::Stale(id) if id == task.id,
        "update_task from an outdated revision"
    );
    let mut ahead = stored.clone();
    ahead.revision = 7;
    assert_err!(
        r.update_task(ahead).await,
        RegistryError::Stale(id) if id == task.id,
        "update_task from a revision that never existed"
    );
    assert_eq!(
        r.get_task(task.id).await.expect("get_task"),
        Some(expected.clone()),
        "a refused task update changes nothing"
    );
    let ghost = new_task(&owner, None, at(1, 0));
    let ghost_id = ghost.id;
    assert_err!(
        r.update_task(ghost).await,
        RegistryError::TaskNotFound(id) if id == ghost_id,
        "update_task of a missing task"
    );
    assert_eq!(
        r.get_task(ghost_id).await.expect("get_task"),
        None,
        "no upsert"
    );

    // Listing: by image, newest first.
    let t2 = create_task(r, new_task(&owner, Some(image), at(3, 0))).await;
    let t3 = create_task(r, new_task(&owner, Some(image), at(2, 0))).await;
    let t4 = create_task(r, new_task(&owner, Some(other_image), at(4, 0))).await;
    let t5 = create_task(r, new_task(&owner, None, at(5, 0))).await;
    let of_image = r.list_tasks(Some(image)).await.expect("list_tasks(image)");
    assert_eq!(
        of_image.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![t2.id, t3.id, task.id],
        "list_tasks(image): that image's tasks, newest first"
    );
    assert_eq!(of_image[2], expected, "list_tasks returns current records");
    let of_other = r
        .list_tasks(Some(other_image))
        .await
        .expect("list_tasks(other)");
    assert_eq!(of_other, vec![t4.clone()], "list_tasks(other image)");
    let of_none = r
        .list_tasks(Some(Uuid::new_v4()))
        .await
        .expect("list_tasks(missing)");
    assert!(of_none.is_empty(), "list_tasks of an image without tasks");

    let ours: BTreeSet<Uuid> = [task.id, t2.id, t3.id, t4.id, t5.id].into_iter().collect();
    let all: Vec<Uuid> = r
        .list_tasks(None)
        .await
        .expect("list_tasks(None)")
        .into_iter()
        .map(|t| t.id)
        .filter(|id| ours.contains(id))
        .collect();
    assert_eq!(
        all,
        vec![t5.id, t4.id, t2.id, t3.id, task.id],
        "list_tasks(None): every task, newest first"
    );
}

/// `list_tasks(Some(image))` lists the tasks whose `image_id` is that image now, also after
/// an update changed it.
pub(super) async fn task_image_follows_updates(r: &dyn Registry) {
    let owner = unique("task-images");
    let a = create(r, new_image(&owner)).await.id;
    let b = create(r, new_image(&owner)).await.id;

    let unbound = create_task(r, new_task(&owner, None, at(1, 0))).await;
    let mut bound = unbound.clone();
    bound.image_id = Some(a);
    let bound = r.update_task(bound).await.expect("update_task");
    let listed = r.list_tasks(Some(a)).await.expect("list_tasks");
    assert_eq!(
        listed,
        vec![bound.clone()],
        "a task whose image_id was set by update_task must be listed under that image"
    );

    let mut moved = bound.clone();
    moved.image_id = Some(b);
    let moved = r.update_task(moved).await.expect("update_task");
    for (image, want) in [(a, vec![]), (b, vec![moved.clone()])] {
        let listed = r.list_tasks(Some(image)).await.expect("list_tasks");
        assert!(
            listed.iter().all(|t| t.image_id == Some(image)),
            "list_tasks({image}) returned a task of another image: {listed:?}"
        );
        assert_eq!(
            listed, want,
            "list_tasks({image}) after the task moved from {a} to {b}"
        );
    }
}
