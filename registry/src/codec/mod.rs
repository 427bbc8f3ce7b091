//! How records and index keys are laid out as bytes. Records carry a format version byte
//! first, so a later release can read (and migrate) what an earlier one wrote. Index keys are
//! order-preserving: comparing the bytes compares the values. Image records have their own
//! compact form (`image.rs`).

pub mod image;

use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::error::{RegistryError, Result};
use crate::model::{Image, Timestamp};
use crate::query::SortKey;

/// Format version of every record this release writes.
pub const RECORD_VERSION: u8 = 1;

/// An image record in this release's form (binary, version 2).
pub fn encode_image(image: &Image) -> Vec<u8> {
    image::encode(image)
}

/// An image record of any version this release reads: JSON (1) or binary (2).
pub fn decode_image(bytes: &[u8]) -> Result<Image> {
    match bytes.split_first() {
        Some((&image::IMAGE_VERSION, body)) => image::decode(body),
        _ => decode(bytes),
    }
}

pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    let mut out = vec![RECORD_VERSION];
    serde_json::to_writer(&mut out, record).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => {
            serde_json::from_slice(body).map_err(|e| RegistryError::Corrupt(e.to_string()))
        }
        Some((v, _)) => Err(RegistryError::Corrupt(format!("record version {v}"))),
        None => Err(RegistryError::Corrupt("empty record".into())),
    }
}

/// Longest text (in bytes) an index key holds whole. A longer value keeps this much, a mark
/// that it was cut, and 8 bytes of its blake3 hash: a lookup of it stays exact (whatever
/// prefix many values share), and among values sharing the prefix the order is left to the
/// reader (see [`sort_group`]).
pub const MAX_KEY_TEXT: usize = 64;

/// Bytes of the hash a cut text ends with.
const CUT_HASH: usize = 8;

/// Writes an order-preserving text: NULL (0) sorts before any string (1, the bytes with NUL
/// escaped, then a terminator; a cut value's terminator sorts it after every whole value
/// sharing its prefix).
pub fn push_text(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(s) = value else {
        out.push(0);
        return;
    };
    out.push(1);
    let bytes = s.as_bytes();
    let cut = bytes.len() > MAX_KEY_TEXT;
    for &b in &bytes[..bytes.len().min(MAX_KEY_TEXT)] {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, u8::from(cut)]);
    if cut {
        out.extend_from_slice(&blake3::hash(bytes).as_bytes()[..CUT_HASH]);
    }
}

/// Whether the one text that `key_part` holds (as `push_text` wrote it) was cut. A NUL in a
/// text is always escaped, so `0, 1` can only be a cut value's terminator.
pub fn text_was_cut(key_part: &[u8]) -> bool {
    let n = key_part.len();
    n >= CUT_HASH + 2 && key_part[n - CUT_HASH - 2..n - CUT_HASH] == [0, 1]
}

/// The part of a one-text key part that orders it: without a cut value's hash, so that all
/// the values sharing a cut prefix form one group for the reader to sort.
pub fn sort_group(key_part: &[u8]) -> &[u8] {
    if text_was_cut(key_part) {
        &key_part[..key_part.len() - CUT_HASH]
    } else {
        key_part
    }
}

