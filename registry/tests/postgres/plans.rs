//! Query plan checks: a catalogue large enough that reading it in full shows (40,000
//! images, each filtered value on well under 1 % of them), then, for every filter family, a
//! non-admin viewer's listing and marker pages, the exact statement the engine runs is
//! explained (EXPLAIN ANALYZE, as a custom plan and as the generic plan a prepared statement
//! settles on) and held to: no sequential scan, and no more rows read (of images and of
//! image_labels, which tag and property filters join) than a few pages' worth. Each page is
//! also compared with the listing worked out in Rust.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::Duration;
use glass_registry::postgres::PlanKind;
use glass_registry::{
    Comparison, Filter, Image, ImageQuery, ImageStatus, Member, MemberStatus, MemberStatusFilter,
    PostgresRegistry, Registry, SortDir, SortKey, TextField, TimeField, Timestamp, Viewer,
    Visibility, VisibilityScope,
};
use serde_json::Value;
use uuid::Uuid;

use super::{connect, database};

const IMAGES: usize = 40_000;
const WRITERS: usize = 8;
const PAGE: usize = 25;
const GOLDEN: &str = "0123456789abcdef0123456789abcdef";
const DISTROS: [&str; 4] = ["ubuntu", "debian", "fedora", "centos"];

fn owner(i: usize) -> String {
    format!("p{:03}", i % 251)
}

/// Image `i` of the catalogue: every filtered attribute takes its rare value on a different
/// residue of a different prime, so the filters pick unrelated subsets.
fn catalogue_image(i: usize, base: Timestamp) -> Image {
    let mut image = Image::new(Uuid::new_v4(), Some(owner(i)));
    image.name = match i {
        _ if i % 997 == 3 => None,
        _ if i % 263 == 5 => Some("ubuntu-22.04".into()),
        _ => Some(format!("img-{i}")),
    };
    image.visibility = match i % 199 {
        0 => Visibility::Public,
        1 => Visibility::Community,
        2..=21 => Visibility::Shared,
        _ => Visibility::Private,
    };
    image.status = match i {
        _ if i % 241 == 7 => ImageStatus::Queued,
        _ if i % 509 == 9 => ImageStatus::Killed,
        _ => ImageStatus::Active,
    };
    if image.status == ImageStatus::Active {
        // Hex digits spread as a digest's are.
        let digits = || Uuid::new_v4().simple().to_string();
        // Copies of one image (the same bytes) share their checksum.
        image.checksum = Some(if i % 193 == 11 {
            GOLDEN.into()
        } else {
            digits()
        });
        image.os_hash_algo = Some("sha512".into());
        image.os_hash_value = Some((0..4).map(|_| digits()).collect());
        image.size = Some(i as u64 * 1000);
    }
    image.disk_format = Some(if i % 229 == 1 { "raw" } else { "qcow2" }.into());
    image.container_format = Some(if i % 233 == 1 { "ova" } else { "bare" }.into());
    image.protected = i % 227 == 3;
    image.os_hidden = i % 223 == 4;
    image.tags.insert(format!("t{}", i % 211));
    if i.is_multiple_of(2) {
        image.tags.insert("common".into());
    }
    image
        .properties
        .insert("os_distro".into(), distro(i).into());
    image
        .properties
        .insert("rare_key".into(), format!("v{}", i % 197));
    // One image per second, but one in ten shares the second before it: ties on created_at
    // are broken by id.
    let second = i - usize::from(i % 10 == 1);
    image.created_at = base + Duration::seconds(second as i64);
    image.updated_at = image.created_at;
    image
}

/// Image `i`'s os_distro: windows on one in 31 (3 %, half of them tagged `common`), else one
/// of four (a quarter each).
fn distro(i: usize) -> &'static str {
    if i.is_multiple_of(31) {
        "windows"
    } else {
        DISTROS[i % 4]
    }
}

/// The member (and its status) of a shared image `i`: the next project.
fn catalogue_member(i: usize, image: &Image) -> Member {
    let status = match i % 7 {
        0 => MemberStatus::Rejected,
        1 | 2 => MemberStatus::Pending,
        _ => MemberStatus::Accepted,
    };
    Member {
        image_id: image.id,
        member_id: owner(i + 1),
        status,
        created_at: image.created_at,
        updated_at: image.created_at,
    }
}

