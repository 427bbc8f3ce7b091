//! The byte ranges the format inspectors keep of a stream as it passes: fixed regions, the
//! stream's tail, and NUL-terminated text (a VMDK descriptor as qemu reads it).

/// Bytes `[offset, offset + len)` of the stream, captured as they pass.
#[derive(Debug, Clone)]
pub(crate) struct Region {
    pub(crate) offset: u64,
    pub(crate) len: usize,
    pub(crate) data: Vec<u8>,
}

impl Region {
    pub(crate) fn new(offset: u64, len: usize) -> Self {
        Region {
            offset,
            len,
            data: Vec::new(),
        }
    }

    /// Takes what it wants of `chunk`, which starts at stream offset `pos`.
    pub(crate) fn feed(&mut self, pos: u64, chunk: &[u8]) {
        if self.complete() {
            return;
        }
        let want = self.offset.saturating_add(self.data.len() as u64);
        let end = pos + chunk.len() as u64;
        if want < pos || want >= end {
            return;
        }
        let from = (want - pos) as usize;
        let take = (self.len - self.data.len()).min(chunk.len() - from);
        self.data.extend_from_slice(&chunk[from..from + take]);
    }

    pub(crate) fn complete(&self) -> bool {
        self.data.len() == self.len
    }

    /// A region named by data read at stream offsets up to `from` (a table): its bytes come
    /// from the `captured` regions where they cover it, and from the stream at `from` on.
    /// None when part of it lies before `from` outside what was captured: it cannot be
    /// read, whatever the chunking (a byte before `from` may already have gone by).
    pub(crate) fn after(offset: u64, len: usize, from: u64, captured: &[&Region]) -> Option<Self> {
        let mut r = Region::new(offset, len);
        for c in captured {
            let want = offset.saturating_add(r.data.len() as u64);
            let c_end = c.offset.saturating_add(c.data.len() as u64);
            if want >= c.offset && want < c_end {
                let at = (want - c.offset) as usize;
                let take = (len - r.data.len()).min(c.data.len() - at);
                r.data.extend_from_slice(&c.data[at..at + take]);
            }
        }
        let want = offset.saturating_add(r.data.len() as u64);
        (r.complete() || want >= from).then_some(r)
    }
}

/// The last `len` bytes of the stream.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    pub(crate) len: usize,
    pub(crate) data: Vec<u8>,
}

impl Tail {
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
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

/// Text from `offset` up to its first NUL byte (excluded) or `max` bytes, whichever comes
/// first: what qemu sees of a descriptor it reads into a C string.
#[derive(Debug, Clone)]
pub(crate) struct TextRegion {
    offset: u64,
    max: usize,
    pub(crate) data: Vec<u8>,
    /// A NUL ended the text.
    terminated: bool,
}

impl TextRegion {
    pub(crate) fn new(offset: u64, max: usize) -> Self {
        TextRegion {
            offset,
            max,
            data: Vec::new(),
            terminated: false,
        }
    }

    /// Takes what it wants of `chunk`, which starts at stream offset `pos`.
    pub(crate) fn feed(&mut self, pos: u64, chunk: &[u8]) {
        if self.complete() {
            return;
        }
        let want = self.offset.saturating_add(self.data.len() as u64);
        let end = pos + chunk.len() as u64;
        if want < pos || want >= end {
            return;
        }
        let from = (want - pos) as usize;
        let room = self.max - self.data.len();
        let rest = &chunk[from..];
        let rest = &rest[..rest.len().min(room)];
        match rest.iter().position(|b| *b == 0) {
            Some(nul) => {
                self.data.extend_from_slice(&rest[..nul]);
                self.terminated = true;
            }
            None => self.data.extend_from_slice(rest),
        }
    }

    /// The text is whole: a NUL or the size limit ended it.
    pub(crate) fn complete(&self) -> bool {
        self.terminated || self.data.len() == self.max
    }
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
