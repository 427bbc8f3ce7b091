//! Listings on a catalogue large enough that a walk of it shows: each filter family, a
//! viewer's scope, deep markers and other sort orders must cost in proportion to the page
//! (the engine's `examined` count), and return what a brute-force evaluation of the query
//! over the catalogue returns.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use glass_registry::{
    Filter, Image, ImageQuery, ImageStatus, MemberStatus, MemberStatusFilter, Registry, SortDir,
    SortKey, TextField, Viewer, Visibility, VisibilityScope,
};
use uuid::Uuid;

use super::helpers::{
    add_member, admin, at, create, join_all, list, text, unique, user, with_status,
};

/// Images in the catalogue.
const N: usize = 2400;
/// Most work a page may cost: per image, one read and a seek in each of the few cursors a
/// query has (scope, filters), and in another order than the default a try at gathering a
/// few pages' worth of matches; a walk of the catalogue costs N and more.
fn bound(returned: usize) -> usize {
    40 + 48 * (returned + 1)
}

struct Catalogue {
    images: Vec<Image>,
    /// (image, project) → status.
    members: HashMap<(Uuid, String), MemberStatus>,
    /// A property every image of this run carries, so listings can be confined to them.
    run: Filter,
    projects: Vec<String>,
    needle: String,
    rare_tag: String,
}

async fn build(r: &dyn Registry) -> Catalogue {
    let run_value = unique("scale-run");
    let projects: Vec<String> = (0..12).map(|i| unique(&format!("scale-p{i}"))).collect();
    let needle = unique("needle");
    let rare_tag = unique("rare-tag");
    let mut images = Vec::with_capacity(N);
    for i in 0..N {
        let owner = &projects[i % projects.len()];
        let mut img = super::helpers::new_image(owner);
        img.created_at = at((i as i64 * 7919) % 100_000, (i % 1000) as u32);
        img.updated_at = img.created_at;
        img.name = Some(if i % 97 == 0 {
            needle.clone()
        } else {
            format!("img-{:05}", (i * 31) % N)
        });
        img.visibility = match i % 10 {
            0 | 1 => Visibility::Public,
            2 => Visibility::Community,
            3 | 4 => Visibility::Shared,
            _ => Visibility::Private,
        };
        img.disk_format = Some(["qcow2", "raw", "iso"][i % 3].into());
        img.container_format = Some("bare".into());
        // Unique in every run (runs may share a database), as real hashes are.
        img.checksum = Some(Uuid::new_v4().simple().to_string());
        img.os_hash_value = Some(
            (0..4)
                .map(|_| Uuid::new_v4().simple().to_string())
                .collect(),
        );
        img.size = Some((i as u64 * 4099) % 100_000);
        img.protected = i % 400 == 1;
        img.os_hidden = i % 300 == 2;
        if i % 150 == 3 {
            img.tags.insert(rare_tag.clone());
        }
        img.tags.insert("common".into());
        img.properties.insert("scale_run".into(), run_value.clone());
        img.properties.insert(
            "os_distro".into(),
            ["ubuntu", "debian", "fedora", "rare"][(i % 200).min(3)].into(),
        );
        images.push(img);
    }
    let mut stored = Vec::with_capacity(N);
    for chunk in images.chunks(40) {
        let futures = chunk
            .iter()
            .map(|img| {
                Box::pin(create(r, img.clone())) as Pin<Box<dyn Future<Output = Image> + Send + '_>>
            })
            .collect();
        stored.extend(join_all(futures).await);
    }
    // A few statuses other than queued.
    for i in (0..N).step_by(60) {
        let status = if i % 120 == 0 {
            ImageStatus::Killed
        } else {
            ImageStatus::Active
        };
        stored[i] = with_status(r, stored[i].clone(), status).await;
    }
    let mut members = HashMap::new();
    for (i, img) in stored.iter().enumerate() {
        if img.visibility == Visibility::Shared && i % 3 == 0 {
            let project = &projects[(i + 1) % projects.len()];
            let status = [
                MemberStatus::Accepted,
                MemberStatus::Pending,
                MemberStatus::Rejected,
            ][i % 3];
            add_member(r, img.id, project, status).await;
            members.insert((img.id, project.clone()), status);
        }
    }
    // Member changes bump revisions: read the images back.
    let mut images = Vec::with_capacity(N);
    for img in &stored {
        images.push(super::helpers::get(r, img.id).await);
    }
    Catalogue {
        images,
        members,
        run: Filter::Property {
            key: "scale_run".into(),
            values: vec![run_value],
        },
        projects,
        needle,
        rare_tag,
    }
}

