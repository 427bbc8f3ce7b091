//! Background work that runs beside the API: for now the data auditor (`auditor`), on a
//! timer set in the configuration's `[auditor]` section (off unless enabled).

pub mod auditor;

use std::time::Duration;

use crate::state::AppState;

/// Starts the enabled periodic tasks; they stop when the runtime does.
pub fn spawn(state: &AppState) {
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
