//! VHDX: the file identifier, the region table at 192 KiB, the metadata table, and the
//! virtual disk size item, each found from the one before. Refused: a parent locator (a
//! differencing disk).

use super::{Inspector, Verdict, violation};
use crate::Detected;
use crate::region::{Region, le16, le32, le64};

/// Largest VHDX region or metadata table read.
const VHDX_TABLE_MAX: usize = 64 * 1024;

/// A Microsoft GUID in its on-disk byte order, from its text form.
fn guid(text: &str) -> [u8; 16] {
    let hex: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'-')
        .collect::<Vec<u8>>()
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect();
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&[hex[3], hex[2], hex[1], hex[0]]);
    out[4..6].copy_from_slice(&[hex[5], hex[4]]);
    out[6..8].copy_from_slice(&[hex[7], hex[6]]);
    out[8..16].copy_from_slice(&hex[8..16]);
    out
}

const VHDX_METADATA_REGION: &str = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
const VHDX_VIRTUAL_DISK_SIZE: &str = "2FA54224-CD1B-4876-B211-5DBED83BF4B8";
const VHDX_PARENT_LOCATOR: &str = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C";

/// VHDX: the file identifier, the region table at 192 KiB, the metadata table, and the
/// virtual disk size item.
pub(crate) struct Vhdx {
    ident: Region,
    regions: Region,
    metadata: Option<Region>,
    size_item: Option<Region>,
    parent: bool,
    broken: Option<String>,
    ended: bool,
}

impl Vhdx {
    pub(crate) fn new() -> Self {
        Vhdx {
            ident: Region::new(0, 8),
            regions: Region::new(192 * 1024, VHDX_TABLE_MAX),
            metadata: None,
            size_item: None,
            parent: false,
            broken: None,
            ended: false,
        }
    }

    /// After the region table: where the metadata table is.
    fn find_metadata(&mut self) {
        let t = &self.regions.data;
        if &t[0..4] != b"regi" {
            self.broken = Some("vhdx region table signature not found".into());
            return;
        }
        let count = le32(t, 8) as usize;
        if count >= 2048 || 16 + count * 32 > t.len() {
            self.broken = Some(format!("vhdx region count {count} is too large"));
            return;
        }
        let want = guid(VHDX_METADATA_REGION);
        for i in 0..count {
            let e = &t[16 + i * 32..16 + (i + 1) * 32];
            if e[0..16] == want {
                let offset = le64(e, 16);
                let len = (le32(e, 24) as usize).clamp(32, VHDX_TABLE_MAX);
                let from = self.regions.offset + self.regions.len as u64;
                self.metadata = Region::after(offset, len, from, &[&self.regions]);
                if self.metadata.is_none() {
                    self.broken = Some("vhdx metadata table lies before the region table".into());
                }
                return;
            }
        }
        self.broken = Some("vhdx has no metadata region".into());
    }

    /// After the metadata table: where the virtual size is; whether there is a parent.
    fn find_size(&mut self) {
        let Some(meta) = &self.metadata else { return };
        let from = meta.offset.saturating_add(meta.len as u64);
        let t = &meta.data;
        if &t[0..8] != b"metadata" {
            self.broken = Some("vhdx metadata table signature not found".into());
            return;
        }
        let count = le16(t, 10) as usize;
        if count >= 2048 || 32 + count * 32 > t.len() {
            self.broken = Some(format!("vhdx metadata item count {count} is too large"));
            return;
        }
        let size_guid = guid(VHDX_VIRTUAL_DISK_SIZE);
        let parent_guid = guid(VHDX_PARENT_LOCATOR);
        for i in 0..count {
            let e = &t[32 + i * 32..32 + (i + 1) * 32];
            if e[0..16] == parent_guid {
                self.parent = true;
            }
            if e[0..16] == size_guid && self.size_item.is_none() {
                let offset = meta.offset.saturating_add(le32(e, 16) as u64);
                match Region::after(offset, 8, from, &[&self.regions, meta]) {
                    Some(item) => self.size_item = Some(item),
                    None => {
                        self.broken =
                            Some("vhdx virtual size item lies before the metadata table".into());
                        return;
                    }
                }
            }
        }
        if self.size_item.is_none() {
            self.broken = Some("vhdx has no virtual disk size item".into());
        }
    }
}

impl Inspector for Vhdx {
    fn name(&self) -> &'static str {
        "vhdx"
    }

    fn feed(&mut self, pos: u64, chunk: &[u8]) {
        if self.broken.is_some() {
            return;
        }
        self.ident.feed(pos, chunk);
        if self.ident.complete() && &self.ident.data[..] != b"vhdxfile" {
            return;
        }
        self.regions.feed(pos, chunk);
        if self.regions.complete() && self.metadata.is_none() {
            self.find_metadata();
        }
        // A table that lies before the point the stream has reached is read from what was
        // captured or not at all (`Region::after`), so chunking does not matter.
        if let Some(m) = &mut self.metadata {
            m.feed(pos, chunk);
        }
        if self.metadata.as_ref().is_some_and(Region::complete) && self.size_item.is_none() {
            self.find_size();
        }
        if let Some(s) = &mut self.size_item {
            s.feed(pos, chunk);
        }
    }

    fn finish(&mut self, _total: u64) {
        self.ended = true;
    }

    fn verdict(&self) -> Verdict {
        let id = &self.ident.data;
        if !self.ident.complete() {
            return if self.ended || !b"vhdxfile".starts_with(id) {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        if &id[..] != b"vhdxfile" {
            return Verdict::No;
        }
        if let Some(why) = &self.broken {
            return Verdict::Broken(why.clone());
        }
        match &self.size_item {
            Some(s) if s.complete() => {
                let mut violations = Vec::new();
                if self.parent {
                    violations.push(violation(
                        "parent",
                        "differencing VHDX: its data depends on a parent image",
                    ));
                }
                Verdict::Yes(Detected {
                    format: "vhdx",
                    virtual_size: Some(le64(&s.data, 0)),
                    subformat: None,
                    violations,
                })
            }
            _ if self.ended => Verdict::Broken("vhdx cut short before its virtual size".into()),
            _ => Verdict::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn guid_bytes_are_microsoft_order() {
        let g = super::guid("8B7CA206-4790-4B9A-B8FE-575F050F886E");
        assert_eq!(&g[..4], &[0x06, 0xA2, 0x7C, 0x8B]);
        assert_eq!(&g[8..], &[0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E]);
    }
}
