//! Image listings as one SQL query: the viewer's scope (`scope.rs`: parts an index each
//! serves in order, united), the filters, keyset pagination after the marker on the full
//! sort order (sort keys, then created_at and id), `ORDER BY` that order and
//! `LIMIT limit + 1`. The rules are those of `query.rs` (the sled engine evaluates them in
//! Rust; the shared suite holds both to them): NULLs sort first ascending, strings by bytes
//! (bytea columns), timestamps to the microsecond, time filters on whole seconds. A tag or
//! extra-property filter is a join with its rows of `image_labels` (`label_join`), whose key
//! is in the default order: the marker and created_at bounds are set on those rows as well
//! as on the image, so that whichever index a plan walks starts where the page does.
//!
//! The statement text depends on the query's shape (sort keys, filters, scope, which marker
//! values are NULL) and is prepared once per connection and shape, so PostgreSQL plans each
//! shape once rather than on every call (planning cost more than running a page: ~0.5 ms
//! against ~0.05 ms); after five runs it keeps a generic plan, made without the parameters'
//! values. Values are parameters, except where how common the value is decides the plan:
//! status, disk and container format, tags, extra properties and the flags are constants in
//! the text, so each value's statement is planned for it. (A generic plan guesses one
//! frequency for every value, and the plan tests caught it wrong both ways: 20,000 rows
//! sorted for a common tag, 5,000 walked for a rare property or status.) Shapes are few in
//! practice; the per-connection cache is cleared past [`MAX_CACHED`] statements so that odd
//! queries cannot grow it without bound.

use std::fmt::Write as _;

use chrono::DateTime;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::sql::Sql;
use super::{image_from_row, member_status, pg, property_label, scope, tag_label};
use crate::error::{RegistryError, Result};
use crate::model::{Image, ImageStatus, Timestamp};
use crate::query::{
    Comparison, Filter, ImagePage, ImageQuery, SortDir, SortKey, TextField, TimeField,
};

/// Most prepared statements a connection keeps (every one of the engine's, fixed and listing).
pub(super) const MAX_CACHED: usize = 256;

/// Prepares `text` on this connection once (by text and types).
async fn prepared(
    client: &deadpool_postgres::ClientWrapper,
    text: &str,
    types: &[Type],
) -> Result<tokio_postgres::Statement> {
    if client.statement_cache.size() > MAX_CACHED {
        client.statement_cache.clear();
    }
    client.prepare_typed_cached(text, types).await.map_err(pg)
}

/// The column of a sort key and whether it can be NULL.
fn column(key: SortKey) -> (&'static str, bool) {
    match key {
        SortKey::Name => ("name", true),
        SortKey::Status => ("status", false),
        SortKey::ContainerFormat => ("container_format", true),
        SortKey::DiskFormat => ("disk_format", true),
        SortKey::Size => ("size", true),
        SortKey::Id => ("id", false),
        SortKey::CreatedAt => ("created_at", false),
        SortKey::UpdatedAt => ("updated_at", false),
    }
}

/// The marker's value for a sort key as a parameter, or `None` for NULL.
fn marker_value(sql: &mut Sql, key: SortKey, m: &Image) -> Option<String> {
    let text = |sql: &mut Sql, v: &Option<String>| {
        v.as_ref()
            .map(|s| sql.param(s.as_bytes().to_vec(), Type::BYTEA))
    };
    match key {
        SortKey::Name => text(sql, &m.name),
        SortKey::Status => Some(sql.param(m.status.as_str().to_string(), Type::TEXT)),
        SortKey::ContainerFormat => text(sql, &m.container_format),
        SortKey::DiskFormat => text(sql, &m.disk_format),
        // A size too large to store cannot be the marker's stored value: sort it last.
        SortKey::Size => m
            .size
            .map(|s| sql.param(i64::try_from(s).unwrap_or(i64::MAX), Type::INT8)),
        SortKey::Id => Some(sql.param(m.id, Type::UUID)),
        SortKey::CreatedAt => Some(sql.param(m.created_at, Type::TIMESTAMPTZ)),
        SortKey::UpdatedAt => Some(sql.param(m.updated_at, Type::TIMESTAMPTZ)),
    }
}

