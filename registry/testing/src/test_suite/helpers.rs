//! Helpers of the registry suite: unique names, fixtures, calls that panic with the rule
//! they were checking, listing queries and whole listings (one page, or paged by markers).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use chrono::DateTime;
use uuid::Uuid;

use glass_registry::{
    Filter, Image, ImagePage, ImageQuery, ImageStatus, Member, MemberStatus, Registry, TextField,
    Timestamp, Viewer, VisibilityScope,
};

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

pub(super) use assert_err;

/// A name no other run uses.
pub(super) fn unique(label: &str) -> String {
    format!("suite-{label}-{}", Uuid::new_v4().simple())
}

/// A fixed point in time plus `secs` seconds and `micros` microseconds.
pub(super) fn at(secs: i64, micros: u32) -> Timestamp {
    DateTime::from_timestamp(1_600_000_000 + secs, micros * 1000).expect("valid timestamp")
}

pub(super) fn new_image(owner: &str) -> Image {
    Image::new(Uuid::new_v4(), Some(owner.to_string()))
}

pub(super) async fn create(r: &dyn Registry, image: Image) -> Image {
    let id = image.id;
    r.create_image(image)
        .await
        .unwrap_or_else(|e| panic!("create_image({id}) failed: {e:?}"))
}

pub(super) async fn get(r: &dyn Registry, id: Uuid) -> Image {
    r.get_image(id)
        .await
        .unwrap_or_else(|e| panic!("get_image({id}) failed: {e:?}"))
        .unwrap_or_else(|| panic!("get_image({id}): image is missing"))
}

pub(super) async fn update(r: &dyn Registry, image: Image) -> Image {
    let (id, rev, status) = (image.id, image.revision, image.status);
    r.update_image(image)
        .await
        .unwrap_or_else(|e| panic!("update_image({id}, revision {rev}, to {status}) failed: {e:?}"))
}

/// The shortest chain of allowed transitions from `queued` to `status` (after `queued`).
pub(super) fn path_to(status: ImageStatus) -> Vec<ImageStatus> {
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
pub(super) async fn with_status(r: &dyn Registry, mut image: Image, status: ImageStatus) -> Image {
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

pub(super) async fn add_member(
    r: &dyn Registry,
    image: Uuid,
    member: &str,
    status: MemberStatus,
) -> Member {
    let m = Member {
        image_id: image,
        member_id: member.to_string(),
        status,
        created_at: glass_registry::now(),
        updated_at: glass_registry::now(),
    };
    r.add_member(m.clone())
        .await
        .unwrap_or_else(|e| panic!("add_member({image}, {member}) failed: {e:?}"))
}

pub(super) fn admin() -> Viewer {
    Viewer {
        project: Some(unique("admin")),
        is_admin: true,
    }
}

pub(super) fn user(project: &str) -> Viewer {
    Viewer {
        project: Some(project.to_string()),
        is_admin: false,
    }
}

pub(super) fn text(field: TextField, values: &[&str]) -> Filter {
    Filter::Text {
        field,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

pub(super) fn owned_by(owners: &[&str]) -> Filter {
    text(TextField::Owner, owners)
}

/// Everything an admin can list, restricted to `owner`'s images.
pub(super) fn admin_query(owner: &str) -> ImageQuery {
    ImageQuery {
        viewer: admin(),
        visibility: VisibilityScope::All,
        filters: vec![owned_by(&[owner])],
        limit: 1000,
        ..ImageQuery::default()
    }
}

pub(super) async fn list(r: &dyn Registry, query: ImageQuery) -> ImagePage {
    r.list_images(query.clone())
        .await
        .unwrap_or_else(|e| panic!("list_images failed: {e:?}\nquery: {query:?}"))
}

/// The whole listing in one page.
pub(super) async fn list_all(r: &dyn Registry, mut query: ImageQuery) -> Vec<Image> {
    query.marker = None;
    query.limit = 10_000;
    let page = list(r, query.clone()).await;
    assert!(
        !page.more(),
        "a listing that fits one page must say more=false\nquery: {query:?}"
    );
    page.images
}

/// The whole listing, `limit` at a time, following each page's `next` marker as a client
/// follows `next` links; checks that a page short of the limit says `more` only when the
/// engine spent the query's budget on it.
pub(super) async fn list_paged(
    r: &dyn Registry,
    mut query: ImageQuery,
    limit: usize,
) -> Vec<Image> {
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
        if page.more() && page.images.len() < limit {
            assert!(
                page.examined >= query.budget,
                "page {pages} says more=true but is not full, with budget left \
                 ({} of {} spent)\nquery: {query:?}",
                page.examined,
                query.budget
            );
        }
        out.extend(page.images);
        let Some(next) = page.next else {
            break;
        };
        query.marker = Some(next);
        assert!(pages < 10_000, "paging does not end\nquery: {query:?}");
    }
    out
}

pub(super) fn ids(images: &[Image]) -> Vec<Uuid> {
    images.iter().map(|i| i.id).collect()
}

pub(super) fn id_set<'a>(images: impl IntoIterator<Item = &'a Image>) -> BTreeSet<Uuid> {
    images.into_iter().map(|i| i.id).collect()
}

/// Runs the futures concurrently (interleaved on this task) and returns their outputs in order.
pub(super) async fn join_all<'a, T>(
    futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'a>>>,
) -> Vec<T> {
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
