//! Writes a catalogue straight into a registry engine (no HTTP): `concurrency` tasks claim
//! chunks of image indices and, for each, `create_image` then `add_member` for each member.
//! Progress goes to stderr every `progress_every` images.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use glass_registry::{Registry, RegistryError};

use super::catalogue::Catalogue;
use super::tally::Tally;

/// Indices a task claims at a time.
const CHUNK: usize = 64;

/// Writes images `0..catalogue.count()`; returns what was written. The registry should be
/// empty: an image already there fails the run (`DuplicateImage`).
pub async fn populate(
    registry: Arc<dyn Registry>,
    catalogue: Arc<Catalogue>,
    concurrency: usize,
    progress_every: usize,
) -> Result<Tally, RegistryError> {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let count = catalogue.count();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (registry, catalogue) = (registry.clone(), catalogue.clone());
        let (next, done, failed) = (next.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let first = next.fetch_add(CHUNK, Ordering::Relaxed);
                if first >= count || failed.load(Ordering::Relaxed) {
                    return Ok(tally);
                }
                for i in first..(first + CHUNK).min(count) {
                    let entry = catalogue.entry(i);
                    let written = write(registry.as_ref(), &entry).await;
                    if let Err(e) = written {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    tally.add(&entry);
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if progress_every > 0 && n % progress_every == 0 {
                        let secs = started.elapsed().as_secs_f64();
                        eprintln!(
                            "  populated {n}/{count} images in {secs:.0} s ({:.0} images/s)",
                            n as f64 / secs
                        );
                    }
                }
            }
        }));
    }
    let mut tally = Tally::default();
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(t)) => tally.merge(t),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(RegistryError::Engine(format!("populate task: {e}")));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(tally),
    }
}

async fn write(
    registry: &dyn Registry,
    entry: &super::catalogue::Entry,
) -> Result<(), RegistryError> {
    registry.create_image(entry.image.clone()).await?;
    for member in &entry.members {
        registry.add_member(member.clone()).await?;
    }
    Ok(())
}
