//! `glass-bench`: load generators for BENCHMARKS.md. `populate` fills a server with images
//! from many concurrent clients; `creates` times sequential creates from one client (as
//! Glance's reference benchmark does); `populate-registry` writes the scale benchmark's
//! catalogue straight into a registry engine (glass_tests::bench). Each prints progress on
//! stderr and a summary.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use glass_registry::{PostgresOptions, PostgresRegistry, Registry, SledOptions, SledRegistry};
use glass_tests::bench::catalogue::Catalogue;
use glass_tests::bench::{populate, probes};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Load generators for Glass benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create COUNT images with CONCURRENCY clients.
    Populate {
        #[arg(long)]
        url: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Create COUNT images one after another from one client; prints images/s.
    Creates {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
    /// Write COUNT images of the scale benchmark's mix straight into a registry (no HTTP;
    /// the registry must not hold them yet). Deterministic for a given seed and count.
    PopulateRegistry {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        count: usize,
        /// Concurrent writer tasks.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 23)]
        seed: u64,
        /// Projects owning the images (Zipf sizes).
        #[arg(long, default_value_t = 1000)]
        projects: usize,
        /// sled's page cache while populating.
        #[arg(long, default_value_t = 256)]
        cache_mb: u64,
        /// A new sled registry without zstd compression (to measure what it saves).
        #[arg(long)]
        sled_uncompressed: bool,
        /// Write the benchmark's probe values (ids, names, tags…) here as shell assignments.
        #[arg(long)]
        probes: Option<PathBuf>,
        /// A progress line on stderr every this many images (0: none).
        #[arg(long, default_value_t = 100_000)]
        progress_every: usize,
    },
}

/// The registry to fill: exactly one of them.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct Target {
    /// A sled registry directory (a server's is `<data-dir>/registry`).
    #[arg(long)]
    sled: Option<PathBuf>,
    /// A PostgreSQL URL (the schema is created or migrated first).
    #[arg(long)]
    postgres: Option<String>,
}

async fn open(
    target: &Target,
    sled: SledOptions,
    pool_size: usize,
) -> (Arc<dyn Registry>, &'static str) {
    if let Some(dir) = &target.sled {
        let sled = SledRegistry::open_with(dir, &sled)
            .unwrap_or_else(|e| panic!("opening sled in {}: {e}", dir.display()));
        return (Arc::new(sled), "sled");
    }
    let url = target.postgres.clone().unwrap_or_default();
    let options = PostgresOptions { url, pool_size };
    let pg = PostgresRegistry::connect(&options)
        .await
        .unwrap_or_else(|e| panic!("connecting to PostgreSQL: {e}"));
    (Arc::new(pg), "postgres")
}

async fn create(http: &reqwest::Client, url: &str, i: usize) {
    let body = json!({
        "name": format!("bench-{i}"), "disk_format": "raw", "container_format": "bare",
        "os_distro": "bench"
    });
    let r = http
        .post(format!("{url}/v2/images"))
        .json(&body)
        .send()
        .await
        .expect("POST /v2/images");
    assert_eq!(r.status().as_u16(), 201, "create failed: {}", r.status());
}

#[tokio::main]
async fn main() {
    match Cli::parse().command {
        Command::Populate {
            url,
            count,
            concurrency,
        } => {
            let http = reqwest::Client::new();
            let next = Arc::new(AtomicUsize::new(0));
            let started = Instant::now();
            let mut workers = Vec::new();
            for _ in 0..concurrency {
                let (http, url, next) = (http.clone(), url.clone(), next.clone());
                workers.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return;
                        }
                        create(&http, &url, i).await;
                        if i > 0 && i % 10_000 == 0 {
                            eprintln!("  populated {i}/{count}");
                        }
                    }
                }));
            }
            for w in workers {
                w.await.expect("worker");
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "populate: {count} images in {secs:.1} s ({:.0} images/s, {concurrency} clients)",
                count as f64 / secs
            );
        }
        Command::PopulateRegistry {
            target,
            count,
            concurrency,
            seed,
            projects,
            cache_mb,
            sled_uncompressed,
            probes: probes_file,
            progress_every,
        } => {
            let sled = SledOptions {
                compression: !sled_uncompressed,
                ..SledOptions::with_cache_mb(cache_mb)
            };
            let (registry, engine) = open(&target, sled, concurrency).await;
            let catalogue = Arc::new(Catalogue::new(seed, count, projects));
            let started = Instant::now();
            let tally =
                populate::populate(registry, catalogue.clone(), concurrency, progress_every)
                    .await
                    .unwrap_or_else(|e| panic!("populate: {e}"));
            let secs = started.elapsed().as_secs_f64();
            println!(
                "populate-registry {engine}: {count} images, {} members in {secs:.1} s \
                 ({:.0} images/s, {concurrency} tasks)",
                tally.members,
                count as f64 / secs
            );
            print!("{}", tally.summary());
            if let Some(file) = probes_file {
                let text = probes::shell(&probes::probes(&catalogue, &tally));
                std::fs::write(&file, text)
                    .unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
            }
        }
        Command::Creates { url, count } => {
            let http = reqwest::Client::new();
            let started = Instant::now();
            for i in 0..count {
                create(&http, &url, i).await;
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "creates: {count} sequential creates in {secs:.2} s ({:.0} images/s)",
                count as f64 / secs
            );
        }
    }
}
