//! An image as a row of `images`: the columns listings sort and filter on, derived from the
//! record on every write (insert, update, bulk import), and the record itself.

use tokio_postgres::types::ToSql;

use super::{property_entry, to_i64};
use crate::codec::encode_image;
use crate::error::Result;
use crate::model::Image;

/// The columns [`ImageRow::values`] fills, in order (after `id` and `revision`).
pub(super) const COLUMNS: [&str; 16] = [
    "status",
    "visibility",
    "owner",
    "name",
    "disk_format",
    "container_format",
    "size",
    "protected",
    "os_hidden",
    "created_at",
    "updated_at",
    "tags",
    "properties",
    "checksum",
    "os_hash_value",
    "record",
];

fn bytes(s: &Option<String>) -> Option<&[u8]> {
    s.as_deref().map(str::as_bytes)
}

/// The column values of one image (whose revision is already the one to store).
pub(super) struct ImageRow<'a> {
    image: &'a Image,
    status: &'static str,
    visibility: &'static str,
    owner: Option<&'a [u8]>,
    name: Option<&'a [u8]>,
    disk_format: Option<&'a [u8]>,
    container_format: Option<&'a [u8]>,
    size: Option<i64>,
    tags: Vec<&'a [u8]>,
    properties: Vec<Vec<u8>>,
    checksum: Option<&'a [u8]>,
    os_hash_value: Option<&'a [u8]>,
    record: Vec<u8>,
}

impl<'a> ImageRow<'a> {
    pub(super) fn new(image: &'a Image) -> Result<Self> {
        Ok(ImageRow {
            image,
            status: image.status.as_str(),
            visibility: image.visibility.as_str(),
            owner: bytes(&image.owner),
            name: bytes(&image.name),
            disk_format: bytes(&image.disk_format),
            container_format: bytes(&image.container_format),
            size: image.size.map(|s| to_i64(s, "size")).transpose()?,
            tags: image.tags.iter().map(|t| t.as_bytes()).collect(),
            properties: image
                .properties
                .iter()
                .map(|(k, v)| property_entry(k, v))
                .collect(),
            checksum: bytes(&image.checksum),
            os_hash_value: bytes(&image.os_hash_value),
            record: encode_image(image),
        })
    }

    /// The image's id.
    pub(super) fn id(&self) -> &(dyn ToSql + Sync) {
        &self.image.id
    }

    /// The values of [`COLUMNS`], in order.
    pub(super) fn values(&self) -> [&(dyn ToSql + Sync); COLUMNS.len()] {
        [
            &self.status,
            &self.visibility,
            &self.owner,
            &self.name,
            &self.disk_format,
            &self.container_format,
            &self.size,
            &self.image.protected,
            &self.image.os_hidden,
            &self.image.created_at,
            &self.image.updated_at,
            &self.tags,
            &self.properties,
            &self.checksum,
            &self.os_hash_value,
            &self.record,
        ]
    }
}

/// `INSERT` of `rows` images at revision 1: parameters id then [`COLUMNS`], row after row.
pub(super) fn insert_statement(rows: usize) -> String {
    let width = COLUMNS.len() + 1;
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let first = r * width + 1;
            let params: Vec<String> = (first + 1..first + width)
                .map(|n| format!("${n}"))
                .collect();
            format!("(${first}, 1, {})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO images (id, revision, {}) VALUES {}",
        COLUMNS.join(", "),
        tuples.join(", ")
    )
}

/// `UPDATE` (compare-and-swap) of one image: `$1` id, `$2` the expected revision, `$3`
/// the statuses it may come from, then [`COLUMNS`].
pub(super) fn update_statement() -> String {
    let sets: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 4))
        .collect();
    format!(
        "UPDATE images SET revision = revision + 1, {} \
         WHERE id = $1 AND revision = $2 AND status = ANY($3)",
        sets.join(", ")
    )
}
