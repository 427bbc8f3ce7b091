//! The formats with fixed headers: qcow2, qed, vhd, vhdx, vdi, iso and gpt/mbr.

use crate::region::{Region, be32, be64, le16, le32, le64};
use crate::{Detected, Inspector, Verdict, violation};

/// Largest VHDX region or metadata table read.
const VHDX_TABLE_MAX: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------
// qcow2

/// qcow2: the header (version 2: 72 bytes, version 3: at least 104).
pub(crate) struct Qcow2 {
    header: Region,
    ended: Option<u64>,
}

const QCOW2_MAGIC: &[u8] = b"QFI\xfb";

impl Qcow2 {
    pub(crate) fn new() -> Self {
        Qcow2 {
            header: Region::new(0, 512),
            ended: None,
        }
    }
}

impl Inspector for Qcow2 {
    fn name(&self) -> &'static str {
        "qcow2"
    }

    fn feed(&mut self, pos: u64, chunk: &[u8]) {
        self.header.feed(pos, chunk);
    }

    fn finish(&mut self, total: u64) {
        self.ended = Some(total);
    }

    fn verdict(&self) -> Verdict {
        let h = &self.header.data;
        if h.len() < 4 {
            return if self.ended.is_some() || !h.starts_with(&QCOW2_MAGIC[..h.len()]) {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        if &h[..4] != QCOW2_MAGIC {
            return Verdict::No;
        }
        let version = if h.len() >= 8 { be32(h, 4) } else { 0 };
        let needed = if version >= 3 { 104 } else { 72 };
        if h.len() < needed {
            return match self.ended {
                Some(total) => Verdict::Broken(format!(
                    "qcow2 header cut short: {total} bytes, the header needs {needed}"
                )),
                None if self.header.complete() => Verdict::No,
                None => Verdict::Pending,
            };
        }
        if !self.header.complete() && self.ended.is_none() {
            return Verdict::Pending;
        }
        let mut violations = Vec::new();
        if !(version == 2 || version == 3) {
            violations.push(violation(
                "unknown-features",
                format!("unsupported qcow2 version {version}"),
            ));
        }
        if be64(h, 8) != 0 {
            violations.push(violation("backing-file", "Image has a backing file"));
        }
        if version >= 3 {
            let incompatible = be64(h, 72);
            // Bit 2: the guest data lives in an external file.
            if incompatible & (1 << 2) != 0 {
                violations.push(violation("data-file", "Image has data_file set"));
            }
            // Known: dirty, corrupt, external data file, compression type, extended L2.
            if incompatible & !0x1f != 0 {
                violations.push(violation(
                    "unknown-features",
                    format!("unknown qcow2 incompatible features {incompatible:#x}"),
                ));
            }
        }
        Verdict::Yes(Detected {
            format: "qcow2",
            virtual_size: Some(be64(h, 24)),
            subformat: None,
            violations,
        })
    }
}

// ---------------------------------------------------------------------------------------
// qed

/// QED: recognised only to be refused.
pub(crate) struct Qed {
    header: Region,
    ended: bool,
}

impl Inspector for Qed {
    fn name(&self) -> &'static str {
        "qed"
    }
    fn feed(&mut self, pos: u64, chunk: &[u8]) {
        self.header.feed(pos, chunk);
    }
    fn finish(&mut self, _total: u64) {
        self.ended = true;
    }
    fn verdict(&self) -> Verdict {
        let h = &self.header.data;
        if !self.header.complete() {
            return if self.ended || !b"QED\0".starts_with(h) {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        if h != b"QED\0" {
            return Verdict::No;
        }
        Verdict::Yes(Detected {
            format: "qed",
            virtual_size: None,
            subformat: None,
            violations: vec![violation("banned", "This file format is not allowed")],
        })
    }
}

// ---------------------------------------------------------------------------------------
// vhd

/// VHD (dynamic and differencing: a copy of the footer at the start).
pub(crate) struct Vhd {
    header: Region,
    ended: bool,
}

impl Inspector for Vhd {
    fn name(&self) -> &'static str {
        "vhd"
    }
    fn feed(&mut self, pos: u64, chunk: &[u8]) {
        self.header.feed(pos, chunk);
    }
    fn finish(&mut self, _total: u64) {
        self.ended = true;
    }
    fn verdict(&self) -> Verdict {
        let h = &self.header.data;
        let magic = b"conectix";
        if h.len() < magic.len() {
            return if self.ended || !magic.starts_with(h) {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        if &h[..8] != magic {
            return Verdict::No;
        }
        if !self.header.complete() {
            return if self.ended {
                Verdict::Broken(format!("vhd footer cut short at {} bytes", h.len()))
            } else {
                Verdict::Pending
            };
        }
        let mut violations = Vec::new();
        let disk_type = be32(h, 60);
        if disk_type == 4 {
            violations.push(violation(
                "parent",
                "differencing VHD: its data depends on a parent image",
            ));
        } else if !(2..=3).contains(&disk_type) {
            violations.push(violation(
                "disk-type",
                format!("unknown VHD disk type {disk_type}"),
            ));
        }
        Verdict::Yes(Detected {
            format: "vhd",
            virtual_size: Some(be64(h, 40)),
            subformat: None,
            violations,
        })
    }
}

// ---------------------------------------------------------------------------------------
// vhdx

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

// ---------------------------------------------------------------------------------------
// vdi

pub(crate) struct Vdi {
    header: Region,
    ended: bool,
}

impl Inspector for Vdi {
    fn name(&self) -> &'static str {
        "vdi"
    }
    fn feed(&mut self, pos: u64, chunk: &[u8]) {
        self.header.feed(pos, chunk);
    }
    fn finish(&mut self, _total: u64) {
        self.ended = true;
    }
    fn verdict(&self) -> Verdict {
        let h = &self.header.data;
        if h.len() < 0x44 {
            return if self.ended {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        if le32(h, 0x40) != 0xBEDA_107F {
            return Verdict::No;
        }
        if !self.header.complete() {
            return if self.ended {
                Verdict::Broken(format!("vdi header cut short at {} bytes", h.len()))
            } else {
                Verdict::Pending
            };
        }
        let mut violations = Vec::new();
        let image_type = le32(h, 0x4C);
        if image_type == 3 || image_type == 4 {
            violations.push(violation(
                "parent",
                "differencing VDI: its data depends on a parent image",
            ));
        }
        Verdict::Yes(Detected {
            format: "vdi",
            virtual_size: Some(le64(h, 0x170)),
            subformat: None,
            violations,
        })
    }
}

// ---------------------------------------------------------------------------------------
// iso

/// ISO 9660 / UDF: the volume descriptor at 32 KiB.
pub(crate) struct Iso {
    descriptor: Region,
    ended: bool,
}

impl Inspector for Iso {
    fn name(&self) -> &'static str {
        "iso"
    }
    fn feed(&mut self, pos: u64, chunk: &[u8]) {
        self.descriptor.feed(pos, chunk);
    }
    fn finish(&mut self, _total: u64) {
        self.ended = true;
    }
    fn verdict(&self) -> Verdict {
        if !self.descriptor.complete() {
            return if self.ended {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        let d = &self.descriptor.data;
        let id = &d[1..6];
        if id != b"CD001" && id != b"NSR02" && id != b"NSR03" {
            return Verdict::No;
        }
        let virtual_size = (d[0] == 1)
            .then(|| u64::from(le32(d, 80)) * u64::from(le16(d, 128)))
            .filter(|s| *s > 0);
        Verdict::Yes(Detected {
            format: "iso",
            virtual_size,
            subformat: None,
            violations: Vec::new(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// gpt / mbr

/// A disk with an MBR (a GPT's protective MBR, or a legacy partition table).
pub(crate) struct Gpt {
    mbr: Region,
    ended: bool,
}

impl Inspector for Gpt {
    fn name(&self) -> &'static str {
        "gpt"
    }
    fn feed(&mut self, pos: u64, chunk: &[u8]) {
        self.mbr.feed(pos, chunk);
    }
    fn finish(&mut self, _total: u64) {
        self.ended = true;
    }
    fn verdict(&self) -> Verdict {
        if !self.mbr.complete() {
            return if self.ended {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        let m = &self.mbr.data;
        let fat = m[0x10] == 2 && m[0x15] == 0xF8;
        if le16(m, 510) != 0xAA55 || fat {
            return Verdict::No;
        }
        let mut violations = Vec::new();
        let mut defined = Vec::new();
        let mut gpt = false;
        for i in 0..4 {
            let e = &m[446 + i * 16..446 + (i + 1) * 16];
            if e[0] != 0 && e[0] != 0x80 {
                violations.push(violation(
                    "mbr",
                    format!("MBR entry {i} has an invalid boot flag"),
                ));
            }
            if e[4] != 0 {
                defined.push(i);
            }
            if e[4] == 0xEE {
                gpt = true;
                if e[1..4] != [0, 2, 0] {
                    violations.push(violation(
                        "mbr",
                        "GPT protective MBR has an invalid start CHS",
                    ));
                }
                if le32(e, 8) != 1 {
                    violations.push(violation(
                        "mbr",
                        "GPT protective MBR has an invalid start LBA",
                    ));
                }
            }
        }
        if gpt && defined != [0] {
            violations.push(violation(
                "mbr",
                "GPT protective MBR defines extra partitions",
            ));
        }
        if defined.is_empty() {
            violations.push(violation("mbr", "the MBR defines no partitions"));
        }
        Verdict::Yes(Detected {
            format: "gpt",
            virtual_size: None,
            subformat: None,
            violations,
        })
    }
}

impl Qed {
    pub(crate) fn new() -> Self {
        Qed {
            header: Region::new(0, 4),
            ended: false,
        }
    }
}

impl Vhd {
    pub(crate) fn new() -> Self {
        Vhd {
            header: Region::new(0, 512),
            ended: false,
        }
    }
}

impl Vdi {
    pub(crate) fn new() -> Self {
        Vdi {
            header: Region::new(0, 512),
            ended: false,
        }
    }
}

impl Iso {
    pub(crate) fn new() -> Self {
        Iso {
            descriptor: Region::new(32 * 1024, 2048),
            ended: false,
        }
    }
}

impl Gpt {
    pub(crate) fn new() -> Self {
        Gpt {
            mbr: Region::new(0, 512),
            ended: false,
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