struct Catalogue {
    images: Vec<Image>,
    /// (image, member) -> status.
    members: HashMap<(Uuid, String), MemberStatus>,
}

impl Catalogue {
    /// The page `query` should answer, worked out in Rust.
    fn expected(&self, query: &ImageQuery) -> Vec<Uuid> {
        let sort = query.full_sort();
        let membership = |image: &Image| {
            let project = query.viewer.project.clone()?;
            self.members.get(&(image.id, project)).copied()
        };
        let mut admitted: Vec<&Image> = self
            .images
            .iter()
            .filter(|i| query.admits(i, membership(i)))
            .collect();
        admitted.sort_by(|a, b| ImageQuery::compare(&sort, a, b));
        let start = match query.marker {
            None => 0,
            Some(id) => {
                let marker = self.images.iter().find(|i| i.id == id).expect("marker");
                admitted
                    .iter()
                    .position(|i| ImageQuery::compare(&sort, i, marker).is_gt())
                    .unwrap_or(admitted.len())
            }
        };
        admitted[start..]
            .iter()
            .take(query.limit)
            .map(|i| i.id)
            .collect()
    }

    /// How many images `query` lists in all.
    fn visible(&self, query: &ImageQuery) -> usize {
        let all = ImageQuery {
            limit: usize::MAX,
            ..query.clone()
        };
        self.expected(&all).len()
    }

    /// How many images satisfy `filter` alone.
    fn matching(&self, filter: &Filter) -> usize {
        self.images.iter().filter(|i| filter.matches(i)).count()
    }

    /// The rows an index lookup of everything `filter` matches reads: each image, and for
    /// a tag or property its row of image_labels too.
    fn found(&self, filter: &Filter) -> usize {
        let tables = match filter {
            Filter::Tag(_) | Filter::Property { .. } => 2,
            _ => 1,
        };
        tables * self.matching(filter)
    }

    /// How many rows walking each of `query`'s filters in the listing's order reads until
    /// its page is complete: for each filter, the images it matches from the marker to the
    /// page's last image.
    fn walked(&self, query: &ImageQuery) -> usize {
        let sort = query.full_sort();
        let page = self.expected(query);
        let last = page.last().expect("a page");
        let find = |id: &Uuid| self.images.iter().find(|i| i.id == *id).expect("image");
        let (last, marker) = (find(last), query.marker.as_ref().map(find));
        let within = |i: &Image| {
            ImageQuery::compare(&sort, i, last).is_le()
                && marker.is_none_or(|m| ImageQuery::compare(&sort, i, m).is_gt())
        };
        query
            .filters
            .iter()
            .map(|f| {
                self.images
                    .iter()
                    .filter(|i| f.matches(i) && within(i))
                    .count()
            })
            .sum()
    }
}

