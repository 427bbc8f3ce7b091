//! The behaviour every registry engine must show. [`run`] exercises a [`Registry`] through its
//! public trait only and panics, with a message naming the broken rule, at the first
//! deviation.
//!
//! The suite may run against a database other runs share: every check creates its own
//! uniquely named owners, members and images, and every listing is filtered down to them, so
//! nothing assumes an empty registry and nothing is cleaned up.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use chrono::DateTime;
use uuid::Uuid;

use crate::{
    Comparison, Filter, Image, ImagePage, ImageQuery, ImageStatus, Location, Member, MemberStatus,
    MemberStatusFilter, Registry, RegistryError, Result, SortDir, SortKey, Task, TaskStatus,
    TextField, TimeField, Timestamp, Viewer, Visibility, VisibilityScope,
};

/// Runs every check against `registry`.
pub async fn run(registry: &dyn Registry) {
    create_and_get(registry).await;
    compare_and_swap(registry).await;
    state_machine(registry).await;
    delete(registry).await;
    members(registry).await;
    concurrent_writes(registry).await;
    default_order_and_paging(registry).await;
    sorting(registry).await;
    markers(registry).await;
    filters(registry).await;
    time_filters(registry).await;
    visibility(registry).await;
    tasks(registry).await;
    task_image_follows_updates(registry).await;
    crate::test_suite_metadef::run(registry).await;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Asserts that `$res` is an error matching the pattern (and guard).
macro_rules! assert_err {
    ($res:expr, $pat:pat $(if $guard:expr)?, $($msg:tt)+) => {
        match $res {
            Err($pat) $(if $guard)? => {}
            Err(e) => panic!(
                "{}: expected error {}, got {e:?}",
                format!($($msg)+),
                stringify!($pat $(if $guard)?)
            ),
            Ok(v) => panic!(
                "{}: expected error {}, got Ok({v:?})",
                format!($($msg)+),
                stringify!($pat $(if $guard)?)
            ),
        }
    };
}

/// A name no other run uses.
fn unique(label: &str) -> String {
    format!("suite-{label}-{}", Uuid::new_v4().simple())
}

/// A fixed point in time plus `secs` seconds and `micros` microseconds.
fn at(secs: i64, micros: u32) -> Timestamp {
    DateTime::from_timestamp(1_600_000_000 + secs, micros * 1000).expect("valid timestamp")
}

fn new_image(owner: &str) -> Image {
    Image::new(Uuid::new_v4(), Some(owner.to_string()))
}

async fn create(r: &dyn Registry, image: Image) -> Image {
    let id = image.id;
    r.create_image(image)
        .await
        .unwrap_or_else(|e| panic!("create_image({id}) failed: {e:?}"))
}

async fn get(r: &dyn Registry, id: Uuid) -> Image {
    r.get_image(id)
        .await
        .unwrap_or_else(|e| panic!("get_image({id}) failed: {e:?}"))
        .unwrap_or_else(|| panic!("get_image({id}): image is missing"))
}

async fn update(r: &dyn Registry, image: Image) -> Image {
    let (id, rev, status) = (image.id, image.revision, image.status);
    r.update_image(image)
        .await
        .unwrap_or_else(|e| panic!("update_image({id}, revision {rev}, to {status}) failed: {e:?}"))
}

/// The shortest chain of allowed transitions from `queued` to `status` (after `queued`).
fn path_to(status: ImageStatus) -> Vec<ImageStatus> {
    let mut paths: HashMap<ImageStatus, Vec<ImageStatus>> =
        HashMap::from([(ImageStatus::Queued, Vec::new())]);
    let mut frontier = vec![ImageStatus::Queued];
    while !frontier.is_empty() && !paths.contains_key(&status) {
        let mut next = Vec::new();
        for from in frontier {
            for to in ImageStatus::ALL {
                if from.can_become(to) && !paths.contains_key(&to) {
                    let mut path = paths[&from].clone();
                    path.push(to);
                    paths.insert(to, path);
                    next.push(to);
                }
            }
        }
        frontier = next;
    }
    paths
        .remove(&status)
        .unwrap_or_else(|| panic!("status {status} cannot be reached from queued"))
}

/// Moves a queued image to `status` through allowed transitions.
async fn with_status(r: &dyn Registry, mut image: Image, status: ImageStatus) -> Image {
    assert_eq!(
        image.status,
        ImageStatus::Queued,
        "with_status starts from queued"
    );
    for s in path_to(status) {
        image.status = s;
        image = update(r, image).await;
    }
    assert_eq!(image.status, status);
    image
}

async fn add_member(r: &dyn Registry, image: Uuid, member: &str, status: MemberStatus) -> Member {
    let m = Member {
        image_id: image,
        member_id: member.to_string(),
        status,
        created_at: crate::now(),
        updated_at: crate::now(),
    };
    r.add_member(m.clone())
        .await
        .unwrap_or_else(|e| panic!("add_member({image}, {member}) failed: {e:?}"))
}

fn admin() -> Viewer {
    Viewer {
        project: Some(unique("admin")),
        is_admin: true,
    }
}

fn user(project: &str) -> Viewer {
    Viewer {
        project: Some(project.to_string()),
        is_admin: false,
    }
}

fn text(field: TextField, values: &[&str]) -> Filter {
    Filter::Text {
        field,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn owned_by(owners: &[&str]) -> Filter {
    text(TextField::Owner, owners)
}

/// Everything an admin can list, restricted to `owner`'s images.
fn admin_query(owner: &str) -> ImageQuery {
    ImageQuery {
        viewer: admin(),
        visibility: VisibilityScope::All,
        filters: vec![owned_by(&[owner])],
        limit: 1000,
        ..ImageQuery::default()
    }
}

async fn list(r: &dyn Registry, query: ImageQuery) -> ImagePage {
    r.list_images(query.clone())
        .await
        .unwrap_or_else(|e| panic!("list_images failed: {e:?}\nquery: {query:?}"))
}

/// The whole listing in one page.
async fn list_all(r: &dyn Registry, mut query: ImageQuery) -> Vec<Image> {
    query.marker = None;
    query.limit = 10_000;
    let page = list(r, query.clone()).await;
    assert!(
        !page.more,
        "a listing that fits one page must say more=false\nquery: {query:?}"
    );
    page.images
}

/// The whole listing, `limit` at a time, following markers; checks each page's `more`.
async fn list_paged(r: &dyn Registry, mut query: ImageQuery, limit: usize) -> Vec<Image> {
    query.marker = None;
    query.limit = limit;
    let mut out: Vec<Image> = Vec::new();
    let mut pages = 0;
    loop {
        let page = list(r, query.clone()).await;
        pages += 1;
        assert!(
            page.images.len() <= limit,
            "page {pages} holds {} images, more than the limit {limit}\nquery: {query:?}",
            page.images.len()
        );
        if page.more {
            assert_eq!(
                page.images.len(),
                limit,
                "page {pages} says more=true but is not full\nquery: {query:?}"
            );
        }
        let Some(last) = page.images.last() else {
            assert!(
                !page.more,
                "an empty page must say more=false\nquery: {query:?}"
            );
            break;
        };
        query.marker = Some(last.id);
        out.extend(page.images);
        if !page.more {
            break;
        }
        assert!(pages < 10_000, "paging does not end\nquery: {query:?}");
    }
    out
}

fn ids(images: &[Image]) -> Vec<Uuid> {
    images.iter().map(|i| i.id).collect()
}

fn id_set<'a>(images: impl IntoIterator<Item = &'a Image>) -> BTreeSet<Uuid> {
    images.into_iter().map(|i| i.id).collect()
}

/// Runs the futures concurrently (interleaved on this task) and returns their outputs in order.
async fn join_all<'a, T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'a>>>) -> Vec<T> {
    let mut futures = futures;
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(futures.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("joined")).collect()
}

/// The expected tie-breakers: created_at then id, unless already present, in the query's
/// direction when all its keys share one, descending otherwise (and when none is given).
fn tie_broken(sort: &[(SortKey, SortDir)]) -> Vec<(SortKey, SortDir)> {
    let mut out = sort.to_vec();
    let dirs: BTreeSet<&str> = sort.iter().map(|(_, d)| d.as_str()).collect();
    let dir = match sort.first() {
        Some(&(_, d)) if dirs.len() == 1 => d,
        _ => SortDir::Desc,
    };
    for key in [SortKey::CreatedAt, SortKey::Id] {
        if !out.iter().any(|&(k, _)| k == key) {
            out.push((key, dir));
        }
    }
    out
}

/// One sort key, ascending, NULLs first, strings by bytes, ids as their text form.
fn key_cmp(key: SortKey, a: &Image, b: &Image) -> Ordering {
    fn nulls_first<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
        match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(&y),
        }
    }
    fn bytes(s: &Option<String>) -> Option<&[u8]> {
        s.as_deref().map(str::as_bytes)
    }
    match key {
        SortKey::Name => nulls_first(bytes(&a.name), bytes(&b.name)),
        SortKey::Status => a
            .status
            .as_str()
            .as_bytes()
            .cmp(b.status.as_str().as_bytes()),
        SortKey::ContainerFormat => {
            nulls_first(bytes(&a.container_format), bytes(&b.container_format))
        }
        SortKey::DiskFormat => nulls_first(bytes(&a.disk_format), bytes(&b.disk_format)),
        SortKey::Size => nulls_first(a.size, b.size),
        SortKey::Id => a.id.to_string().cmp(&b.id.to_string()),
        SortKey::CreatedAt => a
            .created_at
            .timestamp_micros()
            .cmp(&b.created_at.timestamp_micros()),
        SortKey::UpdatedAt => a
            .updated_at
            .timestamp_micros()
            .cmp(&b.updated_at.timestamp_micros()),
    }
}

