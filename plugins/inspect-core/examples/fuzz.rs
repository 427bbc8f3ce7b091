//! The inspector's bounded fuzz run on stable Rust: mutates a corpus seeded from
//! `fuzz-seeds/` (disk images made with qemu-img, encoded by `fuzz encode`) for N seconds and
//! runs `inspect_core::fuzzing::check` on each input; keeps inputs whose verdict is new. A
//! failing input is written to `fuzz-crash-<n>.bin` in the current directory and the run
//! fails. `scripts/fuzz` runs it; cargo-fuzz runs the same target (`fuzz/`) for long runs.
//!
//! Usage: `fuzz [--seconds N] [--seed S] [SEEDS_DIR]`, or `fuzz encode CLAIMED IMAGE OUT`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use inspect_core::fuzzing::{self, Counting, Rng};

#[global_allocator]
static ALLOC: Counting = Counting;

/// The input being checked, for the panic hook.
static CURRENT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("encode") {
        let [_, claimed, image, out] = &args[..] else {
            panic!("usage: fuzz encode CLAIMED IMAGE OUT");
        };
        let data = std::fs::read(image).expect("reading the image");
        std::fs::write(out, fuzzing::encode(claimed, 0, &data)).expect("writing the seed");
        return;
    }
    let mut seconds = 10u64;
    let mut seed = std::process::id() as u64;
    let mut dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz-seeds"));
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().and_then(|s| s.parse().ok()).expect("--seconds N"),
            "--seed" => seed = it.next().and_then(|s| s.parse().ok()).expect("--seed S"),
            other => dir = PathBuf::from(other),
        }
    }
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| std::fs::read(e.path()).expect("reading a seed"))
        .collect();
    corpus.sort();
    assert!(!corpus.is_empty(), "no seeds in {}", dir.display());
    // Every seed under every claimed format.
    let seeds = corpus.clone();
    for s in &seeds {
        for c in 0..fuzzing::CLAIMED.len() {
            let mut v = s.clone();
            v[0] = c as u8;
            corpus.push(v);
        }
    }
    std::panic::set_hook(Box::new(|info| {
        let input = CURRENT.lock().map(|c| c.clone()).unwrap_or_default();
        let path = format!("fuzz-crash-{}.bin", std::process::id());
        let _ = std::fs::write(&path, &input);
        eprintln!("inspect-format fuzz: {info}\nthe input is in {path}");
        std::process::exit(1);
    }));
    let mut seen: HashSet<String> = corpus.iter().map(|c| fuzzing::signature(c)).collect();
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let limit = Duration::from_secs(seconds);
    let mut runs = 0u64;
    while started.elapsed() < limit {
        for _ in 0..64 {
            let base = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())];
            let mut input = base.clone();
            fuzzing::mutate(&mut input, &mut rng, other);
            CURRENT.lock().expect("lock").clone_from(&input);
            fuzzing::check(&input);
            runs += 1;
            if corpus.len() < 20_000 {
                let sig = fuzzing::signature(&input);
                if !seen.contains(&sig) {
                    seen.insert(sig);
                    corpus.push(input);
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "inspect_format: {runs} executions in {secs:.1} s ({:.0}/s), corpus {} ({} verdicts), seed {seed}, no failure",
        runs as f64 / secs,
        corpus.len(),
        seen.len()
    );
}