/// The catalogue, imported in bulk (the columns derived as on every write), then its
/// members added one by one.
async fn populate(registry: &Arc<PostgresRegistry>) -> Catalogue {
    let base = Timestamp::from_timestamp(1_700_000_000, 0).expect("time");
    let images: Vec<Image> = (0..IMAGES).map(|i| catalogue_image(i, base)).collect();
    let parts: Vec<_> = images
        .chunks(IMAGES.div_ceil(WRITERS))
        .map(|part| {
            let (registry, part) = (registry.clone(), part.to_vec());
            tokio::spawn(async move { registry.import_images(&part).await })
        })
        .collect();
    for part in parts {
        part.await.expect("import").expect("import");
    }
    let members: Vec<Member> = images
        .iter()
        .enumerate()
        .filter(|(_, image)| image.visibility == Visibility::Shared)
        .map(|(i, image)| catalogue_member(i, image))
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let registry = registry.clone();
            let mine: Vec<Member> = members.iter().skip(w).step_by(WRITERS).cloned().collect();
            tokio::spawn(async move {
                for member in mine {
                    registry.add_member(member).await.expect("member");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    Catalogue {
        images,
        members: members
            .into_iter()
            .map(|m| ((m.image_id, m.member_id), m.status))
            .collect(),
    }
}

/// What a plan read, summed over its nodes.
#[derive(Debug, Default)]
struct Reads {
    /// Rows each node on `images` or `image_labels` produced or discarded (filter,
    /// recheck), over all loops.
    rows: f64,
    seq_scans: Vec<String>,
    /// Shared buffers hit or read by the whole statement.
    buffers: f64,
    outline: String,
}

fn number(node: &Value, key: &str) -> f64 {
    node.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn walk(node: &Value, depth: usize, reads: &mut Reads) {
    let kind = node["Node Type"].as_str().unwrap_or("?");
    let relation = node.get("Relation Name").and_then(Value::as_str);
    let loops = number(node, "Actual Loops");
    let rows = number(node, "Actual Rows") * loops;
    let removed = (number(node, "Rows Removed by Filter")
        + number(node, "Rows Removed by Index Recheck"))
        * loops;
    if kind == "Seq Scan" {
        reads.seq_scans.push(relation.unwrap_or("?").to_string());
    }
    if matches!(relation, Some("images" | "image_labels")) {
        reads.rows += rows + removed;
    }
    let _ = writeln!(
        reads.outline,
        "{:indent$}{kind}{}{} rows={rows} removed={removed}",
        "",
        node.get("Index Name")
            .and_then(Value::as_str)
            .map(|i| format!(" using {i}"))
            .unwrap_or_default(),
        relation.map(|r| format!(" on {r}")).unwrap_or_default(),
        indent = depth * 2,
    );
    for child in node
        .get("Plans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        walk(child, depth + 1, reads);
    }
}

fn reads(plan: &Value) -> Reads {
    let top = &plan[0]["Plan"];
    let mut reads = Reads {
        buffers: number(top, "Shared Hit Blocks") + number(top, "Shared Read Blocks"),
        ..Reads::default()
    };
    walk(top, 0, &mut reads);
    reads
}

/// How many rows (of images and image_labels) a case may read.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// A few pages: the filter is served in the listing's order.
    Pages,
    /// Eight pages: the filter is common enough (a fifth of the images) that walking the
    /// order's index, rejecting the rest, is the way.
    Common,
    /// The rows the filter matches, plus a few pages: an index finds them all, then they
    /// are sorted (the order asked for is not the index's). A tag or property filter's
    /// matches are counted twice, a label and an image each.
    Matching(usize),
    /// Several filters walked together in the listing's order (a merge join) until the
    /// page is complete: each one's rows up to the page's end (`Catalogue::walked`), plus a
    /// few pages.
    Walked(usize),
    /// No rows: the filter can match nothing.
    Nothing,
}

impl Bound {
    fn rows(self) -> f64 {
        let page = (PAGE + 1) as f64;
        match self {
            Bound::Pages => 4.0 * page,
            Bound::Common => 8.0 * page,
            Bound::Matching(n) | Bound::Walked(n) => n as f64 + 4.0 * page,
            Bound::Nothing => 0.0,
        }
    }
}

struct Case {
    label: String,
    query: ImageQuery,
    bound: Bound,
}

fn admin() -> Viewer {
    Viewer {
        project: Some(owner(0)),
        is_admin: true,
    }
}

fn viewer() -> Viewer {
    Viewer {
        project: Some(owner(42)),
        is_admin: false,
    }
}

fn query(viewer: Viewer, filters: Vec<Filter>) -> ImageQuery {
    ImageQuery {
        viewer,
        filters,
        limit: PAGE,
        ..ImageQuery::default()
    }
}

fn text(field: TextField, value: &str) -> Filter {
    Filter::Text {
        field,
        values: vec![value.to_string()],
    }
}

/// An admin's listing with `filters`, read in a few pages.
fn single_filters(label: &str, filters: Vec<Filter>) -> Case {
    Case {
        label: label.to_string(),
        query: query(admin(), filters),
        bound: Bound::Pages,
    }
}

/// The cases: each filter family on its own for an admin, as the default order and
/// ascending; the non-admin scope with and without filters; marker pages.
fn cases(catalogue: &Catalogue) -> Vec<Case> {
    let some = &catalogue.images[12_345];
    let single = |label: &str, filter: Filter| single_filters(label, vec![filter]);
    let mut cases = vec![
        single("name (one image)", text(TextField::Name, "img-12345")),
        single("name (shared)", text(TextField::Name, "ubuntu-22.04")),
        single("status=queued", text(TextField::Status, "queued")),
        single("status=active", text(TextField::Status, "active")),
        Case {
            bound: Bound::Nothing,
            ..single(
                "status=killed (never listed)",
                text(TextField::Status, "killed"),
            )
        },
        single("owner", text(TextField::Owner, &owner(42))),
        single("disk_format=raw", text(TextField::DiskFormat, "raw")),
        single(
            "container_format=ova",
            text(TextField::ContainerFormat, "ova"),
        ),
        single(
            "checksum",
            text(TextField::Checksum, some.checksum.as_deref().expect("sum")),
        ),
        single("checksum (copies)", text(TextField::Checksum, GOLDEN)),
        single(
            "os_hash_value",
            text(
                TextField::OsHashValue,
                some.os_hash_value.as_deref().expect("hash"),
            ),
        ),
        single("protected=true", Filter::Protected(true)),
        single("protected=false", Filter::Protected(false)),
        single("os_hidden=true", Filter::OsHidden(true)),
    ];
    // Tags and extra properties, however common: a page of one label's rows, in order.
    let property = |key: &str, values: &[&str]| Filter::Property {
        key: key.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let common = Filter::Tag("common".into());
    let windows = property("os_distro", &["windows"]);
    cases.push(Case {
        bound: Bound::Common,
        ..single("property (common)", property("os_distro", &["debian"]))
    });
    for (label, filter) in [
        ("tag (common)", common.clone()),
        ("tag (rare)", Filter::Tag("t17".into())),
        ("property (middle)", windows.clone()),
        ("property (rare)", property("rare_key", &["v17"])),
    ] {
        cases.push(single(label, filter));
    }
    // Several values: a range per value, each planned apart from the page's LIMIT, so
    // found whole and sorted unless the table is vacuumed (all visible, an index-only scan
    // in order costs the least), then merged in order.
    for (label, filter) in [
        (
            "property (two rare values)",
            property("rare_key", &["v17", "v18"]),
        ),
        (
            "property (two values)",
            property("os_distro", &["windows", "debian"]),
        ),
    ] {
        cases.push(Case {
            bound: Bound::Matching(catalogue.found(&filter)),
            ..single(label, filter)
        });
    }
    // Two labels: one label's rows in order, each looked up in the other's (or both walked
    // together); the rarer decides how many.
    let both = query(admin(), vec![common.clone(), windows.clone()]);
    cases.push(Case {
        label: "tag + property".into(),
        bound: Bound::Walked(catalogue.walked(&both)),
        query: both,
    });
    // Created before a time: the labels' walk starts there.
    let before = catalogue.images[IMAGES / 3].created_at;
    cases.push(single_filters(
        "tag (common), created before",
        vec![
            common.clone(),
            Filter::Time {
                field: TimeField::CreatedAt,
                op: Comparison::Lt,
                at: before,
            },
        ],
    ));
    for v in [
        Visibility::Public,
        Visibility::Community,
        Visibility::Shared,
    ] {
        let mut q = query(admin(), Vec::new());
        q.visibility = VisibilityScope::Only(v);
        cases.push(Case {
            label: format!("visibility={}", v.as_str()),
            query: q,
            bound: Bound::Pages,
        });
    }
    let mut ascending = query(admin(), vec![text(TextField::Owner, &owner(42))]);
    ascending.sort = vec![(SortKey::CreatedAt, SortDir::Asc)];
    cases.push(Case {
        label: "owner, created_at ascending".into(),
        query: ascending,
        bound: Bound::Pages,
    });
    // A non-admin viewer: its own images, public ones and those shared with it.
    cases.push(Case {
        label: "viewer: default listing".into(),
        query: query(viewer(), Vec::new()),
        bound: Bound::Pages,
    });
    cases.push(Case {
        label: "viewer: status=queued".into(),
        query: query(viewer(), vec![text(TextField::Status, "queued")]),
        bound: Bound::Pages,
    });
    // One of the viewer's own images.
    let own = format!("img-{}", 251 * 49 + 42);
    for (label, filter) in [
        (
            "viewer: owner=own project",
            text(TextField::Owner, &owner(42)),
        ),
        (
            "viewer: owner=another project",
            text(TextField::Owner, &owner(43)),
        ),
        ("viewer: name (one image)", text(TextField::Name, &own)),
        (
            "viewer: disk_format=raw",
            text(TextField::DiskFormat, "raw"),
        ),
        ("viewer: protected=true", Filter::Protected(true)),
    ] {
        cases.push(Case {
            label: label.into(),
            query: query(viewer(), vec![filter]),
            bound: Bound::Pages,
        });
    }
    // Filters whose index cannot restrict the scope as well: each of the scope's three parts
    // (own, public, shared with the viewer) may read what the filter matches, and a tag's
    // parts may read the part's images instead (to look their labels up, or join them
    // with the tag's).
    let name = text(TextField::Name, "ubuntu-22.04");
    cases.push(Case {
        label: "viewer: name (shared)".into(),
        bound: Bound::Matching(3 * catalogue.found(&name)),
        query: query(viewer(), vec![name]),
    });
    let rare = Filter::Tag("t17".into());
    cases.push(Case {
        label: "viewer: tag (rare)".into(),
        bound: Bound::Matching(
            3 * catalogue.found(&rare) + catalogue.visible(&query(viewer(), Vec::new())),
        ),
        query: query(viewer(), vec![rare]),
    });
    cases.push(Case {
        label: "viewer: tag (common)".into(),
        query: query(viewer(), vec![common.clone()]),
        bound: Bound::Common,
    });
    for v in [Visibility::Private, Visibility::Community] {
        let mut q = query(viewer(), Vec::new());
        q.visibility = VisibilityScope::Only(v);
        cases.push(Case {
            label: format!("viewer: visibility={}", v.as_str()),
            query: q,
            bound: Bound::Pages,
        });
    }
    let mut public = query(viewer(), Vec::new());
    public.visibility = VisibilityScope::Only(Visibility::Public);
    cases.push(Case {
        label: "viewer: visibility=public".into(),
        query: public,
        bound: Bound::Pages,
    });
    for status in [MemberStatus::Pending, MemberStatus::Accepted] {
        let mut shared = query(viewer(), Vec::new());
        shared.visibility = VisibilityScope::Only(Visibility::Shared);
        shared.member_status = MemberStatusFilter::Only(status);
        cases.push(Case {
            label: format!("viewer: shared, member_status={}", status.as_str()),
            query: shared,
            bound: Bound::Pages,
        });
    }
    let mut all = query(viewer(), Vec::new());
    all.visibility = VisibilityScope::All;
    all.member_status = MemberStatusFilter::All;
    cases.push(Case {
        label: "viewer: visibility=all, member_status=all".into(),
        query: all,
        bound: Bound::Pages,
    });
    // Marker pages: the second page of some of the above, and one deep in the catalogue.
    let second: Vec<Case> = cases
        .iter()
        .filter(|c| {
            [
                "viewer: default listing",
                "status=queued",
                "owner, created_at ascending",
                "tag (common)",
                "property (middle)",
                "tag + property",
                "viewer: tag (common)",
            ]
            .contains(&c.label.as_str())
        })
        .map(|c| {
            let first = catalogue.expected(&c.query);
            let mut q = c.query.clone();
            q.marker = first.last().copied();
            Case {
                label: format!("{}, page 2", c.label),
                query: q,
                bound: c.bound,
            }
        })
        .collect();
    cases.extend(second);
    let mut deep = query(admin(), Vec::new());
    deep.marker = Some(catalogue.images[IMAGES / 2].id);
    cases.push(Case {
        label: "deep marker page".into(),
        query: deep,
        bound: Bound::Pages,
    });
    let mut deep = query(admin(), vec![common.clone()]);
    deep.marker = Some(catalogue.images[IMAGES / 2].id);
    cases.push(Case {
        label: "tag (common), deep marker page".into(),
        query: deep,
        bound: Bound::Pages,
    });
    // Combinations no index serves in order: a sort on name with a rare filter. The
    // planner finds the filter's rows and sorts them (or walks the name index, rejecting).
    for filter in [Filter::Tag("t17".into()), text(TextField::Status, "queued")] {
        let mut q = query(admin(), vec![filter.clone()]);
        q.sort = vec![(SortKey::Name, SortDir::Asc)];
        cases.push(Case {
            label: format!("sorted by name, {filter:?}"),
            bound: Bound::Matching(catalogue.found(&filter)),
            query: q,
        });
    }
    // A viewer's listing sorted by name: each part of the scope is read whole and sorted
    // (or the name index walked, rejecting other projects' images).
    let mut viewer_by_name = query(viewer(), Vec::new());
    viewer_by_name.sort = vec![(SortKey::Name, SortDir::Asc)];
    let visible = catalogue.visible(&viewer_by_name);
    cases.push(Case {
        label: "viewer: sorted by name".into(),
        query: viewer_by_name,
        bound: Bound::Matching(visible),
    });
    let mut by_name = query(admin(), Vec::new());
    by_name.sort = vec![(SortKey::Name, SortDir::Asc)];
    by_name.marker = Some(catalogue.images[IMAGES / 3].id);
    cases.push(Case {
        label: "sorted by name, marker page".into(),
        query: by_name,
        bound: Bound::Pages,
    });
    cases
}

/// What is wrong with one case: its page, or either of its plans.
async fn check(registry: &PostgresRegistry, catalogue: &Catalogue, case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    let page = registry
        .list_images(case.query.clone())
        .await
        .unwrap_or_else(|e| panic!("{}: list: {e}", case.label));
    let got: Vec<Uuid> = page.images.iter().map(|i| i.id).collect();
    let expected = catalogue.expected(&case.query);
    if expected.is_empty() != matches!(case.bound, Bound::Nothing) {
        failures.push(format!(
            "{}: the case selects {} images",
            case.label,
            expected.len()
        ));
    }
    if got != expected {
        failures.push(format!(
            "{}: page of {} images, expected {}: {got:?} != {expected:?}",
            case.label,
            got.len(),
            expected.len()
        ));
    }
    for kind in [PlanKind::Custom, PlanKind::Generic] {
        let plan = registry
            .explain_list(&case.query, kind)
            .await
            .unwrap_or_else(|e| panic!("{}: explain: {e}", case.label));
        let reads = reads(&plan);
        let mut wrong = Vec::new();
        if !reads.seq_scans.is_empty() {
            wrong.push(format!("sequential scan on {:?}", reads.seq_scans));
        }
        if reads.rows > case.bound.rows() {
            wrong.push(format!(
                "read {} rows, more than {} ({:?})",
                reads.rows,
                case.bound.rows(),
                case.bound
            ));
        }
        eprintln!(
            "{} ({kind:?}): {} rows, {} buffers\n{}",
            case.label, reads.rows, reads.buffers, reads.outline
        );
        if !wrong.is_empty() {
            failures.push(format!(
                "{} ({kind:?} plan): {}\n{}",
                case.label,
                wrong.join("; "),
                reads.outline
            ));
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_read_a_few_pages_not_the_catalogue() {
    let (_cluster, url) = database("plans");
    let registry = Arc::new(connect(&url).await);
    let started = std::time::Instant::now();
    let catalogue = populate(&registry).await;
    eprintln!(
        "{} images, {} members in {:?}",
        catalogue.images.len(),
        catalogue.members.len(),
        started.elapsed()
    );
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client.batch_execute("ANALYZE").await.expect("analyze");
    let sizes = client
        .query_one(
            "SELECT pg_table_size('images'), pg_indexes_size('images'), \
             pg_table_size('image_labels'), pg_indexes_size('image_labels'), \
             pg_total_relation_size('image_members'), \
             (SELECT count(*) FROM image_labels)",
            &[],
        )
        .await
        .expect("sizes");
    let per_image = |bytes: i64| bytes as usize / IMAGES;
    for row in client
        .query(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index \
             WHERE indrelid IN ('images'::regclass, 'image_labels'::regclass) ORDER BY 2 DESC",
            &[],
        )
        .await
        .expect("index sizes")
    {
        eprintln!(
            "index {}: {} bytes per image",
            row.get::<_, String>(0),
            per_image(row.get(1))
        );
    }
    let bytes: Vec<usize> = (0..4).map(|i| per_image(sizes.get(i))).collect();
    eprintln!(
        "bytes per image: images {} + indexes {}, image_labels {} + indexes {} \
         ({} labels), {} in all; members {} bytes in all",
        bytes[0],
        bytes[1],
        bytes[2],
        bytes[3],
        sizes.get::<_, i64>(5),
        bytes.iter().sum::<usize>(),
        sizes.get::<_, i64>(4)
    );
    let mut failures = Vec::new();
    for case in cases(&catalogue) {
        failures.extend(check(&registry, &catalogue, &case).await);
    }
    // Vacuumed (every row visible), a property's several values are read in order too (a
    // quarter of the images: as common as "property (common)").
    client
        .batch_execute("VACUUM (ANALYZE) image_labels")
        .await
        .expect("vacuum");
    let values = Case {
        label: "property (two values), vacuumed".into(),
        query: query(
            admin(),
            vec![Filter::Property {
                key: "os_distro".into(),
                values: vec!["windows".into(), "debian".into()],
            }],
        ),
        bound: Bound::Common,
    };
    failures.extend(check(&registry, &catalogue, &values).await);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
