//! Streaming disk-image format detection, free of WASI so it is tested natively.
//!
//! An [`Inspection`] is fed the image's bytes in order, chunk by chunk, and runs every
//! format's inspector side by side. Each inspector names the byte ranges it needs
//! ([`Region`]s: fixed offsets, or the last N bytes of the stream); it keeps only those, so
//! memory stays bounded (at most about 1 MiB, for a VMDK descriptor) whatever the image size.
//! When every inspector has decided (matched, or not this format) and none needs the end of
//! the stream, the inspection is [`Inspection::done`] and the caller stops reading.
//!
//! Formats and their safety checks (what makes an image dangerous to hand to qemu or a
//! hypervisor, after CVE-2022-47951 and CVE-2024-32498):
//! - qcow2: a backing file, an external data file, an unsupported version or unknown
//!   incompatible features.
//! - qed: never allowed.
//! - vhd: a differencing disk (it names a parent image).
//! - vhdx: a parent locator (a differencing disk).
//! - vmdk: anything but the single-file variants (monolithicSparse, streamOptimized), extents
//!   that are not the sparse data of this file or whose name is a path, descriptor lines of
//!   unknown kinds, a streamOptimized footer that disagrees with the header.
//! - vdi: a differencing (or undo) disk.
//! - iso: none (the format has no references to other files).
//! - gpt/mbr: the protective MBR must be well-formed (`mbr`).

/// Largest VMDK descriptor read.
const VMDK_DESCRIPTOR_MAX: usize = (1 << 20) - 1;
/// Largest VHDX region or metadata table read.
const VHDX_TABLE_MAX: usize = 64 * 1024;

/// A safety rule an image breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub check: String,
    pub message: String,
}

fn violation(check: &str, message: impl Into<String>) -> Violation {
    Violation {
        check: check.into(),
        message: message.into(),
    }
}

/// A format the content matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub format: &'static str,
    pub virtual_size: Option<u64>,
    pub subformat: Option<String>,
    pub violations: Vec<Violation>,
}

/// The outcome of an inspection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub matches: Vec<Detected>,
    /// Formats whose signature is there but whose structure is broken or cut short.
    pub malformed: Vec<Violation>,
    pub bytes_read: u64,
    pub reached_end: bool,
}

/// Bytes `[offset, offset + len)` of the stream, captured as they pass.
#[derive(Debug, Clone)]
struct Region {
    offset: u64,
    len: usize,
    data: Vec<u8>,
}

impl Region {
    fn new(offset: u64, len: usize) -> Self {
        Region {
            offset,
            len,
            data: Vec::new(),
        }
    }

    /// Takes what it wants of `chunk`, which starts at stream offset `pos`.
    fn feed(&mut self, pos: u64, chunk: &[u8]) {
        if self.complete() {
            return;
        }
        let want = self.offset + self.data.len() as u64;
        let end = pos + chunk.len() as u64;
        if want < pos || want >= end {
            return;
        }
        let from = (want - pos) as usize;
        let take = (self.len - self.data.len()).min(chunk.len() - from);
        self.data.extend_from_slice(&chunk[from..from + take]);
    }

    fn complete(&self) -> bool {
        self.data.len() == self.len
    }

    /// The stream has passed the region without filling it (it began before the region was
    /// asked for).
    fn missed(&self, pos: u64) -> bool {
        self.data.is_empty() && pos > self.offset
    }
}

/// The last `len` bytes of the stream.
#[derive(Debug, Clone)]
struct Tail {
    len: usize,
    data: Vec<u8>,
}

impl Tail {
    fn feed(&mut self, chunk: &[u8]) {
        if chunk.len() >= self.len {
            self.data.clear();
            self.data
                .extend_from_slice(&chunk[chunk.len() - self.len..]);
        } else {
            self.data.extend_from_slice(chunk);
            if self.data.len() > self.len {
                let cut = self.data.len() - self.len;
                self.data.drain(..cut);
            }
        }
    }
}

