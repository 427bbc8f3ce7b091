//! Listing: order, paging, sorting, markers.

use std::collections::HashMap;

use uuid::Uuid;

use super::helpers::{
    admin, admin_query, assert_err, at, create, ids, list, list_all, list_paged, new_image,
    owned_by, unique, user, with_status,
};
use super::order::{assert_order, sorted};
use glass_registry::{
    Filter, Image, ImageQuery, ImageStatus, Registry, RegistryError, SortDir, SortKey, Visibility,
};

pub(super) async fn default_order_and_paging(r: &dyn Registry) {
    let owner = unique("paging");
    let mut stored = Vec::new();
    for i in 0..60u32 {
        let mut image = new_image(&owner);
        // Groups of three share created_at exactly, so id breaks the ties.
        image.created_at = at(i64::from(i / 3), (i / 3) % 2 * 500_000);
        image.updated_at = image.created_at;
        image.name = Some(format!("img-{}", i % 5));
        if i % 2 == 0 {
            image.tags.insert("even".into());
        }
        stored.push(create(r, image).await);
    }
    let by_id: HashMap<Uuid, Image> = stored.iter().map(|i| (i.id, i.clone())).collect();

    // The owner sees its own (shared, memberless) images; filter keeps other runs out.
    let query = ImageQuery {
        viewer: user(&owner),
        filters: vec![owned_by(&[&owner])],
        ..ImageQuery::default()
    };
    let expected = sorted(&stored, &[]);
    let all = list_all(r, query.clone()).await;
    assert_order(
        &all,
        &expected,
        &[],
        "default order (created_at desc, id desc)",
    );
    for image in &all {
        assert_eq!(
            Some(image),
            by_id.get(&image.id),
            "listings return complete records"
        );
    }

    let first = list(r, query.clone()).await;
    assert_eq!(first.images.len(), 25, "the default limit is 25");
    assert!(first.more(), "25 of 60: more=true");
    assert_eq!(ids(&first.images), ids(&expected[..25]));

    for limit in [1, 7, 20, 25, 59, 60, 61, 100] {
        let paged = list_paged(r, query.clone(), limit).await;
        assert_order(
            &paged,
            &expected,
            &[],
            &format!("pages of {limit} concatenated"),
        );
    }

    // `more` exactly at the boundaries.
    for (limit, more) in [(59, true), (60, false), (61, false)] {
        let mut q = query.clone();
        q.limit = limit;
        let page = list(r, q).await;
        assert_eq!(page.images.len(), limit.min(60), "limit {limit}: page size");
        assert_eq!(page.more(), more, "limit {limit} of 60 images: more");
    }
    let mut q = query.clone();
    q.limit = 20;
    let mut flags = Vec::new();
    for _ in 0..3 {
        let page = list(r, q.clone()).await;
        flags.push((page.images.len(), page.more()));
        q.marker = page.images.last().map(|i| i.id);
    }
    assert_eq!(
        flags,
        vec![(20, true), (20, true), (20, false)],
        "three pages of 20 out of 60"
    );

    // Marker on the very last image: an empty page.
    let mut q = query.clone();
    q.marker = Some(expected[59].id);
    let page = list(r, q).await;
    assert!(
        page.images.is_empty() && !page.more(),
        "after the last image: {page:?}"
    );

    // Paging a filtered listing.
    let mut filtered = query.clone();
    filtered.filters.push(Filter::Tag("even".into()));
    let evens: Vec<Image> = expected
        .iter()
        .filter(|i| i.tags.contains("even"))
        .cloned()
        .collect();
    assert_order(
        &list_all(r, filtered.clone()).await,
        &evens,
        &[],
        "filtered listing",
    );
    assert_order(
        &list_paged(r, filtered, 4).await,
        &evens,
        &[],
        "filtered listing in pages of 4",
    );

    // Paging in ascending created_at order, where created_at ties are broken by id ascending.
    let sort = [(SortKey::CreatedAt, SortDir::Asc)];
    let mut asc = query.clone();
    asc.sort = sort.to_vec();
    let expected_asc = sorted(&stored, &sort);
    assert_order(
        &list_all(r, asc.clone()).await,
        &expected_asc,
        &sort,
        "created_at asc",
    );
    assert_order(
        &list_paged(r, asc, 6).await,
        &expected_asc,
        &sort,
        "created_at asc in pages",
    );
}

