//! The mutation driver: stable Rust, no coverage instrumentation. Each target starts from
//! seeds (inputs of the test suites) and runs mutants of its corpus — bit and byte changes,
//! deletions, duplications, splices, dictionary tokens, long repetitions — plus, for targets
//! that have one, inputs from a structure-aware generator. An input whose outcome
//! (signature) was not seen before joins the corpus. Every run is reproducible from its seed.
//!
//! A finding is a panic, a broken property the target asserts, an input that took longer than
//! the time bound or held more memory than the memory bound. Findings are written to the
//! output directory, replayable with `--replay`.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::alloc;

/// splitmix64: small, fast, and the same sequence for the same seed everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One fuzz target.
pub trait Target {
    fn name(&self) -> &'static str;
    /// Starting inputs: what the test suites feed the parser.
    fn seeds(&self) -> Vec<Vec<u8>>;
    /// Tokens the mutator inserts (the format's punctuation and keywords).
    fn dictionary(&self) -> &'static [&'static str];
    /// A well-formed-ish input built from parts, when the format has structure worth
    /// generating (JSON documents). `None`: mutation only.
    fn generate(&self, _rng: &mut Rng) -> Option<Vec<u8>> {
        None
    }
    /// Runs one input. `Ok` carries the outcome's signature; `Err` is a broken property.
    fn run(&self, input: &[u8]) -> Result<u64, String>;
}

/// A signature from anything hashable (SipHash with fixed keys: stable across runs).
pub fn signature(value: impl Hash) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// How long and how hard to fuzz one target.
#[derive(Debug, Clone)]
pub struct Settings {
    pub duration: Duration,
    pub max_execs: Option<u64>,
    pub seed: u64,
    pub max_len: usize,
    pub out: PathBuf,
    /// Write each input to `<out>/<target>.last` before running it (finds inputs that abort
    /// the process, at the cost of a write per execution).
    pub trace: bool,
    /// An input running longer than this is a finding.
    pub slow: Duration,
}

#[derive(Debug)]
pub struct Finding {
    pub what: String,
    pub file: PathBuf,
}

#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    pub execs: u64,
    pub elapsed: Duration,
    pub corpus: usize,
    pub signatures: usize,
    pub max_peak_bytes: usize,
    pub slowest: Duration,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn execs_per_second(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The last panic's message, captured by the hook `fuzz` installs.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn install_quiet_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        if let Ok(mut slot) = PANIC.lock() {
            *slot = Some(format!("{payload}{location}"));
        }
    }));
}

/// Memory one input may make a target hold: 1 MiB plus 512 bytes per input byte.
fn memory_bound(len: usize) -> usize {
    (1 << 20) + 512 * len
}

/// Outcome of one execution.
pub enum Outcome {
    Signature(u64),
    Finding(String),
}

/// Runs `input` once, catching panics and measuring time and memory.
pub fn execute(target: &dyn Target, input: &[u8], slow: Duration) -> (Outcome, Duration, usize) {
    let base = alloc::reset_peak();
    let started = Instant::now();
    let result = panic::catch_unwind(AssertUnwindSafe(|| target.run(input)));
    let elapsed = started.elapsed();
    let peak = alloc::peak_since(base);
    let outcome = match result {
        Err(_) => {
            let message = PANIC
                .lock()
                .ok()
                .and_then(|mut m| m.take())
                .unwrap_or_default();
            Outcome::Finding(format!("panic: {message}"))
        }
        Ok(Err(broken)) => Outcome::Finding(format!("property: {broken}")),
        Ok(Ok(_)) if elapsed > slow => Outcome::Finding(format!(
            "slow: {} ms for {} bytes",
            elapsed.as_millis(),
            input.len()
        )),
        Ok(Ok(_)) if peak > memory_bound(input.len()) => Outcome::Finding(format!(
            "memory: {peak} bytes held for {} bytes of input",
            input.len()
        )),
        Ok(Ok(sig)) => Outcome::Signature(sig),
    };
    (outcome, elapsed, peak)
}

