//! QED: recognised only to be refused.

use super::{HeaderFormat, Verdict, violation};
use crate::Detected;
use crate::region::Region;

pub(crate) struct Qed;

impl HeaderFormat for Qed {
    const NAME: &'static str = "qed";
    const OFFSET: u64 = 0;
    const LEN: usize = 4;

    fn judge(&self, header: &Region, ended: Option<u64>) -> Verdict {
        let h = &header.data;
        if !header.complete() {
            return if ended.is_some() || !b"QED\0".starts_with(h) {
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
