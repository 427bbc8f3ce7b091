//! The order a listing must show, computed independently of the engines: the tie-breakers
//! every listing adds and a reference comparison of each sort key.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::helpers::ids;
use glass_registry::{Image, SortDir, SortKey};

/// The expected tie-breakers: created_at then id, unless already present, in the query's
/// direction when all its keys share one, descending otherwise (and when none is given).
pub(super) fn tie_broken(sort: &[(SortKey, SortDir)]) -> Vec<(SortKey, SortDir)> {
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
pub(super) fn key_cmp(key: SortKey, a: &Image, b: &Image) -> Ordering {
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
pub(super) fn sorted(images: &[Image], sort: &[(SortKey, SortDir)]) -> Vec<Image> {
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

pub(super) fn describe(images: &[Image], sort: &[(SortKey, SortDir)]) -> String {
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

pub(super) fn assert_order(
    got: &[Image],
    expected: &[Image],
    sort: &[(SortKey, SortDir)],
    what: &str,
) {
    if ids(got) != ids(expected) {
        panic!(
            "{what}: wrong order for sort {sort:?} (full order {:?})\n got:\n{}\n expected:\n{}",
            tie_broken(sort),
            describe(got, sort),
            describe(expected, sort)
        );
    }
}
