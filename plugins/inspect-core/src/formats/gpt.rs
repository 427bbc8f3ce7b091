//! A disk with an MBR (a GPT's protective MBR, or a legacy partition table). Refused: an
//! MBR that is not well-formed.

use super::{HeaderFormat, Verdict, violation};
use crate::Detected;
use crate::region::{Region, le16, le32};

pub(crate) struct Gpt;

impl HeaderFormat for Gpt {
    const NAME: &'static str = "gpt";
    const OFFSET: u64 = 0;
    const LEN: usize = 512;

    fn judge(&self, mbr: &Region, ended: Option<u64>) -> Verdict {
        if !mbr.complete() {
            return if ended.is_some() {
                Verdict::No
            } else {
                Verdict::Pending
            };
        }
        let m = &mbr.data;
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