pub(super) async fn sorting(r: &dyn Registry) {
    // The tie-breakers themselves.
    let q = |sort: Vec<(SortKey, SortDir)>| ImageQuery {
        sort,
        ..ImageQuery::default()
    };
    use SortDir::{Asc, Desc};
    use SortKey::*;
    assert_eq!(q(vec![]).full_sort(), vec![(CreatedAt, Desc), (Id, Desc)]);
    assert_eq!(
        q(vec![(Name, Asc)]).full_sort(),
        vec![(Name, Asc), (CreatedAt, Asc), (Id, Asc)]
    );
    assert_eq!(
        q(vec![(Size, Desc)]).full_sort(),
        vec![(Size, Desc), (CreatedAt, Desc), (Id, Desc)]
    );
    assert_eq!(
        q(vec![(CreatedAt, Asc)]).full_sort(),
        vec![(CreatedAt, Asc), (Id, Asc)]
    );
    assert_eq!(
        q(vec![(Id, Asc)]).full_sort(),
        vec![(Id, Asc), (CreatedAt, Asc)]
    );
    assert_eq!(
        q(vec![(Name, Asc), (Status, Desc)]).full_sort(),
        vec![(Name, Asc), (Status, Desc), (CreatedAt, Desc), (Id, Desc)],
        "mixed directions: descending tie-breakers"
    );
    assert_eq!(
        q(vec![(Name, Desc), (Size, Asc)]).full_sort(),
        vec![(Name, Desc), (Size, Asc), (CreatedAt, Desc), (Id, Desc)],
        "mixed directions: descending tie-breakers"
    );
    assert_eq!(
        q(vec![(Name, Asc), (Size, Asc)]).full_sort(),
        vec![(Name, Asc), (Size, Asc), (CreatedAt, Asc), (Id, Asc)],
        "one direction throughout: tie-breakers follow it"
    );
    assert_eq!(
        q(vec![(UpdatedAt, Asc), (CreatedAt, Desc)]).full_sort(),
        vec![(UpdatedAt, Asc), (CreatedAt, Desc), (Id, Desc)]
    );

    let owner = unique("sorting");
    let names: [Option<&str>; 8] = [
        Some("alpha"),
        None,
        Some("Alpha"),
        Some("beta"),
        Some("alpha"),
        None,
        Some("é"),
        Some("alpha "),
    ];
    let statuses = [
        ImageStatus::Queued,
        ImageStatus::Active,
        ImageStatus::Saving,
        ImageStatus::Killed,
        ImageStatus::Deactivated,
    ];
    let containers = [Some("bare"), None, Some("ovf")];
    let disks = [Some("qcow2"), Some("raw"), None, Some("iso")];
    let sizes = [None, Some(10), Some(0), Some(10), Some(1 << 40), None];
    let mut stored = Vec::new();
    for i in 0..36usize {
        let mut image = new_image(&owner);
        image.name = names[i % names.len()].map(String::from);
        image.container_format = containers[i % 3].map(String::from);
        image.disk_format = disks[i % 4].map(String::from);
        image.size = sizes[i % 6];
        // created_at ties in groups of four; updated_at ties scattered.
        image.created_at = at((i / 4) as i64, 0);
        image.updated_at = at(100 + (i * 7 % 9) as i64, (i % 3) as u32 * 250_000);
        let image = create(r, image).await;
        let image = with_status(r, image, statuses[i % statuses.len()]).await;
        stored.push(image);
    }
    // Also a run of images with equal names, and one with a null name, created at one instant.
    let instant = at(50, 0);
    for i in 0..6 {
        let mut image = new_image(&owner);
        image.name = if i == 5 { None } else { Some("same".into()) };
        image.created_at = instant;
        image.updated_at = instant;
        image.size = Some(7);
        stored.push(create(r, image).await);
    }
    // Killed images are never listed (as in Glance); they sit in every index all the same.
    let stored: Vec<Image> = stored
        .into_iter()
        .filter(|i| i.status != ImageStatus::Killed)
        .collect();
    let by_id: HashMap<Uuid, Image> = stored.iter().map(|i| (i.id, i.clone())).collect();

    let mut sorts: Vec<Vec<(SortKey, SortDir)>> = Vec::new();
    for key in SortKey::ALL {
        for dir in [Asc, Desc] {
            sorts.push(vec![(key, dir)]);
        }
    }
    sorts.push(vec![(Name, Asc), (Status, Desc)]);
    sorts.push(vec![(Name, Desc), (Size, Asc)]);
    sorts.push(vec![(Name, Asc), (Size, Asc)]);
    sorts.push(vec![(Status, Desc), (Name, Desc)]);
    sorts.push(vec![(Status, Desc), (Size, Asc), (Name, Desc)]);
    sorts.push(vec![
        (DiskFormat, Asc),
        (ContainerFormat, Desc),
        (UpdatedAt, Asc),
    ]);
    sorts.push(vec![(Size, Desc), (Id, Asc)]);
    sorts.push(vec![(CreatedAt, Asc), (Name, Desc)]);
    sorts.push(vec![(UpdatedAt, Desc), (CreatedAt, Asc)]);
    sorts.push(vec![(Id, Desc), (Name, Asc)]);

    for sort in sorts {
        let mut query = admin_query(&owner);
        query.sort = sort.clone();
        let expected = sorted(&stored, &sort);
        let all = list_all(r, query.clone()).await;
        assert_order(&all, &expected, &sort, "one page");
        for image in &all {
            assert_eq!(
                Some(image),
                by_id.get(&image.id),
                "listings return complete records"
            );
        }
        for limit in [1, 4, 7] {
            let paged = list_paged(r, query.clone(), limit).await;
            assert_order(
                &paged,
                &expected,
                &sort,
                &format!("pages of {limit} concatenated"),
            );
        }
    }
}

