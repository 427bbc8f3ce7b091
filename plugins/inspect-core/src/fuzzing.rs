//! The inspector's fuzz target (feature `fuzzing`), shared by the bounded stable runner
//! (`examples/fuzz.rs`) and the cargo-fuzz target (`fuzz/fuzz_targets/inspect_format.rs`).
//!
//! An input is a claimed format, a seed for chunk sizes and a sparse image: segments of bytes
//! at offsets over zeros, so that a few KiB reach the structures formats keep far into the
//! file (a VHDX metadata table, a VMDK footer). [`check`] inspects the image twice, in the
//! component's 64 KiB chunks and in sizes drawn from the seed, and asserts that nothing
//! panics, that the verdicts agree, and (when [`Counting`] is the global allocator) that the
//! inspection's memory stays bounded.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{FORMATS, Inspection, Report};

/// Claimed formats tried: every format the inspector knows, then `ami`, which stands for
/// one it does not. An input names its claimed format by its index here.
pub const CLAIMED: [&str; FORMATS.len() + 1] = {
    let mut claimed = ["ami"; FORMATS.len() + 1];
    let mut i = 0;
    while i < FORMATS.len() {
        claimed[i] = FORMATS[i];
        i += 1;
    }
    claimed
};
/// Longest stream an input describes.
pub const STREAM_MAX: u64 = 4 << 20;
/// Most memory one inspection may hold at once.
pub const MEMORY_MAX: usize = 4 << 20;
/// Bytes the component asks of its input stream at a time.
const COMPONENT_CHUNK: usize = 64 * 1024;

/// A decoded fuzz input.
#[derive(Debug, Clone)]
pub struct Input {
    pub claimed: &'static str,
    pub chunk_seed: u64,
    /// (offset, bytes), applied in order over zeros.
    pub segments: Vec<(u64, Vec<u8>)>,
    pub len: u64,
}

/// Input layout: `[claimed][chunk seed: 8]` then segments `[offset: u32 le][len: u16 le][bytes]`
/// (offsets modulo [`STREAM_MAX`]; a short last segment takes what is left). The stream ends
/// where the furthest segment does.
pub fn decode(data: &[u8]) -> Input {
    let claimed = CLAIMED[usize::from(data.first().copied().unwrap_or(0)) % CLAIMED.len()];
    let mut seed = [0u8; 8];
    for (i, b) in data.iter().skip(1).take(8).enumerate() {
        seed[i] = *b;
    }
    let mut rest = data.get(9..).unwrap_or(&[]);
    let mut segments = Vec::new();
    let mut len = 0u64;
    while rest.len() >= 6 {
        let offset = u64::from(u32::from_le_bytes(rest[0..4].try_into().expect("4"))) % STREAM_MAX;
        let n = usize::from(u16::from_le_bytes(rest[4..6].try_into().expect("2")));
        let bytes = &rest[6..(6 + n).min(rest.len())];
        let bytes = &bytes[..bytes.len().min((STREAM_MAX - offset) as usize)];
        len = len.max(offset + bytes.len() as u64);
        segments.push((offset, bytes.to_vec()));
        rest = &rest[(6 + n).min(rest.len())..];
    }
    Input {
        claimed,
        chunk_seed: u64::from_le_bytes(seed),
        segments,
        len,
    }
}

