//! VHD (dynamic and differencing: a copy of the footer at the start). Refused: a
//! differencing disk (it names a parent image).

use super::{HeaderFormat, Verdict, violation};
use crate::Detected;
use crate::region::{Region, be32, be64};

pub(crate) struct Vhd;

impl HeaderFormat for Vhd {
    const NAME: &'static str = "vhd";
    const OFFSET: u64 = 0;
    const LEN: usize = 512;

    fn judge(&self, header: &Region, ended: Option<u64>) -> Verdict {
        let h = &header.data;
        let magic = b"conectix";
        if h.len() < magic.len() {
            return if ended.is_some() || !magic.starts_with(h) {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        if &h[..8] != magic {
            return Verdict::No;
        }
        if !header.complete() {
            return if ended.is_some() {
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
