//! The compact binary form of an image record (record version 2): fields in a fixed order,
//! lengths and counts as LEB128 varints, times as microseconds. Half the size of the JSON
//! form (version 1), which is still read. Every read is bounds-checked: a damaged record is
//! `Corrupt`, never a panic.

use std::collections::{BTreeMap, BTreeSet};

use chrono::DateTime;
use uuid::Uuid;

use crate::error::{RegistryError, Result};
use crate::model::{Image, ImageStatus, Location, Timestamp, Visibility};

/// Record version of the binary image form.
pub const IMAGE_VERSION: u8 = 2;

const VISIBILITIES: [Visibility; 4] = [
    Visibility::Public,
    Visibility::Private,
    Visibility::Shared,
    Visibility::Community,
];

pub fn encode(image: &Image) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(256));
    w.0.push(IMAGE_VERSION);
    w.0.extend_from_slice(image.id.as_bytes());
    w.opt_str(image.name.as_deref());
    w.0.push(index_of(&ImageStatus::ALL, image.status));
    w.0.push(index_of(&VISIBILITIES, image.visibility));
    w.0.push(u8::from(image.protected) | (u8::from(image.os_hidden) << 1));
    w.opt_str(image.owner.as_deref());
    w.opt_u64(image.size);
    w.opt_u64(image.virtual_size);
    w.opt_str(image.checksum.as_deref());
    w.opt_str(image.os_hash_algo.as_deref());
    w.opt_str(image.os_hash_value.as_deref());
    w.opt_str(image.disk_format.as_deref());
    w.opt_str(image.container_format.as_deref());
    w.u64(image.min_disk);
    w.u64(image.min_ram);
    w.time(image.created_at);
    w.time(image.updated_at);
    w.u64(image.tags.len() as u64);
    for tag in &image.tags {
        w.str(tag);
    }
    w.u64(image.locations.len() as u64);
    for loc in &image.locations {
        w.str(&loc.url);
        w.str(&loc.store);
        w.opt_str(loc.blake3.as_deref());
        if loc.metadata.is_empty() {
            w.str("");
        } else {
            // Free-form JSON values: kept as JSON text.
            w.str(&serde_json::to_string(&loc.metadata).unwrap_or_default());
        }
    }
    w.u64(image.properties.len() as u64);
    for (k, v) in &image.properties {
        w.str(k);
        w.str(v);
    }
    w.u64(image.revision);
    w.0
}

/// Decodes the body of a version-2 record (after the version byte).
pub fn decode(body: &[u8]) -> Result<Image> {
    let mut r = Reader(body);
    let id = Uuid::from_bytes(r.array()?);
    let name = r.opt_str()?;
    let status = *ImageStatus::ALL
        .get(usize::from(r.byte()?))
        .ok_or_else(|| corrupt("status"))?;
    let visibility = *VISIBILITIES
        .get(usize::from(r.byte()?))
        .ok_or_else(|| corrupt("visibility"))?;
    let flags = r.byte()?;
    let owner = r.opt_str()?;
    let size = r.opt_u64()?;
    let virtual_size = r.opt_u64()?;
    let checksum = r.opt_str()?;
    let os_hash_algo = r.opt_str()?;
    let os_hash_value = r.opt_str()?;
    let disk_format = r.opt_str()?;
    let container_format = r.opt_str()?;
    let min_disk = r.u64()?;
    let min_ram = r.u64()?;
    let created_at = r.time()?;
    let updated_at = r.time()?;
    let mut tags = BTreeSet::new();
    for _ in 0..r.count()? {
        tags.insert(r.str()?);
    }
    let mut locations = Vec::new();
    for _ in 0..r.count()? {
        let url = r.str()?;
        let store = r.str()?;
        let blake3 = r.opt_str()?;
        let metadata = match r.str()?.as_str() {
            "" => BTreeMap::new(),
            json => serde_json::from_str(json).map_err(|e| corrupt(&e.to_string()))?,
        };
        locations.push(Location {
            url,
            metadata,
            store,
            blake3,
        });
    }
    let mut properties = BTreeMap::new();
    for _ in 0..r.count()? {
        let k = r.str()?;
        properties.insert(k, r.str()?);
    }
    let revision = r.u64()?;
    if !r.0.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(Image {
        id,
        name,
        status,
        visibility,
        protected: flags & 1 != 0,
        os_hidden: flags & 2 != 0,
        owner,
        size,
        virtual_size,
        checksum,
        os_hash_algo,
        os_hash_value,
        disk_format,
        container_format,
        min_disk,
        min_ram,
        created_at,
        updated_at,
        tags,
        locations,
        properties,
        revision,
    })
}

fn corrupt(what: &str) -> RegistryError {
    RegistryError::Corrupt(format!("image record: {what}"))
}

fn index_of<T: PartialEq>(all: &[T], value: T) -> u8 {
    all.iter().position(|v| *v == value).unwrap_or(0) as u8
}

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
    }

    fn opt_u64(&mut self, n: Option<u64>) {
        match n {
            None => self.0.push(0),
            Some(n) => {
                self.0.push(1);
                self.u64(n);
            }
        }
    }

    fn time(&mut self, t: Timestamp) {
        self.0
            .extend_from_slice(&t.timestamp_micros().to_be_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(corrupt("varint too long"))
    }

    /// A count of items to follow, each at least one byte: more than the bytes left is a lie.
    fn count(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.0.len())
            .ok_or_else(|| corrupt("count"))
    }

    fn str(&mut self) -> Result<String> {
        let n = usize::try_from(self.u64()?).map_err(|_| corrupt("length"))?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("utf-8"))
    }

    fn opt_str(&mut self) -> Result<Option<String>> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(corrupt("option tag")),
        }
    }

    fn opt_u64(&mut self) -> Result<Option<u64>> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.u64().map(Some),
            _ => Err(corrupt("option tag")),
        }
    }

    fn time(&mut self) -> Result<Timestamp> {
        let micros = i64::from_be_bytes(self.array()?);
        DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt("time"))
    }
}
