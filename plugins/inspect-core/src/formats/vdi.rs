//! VDI: the header's signature at 0x40. Refused: a differencing (or undo) disk.

use super::{HeaderFormat, Verdict, violation};
use crate::Detected;
use crate::region::{Region, le32, le64};

pub(crate) struct Vdi;

impl HeaderFormat for Vdi {
    const NAME: &'static str = "vdi";
    const OFFSET: u64 = 0;
    const LEN: usize = 512;

    fn judge(&self, header: &Region, ended: Option<u64>) -> Verdict {
        let h = &header.data;
        if h.len() < 0x44 {
            return if ended.is_some() {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        if le32(h, 0x40) != 0xBEDA_107F {
            return Verdict::No;
        }
        if !header.complete() {
            return if ended.is_some() {
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
