//! The sled engine's one index tree (`image_index`): for every image, one entry per field a
//! listing filters or sorts on, each key `[field tag][the value, order-preserving][position]`
//! with an empty value. The position is the image's `created_at` then its id (24 bytes), so
//! the entries of one value come out in the default listing order: an equality filter is a
//! prefix, walked in either direction from any marker, and several filters meet by seeking
//! (see `cursor.rs`). Entries of a field sort by value then position, which is the listing
//! order of a sort on that field with Glance's tie-breakers.

use crate::codec::{push_text, push_time, push_u64};
use crate::model::{Image, Member, MemberStatus, Timestamp, Visibility};
use crate::query::SortKey;
use uuid::Uuid;

/// Bytes of a position: `created_at` (order-preserving) then the id.
pub const POS_LEN: usize = 24;

/// A place in the default listing order.
pub type Pos = [u8; POS_LEN];

/// What the first byte of an index key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Field {
    /// No value: the whole catalogue in `created_at` order.
    CreatedAt = 1,
    UpdatedAt = 2,
    Name = 3,
    Status = 4,
    DiskFormat = 5,
    ContainerFormat = 6,
    Size = 7,
    Owner = 8,
    Visibility = 9,
    Checksum = 10,
    OsHashValue = 11,
    /// One entry per tag.
    Tag = 12,
    /// One entry per extra property: the key, then the value.
    Property = 13,
    /// Only images with `protected = true` (no value).
    Protected = 14,
    /// Only images with `os_hidden = true` (no value).
    Hidden = 15,
    /// One entry per member project: the project, then the member status byte.
    Member = 16,
}

pub fn pos(image: &Image) -> Pos {
    pos_of(image.created_at, image.id)
}

pub fn pos_of(created_at: Timestamp, id: Uuid) -> Pos {
    let mut out = [0u8; POS_LEN];
    let mut t = Vec::with_capacity(8);
    push_time(&mut t, created_at);
    out[..8].copy_from_slice(&t);
    out[8..].copy_from_slice(id.as_bytes());
    out
}

pub fn id_of(pos: &Pos) -> Uuid {
    let mut id = [0u8; 16];
    id.copy_from_slice(&pos[8..]);
    Uuid::from_bytes(id)
}

/// The key prefix of `field` for one value (the value part already encoded).
pub fn prefix(field: Field, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + value.len() + POS_LEN);
    out.push(field as u8);
    out.extend_from_slice(value);
    out
}

pub fn text(value: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    push_text(&mut out, value);
    out
}

/// The value part of a property entry.
pub fn property(key: &str, value: &str) -> Vec<u8> {
    let mut out = text(Some(key));
    push_text(&mut out, Some(value));
    out
}

/// The value part of a member entry.
pub fn member(project: &str, status: MemberStatus) -> Vec<u8> {
    let mut out = text(Some(project));
    out.push(match status {
        MemberStatus::Pending => 0,
        MemberStatus::Accepted => 1,
        MemberStatus::Rejected => 2,
    });
    out
}

/// The index field that orders a sort key, and the value part of `image` in it.
pub fn sort_field(key: SortKey) -> Option<Field> {
    Some(match key {
        SortKey::Name => Field::Name,
        SortKey::Status => Field::Status,
        SortKey::ContainerFormat => Field::ContainerFormat,
        SortKey::DiskFormat => Field::DiskFormat,
        SortKey::Size => Field::Size,
        SortKey::CreatedAt => Field::CreatedAt,
        SortKey::UpdatedAt => Field::UpdatedAt,
        SortKey::Id => return None,
    })
}

fn entry(out: &mut Vec<Vec<u8>>, field: Field, value: &[u8], pos: &Pos) {
    let mut key = prefix(field, value);
    key.extend_from_slice(pos);
    out.push(key);
}

/// Every index key of `image` (members' entries excepted: see [`member_key`]).
pub fn entries(image: &Image) -> Vec<Vec<u8>> {
    let p = pos(image);
    let mut out = Vec::with_capacity(12 + image.tags.len() + image.properties.len());
    let t = |v: &Option<String>| text(v.as_deref());
    entry(&mut out, Field::CreatedAt, &[], &p);
    let mut updated = Vec::new();
    push_time(&mut updated, image.updated_at);
    entry(&mut out, Field::UpdatedAt, &updated, &p);
    entry(&mut out, Field::Name, &t(&image.name), &p);
    entry(
        &mut out,
        Field::Status,
        &text(Some(image.status.as_str())),
        &p,
    );
    entry(&mut out, Field::DiskFormat, &t(&image.disk_format), &p);
    entry(
        &mut out,
        Field::ContainerFormat,
        &t(&image.container_format),
        &p,
    );
    let mut size = Vec::new();
    push_u64(&mut size, image.size);
    entry(&mut out, Field::Size, &size, &p);
    entry(&mut out, Field::Owner, &t(&image.owner), &p);
    let vis = text(Some(image.visibility.as_str()));
    entry(&mut out, Field::Visibility, &vis, &p);
    // Lookups only: NULL is never asked for.
    if image.checksum.is_some() {
        entry(&mut out, Field::Checksum, &t(&image.checksum), &p);
    }
    if image.os_hash_value.is_some() {
        entry(&mut out, Field::OsHashValue, &t(&image.os_hash_value), &p);
    }
    for tag in &image.tags {
        entry(&mut out, Field::Tag, &text(Some(tag)), &p);
    }
    for (k, v) in &image.properties {
        entry(&mut out, Field::Property, &property(k, v), &p);
    }
    if image.protected {
        entry(&mut out, Field::Protected, &[], &p);
    }
    if image.os_hidden {
        entry(&mut out, Field::Hidden, &[], &p);
    }
    out
}

/// The index key of one membership of the image at `pos`.
pub fn member_key(project: &str, status: MemberStatus, pos: &Pos) -> Vec<u8> {
    let mut key = prefix(Field::Member, &member(project, status));
    key.extend_from_slice(pos);
    key
}

/// The value part of an index key (between the field tag and the position).
pub fn value_part(key: &[u8]) -> &[u8] {
    key.get(1..key.len().saturating_sub(POS_LEN)).unwrap_or(&[])
}

/// The position at the end of an index key.
pub fn pos_of_key(key: &[u8]) -> Option<Pos> {
    let start = key.len().checked_sub(POS_LEN)?;
    key[start..].try_into().ok()
}

/// The index entries of an image's members: one per member while the image is shared (a
/// membership of an image of another visibility shows nothing, so a listing never walks it).
pub fn member_entries(image: &Image, members: &[Member]) -> Vec<Vec<u8>> {
    if image.visibility != Visibility::Shared {
        return Vec::new();
    }
    let pos = pos(image);
    members
        .iter()
        .map(|m| member_key(&m.member_id, m.status, &pos))
        .collect()
}
