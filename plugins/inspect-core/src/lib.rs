//! Streaming disk-image format detection, free of WASI so it is tested and fuzzed natively;
//! the `inspect-format` component is a thin layer over it.
//!
//! An [`Inspection`] is fed the image's bytes in order, chunk by chunk, and runs every
//! format's inspector side by side. Each inspector names the byte ranges it needs (fixed
//! offsets, NUL-terminated text, or the last N bytes of the stream); it keeps only those, so
//! memory stays bounded (at most about 1 MiB, for a VMDK descriptor) whatever the image size.
//! When every inspector has decided (matched, or not this format) and none needs the end of
//! the stream, the inspection is [`Inspection::done`] and the caller stops reading. The
//! verdict does not depend on how the stream was cut into chunks.
//!
//! Formats and their safety checks (what makes an image dangerous to hand to qemu or a
//! hypervisor, after CVE-2022-47951 and CVE-2024-32498):
//! - qcow2: a backing file, an external data file, an unsupported version or unknown
//!   incompatible features.
//! - qed: never allowed.
//! - vhd: a differencing disk (it names a parent image).
//! - vhdx: a parent locator (a differencing disk).
//! - vmdk: anything but one self-contained sparse file (`formats/vmdk.rs` says what qemu reads).
//! - vdi: a differencing (or undo) disk.
//! - iso: none (the format has no references to other files).
//! - gpt/mbr: the protective MBR must be well-formed (`mbr`).
//! - luks: any version but 1.
//!
//! [`decompress`] undoes gzip and zstd for the import plugins, within a size cap.

pub mod decompress;
mod formats;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod region;

pub use formats::vmdk::SINGLE_FILE_TYPES as VMDK_SINGLE_FILE_TYPES;
use formats::{Inspector, Verdict, violation};

/// A safety rule an image breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub check: String,
    pub message: String,
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

/// The formats recognised, as `info` lists them.
pub const FORMATS: &[&str] = &[
    "raw", "qcow2", "qed", "vhd", "vhdx", "vmdk", "vdi", "iso", "gpt", "luks",
];

/// Every inspector, fed the same stream.
pub struct Inspection {
    inspectors: Vec<Box<dyn Inspector>>,
    pos: u64,
    ended: bool,
}

impl Inspection {
    /// An inspection of data claimed to be `claimed` (the image's `disk_format`).
    pub fn new(claimed: &str) -> Self {
        Inspection {
            inspectors: formats::all(claimed),
            pos: 0,
            ended: false,
        }
    }

    /// The next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        for i in &mut self.inspectors {
            if i.pending() || i.needs_end() {
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
                .all(|i| !i.pending() && !i.needs_end())
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

/// Inspects `data` given in chunks of `chunk` bytes, stopping as soon as the inspection is
/// done, as the component does with its input stream.
pub fn inspect_chunked(data: &[u8], claimed: &str, chunk: usize) -> Report {
    let mut i = Inspection::new(claimed);
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

#[cfg(test)]
mod tests;
