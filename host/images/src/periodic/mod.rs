//! Background work that runs beside the API: the reaper of deleted images' data (`reaper`,
//! every `reaper_interval_s`), the data auditor (`auditor`, on the timer of
//! `[auditor]`, off unless enabled) and the image cache's prefetcher, pruner and cleaner
//! (every `[image_cache] interval_s` while the cache is on).

pub mod auditor;
pub mod reaper;

use std::time::Duration;

use glass_registry::ImageStatus;

use crate::Service;
use crate::cache::ImageCache;

/// Starts the enabled periodic tasks; they stop when the runtime does.
pub fn spawn(state: &Service) {
    {
        let state = state.clone();
        let every = Duration::from_secs(state.config.reaper_interval_s.max(1));
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(every);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                state.scrub.reap(&state).await;
            }
        });
    }
    if let Some(cache) = state.cache.clone() {
        let state = state.clone();
        let every = Duration::from_secs(state.config.image_cache.interval_s.max(1));
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(every);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                prefetch_queued(&state, &cache).await;
                clean_cache(&state, &cache).await;
                cache.prune();
            }
        });
    }
    let audit = state.config.auditor.clone();
    if audit.enabled {
        let state = state.clone();
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(Duration::from_secs(audit.interval_s.max(1)));
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                let rate = audit.rate_mb_s.saturating_mul(1 << 20);
                if let Err(e) = auditor::audit_all(&state, rate).await {
                    tracing::warn!(error = %e, "audit pass failed");
                }
            }
        });
    }
}

/// Fills the cache with every queued image (each leaves the queue once cached, or if it is
/// gone or not active).
pub async fn prefetch_queued(state: &Service, cache: &crate::cache::ImageCache) {
    for id in cache.queued() {
        let image = match state.registry.get_image(id).await {
            Ok(Some(image)) => image,
            Ok(None) => {
                cache.dequeue(id);
                continue;
            }
            Err(e) => {
                tracing::warn!(image = %id, error = %e, "prefetch: reading the image failed");
                continue;
            }
        };
        match crate::download::prefetch(state, &image).await {
            Ok(true) => tracing::info!(image = %id, "prefetched into the image cache"),
            Ok(false) => {
                if cache.entry(id).is_some() || image.status != glass_registry::ImageStatus::Active
                {
                    cache.dequeue(id);
                }
            }
            Err(e) => tracing::warn!(image = %id, error = %e, "prefetch failed; will retry"),
        }
    }
}

/// Runs the cleaner against the registry's view of each cached image.
pub async fn clean_cache(state: &Service, cache: &ImageCache) -> usize {
    let mut current = std::collections::HashMap::new();
    for entry in cache.list() {
        if let Ok(Some(image)) = state.registry.get_image(entry.image_id).await
            && matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated)
            && let Some(size) = image.size
        {
            current.insert(image.id, (size, image.checksum));
        }
    }
    cache.clean(&current).await
}