pub(super) async fn markers(r: &dyn Registry) {
    let owner = unique("markers");
    let other = unique("markers-other");
    let mut stored = Vec::new();
    for i in 0..10 {
        let mut image = new_image(&owner);
        image.created_at = at(200 + i, 0);
        image.visibility = Visibility::Public;
        if i % 2 == 0 {
            image.tags.insert("even".into());
        }
        stored.push(create(r, image).await);
    }
    let mut hidden = new_image(&other);
    hidden.visibility = Visibility::Private;
    let hidden = create(r, hidden).await;

    let base = ImageQuery {
        viewer: user(&owner),
        filters: vec![owned_by(&[&owner, &other])],
        ..ImageQuery::default()
    };
    let expected = sorted(&stored, &[]);

    let missing = Uuid::new_v4();
    let mut q = base.clone();
    q.marker = Some(missing);
    assert_err!(
        r.list_images(q).await,
        RegistryError::MarkerNotFound(id) if id == missing,
        "a marker that does not exist"
    );

    let mut q = base.clone();
    q.marker = Some(hidden.id);
    assert_err!(
        r.list_images(q).await,
        RegistryError::MarkerNotFound(id) if id == hidden.id,
        "a marker the viewer may not see (another project's private image)"
    );
    // An admin may see it, so may use it.
    let mut q = base.clone();
    q.viewer = admin();
    q.marker = Some(hidden.id);
    let page = list(r, q).await;
    let mut with_hidden = stored.clone();
    with_hidden.push(hidden.clone());
    let expected_admin = sorted(&with_hidden, &[]);
    let pos = expected_admin
        .iter()
        .position(|i| i.id == hidden.id)
        .expect("hidden listed");
    assert_eq!(
        ids(&page.images),
        ids(&expected_admin[pos + 1..]),
        "an admin pages past another project's private image"
    );

    // A visible marker that the filters exclude still marks a position.
    let (odd_pos, odd) = expected
        .iter()
        .enumerate()
        .filter(|(_, i)| !i.tags.contains("even"))
        .nth(2)
        .expect("odd images");
    let mut q = base.clone();
    q.filters.push(Filter::Tag("even".into()));
    q.marker = Some(odd.id);
    let page = list(r, q).await;
    let after: Vec<Image> = expected[odd_pos + 1..]
        .iter()
        .filter(|i| i.tags.contains("even"))
        .cloned()
        .collect();
    assert!(!after.is_empty());
    assert_eq!(
        ids(&page.images),
        ids(&after),
        "marker excluded by the filters"
    );

    // A killed image is never listed but may still mark a position.
    let mut killed = new_image(&owner);
    killed.visibility = Visibility::Public;
    killed.created_at = at(204, 500_000);
    let killed = with_status(r, create(r, killed).await, ImageStatus::Killed).await;
    let mut q = base.clone();
    q.limit = 100;
    let listed = list(r, q.clone()).await;
    assert_eq!(
        ids(&listed.images),
        ids(&expected),
        "killed images are not listed"
    );
    q.marker = Some(killed.id);
    let page = list(r, q).await;
    let after: Vec<Image> = expected
        .iter()
        .filter(|i| i.created_at < killed.created_at)
        .cloned()
        .collect();
    assert_eq!(
        ids(&page.images),
        ids(&after),
        "paging past a killed marker"
    );

    // An image without an owner may be seen by anyone, so may mark a position.
    let mut ownerless = Image::new(Uuid::new_v4(), None);
    ownerless.visibility = Visibility::Private;
    ownerless.created_at = at(203, 500_000);
    let ownerless = create(r, ownerless).await;
    let mut q = base.clone();
    q.viewer = user(&unique("markers-stranger"));
    q.marker = Some(ownerless.id);
    let page = list(r, q).await;
    let after: Vec<Image> = expected
        .iter()
        .filter(|i| i.created_at < ownerless.created_at)
        .cloned()
        .collect();
    assert_eq!(
        ids(&page.images),
        ids(&after),
        "paging past an ownerless private image"
    );

    // A deleted marker is not found.
    let gone = &expected[5];
    r.delete_image(gone.id, gone.revision)
        .await
        .expect("delete_image");
    let mut q = base.clone();
    q.marker = Some(gone.id);
    assert_err!(
        r.list_images(q).await,
        RegistryError::MarkerNotFound(id) if id == gone.id,
        "a deleted marker"
    );
}