/// Where one inspector stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Needs more bytes.
    Pending,
    /// Not this format.
    No,
    /// This format.
    Yes(Detected),
    /// The signature is there but the structure is broken.
    Broken(String),
}

trait Inspector {
    fn name(&self) -> &'static str;
    /// Feeds a chunk starting at `pos`.
    fn feed(&mut self, pos: u64, chunk: &[u8]);
    fn verdict(&self) -> Verdict;
    /// The inspector needs the end of the stream even though it has decided.
    fn needs_end(&self) -> bool {
        false
    }
    /// The stream ended after `total` bytes.
    fn finish(&mut self, total: u64);
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

// ---------------------------------------------------------------------------------------
// qcow2

/// qcow2: the header (version 2: 72 bytes, version 3: at least 104).
struct Qcow2 {
    header: Region,
    ended: Option<u64>,
}

const QCOW2_MAGIC: &[u8] = b"QFI\xfb";

impl Qcow2 {
    fn new() -> Self {
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
struct Qed {
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
struct Vhd {
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
struct Vhdx {
    ident: Region,
    regions: Region,
    metadata: Option<Region>,
    size_item: Option<Region>,
    parent: bool,
    broken: Option<String>,
    ended: bool,
}

impl Vhdx {
    fn new() -> Self {
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
                self.metadata = Some(Region::new(offset, len));
                return;
            }
        }
        self.broken = Some("vhdx has no metadata region".into());
    }

    /// After the metadata table: where the virtual size is; whether there is a parent.
    fn find_size(&mut self) {
        let Some(meta) = &self.metadata else { return };
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
                let offset = le32(e, 16) as u64;
                self.size_item = Some(Region::new(meta.offset + offset, 8));
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
        // A table that lies before the point the stream has reached cannot be read (a
        // well-formed VHDX puts it after the headers): `missed` below.
        if let Some(m) = &mut self.metadata {
            m.feed(pos, chunk);
        }
        if self.metadata.as_ref().is_some_and(Region::complete) && self.size_item.is_none() {
            self.find_size();
        }
        if let Some(s) = &mut self.size_item {
            s.feed(pos, chunk);
        }
        if let Some(m) = &self.metadata
            && m.missed(pos + chunk.len() as u64)
            && !m.complete()
        {
            self.broken = Some("vhdx metadata table lies before the region table".into());
        }
        if let Some(s) = &self.size_item
            && s.missed(pos + chunk.len() as u64)
            && !s.complete()
        {
            self.broken = Some("vhdx virtual size item lies before the metadata table".into());
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
// vmdk

const VMDK_GD_AT_END: u64 = u64::MAX;

/// VMDK: a sparse extent (`KDMV` header, embedded descriptor) or a bare text descriptor.
struct Vmdk {
    header: Region,
    /// The descriptor: at sector 1 for a sparse file, from byte 0 for a text descriptor.
    descriptor: Option<Region>,
    text: bool,
    tail: Option<Tail>,
    broken: Option<String>,
    ended: bool,
}

impl Vmdk {
    fn new() -> Self {
        Vmdk {
            header: Region::new(0, 512),
            descriptor: None,
            text: false,
            tail: None,
            broken: None,
            ended: false,
        }
    }

    fn sparse(&self) -> bool {
        self.header.data.starts_with(b"KDMV")
    }

    /// The header's fields once 64 bytes are in: (version, capacity, desc sector, desc
    /// sectors, gd offset).
    fn fields(h: &[u8]) -> (u32, u64, u64, u64, u64) {
        (
            le32(h, 4),
            le64(h, 12),
            le64(h, 28),
            le64(h, 36),
            le64(h, 56),
        )
    }

    fn decide_kind(&mut self) {
        let h = &self.header.data;
        if h.starts_with(b"KDMV") {
            let (version, _cap, desc_sec, desc_num, gd) = Self::fields(h);
            if !(1..=3).contains(&version) {
                self.broken = Some(format!("unsupported VMDK version {version}"));
                return;
            }
            if desc_sec != 1 {
                self.broken = Some(format!(
                    "the VMDK descriptor is at sector {desc_sec}, not 1"
                ));
                return;
            }
            let size = (desc_num.saturating_mul(512) as usize).min(VMDK_DESCRIPTOR_MAX);
            if size == 0 {
                self.broken = Some("the VMDK has no embedded descriptor".into());
                return;
            }
            self.descriptor = Some(Region::new(512, size));
            if gd == VMDK_GD_AT_END {
                self.tail = Some(Tail {
                    len: 1536,
                    data: Vec::new(),
                });
            }
        } else if h
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        {
            self.text = true;
            self.descriptor = Some(Region::new(0, VMDK_DESCRIPTOR_MAX));
        }
    }

    /// The descriptor text, up to its first NUL.
    fn descriptor_text(&self) -> Option<String> {
        let d = &self.descriptor.as_ref()?.data;
        let end = d.iter().position(|b| *b == 0).unwrap_or(d.len());
        std::str::from_utf8(&d[..end]).ok().map(str::to_string)
    }

    fn create_type(text: &str) -> Option<String> {
        let lower = text.to_ascii_lowercase();
        let at = lower.find("createtype=\"")? + "createtype=\"".len();
        let end = lower[at..].find('"')? + at;
        (end - at < 64).then(|| text[at..end].to_string())
    }

    /// The descriptor's safety checks, and the virtual size of a text descriptor (the sum
    /// of its extents).
    fn check_descriptor(text: &str, create_type: &str) -> (Vec<Violation>, u64) {
        let mut violations = Vec::new();
        let mut sectors = 0u64;
        let kind = create_type.to_ascii_lowercase();
        if kind != "monolithicsparse" && kind != "streamoptimized" {
            violations.push(violation(
                "descriptor",
                format!(
                    "VMDK subformat {create_type} is not allowed: its data lives in other files"
                ),
            ));
        }
        let mut extents = 0;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with("ddb.") {
                continue;
            }
            let first = line.split_whitespace().next().unwrap_or("");
            if ["RW", "RDONLY", "NOACCESS"].contains(&first.to_ascii_uppercase().as_str()) {
                extents += 1;
                let parts: Vec<&str> = line.split_whitespace().collect();
                if let Some(n) = parts.get(1).and_then(|s| s.parse::<u64>().ok()) {
                    sectors = sectors.saturating_add(n);
                }
                let kind = parts
                    .get(2)
                    .map(|s| s.to_ascii_uppercase())
                    .unwrap_or_default();
                let name = line.split('"').nth(1).unwrap_or("");
                if name.contains('/') || name.contains('\\') {
                    violations.push(violation(
                        "descriptor",
                        format!("VMDK extent points elsewhere: {name}"),
                    ));
                } else if kind != "SPARSE" {
                    violations.push(violation(
                        "descriptor",
                        format!("VMDK extent of type {kind} reads the file {name:?}"),
                    ));
                }
                continue;
            }
            if let Some((key, _)) = line.split_once('=')
                && !key.trim().contains(' ')
            {
                continue;
            }
            violations.push(violation(
                "descriptor",
                format!("unsupported line in the VMDK descriptor: {line:.80}"),
            ));
        }
        if extents == 0 {
            violations.push(violation(
                "descriptor",
                "the VMDK descriptor has no extents",
            ));
        }
        (violations, sectors.saturating_mul(512))
    }

    /// streamOptimized with the grain directory at the end: the footer copy of the header
    /// and the end-of-stream marker must be well-formed and agree with the header.
    fn check_footer(&self) -> Option<Violation> {
        let tail = &self.tail.as_ref()?.data;
        if tail.len() < 1536 {
            return Some(violation(
                "footer",
                "the VMDK stream is too short for its footer",
            ));
        }
        let marker = |b: &[u8]| {
            (
                le64(b, 0),
                le32(b, 8),
                le32(b, 12),
                b[16..].iter().all(|x| *x == 0),
            )
        };
        let (_, size, kind, zero) = marker(&tail[0..512]);
        if size != 0 || kind != 3 || !zero {
            return Some(violation("footer", "VMDK footer marker is invalid"));
        }
        let footer = &tail[512..1024];
        let h = &self.header.data;
        if !footer.starts_with(b"KDMV") {
            return Some(violation("footer", "VMDK footer signature does not match"));
        }
        let (hv, _, hs, hn, _) = Self::fields(h);
        let (fv, _, fs, fnum, fgd) = Self::fields(footer);
        if hv != fv {
            return Some(violation(
                "footer",
                "VMDK header and footer versions differ",
            ));
        }
        if hs != fs || hn != fnum {
            return Some(violation(
                "footer",
                "VMDK footer names a different descriptor than the header",
            ));
        }
        if fgd == VMDK_GD_AT_END {
            return Some(violation("footer", "VMDK footer points at another footer"));
        }
        let (value, size, kind, zero) = marker(&tail[1024..1536]);
        if value != 0 || size != 0 || kind != 0 || !zero {
            return Some(violation("footer", "VMDK end-of-stream marker is invalid"));
        }
        None
    }
}

impl Inspector for Vmdk {
    fn name(&self) -> &'static str {
        "vmdk"
    }

    fn feed(&mut self, pos: u64, chunk: &[u8]) {
        let had = self.header.data.len();
        self.header.feed(pos, chunk);
        if had < 64 && self.header.data.len() >= 64 && self.descriptor.is_none() {
            self.decide_kind();
        }
        if let Some(d) = &mut self.descriptor {
            d.feed(pos, chunk);
        }
        if let Some(t) = &mut self.tail {
            t.feed(chunk);
        }
    }

    fn finish(&mut self, _total: u64) {
        self.ended = true;
        if self.descriptor.is_none() && !self.header.data.is_empty() && self.header.data.len() < 64
        {
            // A descriptor shorter than the sparse header.
            let h = &self.header.data;
            if h.iter()
                .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
            {
                self.text = true;
                let mut d = Region::new(0, VMDK_DESCRIPTOR_MAX);
                d.feed(0, &h.clone());
                self.descriptor = Some(d);
            }
        }
    }

    fn needs_end(&self) -> bool {
        self.tail.is_some() && !self.ended && self.broken.is_none()
    }

    fn verdict(&self) -> Verdict {
        if let Some(why) = &self.broken {
            return Verdict::Broken(why.clone());
        }
        let Some(desc) = &self.descriptor else {
            if self.header.data.len() >= 64 || self.ended {
                return Verdict::No;
            }
            let h = &self.header.data;
            let maybe = b"KDMV".starts_with(&h[..h.len().min(4)])
                || h.iter()
                    .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
            return if maybe { Verdict::Pending } else { Verdict::No };
        };
        if self.tail.is_some() && !self.ended {
            return Verdict::Pending;
        }
        if !desc.complete() && !self.ended {
            if self.text {
                // A text file is a VMDK only once the descriptor says so; decide early that
                // it is not when the first bytes cannot be a descriptor.
                if desc.data.len() >= 64 * 1024
                    && !desc
                        .data
                        .windows(11)
                        .any(|w| w.eq_ignore_ascii_case(b"createtype="))
                {
                    return Verdict::No;
                }
            }
            return Verdict::Pending;
        }
        let Some(text) = self.descriptor_text() else {
            return if self.sparse() {
                Verdict::Broken("the VMDK descriptor is not text".into())
            } else {
                Verdict::No
            };
        };
        let Some(create_type) = Self::create_type(&text) else {
            return if self.sparse() {
                Verdict::Broken("the VMDK descriptor has no createType".into())
            } else {
                Verdict::No
            };
        };
        if self.sparse() && !desc.complete() {
            return Verdict::Broken("the VMDK descriptor is cut short".into());
        }
        let (mut violations, extent_bytes) = Self::check_descriptor(&text, &create_type);
        if let Some(v) = self.check_footer() {
            violations.push(v);
        }
        let virtual_size = if self.sparse() {
            Some(Self::fields(&self.header.data).1.saturating_mul(512))
        } else {
            Some(extent_bytes)
        };
        Verdict::Yes(Detected {
            format: "vmdk",
            virtual_size,
            subformat: Some(create_type),
            violations,
        })
    }
}

// ---------------------------------------------------------------------------------------
// vdi

struct Vdi {
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
struct Iso {
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
struct Gpt {
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

// ---------------------------------------------------------------------------------------

/// Every inspector, fed the same stream.
pub struct Inspection {
    inspectors: Vec<Box<dyn Inspector>>,
    pos: u64,
    ended: bool,
}

impl Default for Inspection {
    fn default() -> Self {
        Self::new()
    }
}

/// The formats recognised, as `info` lists them.
pub const FORMATS: &[&str] = &[
    "raw", "qcow2", "qed", "vhd", "vhdx", "vmdk", "vdi", "iso", "gpt",
];

impl Inspection {
    pub fn new() -> Self {
        Inspection {
            inspectors: vec![
                Box::new(Qcow2::new()),
                Box::new(Qed {
                    header: Region::new(0, 4),
                    ended: false,
                }),
                Box::new(Vhd {
                    header: Region::new(0, 512),
                    ended: false,
                }),
                Box::new(Vhdx::new()),
                Box::new(Vmdk::new()),
                Box::new(Vdi {
                    header: Region::new(0, 512),
                    ended: false,
                }),
                Box::new(Iso {
                    descriptor: Region::new(32 * 1024, 2048),
                    ended: false,
                }),
                Box::new(Gpt {
                    mbr: Region::new(0, 512),
                    ended: false,
                }),
            ],
            pos: 0,
            ended: false,
        }
    }

    /// The next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        for i in &mut self.inspectors {
            if i.verdict() == Verdict::Pending || i.needs_end() {
                i.feed(self.pos, chunk);
            }
        }
        self.pos += chunk.len() as u64;
    }

    /// The stream ended.
    pub fn finish(&mut self) {
        self.ended = true;
        for i in &mut self.inspectors {
            i.finish(self.pos);
        }
    }

    /// Every inspector has decided and none needs more of the stream.
    pub fn done(&self) -> bool {
        self.ended
            || self
                .inspectors
                .iter()
                .all(|i| i.verdict() != Verdict::Pending && !i.needs_end())
    }

    pub fn report(&self) -> Report {
        let mut report = Report {
            bytes_read: self.pos,
            reached_end: self.ended,
            ..Default::default()
        };
        for i in &self.inspectors {
            match i.verdict() {
                Verdict::Yes(d) => report.matches.push(d),
                Verdict::Broken(why) => report.malformed.push(violation(i.name(), why)),
                Verdict::Pending => report.malformed.push(violation(
                    i.name(),
                    "the inspection stopped before this format could be decided",
                )),
                Verdict::No => {}
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect(data: &[u8], chunk: usize) -> Report {
        let mut i = Inspection::new();
        for c in data.chunks(chunk.max(1)) {
            if i.done() {
                break;
            }
            i.feed(c);
        }
        if !i.done() {
            i.finish();
        }
        i.report()
    }

    fn qcow2_header(version: u32, backing: u64, incompatible: u64, size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 1024];
        h[0..4].copy_from_slice(QCOW2_MAGIC);
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[8..16].copy_from_slice(&backing.to_be_bytes());
        h[24..32].copy_from_slice(&size.to_be_bytes());
        h[72..80].copy_from_slice(&incompatible.to_be_bytes());
        h
    }

    #[test]
    fn raw_data_matches_nothing() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let r = inspect(&data, 4096);
        assert!(r.matches.is_empty(), "{r:?}");
        assert!(r.malformed.is_empty(), "{r:?}");
        assert!(r.bytes_read < 100_000, "stops early: {}", r.bytes_read);
    }

    #[test]
    fn qcow2_is_detected_with_its_checks() {
        for chunk in [1, 7, 512, 65536] {
            let r = inspect(&qcow2_header(3, 0, 0, 1 << 30), chunk);
            assert_eq!(r.matches.len(), 1, "{r:?}");
            assert_eq!(r.matches[0].format, "qcow2");
            assert_eq!(r.matches[0].virtual_size, Some(1 << 30));
            assert!(r.matches[0].violations.is_empty());
        }
        let r = inspect(&qcow2_header(3, 0x200, 0, 1), 512);
        assert_eq!(r.matches[0].violations[0].check, "backing-file");
        let r = inspect(&qcow2_header(3, 0, 4, 1), 512);
        assert_eq!(r.matches[0].violations[0].check, "data-file");
        let r = inspect(&qcow2_header(3, 0, 1 << 9, 1), 512);
        assert_eq!(r.matches[0].violations[0].check, "unknown-features");
        let r = inspect(&qcow2_header(4, 0, 0, 1), 512);
        assert_eq!(r.matches[0].violations[0].check, "unknown-features");
        let r = inspect(&qcow2_header(3, 0, 0, 1)[..60], 512);
        assert!(r.matches.is_empty());
        assert_eq!(r.malformed[0].check, "qcow2", "{r:?}");
    }

    #[test]
    fn text_vmdk_descriptors_are_unsafe() {
        let desc = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
                    createType=\"monolithicFlat\"\n\n# Extent description\n\
                    RW 2048 FLAT \"/etc/shadow\" 0\n\nddb.adapterType = \"ide\"\n";
        let r = inspect(desc.as_bytes(), 100);
        assert_eq!(r.matches.len(), 1, "{r:?}");
        let vmdk = &r.matches[0];
        assert_eq!(vmdk.format, "vmdk");
        assert_eq!(vmdk.subformat.as_deref(), Some("monolithicFlat"));
        assert_eq!(vmdk.virtual_size, Some(2048 * 512));
        let messages: Vec<&str> = vmdk.violations.iter().map(|v| v.message.as_str()).collect();
        assert!(
            messages.iter().any(|m| m.contains("monolithicFlat")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("/etc/shadow")),
            "{messages:?}"
        );
        // Plain text is no VMDK.
        let r = inspect(b"hello world, just some text\n", 100);
        assert!(r.matches.is_empty(), "{r:?}");
    }

    #[test]
    fn mbr_and_iso() {
        let mut disk = vec![0u8; 40 * 1024];
        disk[510] = 0x55;
        disk[511] = 0xAA;
        disk[446 + 4] = 0x83;
        let r = inspect(&disk, 4096);
        assert_eq!(r.matches.len(), 1);
        assert_eq!(r.matches[0].format, "gpt");
        assert!(r.matches[0].violations.is_empty());
        disk[446] = 0x12;
        assert_eq!(inspect(&disk, 4096).matches[0].violations[0].check, "mbr");

        let mut iso = vec![0u8; 40 * 1024];
        iso[32768] = 1;
        iso[32769..32774].copy_from_slice(b"CD001");
        iso[32768 + 80..32768 + 84].copy_from_slice(&100u32.to_le_bytes());
        iso[32768 + 128..32768 + 130].copy_from_slice(&2048u16.to_le_bytes());
        let r = inspect(&iso, 1000);
        assert_eq!(r.matches[0].format, "iso");
        assert_eq!(r.matches[0].virtual_size, Some(204_800));
    }

    #[test]
    fn guid_bytes_are_microsoft_order() {
        let g = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E");
        assert_eq!(&g[..4], &[0x06, 0xA2, 0x7C, 0x8B]);
        assert_eq!(&g[8..], &[0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E]);
    }
}