/// `images` in the order a listing sorted by `sort` must show them.
fn sorted(images: &[Image], sort: &[(SortKey, SortDir)]) -> Vec<Image> {
    let full = tie_broken(sort);
    let mut out = images.to_vec();
    out.sort_by(|a, b| {
        for &(key, dir) in &full {
            let ord = key_cmp(key, a, b);
            let ord = if dir == SortDir::Desc {
                ord.reverse()
            } else {
                ord
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
    out
}

fn describe(images: &[Image], sort: &[(SortKey, SortDir)]) -> String {
    let full = tie_broken(sort);
    images
        .iter()
        .map(|i| {
            let keys: Vec<String> = full
                .iter()
                .map(|(k, _)| match k {
                    SortKey::Name => format!("{:?}", i.name),
                    SortKey::Status => i.status.to_string(),
                    SortKey::ContainerFormat => format!("{:?}", i.container_format),
                    SortKey::DiskFormat => format!("{:?}", i.disk_format),
                    SortKey::Size => format!("{:?}", i.size),
                    SortKey::Id => i.id.to_string(),
                    SortKey::CreatedAt => i.created_at.to_rfc3339(),
                    SortKey::UpdatedAt => i.updated_at.to_rfc3339(),
                })
                .collect();
            format!("  {}", keys.join(" | "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_order(got: &[Image], expected: &[Image], sort: &[(SortKey, SortDir)], what: &str) {
    if ids(got) != ids(expected) {
        panic!(
            "{what}: wrong order for sort {sort:?} (full order {:?})\n got:\n{}\n expected:\n{}",
            tie_broken(sort),
            describe(got, sort),
            describe(expected, sort)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Images: create, get, compare-and-swap, state machine, delete

async fn create_and_get(r: &dyn Registry) {
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

async fn compare_and_swap(r: &dyn Registry) {
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

async fn state_machine(r: &dyn Registry) {
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

async fn delete(r: &dyn Registry) {
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

// ---------------------------------------------------------------------------------------------
// Members

async fn members(r: &dyn Registry) {
    let owner = unique("members");
    let image = create(r, new_image(&owner)).await;
    let other = create(r, new_image(&owner)).await;
    let id = image.id;
    let a = unique("member-a");
    // A member id that extends another one must not be confused with it.
    let a_longer = format!("{a}-2");

    let ma = Member {
        image_id: id,
        member_id: a.clone(),
        status: MemberStatus::Pending,
        created_at: at(1, 0),
        updated_at: at(1, 0),
    };
    let added = r.add_member(ma.clone()).await.expect("add_member");
    assert_eq!(added, ma, "add_member returns the member as stored");
    assert_eq!(
        r.get_member(id, &a).await.expect("get_member"),
        Some(ma.clone())
    );

    let mut dup = ma.clone();
    dup.status = MemberStatus::Accepted;
    assert_err!(
        r.add_member(dup).await,
        RegistryError::DuplicateMember { image, member } if image == id && member == a,
        "add_member twice"
    );
    assert_eq!(
        r.get_member(id, &a).await.expect("get_member"),
        Some(ma.clone()),
        "a refused duplicate add must not change the member"
    );

    assert_eq!(
        r.get_member(id, &a_longer).await.expect("get_member"),
        None,
        "unknown member"
    );
    assert_eq!(
        r.get_member(other.id, &a).await.expect("get_member"),
        None,
        "other image"
    );
    assert_eq!(
        r.get_member(Uuid::new_v4(), &a).await.expect("get_member"),
        None,
        "no image"
    );

    let mb = Member {
        image_id: id,
        member_id: a_longer.clone(),
        status: MemberStatus::Accepted,
        created_at: at(2, 0),
        updated_at: at(2, 0),
    };
    r.add_member(mb.clone()).await.expect("add_member b");
    let mut listed = r.list_members(id).await.expect("list_members");
    listed.sort_by(|x, y| x.member_id.cmp(&y.member_id));
    assert_eq!(
        listed,
        vec![ma.clone(), mb.clone()],
        "list_members returns the image's members"
    );
    assert!(
        r.list_members(other.id)
            .await
            .expect("list_members")
            .is_empty(),
        "list_members of another image"
    );
    assert_eq!(
        r.get_member(id, &a).await.expect("get_member"),
        Some(ma.clone()),
        "prefix ids"
    );

    let mut accepted = ma.clone();
    accepted.status = MemberStatus::Accepted;
    accepted.updated_at = at(3, 0);
    let stored = r
        .update_member(accepted.clone())
        .await
        .expect("update_member");
    assert_eq!(
        stored, accepted,
        "update_member returns the member as stored"
    );
    assert_eq!(
        r.get_member(id, &a).await.expect("get_member"),
        Some(accepted.clone())
    );
    assert_eq!(
        r.get_member(id, &a_longer).await.expect("get_member"),
        Some(mb.clone()),
        "updating one member must leave the other alone"
    );

    let mut stranger = ma.clone();
    stranger.member_id = unique("stranger");
    assert_err!(
        r.update_member(stranger.clone()).await,
        RegistryError::MemberNotFound { image, member } if image == id && member == stranger.member_id,
        "update_member of a missing member"
    );
    assert_eq!(
        r.get_member(id, &stranger.member_id).await.expect("get"),
        None,
        "no upsert"
    );
    let mut orphan = ma.clone();
    orphan.image_id = Uuid::new_v4();
    assert_err!(
        r.update_member(orphan).await,
        RegistryError::MemberNotFound { .. } | RegistryError::ImageNotFound(_),
        "update_member on a missing image"
    );

    r.delete_member(id, &a).await.expect("delete_member");
    assert_eq!(
        r.get_member(id, &a).await.expect("get_member"),
        None,
        "deleted member is gone"
    );
    assert_eq!(
        r.list_members(id).await.expect("list_members"),
        vec![mb.clone()],
        "list_members after delete_member"
    );
    assert_err!(
        r.delete_member(id, &a).await,
        RegistryError::MemberNotFound { image, member } if image == id && member == a,
        "delete_member twice"
    );
    assert_err!(
        r.delete_member(other.id, &a_longer).await,
        RegistryError::MemberNotFound { .. },
        "delete_member on an image it is not a member of"
    );
    assert_eq!(
        r.get_member(id, &a_longer).await.expect("get"),
        Some(mb),
        "other member kept"
    );

    let missing = Uuid::new_v4();
    let mut nowhere = ma.clone();
    nowhere.image_id = missing;
    assert_err!(
        r.add_member(nowhere).await,
        RegistryError::ImageNotFound(got) if got == missing,
        "add_member to a missing image"
    );
    assert!(
        r.list_members(missing)
            .await
            .expect("list_members")
            .is_empty(),
        "no member stored"
    );

    // A deleted member can be added again.
    let readded = r
        .add_member(ma.clone())
        .await
        .expect("add_member after delete_member");
    assert_eq!(readded, ma);
}

// ---------------------------------------------------------------------------------------------
// Concurrency (interleaved futures; engines that do real I/O see real races)

async fn concurrent_writes(r: &dyn Registry) {
    let owner = unique("race");
    for round in 0..5 {
        // Eight writers from one revision: one wins, the rest are stale.
        let image = create(r, new_image(&owner)).await;
        let futures = (0..8)
            .map(|i| {
                let mut attempt = image.clone();
                attempt.name = Some(format!("writer-{i}"));
                r.update_image(attempt)
            })
            .collect();
        let results = join_all(futures).await;
        let winners: Vec<usize> = (0..8).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: 8 concurrent updates from one revision: exactly one must win, got {results:?}"
        );
        for (i, res) in results.iter().enumerate() {
            if i != winners[0] {
                assert!(
                    matches!(res, Err(RegistryError::Stale(id)) if *id == image.id),
                    "round {round}: a losing concurrent update must fail with Stale, got {res:?}"
                );
            }
        }
        let stored = get(r, image.id).await;
        assert_eq!(
            stored.name,
            Some(format!("writer-{}", winners[0])),
            "the winner's write"
        );
        assert_eq!(
            stored.revision,
            image.revision + 1,
            "one write, one revision"
        );

        // Two queued -> saving transitions from one revision: one wins.
        let image = create(r, new_image(&owner)).await;
        let futures = (0..2)
            .map(|_| {
                let mut attempt = image.clone();
                attempt.status = ImageStatus::Saving;
                r.update_image(attempt)
            })
            .collect();
        let results = join_all(futures).await;
        let ok = results.iter().filter(|res| res.is_ok()).count();
        let stale = results
            .iter()
            .filter(|res| matches!(res, Err(RegistryError::Stale(_))))
            .count();
        assert!(
            ok == 1 && stale == 1,
            "round {round}: two concurrent queued -> saving: one must win, one be stale: {results:?}"
        );
        let stored = get(r, image.id).await;
        assert_eq!(
            (stored.status, stored.revision),
            (ImageStatus::Saving, image.revision + 1)
        );

        // Concurrent creates of one id: one wins.
        let id = Uuid::new_v4();
        let futures = (0..4)
            .map(|i| {
                let mut attempt = new_image(&owner);
                attempt.id = id;
                attempt.name = Some(format!("creator-{i}"));
                r.create_image(attempt)
            })
            .collect();
        let results = join_all(futures).await;
        let ok = results.iter().filter(|res| res.is_ok()).count();
        let dup = results
            .iter()
            .filter(|res| matches!(res, Err(RegistryError::DuplicateImage(got)) if *got == id))
            .count();
        assert!(
            ok == 1 && dup == 3,
            "round {round}: 4 concurrent creates of one id: one must win, 3 get DuplicateImage: {results:?}"
        );

        // Concurrent adds of one member: one wins.
        let member = unique("race-member");
        let futures = (0..3)
            .map(|_| {
                r.add_member(Member {
                    image_id: id,
                    member_id: member.clone(),
                    status: MemberStatus::Pending,
                    created_at: crate::now(),
                    updated_at: crate::now(),
                })
            })
            .collect();
        let results = join_all(futures).await;
        let ok = results.iter().filter(|res| res.is_ok()).count();
        let dup = results
            .iter()
            .filter(|res| matches!(res, Err(RegistryError::DuplicateMember { .. })))
            .count();
        assert!(
            ok == 1 && dup == 2,
            "round {round}: 3 concurrent adds of one member: one must win, 2 get DuplicateMember: {results:?}"
        );

        // A member added while the image is deleted never outlives the image.
        let image = create(r, new_image(&owner)).await;
        let member = unique("race-member");
        let add = r.add_member(Member {
            image_id: image.id,
            member_id: member.clone(),
            status: MemberStatus::Accepted,
            created_at: crate::now(),
            updated_at: crate::now(),
        });
        let add: Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> =
            Box::pin(async move { add.await.map(|_| ()) });
        let del = r.delete_image(image.id, image.revision);
        let results = join_all(vec![add, del]).await;
        let gone = r.get_image(image.id).await.expect("get_image").is_none();
        if gone {
            assert!(
                results[1].is_ok(),
                "round {round}: image gone but delete reported {:?}",
                results[1]
            );
            let left = r.get_member(image.id, &member).await.expect("get_member");
            assert!(
                left.is_none(),
                "round {round}: a member added concurrently with delete_image outlived the image \
                 (add: {:?}, delete: {:?}): {left:?}",
                results[0],
                results[1]
            );
        } else {
            assert!(
                matches!(results[1], Err(RegistryError::Stale(_))),
                "round {round}: image kept, so delete must have been refused as Stale: {:?}",
                results[1]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Listing: order, paging, sorting, markers

async fn default_order_and_paging(r: &dyn Registry) {
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
    assert!(first.more, "25 of 60: more=true");
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
        assert_eq!(page.more, more, "limit {limit} of 60 images: more");
    }
    let mut q = query.clone();
    q.limit = 20;
    let mut flags = Vec::new();
    for _ in 0..3 {
        let page = list(r, q.clone()).await;
        flags.push((page.images.len(), page.more));
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
        page.images.is_empty() && !page.more,
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

async fn sorting(r: &dyn Registry) {
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

async fn markers(r: &dyn Registry) {
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

// ---------------------------------------------------------------------------------------------
// Filters

/// name, disk_format, container_format, size, tags, properties.
type FilterFixture = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<u64>,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

async fn filters(r: &dyn Registry) {
    let owner = unique("filters");
    let spec: [FilterFixture; 7] = [
        (
            Some("alpha"),
            Some("qcow2"),
            Some("bare"),
            Some(100),
            &["a", "b"],
            &[("os", "linux")],
        ),
        (
            Some("beta"),
            Some("raw"),
            Some("bare"),
            Some(1000),
            &["a"],
            &[("os", "windows")],
        ),
        (None, None, Some("ovf"), None, &["b"], &[]),
        (
            Some("alpha"),
            Some("iso"),
            None,
            Some(500),
            &["a", "b", "c"],
            &[("os", "linux"), ("arch", "x86_64")],
        ),
        (
            Some("gamma"),
            Some("qcow2"),
            Some("bare"),
            Some(0),
            &[],
            &[("arch", "aarch64")],
        ),
        (
            Some("Alpha"),
            Some("raw"),
            None,
            None,
            &["A"],
            &[("OS", "linux")],
        ),
        // Killed: matches many filters below but is never listed.
        (
            Some("alpha"),
            Some("qcow2"),
            Some("bare"),
            Some(100),
            &["a", "b", "c"],
            &[("os", "linux"), ("arch", "x86_64")],
        ),
    ];
    let mut images = Vec::new();
    for (i, (name, disk, container, size, tags, props)) in spec.into_iter().enumerate() {
        let mut image = new_image(&owner);
        image.name = name.map(String::from);
        image.disk_format = disk.map(String::from);
        image.container_format = container.map(String::from);
        image.tags = tags.iter().map(|t| t.to_string()).collect();
        image.properties = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        image.protected = i == 0;
        image.os_hidden = i == 1;
        let image = create(r, image).await;
        // Sizes arrive with an update, as after an upload.
        let mut image = match i {
            4 => with_status(r, image, ImageStatus::Active).await,
            6 => with_status(r, image, ImageStatus::Killed).await,
            _ => image,
        };
        image.size = size;
        images.push(update(r, image).await);
    }
    let id = |i: usize| images[i].id.to_string();

    let cases: Vec<(Vec<Filter>, Vec<usize>)> = vec![
        (vec![], vec![0, 1, 2, 3, 4, 5]),
        (vec![text(TextField::Name, &["alpha"])], vec![0, 3]),
        (
            vec![text(TextField::Name, &["alpha", "beta"])],
            vec![0, 1, 3],
        ),
        (vec![text(TextField::Name, &["ALPHA"])], vec![]),
        (vec![text(TextField::Name, &["nothing"])], vec![]),
        (vec![text(TextField::Id, &[&id(1), &id(4)])], vec![1, 4]),
        (
            vec![text(TextField::Id, &[&Uuid::new_v4().to_string()])],
            vec![],
        ),
        (vec![text(TextField::Status, &["active"])], vec![4]),
        (vec![text(TextField::Status, &["killed"])], vec![]),
        (
            vec![text(TextField::Status, &["queued", "killed"])],
            vec![0, 1, 2, 3, 5],
        ),
        (
            vec![text(TextField::Owner, &[&owner, "nobody"])],
            vec![0, 1, 2, 3, 4, 5],
        ),
        (vec![text(TextField::Owner, &["nobody"])], vec![]),
        (
            vec![text(TextField::DiskFormat, &["qcow2", "raw"])],
            vec![0, 1, 4, 5],
        ),
        (vec![text(TextField::ContainerFormat, &["ovf"])], vec![2]),
        (
            vec![
                text(TextField::ContainerFormat, &["bare"]),
                text(TextField::Name, &["alpha"]),
            ],
            vec![0],
        ),
        (vec![Filter::SizeMin(500)], vec![1, 3]),
        (vec![Filter::SizeMin(0)], vec![0, 1, 3, 4]),
        (vec![Filter::SizeMin(-1)], vec![0, 1, 3, 4]),
        (vec![Filter::SizeMax(-1)], vec![]),
        (vec![Filter::SizeMax(0)], vec![4]),
        (vec![Filter::SizeMax(i64::MAX)], vec![0, 1, 3, 4]),
        (vec![Filter::SizeMin(100), Filter::SizeMax(500)], vec![0, 3]),
        (vec![Filter::SizeMin(101), Filter::SizeMax(499)], vec![]),
        (vec![Filter::SizeMin(1001)], vec![]),
        (vec![Filter::Protected(true)], vec![0]),
        (vec![Filter::Protected(false)], vec![1, 2, 3, 4, 5]),
        (vec![Filter::OsHidden(true)], vec![1]),
        (vec![Filter::OsHidden(false)], vec![0, 2, 3, 4, 5]),
        (vec![Filter::Tag("a".into())], vec![0, 1, 3]),
        (
            vec![Filter::Tag("a".into()), Filter::Tag("b".into())],
            vec![0, 3],
        ),
        (
            vec![
                Filter::Tag("a".into()),
                Filter::Tag("b".into()),
                Filter::Tag("c".into()),
            ],
            vec![3],
        ),
        (vec![Filter::Tag("A".into())], vec![5]),
        (vec![Filter::Tag("z".into())], vec![]),
        (
            vec![Filter::Tag("c".into()), Filter::Tag("z".into())],
            vec![],
        ),
        (prop("os", &["linux"]), vec![0, 3]),
        (prop("os", &["linux", "windows"]), vec![0, 1, 3]),
        (prop("OS", &["linux"]), vec![5]),
        (prop("arch", &["x86_64"]), vec![3]),
        (prop("os", &["mac"]), vec![]),
        (prop("missing", &["linux"]), vec![]),
        (
            [prop("os", &["linux"]), prop("arch", &["x86_64", "aarch64"])].concat(),
            vec![3],
        ),
        (
            [prop("os", &["linux"]), vec![Filter::Tag("c".into())]].concat(),
            vec![3],
        ),
        (
            vec![
                Filter::Protected(false),
                Filter::OsHidden(false),
                Filter::SizeMin(1),
            ],
            vec![3],
        ),
    ];
    for (filters, expected) in cases {
        let mut query = admin_query(&owner);
        query.filters.extend(filters.iter().cloned());
        let got = id_set(&list_all(r, query.clone()).await);
        let want: BTreeSet<Uuid> = expected.iter().map(|&i| images[i].id).collect();
        assert_eq!(
            got, want,
            "filters {filters:?}: expected images {expected:?}"
        );
        // Filters must not disturb paging.
        let paged = list_paged(r, query, 2).await;
        assert_eq!(id_set(&paged), want, "filters {filters:?} in pages of 2");
        assert_eq!(
            paged.len(),
            want.len(),
            "filters {filters:?}: paging repeats images"
        );
    }
}

fn prop(key: &str, values: &[&str]) -> Vec<Filter> {
    vec![Filter::Property {
        key: key.to_string(),
        values: values.iter().map(|v| v.to_string()).collect(),
    }]
}

async fn time_filters(r: &dyn Registry) {
    let owner = unique("time");
    // created_at seconds 1000, 1001, 1002, 1003, 1004 and 1002.5;
    // updated_at seconds 2004, 2003, 2002, 2001, 2000 and 2002.999999.
    let times = [
        (at(1000, 0), at(2004, 0)),
        (at(1001, 0), at(2003, 0)),
        (at(1002, 0), at(2002, 0)),
        (at(1003, 0), at(2001, 0)),
        (at(1004, 0), at(2000, 0)),
        (at(1002, 500_000), at(2002, 999_999)),
    ];
    let mut images = Vec::new();
    for (created, updated) in times {
        let mut image = new_image(&owner);
        image.created_at = created;
        image.updated_at = updated;
        images.push(create(r, image).await);
    }
    // Filters compare whole seconds, so the sub-second parts here and above are ignored.
    let created_at = at(1002, 250_000);
    let updated_at = at(2002, 0);
    use Comparison as C;
    let cases: [(TimeField, Timestamp, Comparison, &[usize]); 12] = [
        (TimeField::CreatedAt, created_at, C::Eq, &[2, 5]),
        (TimeField::CreatedAt, created_at, C::Neq, &[0, 1, 3, 4]),
        (TimeField::CreatedAt, created_at, C::Gt, &[3, 4]),
        (TimeField::CreatedAt, created_at, C::Gte, &[2, 3, 4, 5]),
        (TimeField::CreatedAt, created_at, C::Lt, &[0, 1]),
        (TimeField::CreatedAt, created_at, C::Lte, &[0, 1, 2, 5]),
        (TimeField::UpdatedAt, updated_at, C::Eq, &[2, 5]),
        (TimeField::UpdatedAt, updated_at, C::Neq, &[0, 1, 3, 4]),
        (TimeField::UpdatedAt, updated_at, C::Gt, &[0, 1]),
        (TimeField::UpdatedAt, updated_at, C::Gte, &[0, 1, 2, 5]),
        (TimeField::UpdatedAt, updated_at, C::Lt, &[3, 4]),
        (TimeField::UpdatedAt, updated_at, C::Lte, &[2, 3, 4, 5]),
    ];
    for (field, when, op, expected) in cases {
        let mut query = admin_query(&owner);
        query.filters.push(Filter::Time {
            field,
            op,
            at: when,
        });
        let got = id_set(&list_all(r, query).await);
        let want: BTreeSet<Uuid> = expected.iter().map(|&i| images[i].id).collect();
        assert_eq!(
            got, want,
            "{field:?} {op:?} {when}: expected images {expected:?}"
        );
    }
    // A range: created in [1001, 1003).
    let mut query = admin_query(&owner);
    query.filters.push(Filter::Time {
        field: TimeField::CreatedAt,
        op: C::Gte,
        at: at(1001, 0),
    });
    query.filters.push(Filter::Time {
        field: TimeField::CreatedAt,
        op: C::Lt,
        at: at(1003, 0),
    });
    let want: BTreeSet<Uuid> = [1, 2, 5].iter().map(|&i| images[i].id).collect();
    assert_eq!(
        id_set(&list_all(r, query).await),
        want,
        "created_at in [1001, 1003)"
    );
}

// ---------------------------------------------------------------------------------------------
// Visibility

async fn visibility(r: &dyn Registry) {
    let p = unique("vis-owner");
    let q = unique("vis-other");
    let m = unique("vis-member");
    let m_longer = format!("{m}x");
    let stranger = unique("vis-stranger");

    async fn make(r: &dyn Registry, owner: &str, v: Visibility, name: &str) -> Image {
        let mut image = new_image(owner);
        image.visibility = v;
        image.name = Some(name.to_string());
        create(r, image).await
    }
    use Visibility::*;
    let pub_p = make(r, &p, Public, "pub_p").await;
    let priv_p = make(r, &p, Private, "priv_p").await;
    let shared_none = make(r, &p, Shared, "shared_none").await;
    let comm_p = make(r, &p, Community, "comm_p").await;
    let sh_pending = make(r, &p, Shared, "sh_pending").await;
    let sh_accepted = make(r, &p, Shared, "sh_accepted").await;
    let sh_rejected = make(r, &p, Shared, "sh_rejected").await;
    let priv_member = make(r, &p, Private, "priv_member").await;
    let pub_member = make(r, &p, Public, "pub_member").await;
    let sh_longer = make(r, &p, Shared, "sh_longer").await;
    let priv_q = make(r, &q, Private, "priv_q").await;
    let pub_q = make(r, &q, Public, "pub_q").await;
    let comm_q = make(r, &q, Community, "comm_q").await;
    let shared_q = make(r, &q, Shared, "shared_q").await;
    add_member(r, sh_pending.id, &m, MemberStatus::Pending).await;
    add_member(r, sh_accepted.id, &m, MemberStatus::Accepted).await;
    add_member(r, sh_rejected.id, &m, MemberStatus::Rejected).await;
    add_member(r, priv_member.id, &m, MemberStatus::Accepted).await;
    add_member(r, pub_member.id, &m, MemberStatus::Rejected).await;
    add_member(r, sh_longer.id, &m_longer, MemberStatus::Accepted).await;

    let every = [
        &pub_p,
        &priv_p,
        &shared_none,
        &comm_p,
        &sh_pending,
        &sh_accepted,
        &sh_rejected,
        &priv_member,
        &pub_member,
        &sh_longer,
        &priv_q,
        &pub_q,
        &comm_q,
        &shared_q,
    ];
    let names: HashMap<Uuid, String> = every
        .iter()
        .map(|i| (i.id, i.name.clone().unwrap_or_default()))
        .collect();
    let named = |set: &BTreeSet<Uuid>| -> BTreeSet<String> {
        set.iter()
            .map(|id| names.get(id).cloned().unwrap_or_else(|| id.to_string()))
            .collect()
    };
    let all_but = |skip: &[&Image]| -> Vec<Image> {
        every
            .iter()
            .filter(|i| !skip.iter().any(|s| s.id == i.id))
            .map(|i| (*i).clone())
            .collect()
    };
    let publics = [&pub_p, &pub_member, &pub_q];
    let comms = [&comm_p, &comm_q];
    let p_images = [
        &pub_p,
        &priv_p,
        &shared_none,
        &comm_p,
        &sh_pending,
        &sh_accepted,
        &sh_rejected,
        &priv_member,
        &pub_member,
        &sh_longer,
    ];
    let set = |images: &[&[&Image]]| -> BTreeSet<Uuid> {
        images
            .iter()
            .flat_map(|group| group.iter().map(|i| i.id))
            .collect()
    };

    let admin_viewer = admin();
    let anonymous = Viewer::default();
    let cases: Vec<(
        &str,
        Viewer,
        VisibilityScope,
        MemberStatusFilter,
        BTreeSet<Uuid>,
    )> = vec![
        // Admin: everything but others' community images by default.
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            id_set(&all_but(&[&comm_p, &comm_q])),
        ),
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::All,
            MemberStatusFilter::Accepted,
            id_set(&all_but(&[])),
        ),
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::Only(Public),
            MemberStatusFilter::Accepted,
            set(&[&publics]),
        ),
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::Only(Private),
            MemberStatusFilter::Accepted,
            set(&[&[&priv_p, &priv_member, &priv_q]]),
        ),
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::Accepted,
            set(&[&[
                &shared_none,
                &sh_pending,
                &sh_accepted,
                &sh_rejected,
                &sh_longer,
                &shared_q,
            ]]),
        ),
        (
            "admin",
            admin_viewer.clone(),
            VisibilityScope::Only(Community),
            MemberStatusFilter::Accepted,
            set(&[&comms]),
        ),
        // Owner: all its own images plus others' public ones (community only with All).
        (
            "owner",
            user(&p),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            set(&[&p_images, &[&pub_q]]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::All,
            MemberStatusFilter::Accepted,
            set(&[&p_images, &[&pub_q, &comm_q]]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::Only(Private),
            MemberStatusFilter::Accepted,
            set(&[&[&priv_p, &priv_member]]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::Accepted,
            set(&[&[
                &shared_none,
                &sh_pending,
                &sh_accepted,
                &sh_rejected,
                &sh_longer,
            ]]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::Only(MemberStatus::Pending),
            set(&[&[
                &shared_none,
                &sh_pending,
                &sh_accepted,
                &sh_rejected,
                &sh_longer,
            ]]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::Only(Community),
            MemberStatusFilter::Accepted,
            set(&[&comms]),
        ),
        (
            "owner",
            user(&p),
            VisibilityScope::Only(Public),
            MemberStatusFilter::Accepted,
            set(&[&publics]),
        ),
        // Another project: public, plus community when asked.
        (
            "stranger",
            user(&stranger),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            set(&[&publics]),
        ),
        (
            "stranger",
            user(&stranger),
            VisibilityScope::All,
            MemberStatusFilter::All,
            set(&[&publics, &comms]),
        ),
        (
            "stranger",
            user(&stranger),
            VisibilityScope::Only(Private),
            MemberStatusFilter::All,
            BTreeSet::new(),
        ),
        (
            "stranger",
            user(&stranger),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::All,
            BTreeSet::new(),
        ),
        (
            "stranger",
            user(&stranger),
            VisibilityScope::Only(Community),
            MemberStatusFilter::Accepted,
            set(&[&comms]),
        ),
        // No project at all.
        (
            "anonymous",
            anonymous.clone(),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            set(&[&publics]),
        ),
        (
            "anonymous",
            anonymous.clone(),
            VisibilityScope::All,
            MemberStatusFilter::All,
            set(&[&publics, &comms]),
        ),
        (
            "anonymous",
            anonymous.clone(),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::All,
            BTreeSet::new(),
        ),
        // A member: shared images by member status, never a private image it is a member of.
        (
            "member",
            user(&m),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            set(&[&publics, &[&sh_accepted]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Default,
            MemberStatusFilter::Only(MemberStatus::Accepted),
            set(&[&publics, &[&sh_accepted]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Default,
            MemberStatusFilter::Only(MemberStatus::Pending),
            set(&[&publics, &[&sh_pending]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Default,
            MemberStatusFilter::Only(MemberStatus::Rejected),
            set(&[&publics, &[&sh_rejected]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Default,
            MemberStatusFilter::All,
            set(&[&publics, &[&sh_pending, &sh_accepted, &sh_rejected]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::All,
            MemberStatusFilter::Accepted,
            set(&[&publics, &comms, &[&sh_accepted]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::All,
            MemberStatusFilter::All,
            set(&[&publics, &comms, &[&sh_pending, &sh_accepted, &sh_rejected]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::Accepted,
            set(&[&[&sh_accepted]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::Only(MemberStatus::Pending),
            set(&[&[&sh_pending]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Shared),
            MemberStatusFilter::All,
            set(&[&[&sh_pending, &sh_accepted, &sh_rejected]]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Private),
            MemberStatusFilter::All,
            BTreeSet::new(),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Public),
            MemberStatusFilter::Accepted,
            set(&[&publics]),
        ),
        (
            "member",
            user(&m),
            VisibilityScope::Only(Community),
            MemberStatusFilter::All,
            set(&[&comms]),
        ),
        // A project whose id extends the member's sees only its own share.
        (
            "longer member",
            user(&m_longer),
            VisibilityScope::Default,
            MemberStatusFilter::Accepted,
            set(&[&publics, &[&sh_longer]]),
        ),
    ];
    let owners = [p.as_str(), q.as_str()];
    for (who, viewer, scope, member_status, want) in cases {
        let query = ImageQuery {
            viewer: viewer.clone(),
            visibility: scope,
            member_status,
            filters: vec![owned_by(&owners)],
            ..ImageQuery::default()
        };
        let got = id_set(&list_all(r, query.clone()).await);
        assert_eq!(
            named(&got),
            named(&want),
            "{who} listing with visibility {scope:?}, member_status {member_status:?}"
        );
        let paged = list_paged(r, query, 3).await;
        assert_eq!(
            id_set(&paged),
            want,
            "{who} {scope:?} {member_status:?} in pages of 3"
        );
    }

    // Accepting a share puts the image in the member's default listing; deleting the
    // membership takes it out of every listing.
    let member_query = |status: MemberStatusFilter| ImageQuery {
        viewer: user(&m),
        member_status: status,
        filters: vec![owned_by(&owners)],
        ..ImageQuery::default()
    };
    let mut accepted = r
        .get_member(sh_pending.id, &m)
        .await
        .expect("get")
        .expect("member");
    accepted.status = MemberStatus::Accepted;
    r.update_member(accepted).await.expect("update_member");
    let got = id_set(&list_all(r, member_query(MemberStatusFilter::Accepted)).await);
    assert_eq!(
        named(&got),
        named(&set(&[&publics, &[&sh_pending, &sh_accepted]])),
        "after the member accepts"
    );
    r.delete_member(sh_pending.id, &m)
        .await
        .expect("delete_member");
    let got = id_set(&list_all(r, member_query(MemberStatusFilter::All)).await);
    assert_eq!(
        named(&got),
        named(&set(&[&publics, &[&sh_accepted, &sh_rejected]])),
        "after the membership is deleted"
    );

    // Markers must be images the viewer may see.
    let marker_cases: [(&str, Viewer, &Image, bool); 9] = [
        ("member, private image", user(&m), &priv_p, false),
        (
            "member, private image it is a member of",
            user(&m),
            &priv_member,
            false,
        ),
        (
            "member, shared image it rejected",
            user(&m),
            &sh_rejected,
            true,
        ),
        (
            "member, shared image it is no longer a member of",
            user(&m),
            &sh_pending,
            false,
        ),
        (
            "member, another project's community image",
            user(&m),
            &comm_q,
            true,
        ),
        (
            "stranger, memberless shared image",
            user(&stranger),
            &shared_none,
            false,
        ),
        (
            "owner, another project's private image",
            user(&p),
            &priv_q,
            false,
        ),
        (
            "admin, another project's private image",
            admin(),
            &priv_q,
            true,
        ),
        ("anonymous, public image", anonymous, &pub_p, true),
    ];
    for (what, viewer, marker, visible) in marker_cases {
        let query = ImageQuery {
            viewer,
            visibility: VisibilityScope::All,
            member_status: MemberStatusFilter::All,
            filters: vec![owned_by(&owners)],
            marker: Some(marker.id),
            ..ImageQuery::default()
        };
        let result = r.list_images(query).await;
        if visible {
            assert!(
                result.is_ok(),
                "marker ({what}) is visible, listing must work: {result:?}"
            );
        } else {
            assert_err!(
                result,
                RegistryError::MarkerNotFound(id) if id == marker.id,
                "marker ({what}) is not visible"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tasks

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

async fn tasks(r: &dyn Registry) {
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
async fn task_image_follows_updates(r: &dyn Registry) {
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
