//! The formats' streaming inspectors, one file each, and what they share: the [`Inspector`]
//! contract, its [`Verdict`], and [`HeaderInspector`] for the formats decided from one fixed
//! byte range (qcow2, qed, vhd, vdi, iso, gpt/mbr, luks).

mod gpt;
mod iso;
mod luks;
mod qcow2;
mod qed;
mod vdi;
mod vhd;
mod vhdx;
pub(crate) mod vmdk;

use crate::region::Region;
use crate::{Detected, Violation};

/// Every format's inspector, in report order, for data claimed to be `claimed`.
pub(crate) fn all(claimed: &str) -> Vec<Box<dyn Inspector>> {
    vec![
        Box::new(HeaderInspector::new(qcow2::Qcow2)),
        Box::new(HeaderInspector::new(qed::Qed)),
        Box::new(HeaderInspector::new(vhd::Vhd)),
        Box::new(vhdx::Vhdx::new()),
        Box::new(vmdk::Vmdk::new()),
        Box::new(HeaderInspector::new(vdi::Vdi)),
        Box::new(HeaderInspector::new(iso::Iso)),
        Box::new(HeaderInspector::new(gpt::Gpt)),
        Box::new(HeaderInspector::new(luks::Luks {
            claimed: claimed == "luks",
        })),
    ]
}

pub(crate) fn violation(check: &str, message: impl Into<String>) -> Violation {
    Violation {
        check: check.into(),
        message: message.into(),
    }
}

/// Where one inspector stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Needs more bytes.
    Pending,
    /// Not this format.
    No,
    /// This format.
    Yes(Detected),
    /// The signature is there but the structure is broken.
    Broken(String),
}

/// One format's streaming inspector. Once it has decided (anything but `Pending`), its
/// verdict never changes.
pub(crate) trait Inspector {
    fn name(&self) -> &'static str;
    /// Feeds a chunk starting at `pos`.
    fn feed(&mut self, pos: u64, chunk: &[u8]);
    fn verdict(&self) -> Verdict;
    /// Still undecided (what `verdict` says, without building it).
    fn pending(&self) -> bool {
        self.verdict() == Verdict::Pending
    }
    /// The inspector needs the end of the stream even though it has decided.
    fn needs_end(&self) -> bool {
        false
    }
    /// The stream ended after `total` bytes.
    fn finish(&mut self, total: u64);
}

/// A format decided from one fixed byte range of the stream (its header).
pub(crate) trait HeaderFormat {
    const NAME: &'static str;
    /// Where the range starts in the stream.
    const OFFSET: u64;
    /// How long the range is.
    const LEN: usize;
    /// The verdict on what was captured of the range so far; `ended` is the stream's length
    /// once it has ended.
    fn judge(&self, header: &Region, ended: Option<u64>) -> Verdict;
}

/// The inspector of a [`HeaderFormat`]: captures its range and notes where the stream ended.
pub(crate) struct HeaderInspector<F> {
    format: F,
    header: Region,
    ended: Option<u64>,
}

impl<F: HeaderFormat> HeaderInspector<F> {
    pub(crate) fn new(format: F) -> Self {
        HeaderInspector {
            format,
            header: Region::new(F::OFFSET, F::LEN),
            ended: None,
        }
    }
}

impl<F: HeaderFormat> Inspector for HeaderInspector<F> {
    fn name(&self) -> &'static str {
        F::NAME
    }

    fn feed(&mut self, pos: u64, chunk: &[u8]) {
        self.header.feed(pos, chunk);
    }

    fn finish(&mut self, total: u64) {
        self.ended = Some(total);
    }

    fn verdict(&self) -> Verdict {
        self.format.judge(&self.header, self.ended)
    }
}