pub fn push_u64(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        None => out.push(0),
        Some(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

pub fn push_time(out: &mut Vec<u8>, t: Timestamp) {
    let flipped = (t.timestamp_micros() as u64) ^ (1 << 63);
    out.extend_from_slice(&flipped.to_be_bytes());
}

/// The order-preserving bytes of the image's value for sort key `key` (empty for `id`).
pub fn sort_value(key: SortKey, image: &Image) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    match key {
        SortKey::Name => push_text(&mut out, image.name.as_deref()),
        SortKey::Status => push_text(&mut out, Some(image.status.as_str())),
        SortKey::ContainerFormat => push_text(&mut out, image.container_format.as_deref()),
        SortKey::DiskFormat => push_text(&mut out, image.disk_format.as_deref()),
        SortKey::Size => push_u64(&mut out, image.size),
        SortKey::Id => {}
        SortKey::CreatedAt => push_time(&mut out, image.created_at),
        SortKey::UpdatedAt => push_time(&mut out, image.updated_at),
    }
    out
}

/// The image id at the end of an index key.
pub fn id_of_index_key(key: &[u8]) -> Result<Uuid> {
    key.len()
        .checked_sub(16)
        .and_then(|start| Uuid::from_slice(&key[start..]).ok())
        .ok_or_else(|| RegistryError::Corrupt("index key too short".into()))
}

/// Key of a member record: image id, then member id.
pub fn member_key(image: Uuid, member: &str) -> Vec<u8> {
    let mut out = image.as_bytes().to_vec();
    out.extend_from_slice(member.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Image;

    #[test]
    fn text_keys_sort_like_values() {
        let mut names = vec![
            None,
            Some("b"),
            Some("a"),
            Some("a\0b"),
            Some("ab"),
            Some(""),
        ];
        let mut keys: Vec<(Vec<u8>, Option<&str>)> = names
            .iter()
            .map(|n| {
                let mut img = Image::new(Uuid::nil(), None);
                img.name = n.map(String::from);
                (sort_value(SortKey::Name, &img), *n)
            })
            .collect();
        keys.sort();
        names.sort();
        assert_eq!(keys.into_iter().map(|(_, n)| n).collect::<Vec<_>>(), names);
    }

    #[test]
    fn cut_texts_sort_after_whole_ones_with_their_prefix() {
        let long = "x".repeat(MAX_KEY_TEXT + 5);
        let whole = "x".repeat(MAX_KEY_TEXT);
        let longer = format!("{whole}y");
        let key = |s: &str| {
            let mut out = Vec::new();
            push_text(&mut out, Some(s));
            out
        };
        assert!(key(&whole) < key(&long));
        assert_ne!(
            key(&long),
            key(&longer),
            "cut values keep a hash of the whole"
        );
        assert_eq!(
            sort_group(&key(&long)),
            sort_group(&key(&longer)),
            "one sort group"
        );
        assert!(text_was_cut(&key(&long)) && !text_was_cut(&key(&whole)));
        assert!(
            !text_was_cut(&key("a\u{0}\u{1}")),
            "an escaped NUL is no cut mark"
        );
        let after = format!("{}y", "x".repeat(MAX_KEY_TEXT - 1));
        assert!(key(&long) < key(&after), "ordered as the strings are");
    }

    #[test]
    fn image_records_round_trip_and_old_json_reads() {
        let mut img = Image::new(Uuid::new_v4(), Some("p".into()));
        img.name = Some("n\u{0}ä".into());
        img.size = Some(u64::MAX);
        img.os_hidden = true;
        img.tags.insert("t".into());
        img.properties.insert("k".into(), "v".into());
        img.locations.push(crate::model::Location {
            url: "file:///x".into(),
            metadata: [("a".to_string(), serde_json::json!({"b": [1, 2]}))].into(),
            store: "fs".into(),
            blake3: Some("h".into()),
        });
        img.revision = 300;
        let bin = encode_image(&img);
        assert_eq!(decode_image(&bin).unwrap(), img);
        let json = encode(&img).unwrap();
        assert!(
            bin.len() * 2 < json.len() + 100,
            "{} vs {}",
            bin.len(),
            json.len()
        );
        assert_eq!(decode_image(&json).unwrap(), img);
        // Every truncation of a record is refused, not a panic.
        for n in 0..bin.len() {
            assert!(decode_image(&bin[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn unknown_record_version_is_refused() {
        let mut bytes = encode(&1u32).unwrap();
        bytes[0] = 99;
        assert!(matches!(
            decode::<u32>(&bytes),
            Err(RegistryError::Corrupt(_))
        ));
    }
}
