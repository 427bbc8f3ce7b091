//! `glass-bench`: load generators for BENCHMARKS.md. `populate` fills a server with images
//! from many concurrent clients; `creates` times sequential creates from one client (as
//! Glance's reference benchmark does). Both print a progress line and a summary.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Parser, Subcommand};
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