/// The column of a sort key in `table`: `i` (images) or a label alias, which has created_at
/// and the image's id only.
fn key_column(table: &str, key: SortKey) -> (String, bool) {
    let (col, nullable) = column(key);
    match (table, key) {
        ("i", _) => (format!("i.{col}"), nullable),
        (_, SortKey::Id) => (format!("{table}.image_id"), false),
        _ => (format!("{table}.{col}"), nullable),
    }
}

/// The condition "comes after the marker" in the order `sort`, on the images (`tables[0]`)
/// and, when the order is created_at and id alone, on each label alias after it too: the
/// same condition (a label row has its image's created_at and id), which the index a plan
/// walks must see to start at the marker rather than at the beginning.
fn after_marker(
    sql: &mut Sql,
    sort: &[(SortKey, SortDir)],
    marker: &Image,
    tables: &[String],
) -> String {
    let values: Vec<Option<String>> = sort
        .iter()
        .map(|&(key, _)| marker_value(sql, key, marker))
        .collect();
    let on_labels = sort
        .iter()
        .all(|(key, _)| matches!(key, SortKey::CreatedAt | SortKey::Id));
    let tables = if on_labels { tables } else { &tables[..1] };
    tables
        .iter()
        .map(|table| after_marker_on(table, sort, &values))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// [`after_marker`] on one table, given the marker's values (`None` for NULL).
fn after_marker_on(table: &str, sort: &[(SortKey, SortDir)], values: &[Option<String>]) -> String {
    let keys: Vec<(String, bool, SortDir, Option<&str>)> = sort
        .iter()
        .zip(values)
        .map(|(&(key, dir), value)| {
            let (col, nullable) = key_column(table, key);
            (col, nullable, dir, value.as_deref())
        })
        .collect();
    let dir = keys[0].2;
    let one_dir = keys.iter().all(|k| k.2 == dir);
    // A row comparison is what an index range scan can use. It is exact when no NULL is
    // involved: ascending with a marker free of NULLs (NULL rows sort first, and a NULL
    // comparison excludes them, as it should), descending on columns that cannot be NULL.
    let exact_row = one_dir
        && match dir {
            SortDir::Asc => keys.iter().all(|k| k.3.is_some()),
            SortDir::Desc => keys.iter().all(|k| !k.1),
        };
    if exact_row {
        let cols: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let vals: Vec<&str> = keys.iter().map(|k| k.3.unwrap_or("NULL")).collect();
        let op = if dir == SortDir::Asc { ">" } else { "<" };
        return format!("({}) {op} ({})", cols.join(", "), vals.join(", "));
    }
    // Otherwise: after on key i with equality on every key before it, for some i.
    let mut alternatives = Vec::new();
    for i in 0..keys.len() {
        let mut terms: Vec<String> = keys[..i]
            .iter()
            .map(|(col, _, _, val)| match val {
                None => format!("{col} IS NULL"),
                Some(v) => format!("{col} = {v}"),
            })
            .collect();
        let (col, _, dir, val) = &keys[i];
        let after = match (dir, val) {
            (SortDir::Asc, None) => Some(format!("{col} IS NOT NULL")),
            (SortDir::Asc, Some(v)) => Some(format!("{col} > {v}")),
            (SortDir::Desc, None) => None,
            (SortDir::Desc, Some(v)) => Some(format!("({col} IS NULL OR {col} < {v})")),
        };
        let Some(after) = after else { continue };
        terms.push(after);
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    if alternatives.is_empty() {
        return "FALSE".into();
    }
    // A bound on the first key alone, which an index scan can start from.
    let (col, _, dir, val) = &keys[0];
    let bound = match (dir, val) {
        (SortDir::Asc, Some(v)) => format!("{col} >= {v} AND "),
        (SortDir::Desc, None) => format!("{col} IS NULL AND "),
        _ => String::new(),
    };
    format!("{bound}({})", alternatives.join(" OR "))
}

/// `ORDER BY`'s list for `sort`, on the columns of `table`.
fn order_by(sort: &[(SortKey, SortDir)], table: &str) -> String {
    sort.iter()
        .map(|&(key, dir)| {
            let (col, nullable) = column(key);
            match (dir, nullable) {
                (SortDir::Asc, true) => format!("{table}.{col} ASC NULLS FIRST"),
                (SortDir::Asc, false) => format!("{table}.{col} ASC"),
                (SortDir::Desc, true) => format!("{table}.{col} DESC NULLS LAST"),
                (SortDir::Desc, false) => format!("{table}.{col} DESC"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `col` equals one of `values`: `=` for one value, so that an index on `col` and the
/// listing's order (`(col, created_at, id)`) also yields that order; `= ANY` for several.
fn one_of<T: ToSql + Sync + Send + Ord + 'static>(
    sql: &mut Sql,
    col: &str,
    mut values: Vec<T>,
    ty: Type,
    array: Type,
) -> String {
    values.sort();
    values.dedup();
    match values.len() {
        0 => "FALSE".into(),
        1 => format!("{col} = {}", sql.param(values.remove(0), ty)),
        _ => format!("{col} = ANY({})", sql.param(values, array)),
    }
}

/// How many leading bytes of a hash its index keeps (migration 3's `substr(…, 1, 8)`).
const HASH_PREFIX: usize = 8;

/// The hash column `col` equals one of `values`: through its index on the leading bytes,
/// then exactly.
fn hash_one_of(sql: &mut Sql, col: &str, values: &[String]) -> String {
    let values: Vec<Vec<u8>> = values.iter().map(|v| v.as_bytes().to_vec()).collect();
    let prefixes: Vec<Vec<u8>> = values
        .iter()
        .map(|v| v[..v.len().min(HASH_PREFIX)].to_vec())
        .collect();
    let prefix = one_of(
        sql,
        &format!("substr({col}, 1, {HASH_PREFIX})"),
        prefixes,
        Type::BYTEA,
        Type::BYTEA_ARRAY,
    );
    let exact = one_of(sql, col, values, Type::BYTEA, Type::BYTEA_ARRAY);
    format!("{prefix} AND {exact}")
}

/// `col` equals one of the constants `values` (SQL literals).
fn constant_one_of(col: &str, mut values: Vec<String>) -> String {
    values.sort();
    values.dedup();
    match values.as_slice() {
        [] => "FALSE".into(),
        [value] => format!("{col} = {value}"),
        values => format!("{col} IN ({})", values.join(", ")),
    }
}

/// A bytea constant in the statement's text: hex digits, nothing to escape; an escape
/// string (`E'\\x…'`), read alike whatever `standard_conforming_strings` says.
fn bytea_literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2 + 16);
    out.push_str("E'\\\\x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out.push_str("'::bytea");
    out
}

/// The labels a tag or property filter asks for, one of which an image must have (none for
/// other filters).
fn labels(f: &Filter) -> Option<Vec<Vec<u8>>> {
    let mut labels = match f {
        Filter::Tag(tag) => vec![tag_label(tag)],
        Filter::Property { key, values } => values.iter().map(|v| property_label(key, v)).collect(),
        _ => return None,
    };
    labels.sort();
    labels.dedup();
    Some(labels)
}

/// The join of the `image_labels` rows of `labels` as `alias`: an image has at most one of
/// them (a tag, or values of one key), so the join keeps each image once.
///
/// The rows join on created_at, an equality, so that the label's key (label, created_at,
/// image_id) is the listing's order as far as the planner knows: it can walk the label's
/// rows in order and stop after a page, or walk another index and look each image's label
/// up by (label, created_at). The image's id is compared inside a `CASE`, which the planner
/// does not take for a join equality (it guesses that half the rows pass). As a second
/// equality, it would be multiplied with the first as if independent: one image in 20,000
/// of a label's rows expected to join (created_at alone picks the image), so no page
/// expected to fill early, and a common tag's 20,000 rows joined and sorted to return 25.
/// Looking an image up by created_at reads the images of that microsecond: one, in practice.
///
/// Several labels are a UNION ALL of one range each, in the listing's order when it is the
/// default one (`order`): the planner merges ranges in order only when each says its order
/// (`label = ANY(…)` is one unordered range). Each range is planned apart from the page's
/// LIMIT, though: one not yet vacuumed (an index scan visits the table) is cheapest found
/// whole and sorted, so a page reads every match of the values until VACUUM has run.
fn label_join(alias: &str, labels: &[Vec<u8>], order: Option<SortDir>) -> String {
    let on = format!(
        "{alias}.created_at = i.created_at \
         AND CASE WHEN {alias}.image_id = i.id THEN TRUE ELSE FALSE END"
    );
    match labels {
        [label] => format!(
            "JOIN image_labels {alias} ON {alias}.label = {} AND {on}",
            bytea_literal(label)
        ),
        labels => {
            let order = match order {
                Some(SortDir::Asc) => " ORDER BY created_at, image_id",
                Some(SortDir::Desc) => " ORDER BY created_at DESC, image_id DESC",
                None => "",
            };
            let ranges: Vec<String> = labels
                .iter()
                .map(|label| {
                    format!(
                        "(SELECT created_at, image_id FROM image_labels WHERE label = {}{order})",
                        bytea_literal(label)
                    )
                })
                .collect();
            format!("JOIN ({}) {alias} ON {on}", ranges.join(" UNION ALL "))
        }
    }
}

/// The condition of a filter other than a tag or property on `images i`. A created_at
/// bound is set on each of `tables` (`i`, then the label aliases), as the marker is.
fn filter(sql: &mut Sql, f: &Filter, tables: &[String]) -> String {
    match f {
        Filter::Text { field, values } => {
            let col = match field {
                TextField::Id => {
                    // The id as text, exactly: only canonical spellings can match.
                    let ids: Vec<Uuid> = values
                        .iter()
                        .filter_map(|v| Uuid::parse_str(v).ok().filter(|u| u.to_string() == *v))
                        .collect();
                    return one_of(sql, "i.id", ids, Type::UUID, Type::UUID_ARRAY);
                }
                TextField::Status => {
                    let statuses: Vec<String> = values
                        .iter()
                        .filter_map(|v| ImageStatus::parse(v))
                        // Killed images are never listed: `status=killed` is FALSE, not a
                        // walk of every killed image against `status <> 'killed'`.
                        .filter(|s| *s != ImageStatus::Killed)
                        .map(|s| format!("'{}'", s.as_str()))
                        .collect();
                    return constant_one_of("i.status", statuses);
                }
                TextField::DiskFormat | TextField::ContainerFormat => {
                    let col = match field {
                        TextField::DiskFormat => "i.disk_format",
                        _ => "i.container_format",
                    };
                    let values = values.iter().map(|v| bytea_literal(v.as_bytes())).collect();
                    return constant_one_of(col, values);
                }
                TextField::Checksum | TextField::OsHashValue => {
                    let col = match field {
                        TextField::Checksum => "i.checksum",
                        _ => "i.os_hash_value",
                    };
                    return hash_one_of(sql, col, values);
                }
                TextField::Name => "i.name",
                TextField::Owner => "i.owner",
            };
            let values: Vec<Vec<u8>> = values.iter().map(|v| v.as_bytes().to_vec()).collect();
            one_of(sql, col, values, Type::BYTEA, Type::BYTEA_ARRAY)
        }
        Filter::SizeMin(min) => format!("i.size >= {}", sql.param(*min, Type::INT8)),
        Filter::SizeMax(max) => format!("i.size <= {}", sql.param(*max, Type::INT8)),
        // `= true` matches a partial index.
        Filter::Protected(p) => format!("i.protected = {p}"),
        Filter::OsHidden(h) => format!("i.os_hidden = {h}"),
        // Joins (`label_join`), not conditions.
        Filter::Tag(_) | Filter::Property { .. } => "TRUE".into(),
        Filter::Time { field, op, at } => {
            let tables: &[String] = match field {
                TimeField::CreatedAt => tables,
                TimeField::UpdatedAt => &tables[..1],
            };
            let columns: Vec<String> = tables
                .iter()
                .map(|t| match field {
                    TimeField::CreatedAt => format!("{t}.created_at"),
                    TimeField::UpdatedAt => format!("{t}.updated_at"),
                })
                .collect();
            // Whole seconds: [start, end) is the second `at` falls in.
            let second = at.timestamp();
            let at_second = |s: i64| -> Timestamp { DateTime::from_timestamp(s, 0).unwrap_or(*at) };
            let mut bound = |s: i64| sql.param(at_second(s), Type::TIMESTAMPTZ);
            // (operator, bound) pairs, and whether either or both must hold.
            let (terms, joiner) = match op {
                Comparison::Eq => (vec![(">=", second), ("<", second + 1)], " AND "),
                Comparison::Neq => (vec![("<", second), (">=", second + 1)], " OR "),
                Comparison::Gt => (vec![(">=", second + 1)], ""),
                Comparison::Gte => (vec![(">=", second)], ""),
                Comparison::Lt => (vec![("<", second)], ""),
                Comparison::Lte => (vec![("<", second + 1)], ""),
            };
            let terms: Vec<(&str, String)> =
                terms.into_iter().map(|(op, s)| (op, bound(s))).collect();
            let on = |col: &String| {
                let parts: Vec<String> = terms
                    .iter()
                    .map(|(op, bound)| format!("{col} {op} {bound}"))
                    .collect();
                format!("({})", parts.join(joiner))
            };
            columns.iter().map(on).collect::<Vec<_>>().join(" AND ")
        }
    }
}

/// The marker image, if the viewer may see it (`MarkerNotFound` otherwise).
async fn marker(
    client: &deadpool_postgres::ClientWrapper,
    query: &ImageQuery,
    id: Uuid,
) -> Result<Image> {
    let project = query.viewer.project.as_ref().map(|p| p.as_bytes().to_vec());
    let stmt = prepared(
        client,
        "SELECT i.revision, i.record, (SELECT m.status FROM image_members m \
         WHERE m.image_id = i.id AND m.member = $2) FROM images i WHERE i.id = $1",
        &[Type::UUID, Type::BYTEA],
    )
    .await?;
    let rows = client.query(&stmt, &[&id, &project]).await.map_err(pg)?;
    let Some(row) = rows.first() else {
        return Err(RegistryError::MarkerNotFound(id));
    };
    let image = image_from_row(row.get(0), row.get(1))?;
    let membership = member_status(row.get(2))?;
    if !query.viewer.can_see(&image, membership) {
        return Err(RegistryError::MarkerNotFound(id));
    }
    Ok(image)
}

/// A listing's SQL text and its parameters.
pub(super) struct Statement {
    pub(super) text: String,
    sql: Sql,
}

impl Statement {
    pub(super) fn types(&self) -> Vec<Type> {
        self.sql.types()
    }

    pub(super) fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.sql.values()
    }
}

/// The statement that lists `query`'s page after `marker` (the marker image, already found):
/// one `SELECT … ORDER BY … LIMIT` per part of the viewer's scope (`scope.rs`), and for
/// several parts, their UNION ALL ordered and limited again.
pub(super) fn statement(query: &ImageQuery, marker: Option<&Image>) -> Statement {
    let sort = query.full_sort();
    let mut sql = Sql::default();
    let parts = scope::parts(&mut sql, query);
    let mut common = vec!["i.status <> 'killed'".to_string()];
    // The direction of the default order (created_at, id), if the listing is in it.
    let default_order = match sort.as_slice() {
        [(SortKey::CreatedAt, a), (SortKey::Id, b)] if a == b => Some(*a),
        _ => None,
    };
    // `images i`, then each tag or property filter's labels.
    let mut from = vec!["images i".to_string()];
    let mut tables = vec!["i".to_string()];
    for labels in query.filters.iter().filter_map(labels) {
        if labels.is_empty() {
            common.push("FALSE".into());
            continue;
        }
        let alias = format!("l{}", tables.len() - 1);
        from.push(label_join(&alias, &labels, default_order));
        tables.push(alias);
    }
    let from = from.join(" ");
    for f in &query.filters {
        if labels(f).is_none() {
            common.push(filter(&mut sql, f, &tables));
        }
    }
    if let Some(m) = marker {
        common.push(after_marker(&mut sql, &sort, m, &tables));
    }
    let common = common.join(" AND ");
    let limit = i64::try_from(query.limit.saturating_add(1)).unwrap_or(i64::MAX);
    let limit = sql.param(limit, Type::INT8);
    let order = order_by(&sort, "i");
    let text = match parts.as_slice() {
        [] => "SELECT i.revision, i.record FROM images i WHERE FALSE".to_string(),
        [part] => format!(
            "SELECT i.revision, i.record FROM {from} WHERE {part} AND {common} \
             ORDER BY {order} LIMIT {limit}"
        ),
        parts => {
            // Each part carries the sort keys for the outer ORDER BY.
            let mut columns = vec!["i.revision", "i.record"];
            let mut keys: Vec<String> = Vec::new();
            for &(key, _) in &sort {
                let (col, _) = column(key);
                if !keys.iter().any(|k| k == col) {
                    keys.push(col.to_string());
                }
            }
            let keys: Vec<String> = keys.iter().map(|k| format!("i.{k}")).collect();
            columns.extend(keys.iter().map(String::as_str));
            let columns = columns.join(", ");
            let selects: Vec<String> = parts
                .iter()
                .map(|part| {
                    format!(
                        "(SELECT {columns} FROM {from} WHERE {part} AND {common} \
                         ORDER BY {order} LIMIT {limit})"
                    )
                })
                .collect();
            format!(
                "SELECT u.revision, u.record FROM ({}) u ORDER BY {} LIMIT {limit}",
                selects.join(" UNION ALL "),
                order_by(&sort, "u"),
            )
        }
    };
    Statement { text, sql }
}

/// The marker image of `query`, if it names one.
pub(super) async fn find_marker(
    client: &deadpool_postgres::ClientWrapper,
    query: &ImageQuery,
) -> Result<Option<Image>> {
    match query.marker {
        Some(id) => Ok(Some(marker(client, query, id).await?)),
        None => Ok(None),
    }
}

pub(super) async fn list_images(
    client: &deadpool_postgres::ClientWrapper,
    query: &ImageQuery,
) -> Result<ImagePage> {
    let marker = find_marker(client, query).await?;
    let statement = statement(query, marker.as_ref());
    let stmt = prepared(client, &statement.text, &statement.types()).await?;
    let rows = client.query(&stmt, &statement.values()).await.map_err(pg)?;
    let mut images = rows
        .iter()
        .map(|r| image_from_row(r.get(0), r.get(1)))
        .collect::<Result<Vec<_>>>()?;
    let examined = images.len();
    let more = images.len() > query.limit;
    images.truncate(query.limit);
    let next = images.last().filter(|_| more).map(|i| i.id);
    Ok(ImagePage {
        images,
        next,
        examined,
    })
}
