//! Load with a hot swap in the middle: workers upload, download (and compare) and delete
//! images through the API while a swapper keeps replacing a store's driver component and
//! rolling it back through the admin API. Every failed request is recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::sync::Mutex;

use crate::Client;
use crate::data::{get_file, new_image, pseudo_random, put_file_to};

/// What a run did.
#[derive(Debug, Default)]
pub struct SwapReport {
    /// Upload + download + delete cycles completed.
    pub cycles: u64,
    /// Swaps and rollbacks the admin API accepted.
    pub swaps: u64,
    /// Every failure, described.
    pub failures: Vec<String>,
}

/// Runs `workers` upload/download/delete loops against `store` for `duration`, while the
/// store's component is swapped for `component` and rolled back every `swap_every`.
pub async fn swap_under_load(
    client: Client,
    store: &str,
    component: Vec<u8>,
    workers: usize,
    image_bytes: usize,
    duration: Duration,
    swap_every: Duration,
) -> SwapReport {
    let stop = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (client, stop, cycles, failures) = (
            client.clone(),
            stop.clone(),
            cycles.clone(),
            failures.clone(),
        );
        let store = store.to_string();
        tasks.push(tokio::spawn(async move {
            let mut seed = worker as u64 * 1_000_003;
            while !stop.load(Ordering::Relaxed) {
                seed += 1;
                if let Err(e) = cycle(&client, &store, image_bytes, seed).await {
                    failures.lock().await.push(format!("worker {worker}: {e}"));
                }
                cycles.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    let mut swaps = 0;
    let path = format!("/glass/v1/plugins/{store}");
    while started.elapsed() < duration {
        tokio::time::sleep(swap_every).await;
        let request = if swaps % 2 == 0 {
            client
                .request(Method::PUT, &path)
                .header("Content-Type", "application/wasm")
                .body(component.clone())
        } else {
            client.request(Method::POST, &format!("{path}/rollback"))
        };
        match request.send().await {
            Ok(r) if r.status().is_success() => swaps += 1,
            Ok(r) => failures
                .lock()
                .await
                .push(format!("swap {swaps}: status {}", r.status())),
            Err(e) => failures.lock().await.push(format!("swap {swaps}: {e}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let failures = std::mem::take(&mut *failures.lock().await);
    SwapReport {
        cycles: cycles.load(Ordering::Relaxed),
        swaps,
        failures,
    }
}

async fn cycle(client: &Client, store: &str, image_bytes: usize, seed: u64) -> Result<(), String> {
    let data = pseudo_random(image_bytes, seed);
    let id = new_image(client).await;
    let (status, body) = put_file_to(client, &id, Some(store), data.clone()).await;
    if status != 204 {
        return Err(format!("upload {id}: {status} {body}"));
    }
    let (status, got) = get_file(client, &id).await;
    match got {
        Ok(bytes) if status == 200 && bytes == data => {}
        Ok(bytes) => {
            return Err(format!(
                "download {id}: status {status}, {} bytes, equal: {}",
                bytes.len(),
                bytes == data
            ));
        }
        Err(e) => return Err(format!("download {id}: {e}")),
    }
    let (status, body) = client
        .send(Method::DELETE, &format!("/v2/images/{id}"))
        .await;
    if status != 204 {
        return Err(format!("delete {id}: {status} {body}"));
    }
    Ok(())
}
