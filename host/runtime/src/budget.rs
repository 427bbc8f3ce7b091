//! Budgets of concurrent plugin calls: each kind of call (a store's uploads, its downloads,
//! its other calls, the inspector, the validators) has its own, so a flood of one kind (say,
//! uploads whose clients stopped sending) cannot take the instances the others need. A call
//! takes a place before it instantiates and keeps it until it ends; when none frees up
//! within the wait, the call fails with `StoreError::Unavailable` (a 503 with `Retry-After`).
//! The engine's pool of instances is sized to the sum of the budgets ([`CallBudgets::pool_size`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::PluginCallsConfig;
use crate::store::StoreError;

/// Instances beyond the budgets: loading and reloading plugins (their `info` calls).
const SPARE_INSTANCES: u32 = 16;

/// The size of each budget and how long a call waits for a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBudgets {
    pub uploads_per_store: u32,
    pub downloads_per_store: u32,
    pub other_per_store: u32,
    pub inspector: u32,
    pub validators: u32,
    pub queue_wait: Duration,
    /// A download whose reader takes nothing for this long ends (its place is freed).
    pub reader_stall: Duration,
}

impl Default for CallBudgets {
    fn default() -> Self {
        Self::from_config(&PluginCallsConfig::default())
    }
}

impl CallBudgets {
    pub fn from_config(c: &PluginCallsConfig) -> Self {
        CallBudgets {
            uploads_per_store: c.uploads_per_store.max(1),
            downloads_per_store: c.downloads_per_store.max(1),
            other_per_store: c.other_per_store.max(1),
            inspector: c.inspector.max(1),
            validators: c.validators.max(1),
            queue_wait: Duration::from_millis(c.queue_wait_ms),
            reader_stall: Duration::from_secs(c.reader_stall_s.max(1)),
        }
    }

    /// Instances the engine's pool needs so that every budget of `stores` stores can be
    /// used at once: a call holding a place always finds an instance.
    pub fn pool_size(&self, stores: usize) -> u32 {
        let per_store = self.uploads_per_store + self.downloads_per_store + self.other_per_store;
        per_store
            .saturating_mul(u32::try_from(stores).unwrap_or(u32::MAX))
            .saturating_add(self.inspector)
            .saturating_add(self.validators)
            .saturating_add(SPARE_INSTANCES)
    }
}

/// One budget: at most `size` calls at once.
#[derive(Debug)]
pub(crate) struct Budget {
    what: String,
    places: Arc<Semaphore>,
    wait: Duration,
}

impl Budget {
    pub fn new(what: impl Into<String>, size: u32, wait: Duration) -> Self {
        Budget {
            what: what.into(),
            places: Arc::new(Semaphore::new(size.max(1) as usize)),
            wait,
        }
    }

    /// A place for one call, held until the permit is dropped; `Unavailable` when none
    /// frees up within the wait.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, StoreError> {
        if let Ok(permit) = self.places.clone().try_acquire_owned() {
            return Ok(permit);
        }
        match tokio::time::timeout(self.wait, self.places.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                tracing::warn!(budget = %self.what, "plugin call budget full");
                Err(StoreError::Unavailable(format!(
                    "too many concurrent {}; try again later",
                    self.what
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_budget_refuses_after_the_wait_and_frees_on_drop() {
        let budget = Budget::new("uploads", 2, Duration::from_millis(50));
        let a = budget.acquire().await.unwrap();
        let _b = budget.acquire().await.unwrap();
        let refused = budget.acquire().await.unwrap_err();
        assert!(matches!(refused, StoreError::Unavailable(ref m) if m.contains("uploads")));
        drop(a);
        let _place = budget
            .acquire()
            .await
            .expect("a place freed by the dropped permit");
    }

    #[test]
    fn the_pool_holds_every_budget() {
        let b = CallBudgets::default();
        let one = b.pool_size(1);
        assert_eq!(
            b.pool_size(3) - one,
            2 * (b.uploads_per_store + b.downloads_per_store + b.other_per_store)
        );
        assert!(one > b.inspector + b.validators);
    }
}
