//! qcow2: the header (version 2: 72 bytes, version 3: at least 104). Refused: a backing
//! file, an external data file, an unsupported version or unknown incompatible features.

use super::{HeaderFormat, Verdict, violation};
use crate::Detected;
use crate::region::{Region, be32, be64};

const MAGIC: &[u8] = b"QFI\xfb";

pub(crate) struct Qcow2;

impl HeaderFormat for Qcow2 {
    const NAME: &'static str = "qcow2";
    const OFFSET: u64 = 0;
    const LEN: usize = 512;

    fn judge(&self, header: &Region, ended: Option<u64>) -> Verdict {
        let h = &header.data;
        if h.len() < 4 {
            return if ended.is_some() || !h.starts_with(&MAGIC[..h.len()]) {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        if &h[..4] != MAGIC {
            return Verdict::No;
        }
        let version = if h.len() >= 8 { be32(h, 4) } else { 0 };
        let needed = if version >= 3 { 104 } else { 72 };
        if h.len() < needed {
            return match ended {
                Some(total) => Verdict::Broken(format!(
                    "qcow2 header cut short: {total} bytes, the header needs {needed}"
                )),
                None if header.complete() => Verdict::No,
                None => Verdict::Pending,
            };
        }
        if !header.complete() && ended.is_none() {
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