/// Encodes an image file as an input: its non-zero 512-byte sectors, merged into segments.
pub fn encode(claimed: &str, chunk_seed: u64, image: &[u8]) -> Vec<u8> {
    let index = CLAIMED.iter().position(|c| *c == claimed).unwrap_or(0);
    let mut out = vec![index as u8];
    out.extend_from_slice(&chunk_seed.to_le_bytes());
    let image = &image[..image.len().min(STREAM_MAX as usize)];
    let sectors: Vec<&[u8]> = image.chunks(512).collect();
    let mut i = 0;
    while i < sectors.len() {
        if sectors[i].iter().all(|b| *b == 0) && i + 1 != sectors.len() {
            i += 1;
            continue;
        }
        let start = i;
        let mut bytes = Vec::new();
        while i < sectors.len()
            && bytes.len() + sectors[i].len() <= usize::from(u16::MAX)
            && (i == start || sectors[i].iter().any(|b| *b != 0) || i + 1 == sectors.len())
        {
            bytes.extend_from_slice(sectors[i]);
            i += 1;
        }
        out.extend_from_slice(&((start * 512) as u32).to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

impl Input {
    /// Calls `each` with consecutive chunks of the stream, of the sizes `next_size` gives,
    /// until it returns false or the stream ends.
    fn stream(&self, mut next_size: impl FnMut() -> usize, mut each: impl FnMut(&[u8]) -> bool) {
        let mut buf = Vec::new();
        let mut pos = 0u64;
        while pos < self.len {
            let n = (next_size().max(1) as u64).min(self.len - pos) as usize;
            buf.clear();
            buf.resize(n, 0);
            let end = pos + n as u64;
            for (offset, bytes) in &self.segments {
                let seg_end = offset + bytes.len() as u64;
                if seg_end <= pos || *offset >= end {
                    continue;
                }
                let from = pos.max(*offset);
                let to = end.min(seg_end);
                buf[(from - pos) as usize..(to - pos) as usize]
                    .copy_from_slice(&bytes[(from - offset) as usize..(to - offset) as usize]);
            }
            if !each(&buf) {
                return;
            }
            pos = end;
        }
    }

    /// Inspects the stream as the component does: stops once the inspection is done.
    pub fn inspect(&self, next_size: impl FnMut() -> usize) -> Report {
        let mut inspection = Inspection::new(self.claimed);
        self.stream(next_size, |chunk| {
            if inspection.done() {
                return false;
            }
            inspection.feed(chunk);
            true
        });
        if !inspection.done() {
            inspection.finish();
        }
        inspection.report()
    }

    /// The whole stream (for tests of small inputs).
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.stream(
            || COMPONENT_CHUNK,
            |c| {
                out.extend_from_slice(c);
                true
            },
        );
        out
    }
}

/// A small deterministic random number generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A chunk size: log-uniform from 1 byte to 128 KiB.
    fn chunk_size(&mut self) -> usize {
        let scale = 1usize << self.below(18);
        1 + self.below(scale)
    }
}

/// The fuzz target: no panic, bounded memory, and the same verdict however the stream is
/// cut into chunks.
pub fn check(data: &[u8]) {
    let input = decode(data);
    let before = Counting::reset_peak();
    let whole = input.inspect(|| COMPONENT_CHUNK);
    let used = Counting::peak().saturating_sub(before);
    assert!(
        used <= MEMORY_MAX,
        "the inspection held {used} bytes (more than {MEMORY_MAX})"
    );
    let mut rng = Rng::new(input.chunk_seed);
    let cut = input.inspect(|| rng.chunk_size());
    assert_eq!(
        (&whole.matches, &whole.malformed),
        (&cut.matches, &cut.malformed),
        "the verdict depends on the chunking (claimed {})",
        input.claimed
    );
    for d in &whole.matches {
        assert!(FORMATS.contains(&d.format), "{}", d.format);
    }
}

/// What an inspection found, as a short string: inputs with a new signature are kept by the
/// stable runner's corpus (a crude stand-in for coverage).
pub fn signature(data: &[u8]) -> String {
    let input = decode(data);
    let r = input.inspect(|| COMPONENT_CHUNK);
    let mut s = String::from(input.claimed);
    for d in &r.matches {
        s.push_str(&format!(" {}:{:?}", d.format, d.subformat));
        for v in &d.violations {
            let head: String = v.message.chars().take(24).collect();
            s.push_str(&format!(" {}={head}", v.check));
        }
    }
    for m in &r.malformed {
        let head: String = m.message.chars().take(24).collect();
        s.push_str(&format!(" !{}={head}", m.check));
    }
    s
}

/// Byte strings the formats look for, spliced in by [`mutate`].
const TOKENS: &[&[u8]] = &[
    b"KDMV",
    b"COWD",
    b"QFI\xfb",
    b"QED\0",
    b"conectix",
    b"vhdxfile",
    b"regi",
    b"metadata",
    b"LUKS\xba\xbe",
    b"CD001",
    b"\x7f\x10\xda\xbe",
    b"\x55\xaa",
    b"createType=\"monolithicSparse\"\n",
    b"createType=\"streamOptimized\"\n",
    b"createType=\"monolithicFlat\"\n",
    b"parentFileNameHint=\"x\"\n",
    b"parentCID=ffffffff\n",
    b"version=1\n",
    b"RW 2048 SPARSE \"disk.vmdk\"\n",
    b"RW 2048 FLAT \"/etc/passwd\" 0\n",
    b"ddb.adapterType = \"ide\"\n",
    b"# Disk DescriptorFile\n",
    b"\n",
    b"\"",
    b"\0",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
];

/// Applies one to four random mutations to `data`, maybe splicing from `other`.
pub fn mutate(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(9) {
            // Flip a bit.
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            // Set a byte to an interesting value.
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = [0, 1, 0x7f, 0x80, 0xff, b'"', b'\n', b'='][rng.below(8)];
            }
            // Overwrite a little-endian or big-endian integer.
            2 if len >= 8 => {
                let at = rng.below(len - 7);
                let v: u64 = [
                    0,
                    1,
                    2,
                    3,
                    0x200,
                    0xffff_ffff,
                    u64::MAX,
                    1 << 40,
                    rng.next_u64(),
                ][rng.below(9)];
                let width = [1usize, 2, 4, 8][rng.below(4)];
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                data[at..at + width].copy_from_slice(&bytes[8 - width..]);
            }
            // Insert or overwrite with a token.
            3 | 4 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                if rng.below(2) == 0 {
                    data.splice(at..at, token.iter().copied());
                } else {
                    let end = (at + token.len()).min(len);
                    data.splice(at..end, token.iter().copied());
                }
            }
            // Delete a range.
            5 if len > 1 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                data.drain(at..at + n);
            }
            // Duplicate a range.
            6 if len > 1 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(256));
                let copy = data[at..at + n].to_vec();
                let to = rng.below(len);
                data.splice(to..to, copy);
            }
            // Splice in a piece of another input.
            7 if !other.is_empty() => {
                let at = rng.below(other.len());
                let n = 1 + rng.below((other.len() - at).min(1024));
                let to = rng.below(len + 1);
                let end = (to + n).min(len);
                data.splice(to..end, other[at..at + n].iter().copied());
            }
            // Change the claimed format or the chunk seed.
            _ if len >= 9 => {
                let at = rng.below(9);
                data[at] = rng.next_u64() as u8;
            }
            _ => data.push(rng.next_u64() as u8),
        }
    }
    data.truncate(256 * 1024);
}

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// A global allocator that counts the bytes held, for [`check`]'s memory bound. A fuzz
/// binary installs it with `#[global_allocator] static A: Counting = Counting;`.
pub struct Counting;

impl Counting {
    /// Starts a new peak measurement; the bytes held now.
    pub fn reset_peak() -> usize {
        let now = CURRENT.load(Ordering::Relaxed);
        PEAK.store(now, Ordering::Relaxed);
        now
    }

    /// The most bytes held since [`Counting::reset_peak`] (0 when not installed).
    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }

    fn add(n: usize) {
        let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters change.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::add(layout.size());
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Counting::add(layout.size());
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Counting::add(new_size);
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
