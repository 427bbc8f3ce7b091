//! An image as a row of `images`: the columns listings sort and filter on, derived from the
//! record on every write (insert, update, bulk import), and the record itself; and the
//! statements that write it with its rows of `image_labels` (tags and extra properties),
//! in one statement each.

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

/// `INSERT` of `rows` images at revision 1 and of their labels: parameters id then
/// [`COLUMNS`], row after row. With `skip_taken`, an id already stored inserts nothing (the
/// others go in). One row, the number of images inserted.
pub(super) fn insert_statement(rows: usize, skip_taken: bool) -> String {
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
    let conflict = if skip_taken {
        " ON CONFLICT (id) DO NOTHING"
    } else {
        ""
    };
    format!(
        "WITH new AS (INSERT INTO images (id, revision, {}) VALUES {}{conflict} \
         RETURNING id, created_at, image_labels_of(tags, properties) AS labels), \
         labels AS (INSERT INTO image_labels (label, created_at, image_id) \
         SELECT l, new.created_at, new.id FROM new, unnest(new.labels) l \
         ON CONFLICT DO NOTHING) \
         SELECT count(*) FROM new",
        COLUMNS.join(", "),
        tuples.join(", "),
    )
}

/// `UPDATE` (compare-and-swap) of one image and of its labels (those it lost and those it
/// gained; all of them when created_at changes): `$1` id, `$2` the expected revision, `$3`
/// the statuses it may come from, then [`COLUMNS`]. One row, the number of images updated.
///
/// `old` locks the row at the expected revision; its labels are then what `image_labels`
/// holds for it (any write of them bumps the revision), and a writer racing from the same
/// revision waits, then finds the revision moved and updates nothing.
pub(super) fn update_statement() -> String {
    let sets: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 4))
        .collect();
    format!(
        "WITH old AS (SELECT id, created_at, image_labels_of(tags, properties) AS labels \
         FROM images WHERE id = $1 AND revision = $2 AND status = ANY($3) FOR UPDATE), \
         new AS (UPDATE images i SET revision = i.revision + 1, {} FROM old \
         WHERE i.id = old.id \
         RETURNING i.id, i.created_at, image_labels_of(i.tags, i.properties) AS labels), \
         lost AS (DELETE FROM image_labels l USING old, new \
         WHERE l.label = ANY(old.labels) AND l.created_at = old.created_at \
         AND l.image_id = old.id \
         AND NOT (l.created_at = new.created_at AND l.label = ANY(new.labels))), \
         gained AS (INSERT INTO image_labels (label, created_at, image_id) \
         SELECT l, new.created_at, new.id FROM old, new, unnest(new.labels) l \
         WHERE NOT (old.created_at = new.created_at AND l = ANY(old.labels)) \
         ON CONFLICT DO NOTHING) \
         SELECT count(*) FROM new",
        sets.join(", ")
    )
}

/// `DELETE` of one image at a revision, `$1` id and `$2` revision, and of its labels. One
/// row, the number of images deleted.
pub(super) const DELETE_STATEMENT: &str = "WITH gone AS (DELETE FROM images WHERE id = $1 AND revision = $2 \
     RETURNING id, created_at, image_labels_of(tags, properties) AS labels), \
     labels AS (DELETE FROM image_labels l USING gone WHERE l.label = ANY(gone.labels) \
     AND l.created_at = gone.created_at AND l.image_id = gone.id) \
     SELECT count(*) FROM gone";
