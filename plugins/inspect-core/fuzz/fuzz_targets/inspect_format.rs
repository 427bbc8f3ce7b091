//! The disk-format inspector (`plugins/inspect-core`) under libFuzzer: arbitrary images,
//! claimed formats and chunkings; no panic, bounded memory, the same verdict for every
//! chunking (`inspect_core::fuzzing::check`).
#![no_main]

use inspect_core::fuzzing::{self, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::check(data));