impl Catalogue {
    /// The query's answer by brute force.
    fn expected(&self, query: &ImageQuery) -> Vec<Image> {
        let sort = query.full_sort();
        let project = query.viewer.project.clone().unwrap_or_default();
        let mut all: Vec<Image> = self
            .images
            .iter()
            .filter(|i| query.admits(i, self.members.get(&(i.id, project.clone())).copied()))
            .cloned()
            .collect();
        all.sort_by(|a, b| ImageQuery::compare(&sort, a, b));
        if let Some(m) = query.marker {
            let marker = self
                .images
                .iter()
                .find(|i| i.id == m)
                .expect("marker in catalogue");
            all.retain(|i| ImageQuery::compare(&sort, i, marker) == std::cmp::Ordering::Greater);
        }
        all
    }
}

fn query(viewer: Viewer, filters: Vec<Filter>) -> ImageQuery {
    ImageQuery {
        viewer,
        visibility: VisibilityScope::All,
        filters,
        limit: 10,
        ..ImageQuery::default()
    }
}

/// Checks one page against brute force and the work bound.
async fn check(r: &dyn Registry, c: &Catalogue, label: &str, q: ImageQuery) {
    let page = list(r, q.clone()).await;
    let expected = c.expected(&q);
    let want: Vec<Uuid> = expected.iter().take(q.limit).map(|i| i.id).collect();
    let got: Vec<Uuid> = page.images.iter().map(|i| i.id).collect();
    assert_eq!(
        got, want,
        "{label}: the page differs from brute force\nquery: {q:?}"
    );
    assert_eq!(page.more(), expected.len() > q.limit, "{label}: more");
    assert!(
        page.examined <= bound(page.images.len()),
        "{label}: {} units of work for a page of {} in a catalogue of {N} (bound {}): \
         the listing walks the catalogue\nquery: {q:?}",
        page.examined,
        page.images.len(),
        bound(page.images.len())
    );
}

