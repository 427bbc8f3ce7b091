//! Images: create, get, compare-and-swap, state machine, delete.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::helpers::{
    add_member, admin_query, assert_err, at, create, get, ids, list_all, new_image, unique, update,
    user, with_status,
};
use glass_registry::{
    Image, ImageStatus, Location, MemberStatus, MemberStatusFilter, Registry, RegistryError,
    Visibility, VisibilityScope,
};

pub(super) async fn create_and_get(r: &dyn Registry) {
    let owner = unique("crud");
    let mut image = new_image(&owner);
    image.name = Some("crud image ✓".into());
    image.visibility = Visibility::Private;
    image.protected = true;
    image.os_hidden = true;
    image.size = Some(1234);
    image.virtual_size = Some(1 << 40);
    image.checksum = Some("0123456789abcdef0123456789abcdef".into());
    image.os_hash_algo = Some("sha512".into());
    image.os_hash_value = Some("feed".into());
    image.disk_format = Some("qcow2".into());
    image.container_format = Some("bare".into());
    image.min_disk = 5;
    image.min_ram = 512;
    image.created_at = at(10, 123_456);
    image.updated_at = at(20, 654_321);
    image.tags = ["one", "two", "with space"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    image.locations = vec![
        Location {
            url: "file:///var/lib/glass/a".into(),
            metadata: BTreeMap::from([("k".to_string(), serde_json::json!({"n": [1, 2]}))]),
            store: "local".into(),
            blake3: Some("b3hash".into()),
        },
        Location {
            url: "s3://bucket/b".into(),
            metadata: BTreeMap::new(),
            store: "s3".into(),
            blake3: None,
        },
    ];
    image.properties = BTreeMap::from([
        ("os_distro".to_string(), "fedora".to_string()),
        ("empty".to_string(), String::new()),
    ]);
    image.revision = 42;

    let created = create(r, image.clone()).await;
    let mut expected = image.clone();
    expected.revision = 1;
    assert_eq!(
        created, expected,
        "create_image must return the stored image, at revision 1"
    );
    assert_eq!(
        get(r, image.id).await,
        expected,
        "get_image must return every attribute exactly as created"
    );

    // A minimal image (every optional attribute null) round-trips too.
    let minimal = Image::new(Uuid::new_v4(), None);
    let created_min = create(r, minimal.clone()).await;
    assert_eq!(created_min.revision, 1, "a new image starts at revision 1");
    let mut expected_min = minimal.clone();
    expected_min.revision = 1;
    assert_eq!(
        get(r, minimal.id).await,
        expected_min,
        "a minimal image round-trips"
    );

    // Duplicate ids are refused and leave the stored image alone.
    let mut dup = new_image(&owner);
    dup.id = image.id;
    dup.name = Some("impostor".into());
    assert_err!(
        r.create_image(dup).await,
        RegistryError::DuplicateImage(id) if id == image.id,
        "create_image with a taken id"
    );
    assert_eq!(
        get(r, image.id).await,
        expected,
        "a refused duplicate create must not change the stored image"
    );

    let missing = Uuid::new_v4();
    let got = r
        .get_image(missing)
        .await
        .expect("get_image of a missing id");
    assert!(
        got.is_none(),
        "get_image of a missing id must be None, got {got:?}"
    );

    let all: BTreeSet<Uuid> = r
        .image_ids()
        .await
        .expect("image_ids")
        .into_iter()
        .collect();
    assert!(
        all.contains(&image.id) && all.contains(&minimal.id),
        "image_ids must list new images"
    );
    assert!(!all.contains(&missing), "image_ids must not invent ids");
}

pub(super) async fn compare_and_swap(r: &dyn Registry) {
    let owner = unique("cas");
    let created = create(r, new_image(&owner)).await;
    let id = created.id;

    let mut first = created.clone();
    first.name = Some("first".into());
    first.tags.insert("t".into());
    first.properties.insert("p".into(), "v".into());
    first.updated_at = at(30, 1);
    let stored = update(r, first.clone()).await;
    let mut expected = first.clone();
    expected.revision = 2;
    assert_eq!(
        stored, expected,
        "update_image must return the new image at revision + 1"
    );
    assert_eq!(
        get(r, id).await,
        expected,
        "update_image must replace the stored image"
    );

    let mut late = created.clone();
    late.name = Some("second".into());
    assert_err!(
        r.update_image(late).await,
        RegistryError::Stale(got) if got == id,
        "update_image from an outdated revision"
    );
    let mut ahead = stored.clone();
    ahead.revision = 99;
    assert_err!(
        r.update_image(ahead).await,
        RegistryError::Stale(got) if got == id,
        "update_image from a revision that never existed"
    );
    let mut zero = stored.clone();
    zero.revision = 0;
    assert_err!(
        r.update_image(zero).await,
        RegistryError::Stale(got) if got == id,
        "update_image from revision 0"
    );
    assert_eq!(
        get(r, id).await,
        expected,
        "a refused update must change nothing"
    );

    // Every write bumps the revision by one, including one that changes nothing.
    let mut current = stored;
    for n in 0..5u64 {
        let before = current.revision;
        if n % 2 == 0 {
            current.min_ram = n;
        }
        current = update(r, current).await;
        assert_eq!(
            current.revision,
            before + 1,
            "each update bumps the revision by one"
        );
    }
    assert_eq!(get(r, id).await, current);

    let mut ghost = new_image(&owner);
    ghost.revision = 1;
    let ghost_id = ghost.id;
    assert_err!(
        r.update_image(ghost).await,
        RegistryError::ImageNotFound(got) if got == ghost_id,
        "update_image of a missing image"
    );
    assert!(
        r.get_image(ghost_id).await.expect("get").is_none(),
        "a failed update must not create"
    );
}

pub(super) async fn state_machine(r: &dyn Registry) {
    use ImageStatus::*;
    // A few transitions pinned down explicitly (Glance's state machine).
    for (from, to, allowed) in [
        (Queued, Saving, true),
        (Queued, Active, true),
        (Queued, Importing, true),
        (Saving, Active, true),
        (Saving, Queued, true),
        (Active, Deactivated, true),
        (Deactivated, Active, true),
        (Active, PendingDelete, true),
        (Active, Queued, false),
        (Active, Saving, false),
        (Killed, Active, false),
        (Killed, Queued, false),
        (Deleted, Queued, false),
        (Deleted, Active, false),
        (Deactivated, Queued, false),
        (Active, Active, true),
        (Deleted, Deleted, true),
    ] {
        assert_eq!(from.can_become(to), allowed, "can_become({from} -> {to})");
    }

    // The engine enforces exactly `can_become`, for every pair.
    let owner = unique("states");
    for from in ImageStatus::ALL {
        for to in ImageStatus::ALL {
            let image = with_status(r, create(r, new_image(&owner)).await, from).await;
            let mut next = image.clone();
            next.status = to;
            next.name = Some(format!("{from}->{to}"));
            let result = r.update_image(next).await;
            if from.can_become(to) {
                let stored = result.unwrap_or_else(|e| {
                    panic!("update_image {from} -> {to} is allowed but failed: {e:?}")
                });
                assert_eq!(stored.status, to, "{from} -> {to}: stored status");
                assert_eq!(
                    stored.revision,
                    image.revision + 1,
                    "{from} -> {to}: revision"
                );
                assert_eq!(
                    get(r, image.id).await.status,
                    to,
                    "{from} -> {to}: status kept"
                );
            } else {
                assert_err!(
                    result,
                    RegistryError::InvalidTransition { from: f, to: t } if f == from && t == to,
                    "update_image {from} -> {to} must be refused"
                );
                assert_eq!(
                    get(r, image.id).await,
                    image,
                    "a refused transition {from} -> {to} must change nothing"
                );
            }
        }
    }

    // A refused transition does not consume the revision.
    let image = with_status(r, create(r, new_image(&owner)).await, Active).await;
    let mut back = image.clone();
    back.status = Queued;
    assert_err!(
        r.update_image(back).await,
        RegistryError::InvalidTransition {
            from: Active,
            to: Queued
        },
        "active -> queued"
    );
    let mut deactivate = image.clone();
    deactivate.status = Deactivated;
    let stored = update(r, deactivate).await;
    assert_eq!(
        stored.revision,
        image.revision + 1,
        "revision after a refused transition"
    );
}

pub(super) async fn delete(r: &dyn Registry) {
    let owner = unique("delete");
    let m1 = unique("delete-member");
    let m2 = unique("delete-member");
    let mut image = new_image(&owner);
    image.visibility = Visibility::Shared;
    let image = create(r, image).await;
    let id = image.id;
    add_member(r, id, &m1, MemberStatus::Accepted).await;
    add_member(r, id, &m2, MemberStatus::Pending).await;
    let current = get(r, id).await;

    for wrong in [current.revision + 1, 0] {
        assert_err!(
            r.delete_image(id, wrong).await,
            RegistryError::Stale(got) if got == id,
            "delete_image with revision {wrong} (stored {})", current.revision
        );
    }
    assert_eq!(
        get(r, id).await,
        current,
        "a refused delete must keep the image"
    );
    assert_eq!(
        r.list_members(id).await.expect("list_members").len(),
        2,
        "and its members"
    );
    assert_eq!(
        ids(&list_all(r, admin_query(&owner)).await),
        vec![id],
        "a refused delete keeps the image listed"
    );

    r.delete_image(id, current.revision)
        .await
        .unwrap_or_else(|e| panic!("delete_image at the stored revision failed: {e:?}"));
    assert!(
        r.get_image(id).await.expect("get").is_none(),
        "a deleted image is gone"
    );
    assert!(
        !r.image_ids().await.expect("image_ids").contains(&id),
        "image_ids must not list a deleted image"
    );
    assert!(
        list_all(r, admin_query(&owner)).await.is_empty(),
        "a deleted image is not listed"
    );
    for m in [&m1, &m2] {
        let got = r.get_member(id, m).await.expect("get_member");
        assert!(
            got.is_none(),
            "deleting an image must delete its members, found {got:?}"
        );
    }
    assert!(
        r.list_members(id).await.expect("list_members").is_empty(),
        "no members remain"
    );
    let mut as_member = admin_query(&owner);
    as_member.viewer = user(&m1);
    as_member.visibility = VisibilityScope::Default;
    as_member.member_status = MemberStatusFilter::All;
    assert!(
        list_all(r, as_member).await.is_empty(),
        "a former member lists nothing"
    );

    assert_err!(
        r.delete_image(id, current.revision).await,
        RegistryError::ImageNotFound(got) if got == id,
        "deleting a deleted image"
    );
    let missing = Uuid::new_v4();
    assert_err!(
        r.delete_image(missing, 1).await,
        RegistryError::ImageNotFound(got) if got == missing,
        "deleting a missing image"
    );

    // The id can be used again, and the new image inherits nothing.
    let mut again = new_image(&owner);
    again.id = id;
    let again = create(r, again).await;
    assert_eq!(again.revision, 1, "a re-created image starts at revision 1");
    assert!(
        r.list_members(id).await.expect("list_members").is_empty(),
        "a re-created image must not inherit the old image's members"
    );
}
