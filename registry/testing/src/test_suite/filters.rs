//! Filters: by text fields, size, tags, properties and times.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::helpers::{
    admin_query, at, create, id_set, list_all, list_paged, new_image, text, unique, update,
    with_status,
};
use glass_registry::{Comparison, Filter, ImageStatus, Registry, TextField, TimeField, Timestamp};

/// name, disk_format, container_format, size, tags, properties.
type FilterFixture = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<u64>,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

pub(super) async fn filters(r: &dyn Registry) {
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

pub(super) async fn time_filters(r: &dyn Registry) {
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