pub(super) async fn filtered_pages_cost_the_page(r: &dyn Registry) {
    let c = build(r).await;
    let run = || c.run.clone();
    let a = admin;
    check(
        r,
        &c,
        "name",
        query(a(), vec![text(TextField::Name, &[&c.needle])]),
    )
    .await;
    check(
        r,
        &c,
        "name absent",
        query(a(), vec![text(TextField::Name, &[&unique("none")])]),
    )
    .await;
    let in_list = query(
        a(),
        vec![
            text(TextField::Name, &[&c.needle, "img-00031", "img-00062"]),
            run(),
        ],
    );
    check(r, &c, "name in list", in_list).await;
    check(
        r,
        &c,
        "status killed",
        query(a(), vec![text(TextField::Status, &["killed"]), run()]),
    )
    .await;
    let img = &c.images[1234];
    let checksum = img.checksum.clone().unwrap();
    check(
        r,
        &c,
        "checksum",
        query(a(), vec![text(TextField::Checksum, &[&checksum])]),
    )
    .await;
    let hash = img.os_hash_value.clone().unwrap();
    check(
        r,
        &c,
        "os_hash_value",
        query(a(), vec![text(TextField::OsHashValue, &[&hash])]),
    )
    .await;
    check(
        r,
        &c,
        "id",
        query(a(), vec![text(TextField::Id, &[&img.id.to_string()])]),
    )
    .await;
    check(
        r,
        &c,
        "tag",
        query(a(), vec![Filter::Tag(c.rare_tag.clone())]),
    )
    .await;
    check(
        r,
        &c,
        "protected",
        query(a(), vec![Filter::Protected(true), run()]),
    )
    .await;
    check(
        r,
        &c,
        "os_hidden",
        query(a(), vec![Filter::OsHidden(true), run()]),
    )
    .await;
    let rare = Filter::Property {
        key: "os_distro".into(),
        values: vec!["rare".into()],
    };
    check(r, &c, "property", query(a(), vec![rare.clone(), run()])).await;
    let owner = text(TextField::Owner, &[&c.projects[2]]);
    check(
        r,
        &c,
        "owner + disk_format",
        query(a(), vec![owner, text(TextField::DiskFormat, &["iso"])]),
    )
    .await;
    let mut community = query(a(), vec![run()]);
    community.visibility = VisibilityScope::Only(Visibility::Community);
    check(r, &c, "visibility community", community).await;

    // A project's views: its scope meets the filters.
    let p = &c.projects[5];
    let mut mine = query(user(p), vec![run(), Filter::OsHidden(false)]);
    mine.visibility = VisibilityScope::Default;
    check(r, &c, "project default", mine.clone()).await;
    for status in [
        MemberStatusFilter::All,
        MemberStatusFilter::Only(MemberStatus::Pending),
    ] {
        let mut q = mine.clone();
        q.visibility = VisibilityScope::Only(Visibility::Shared);
        q.member_status = status;
        check(r, &c, "project shared", q).await;
    }
    let mut needle = mine.clone();
    needle.filters.push(text(TextField::Name, &[&c.needle]));
    check(r, &c, "project name", needle).await;

    // Deep pages: a marker far into the order costs no more than the first page.
    let all = c.expected(&query(a(), vec![run()]));
    let mut deep = query(a(), vec![run()]);
    deep.marker = Some(all[N * 9 / 10].id);
    check(r, &c, "deep marker", deep).await;
    let mut deep_desc = query(a(), vec![run()]);
    deep_desc.sort = vec![(SortKey::CreatedAt, SortDir::Asc)];
    deep_desc.marker = Some(all[N / 3].id);
    check(r, &c, "deep marker ascending", deep_desc).await;

    // Other orders: a rare filter is gathered and sorted; the sort index pages.
    let mut by_name = query(a(), vec![Filter::Tag(c.rare_tag.clone())]);
    by_name.sort = vec![(SortKey::Name, SortDir::Asc)];
    check(r, &c, "rare tag by name", by_name).await;
    let mut names = query(a(), vec![run()]);
    names.sort = vec![(SortKey::Name, SortDir::Desc)];
    let sorted = c.expected(&names);
    names.marker = Some(sorted[N / 2].id);
    check(r, &c, "by name from a deep marker", names).await;

    // Without a run filter the catalogue holds other runs' images: check the cost and that
    // the page is in order and admitted.
    let mut open = query(user(p), vec![Filter::OsHidden(false)]);
    open.visibility = VisibilityScope::Default;
    let page = list(r, open.clone()).await;
    assert!(
        page.examined <= bound(page.images.len()),
        "project default listing: {} units",
        page.examined
    );
    let sort = open.full_sort();
    for w in page.images.windows(2) {
        assert_eq!(
            ImageQuery::compare(&sort, &w[0], &w[1]),
            std::cmp::Ordering::Less,
            "order"
        );
    }
    for img in &page.images {
        let m = c.members.get(&(img.id, p.clone())).copied();
        assert!(
            img.visibility != Visibility::Shared
                || img.owner.as_deref() == Some(p.as_str())
                || m.is_some(),
            "project default listing shows an image it may not: {img:?}"
        );
    }
}
