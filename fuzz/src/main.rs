//! `glass-fuzz`: fuzzes the host's parsers (JSON patch, list queries, policy rules) and the
//! plugins' wire crates (`s3-wire`, `swift-wire`) with a mutation driver that needs only
//! stable Rust. `glass-fuzz --seconds 8` runs every target for 8 seconds (the bounded run of
//! `scripts/fuzz`); `glass-fuzz --seconds 3600 policy` is a long run of one target;
//! `glass-fuzz --replay FILE policy` runs one saved input.

mod alloc;
mod driver;
mod targets;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

#[derive(Parser)]
#[command(about = "Fuzz Glass's parsers on stable Rust")]
struct Args {
    /// Targets to run (default: all). `--list` names them.
    targets: Vec<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Stop each target after this many executions (reproducible counts).
    #[arg(long)]
    execs: Option<u64>,
    /// RNG seed; the same seed replays the same inputs.
    #[arg(long, default_value_t = 13)]
    seed: u64,
    /// Longest input the mutator makes.
    #[arg(long, default_value_t = 4096)]
    max_len: usize,
    /// Where findings are written (default: the system temp dir's glass-fuzz/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A directory with one subdirectory of extra seed inputs per target.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// An input taking longer than this many milliseconds is a finding.
    #[arg(long, default_value_t = 2000)]
    slow_ms: u64,
    /// Write each input to `<out>/<target>.last` before running it.
    #[arg(long)]
    trace: bool,
    /// Run this one input against the (one) target given.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// List the targets.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let all = targets::all();
    if args.list {
        for t in &all {
            println!("{}", t.name());
        }
        return ExitCode::SUCCESS;
    }
    let chosen: Vec<&dyn driver::Target> = if args.targets.is_empty() {
        all.iter().map(|t| t.as_ref()).collect()
    } else {
        let mut chosen = Vec::new();
        for name in &args.targets {
            match all.iter().find(|t| t.name() == name) {
                Some(t) => chosen.push(t.as_ref()),
                None => {
                    eprintln!("no target {name:?} (see --list)");
                    return ExitCode::from(2);
                }
            }
        }
        chosen
    };
    let slow = Duration::from_millis(args.slow_ms);
    if let Some(file) = &args.replay {
        let [target] = chosen.as_slice() else {
            eprintln!("--replay needs exactly one target");
            return ExitCode::from(2);
        };
        let input = match std::fs::read(file) {
            Ok(input) => input,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        return match driver::replay(*target, &input, slow) {
            Ok(what) => {
                println!("{what}");
                ExitCode::SUCCESS
            }
            Err(what) => {
                println!("finding: {what}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = driver::Settings {
        duration: Duration::from_secs_f64(args.seconds.max(0.0)),
        max_execs: args.execs,
        seed: args.seed,
        max_len: args.max_len,
        out: args
            .out
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("glass-fuzz")),
        trace: args.trace,
        slow,
    };
    println!(
        "{:<12} {:>12} {:>8} {:>10} {:>8} {:>10} {:>11} {:>9}",
        "target", "execs", "secs", "execs/s", "corpus", "outcomes", "peak bytes", "slowest"
    );
    let mut failed = false;
    for target in chosen {
        let r = driver::fuzz(target, &settings, args.corpus.as_deref());
        println!(
            "{:<12} {:>12} {:>8.1} {:>10.0} {:>8} {:>10} {:>11} {:>7}ms",
            r.target,
            r.execs,
            r.elapsed.as_secs_f64(),
            r.execs_per_second(),
            r.corpus,
            r.signatures,
            r.max_peak_bytes,
            r.slowest.as_millis()
        );
        for f in &r.findings {
            failed = true;
            println!("  FINDING {}: {}", f.file.display(), f.what);
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A short deterministic run of every target, so that `cargo test` replays the first
    /// inputs of the bounded run: no target may have a finding.
    #[test]
    fn every_target_survives_a_short_run() {
        let settings = driver::Settings {
            duration: Duration::from_secs(120),
            max_execs: Some(1500),
            seed: 13,
            max_len: 4096,
            out: std::env::temp_dir().join("glass-fuzz-test"),
            trace: false,
            slow: Duration::from_secs(10),
        };
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for target in targets::all() {
            // The inputs of past findings first: each must now pass.
            if let Ok(entries) = std::fs::read_dir(corpus.join(target.name())) {
                for entry in entries.flatten() {
                    let input = std::fs::read(entry.path()).unwrap();
                    let outcome = driver::replay(target.as_ref(), &input, settings.slow);
                    assert!(outcome.is_ok(), "{}: {outcome:?}", entry.path().display());
                }
            }
            let report = driver::fuzz(target.as_ref(), &settings, Some(&corpus));
            assert_eq!(report.execs, 1500, "{}", report.target);
            assert!(
                report.findings.is_empty(),
                "{}: {:?}",
                report.target,
                report.findings
            );
        }
    }
}
