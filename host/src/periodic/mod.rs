//! Background work that runs beside the API: the reaper of deleted images' data (`reaper`,
//! every `reaper_interval_s`), the data auditor (`auditor`, on the timer of
//! `[auditor]`, off unless enabled) and the image cache's prefetcher, pruner and cleaner
//! (every `[image_cache] interval_s` while the cache is on).

pub mod auditor;
pub mod reaper;

use std::time::Duration;

use crate::state::AppState;

/// Starts the enabled periodic tasks; they stop when the runtime does.
pub fn spawn(state: &AppState) {
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
                crate::api::v2::cache::clean_cache(&state, &cache).await;
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
pub async fn prefetch_queued(state: &AppState, cache: &crate::cache::ImageCache) {
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
        match crate::api::v2::image_download::prefetch(state, &image).await {
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
