//! How records and index keys are laid out as bytes. Records carry a format version byte
//! first, so a later release can read (and migrate) what an earlier one wrote. Index keys are
//! order-preserving: comparing the bytes compares the values.

use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::error::{RegistryError, Result};
use crate::model::{Image, Timestamp};
use crate::query::SortKey;

/// Format version of every record this release writes.
pub const RECORD_VERSION: u8 = 1;

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

fn push_text(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            for &b in s.as_bytes() {
                out.push(b);
                if b == 0 {
                    out.push(0xff);
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
    }
}

fn push_u64(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        None => out.push(0),
        Some(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn push_time(out: &mut Vec<u8>, t: Timestamp) {
    let flipped = (t.timestamp_micros() as u64) ^ (1 << 63);
    out.extend_from_slice(&flipped.to_be_bytes());
}

/// The part of an index key that encodes the image's value for `key` (without the id).
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

/// A full index key: the value, then the image id so keys are unique.
pub fn index_key(key: SortKey, image: &Image) -> Vec<u8> {
    let mut out = sort_value(key, image);
    out.extend_from_slice(image.id.as_bytes());
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

/// Key in the by-project member index: member id, a NUL, then the image id.
pub fn project_member_key(member: &str, image: Uuid) -> Vec<u8> {
    let mut out = project_prefix(member);
    out.extend_from_slice(image.as_bytes());
    out
}

pub fn project_prefix(member: &str) -> Vec<u8> {
    let mut out = member.as_bytes().to_vec();
    out.push(0);
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
    fn unknown_record_version_is_refused() {
        let mut bytes = encode(&1u32).unwrap();
        bytes[0] = 99;
        assert!(matches!(
            decode::<u32>(&bytes),
            Err(RegistryError::Corrupt(_))
        ));
    }
}
