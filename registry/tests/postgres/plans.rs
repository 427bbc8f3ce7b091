//! Query plan checks: a catalogue large enough that reading it in full shows (40,000
//! images, each filtered value on well under 1 % of them), then, for every filter family, a
//! non-admin viewer's listing and marker pages, the exact statement the engine runs is
//! explained (EXPLAIN ANALYZE, as a custom plan and as the generic plan a prepared statement
//! settles on) and held to: no sequential scan, and no more image rows read than a few
//! pages' worth. Each page is also compared with the listing worked out in Rust.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::Duration;
use glass_registry::postgres::PlanKind;
use glass_registry::{
    Filter, Image, ImageQuery, ImageStatus, Member, MemberStatus, MemberStatusFilter,
    PostgresRegistry, Registry, SortDir, SortKey, TextField, Timestamp, Viewer, Visibility,
    VisibilityScope,
};
use serde_json::Value;
use uuid::Uuid;

use super::{connect, database};

const IMAGES: usize = 40_000;
const WRITERS: usize = 8;
const PAGE: usize = 25;
const GOLDEN: &str = "0123456789abcdef0123456789abcdef";
const DISTROS: [&str; 5] = ["ubuntu", "debian", "fedora", "centos", "windows"];

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
        .insert("os_distro".into(), DISTROS[i % 5].into());
    image
        .properties
        .insert("rare_key".into(), format!("v{}", i % 197));
    // Two images per second: ties on created_at are broken by id.
    image.created_at = base + Duration::seconds((i / 2) as i64);
    image.updated_at = image.created_at;
    image
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
    /// Rows each node on `images` produced or discarded (filter, recheck), over all loops.
    image_rows: f64,
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
    if relation == Some("images") {
        reads.image_rows += rows + removed;
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

/// How many image rows a case may read.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// A few pages: the filter is served in the listing's order.
    Pages,
    /// Eight pages: the filter is common enough (a fifth of the images) that walking the
    /// order's index, rejecting the rest, is the way.
    Common,
    /// The rows the filter matches, plus a page: a GIN index finds them all, unordered.
    Matching(usize),
}

impl Bound {
    fn rows(self) -> f64 {
        let page = (PAGE + 1) as f64;
        match self {
            Bound::Pages => 4.0 * page,
            Bound::Common => 8.0 * page,
            Bound::Matching(n) => n as f64 + 4.0 * page,
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

/// The cases: each filter family on its own for an admin, as the default order and
/// ascending; the non-admin scope with and without filters; marker pages.
fn cases(catalogue: &Catalogue) -> Vec<Case> {
    let some = &catalogue.images[12_345];
    let single = |label: &str, filter: Filter| Case {
        label: label.to_string(),
        query: query(admin(), vec![filter]),
        bound: Bound::Pages,
    };
    let mut cases = vec![
        single("name (one image)", text(TextField::Name, "img-12345")),
        single("name (shared)", text(TextField::Name, "ubuntu-22.04")),
        single("status=queued", text(TextField::Status, "queued")),
        single("status=active", text(TextField::Status, "active")),
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
        single("tag (common)", Filter::Tag("common".into())),
    ];
    for (label, filter) in [
        ("tag (rare)", Filter::Tag("t17".into())),
        (
            "property (rare)",
            Filter::Property {
                key: "rare_key".into(),
                values: vec!["v17".into()],
            },
        ),
    ] {
        let bound = Bound::Matching(catalogue.matching(&filter));
        cases.push(Case {
            label: label.into(),
            query: query(admin(), vec![filter]),
            bound,
        });
    }
    cases.push(Case {
        bound: Bound::Common,
        ..single(
            "property (common)",
            Filter::Property {
                key: "os_distro".into(),
                values: vec!["debian".into()],
            },
        )
    });
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
    // (own, public, shared with the viewer) may read what the filter matches.
    for (label, filter) in [
        (
            "viewer: name (shared)",
            text(TextField::Name, "ubuntu-22.04"),
        ),
        ("viewer: tag (rare)", Filter::Tag("t17".into())),
    ] {
        cases.push(Case {
            label: label.into(),
            bound: Bound::Matching(3 * catalogue.matching(&filter)),
            query: query(viewer(), vec![filter]),
        });
    }
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
    // Combinations no index serves in order: a sort on name with a rare filter. The
    // planner finds the filter's rows and sorts them (or walks the name index, rejecting).
    for filter in [Filter::Tag("t17".into()), text(TextField::Status, "queued")] {
        let mut q = query(admin(), vec![filter.clone()]);
        q.sort = vec![(SortKey::Name, SortDir::Asc)];
        cases.push(Case {
            label: format!("sorted by name, {filter:?}"),
            bound: Bound::Matching(catalogue.matching(&filter)),
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
    if expected.is_empty() {
        failures.push(format!("{}: the case selects nothing", case.label));
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
        if reads.image_rows > case.bound.rows() {
            wrong.push(format!(
                "read {} image rows, more than {} ({:?})",
                reads.image_rows,
                case.bound.rows(),
                case.bound
            ));
        }
        eprintln!(
            "{} ({kind:?}): {} image rows, {} buffers\n{}",
            case.label, reads.image_rows, reads.buffers, reads.outline
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
             pg_total_relation_size('image_members')",
            &[],
        )
        .await
        .expect("sizes");
    let per_image = |bytes: i64| bytes as usize / IMAGES;
    for row in client
        .query(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index \
             WHERE indrelid = 'images'::regclass ORDER BY 2 DESC",
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
    eprintln!(
        "bytes per image: table {}, indexes {}; members {} in all",
        per_image(sizes.get(0)),
        per_image(sizes.get(1)),
        sizes.get::<_, i64>(2)
    );
    let mut failures = Vec::new();
    for case in cases(&catalogue) {
        failures.extend(check(&registry, &catalogue, &case).await);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