fn mutate(
    rng: &mut Rng,
    input: &[u8],
    corpus: &[Vec<u8>],
    dict: &[&str],
    max_len: usize,
) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\0\xff\x7f\x80\"\\/~%&<>():,=;' \n\t{}[]\xc3\xa9\xed";
    let mut d = input.to_vec();
    for _ in 0..1 + rng.below(6) {
        let len = d.len();
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                d[i] = *rng.pick(INTERESTING);
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(16.min(len - from))).min(len);
                d.drain(from..to);
            }
            4 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(32)).min(len);
                let copy = d[from..to].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, copy);
            }
            5 | 6 if !dict.is_empty() => {
                let token = rng.pick(dict).as_bytes();
                let at = rng.below(len + 1);
                if rng.chance(50) || len == 0 {
                    d.splice(at..at, token.iter().copied());
                } else {
                    let end = (at + token.len()).min(len);
                    d.splice(at..end, token.iter().copied());
                }
            }
            7 if !corpus.is_empty() => {
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let to = (from + 1 + rng.below(64)).min(other.len());
                    let at = rng.below(len + 1);
                    d.splice(at..at, other[from..to].iter().copied());
                }
            }
            8 => {
                let at = rng.below(len + 1);
                let bytes: Vec<u8> = (0..1 + rng.below(8))
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                d.splice(at..at, bytes);
            }
            9 => {
                // A long run of one token: nesting, lengths, counts at their limits.
                let token: Vec<u8> = if !dict.is_empty() && rng.chance(70) {
                    rng.pick(dict).as_bytes().to_vec()
                } else {
                    vec![*rng.pick(INTERESTING)]
                };
                let times = *rng.pick(&[2usize, 64, 65, 128, 129, 255, 256, 1000, 5000]);
                let at = rng.below(len + 1);
                let run: Vec<u8> = token
                    .iter()
                    .copied()
                    .cycle()
                    .take(token.len() * times)
                    .collect();
                d.splice(at..at, run);
            }
            _ => {
                if len > 1 {
                    d.truncate(rng.below(len));
                }
            }
        }
    }
    d.truncate(max_len);
    d
}

fn save(out: &Path, target: &str, input: &[u8], what: &str) -> PathBuf {
    let _ = std::fs::create_dir_all(out);
    let file = out.join(format!("{target}-{:016x}.input", signature(input)));
    let _ = std::fs::write(&file, input);
    let _ = std::fs::write(file.with_extension("txt"), what);
    file
}

/// Inputs of `dir`, if it exists (a saved corpus to start from).
fn corpus_files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect()
}

/// Fuzzes `target` for `settings.duration` (or `max_execs` executions).
pub fn fuzz(target: &dyn Target, settings: &Settings, extra_corpus: Option<&Path>) -> Report {
    install_quiet_panic_hook();
    let mut rng = Rng::new(settings.seed ^ signature(target.name()));
    let mut corpus = target.seeds();
    if let Some(dir) = extra_corpus {
        corpus.extend(corpus_files(&dir.join(target.name())));
    }
    let mut seen = HashSet::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut found = HashSet::new();
    let mut max_peak = 0;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    let mut execs: u64 = 0;
    let trace = settings.out.join(format!("{}.last", target.name()));
    let seeds = corpus.clone();
    let mut next_seed = 0;
    loop {
        if execs.is_multiple_of(128)
            && started.elapsed() >= settings.duration
            && next_seed >= seeds.len()
        {
            break;
        }
        if settings.max_execs.is_some_and(|m| execs >= m) {
            break;
        }
        let input = if next_seed < seeds.len() {
            next_seed += 1;
            seeds[next_seed - 1].clone()
        } else if rng.chance(25) {
            match target.generate(&mut rng) {
                Some(generated) => generated,
                None => {
                    let parent = rng_pick_clone(&mut rng, &corpus);
                    mutate(
                        &mut rng,
                        &parent,
                        &corpus,
                        target.dictionary(),
                        settings.max_len,
                    )
                }
            }
        } else {
            let parent = rng_pick_clone(&mut rng, &corpus);
            mutate(
                &mut rng,
                &parent,
                &corpus,
                target.dictionary(),
                settings.max_len,
            )
        };
        if settings.trace {
            let _ = std::fs::create_dir_all(&settings.out);
            let _ = std::fs::write(&trace, &input);
        }
        let (outcome, elapsed, peak) = execute(target, &input, settings.slow);
        execs += 1;
        max_peak = max_peak.max(peak);
        slowest = slowest.max(elapsed);
        match outcome {
            Outcome::Signature(sig) => {
                if seen.insert(sig) && corpus.len() < 20_000 {
                    corpus.push(input);
                }
            }
            Outcome::Finding(what) => {
                // One report per kind of finding (its first line).
                let kind = what
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(120)
                    .collect::<String>();
                if found.insert(kind) && findings.len() < 20 {
                    let file = save(&settings.out, target.name(), &input, &what);
                    findings.push(Finding { what, file });
                }
            }
        }
    }
    Report {
        target: target.name(),
        execs,
        elapsed: started.elapsed(),
        corpus: corpus.len(),
        signatures: seen.len(),
        max_peak_bytes: max_peak,
        slowest,
        findings,
    }
}

fn rng_pick_clone(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if corpus.is_empty() {
        Vec::new()
    } else {
        rng.pick(corpus).clone()
    }
}

/// Runs one saved input and says what happened.
pub fn replay(target: &dyn Target, input: &[u8], slow: Duration) -> Result<String, String> {
    install_quiet_panic_hook();
    match execute(target, input, slow) {
        (Outcome::Signature(sig), elapsed, peak) => Ok(format!(
            "ok: signature {sig:016x}, {} µs, {peak} bytes at the peak",
            elapsed.as_micros()
        )),
        (Outcome::Finding(what), _, _) => Err(what),
    }
}
