//! LUKS, versions 1 and 2 (`LUKS\xba\xbe`, then a big-endian version): qemu opens LUKS 1 as
//! `luks`, so LUKS data claimed as anything else must not pass. As Glance (oslo.utils'
//! `LUKSInspector`), version 1 is accepted as `luks` and any other version is refused. The
//! virtual size is the payload, what follows `payload-offset` sectors of header: known only
//! at the end of the stream, so the inspector reads to the end when `luks` is claimed.

use super::{HeaderFormat, Verdict, violation};
use crate::Detected;
use crate::region::{Region, be16, be32};

const MAGIC: &[u8] = b"LUKS\xba\xbe";
/// LUKS 1's header through `payload-offset` and `key-bytes`.
const HEADER_LEN: usize = 112;

pub(crate) struct Luks {
    /// `luks` is the claimed format: read to the end for the virtual size.
    pub(crate) claimed: bool,
}

impl HeaderFormat for Luks {
    const NAME: &'static str = "luks";
    const OFFSET: u64 = 0;
    const LEN: usize = HEADER_LEN;

    fn judge(&self, header: &Region, ended: Option<u64>) -> Verdict {
        let h = &header.data;
        let n = h.len().min(MAGIC.len());
        if h[..n] != MAGIC[..n] {
            return Verdict::No;
        }
        if h.len() < 8 {
            return match ended {
                Some(_) if n < MAGIC.len() => Verdict::No,
                Some(total) => Verdict::Broken(format!("LUKS header cut short at {total} bytes")),
                None => Verdict::Pending,
            };
        }
        let version = be16(h, 6);
        if version != 1 {
            return Verdict::Yes(Detected {
                format: "luks",
                virtual_size: None,
                subformat: None,
                violations: vec![violation(
                    "version",
                    format!("LUKS version {version} is not supported"),
                )],
            });
        }
        if !header.complete() || (self.claimed && ended.is_none()) {
            return match ended {
                Some(total) if !header.complete() => {
                    Verdict::Broken(format!("LUKS header cut short at {total} bytes"))
                }
                _ => Verdict::Pending,
            };
        }
        let payload = u64::from(be32(h, 104)).saturating_mul(512);
        Verdict::Yes(Detected {
            format: "luks",
            virtual_size: ended
                .filter(|_| self.claimed)
                .map(|total| total.saturating_sub(payload)),
            subformat: None,
            violations: Vec::new(),
        })
    }
}
