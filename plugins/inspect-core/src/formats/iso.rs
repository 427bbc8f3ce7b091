//! ISO 9660 / UDF: the volume descriptor at 32 KiB. Nothing refused (the format has no
//! references to other files).

use super::{HeaderFormat, Verdict};
use crate::Detected;
use crate::region::{Region, le16, le32};

pub(crate) struct Iso;

impl HeaderFormat for Iso {
    const NAME: &'static str = "iso";
    const OFFSET: u64 = 32 * 1024;
    const LEN: usize = 2048;

    fn judge(&self, descriptor: &Region, ended: Option<u64>) -> Verdict {
        if !descriptor.complete() {
            return if ended.is_some() {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        let d = &descriptor.data;
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
