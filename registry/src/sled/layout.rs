//! The on-disk layout version of the sled engine, and the upgrade from older layouts: layout
//! 1 kept one sort tree per key and a by-project member tree, and JSON image records; layout
//! 2 keeps the one `image_index` tree and binary records. An upgrade rebuilds the index from
//! the records (re-encoding them) before the registry serves; interrupted, it starts over on
//! the next open, since the layout version is written last.

use sled::{Db, Tree};

use super::index;
use super::tx::engine;
use crate::codec::{decode, decode_image, encode_image};
use crate::error::Result;
use crate::model::Member;

/// The layout this release writes.
pub const LAYOUT: u8 = 2;

const META: &str = "meta";
const LAYOUT_KEY: &[u8] = b"layout";

/// Trees of layout 1 that layout 2 no longer has.
const OLD_TREES: [&str; 8] = [
    "image_sort:name",
    "image_sort:status",
    "image_sort:container_format",
    "image_sort:disk_format",
    "image_sort:size",
    "image_sort:created_at",
    "image_sort:updated_at",
    "members_by_project",
];

/// Brings the image trees to [`LAYOUT`].
pub fn upgrade(db: &Db, images: &Tree, index: &Tree, members: &Tree) -> Result<()> {
    let meta = db.open_tree(META).map_err(engine)?;
    let current = meta.get(LAYOUT_KEY).map_err(engine)?;
    if current.as_deref() == Some(&[LAYOUT][..]) {
        return Ok(());
    }
    if images.is_empty() && members.is_empty() {
        meta.insert(LAYOUT_KEY, &[LAYOUT]).map_err(engine)?;
        db.flush().map_err(engine)?;
        return Ok(());
    }
    let count = images.len();
    tracing::info!(
        images = count,
        "upgrading the sled registry to layout {LAYOUT}: rebuilding its index"
    );
    index.clear().map_err(engine)?;
    let mut done = 0usize;
    for item in images.iter() {
        let (key, value) = item.map_err(engine)?;
        let image = decode_image(&value)?;
        let mut batch = sled::Batch::default();
        for entry in index::entries(&image) {
            batch.insert(entry, &[]);
        }
        let image_members = members
            .scan_prefix(image.id.as_bytes())
            .values()
            .map(|m| decode::<Member>(&m.map_err(engine)?))
            .collect::<Result<Vec<_>>>()?;
        for entry in index::member_entries(&image, &image_members) {
            batch.insert(entry, &[]);
        }
        index.apply_batch(batch).map_err(engine)?;
        images.insert(key, encode_image(&image)).map_err(engine)?;
        done += 1;
        if done.is_multiple_of(100_000) {
            tracing::info!(done, of = count, "registry index rebuild");
        }
    }
    for name in OLD_TREES {
        db.drop_tree(name).map_err(engine)?;
    }
    db.flush().map_err(engine)?;
    meta.insert(LAYOUT_KEY, &[LAYOUT]).map_err(engine)?;
    db.flush().map_err(engine)?;
    tracing::info!(images = done, "sled registry upgraded");
    Ok(())
}
