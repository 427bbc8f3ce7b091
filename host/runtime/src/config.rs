//! `[plugin_calls]`, the one configuration section the runtime reads itself.

use serde::Deserialize;

/// `[plugin_calls]`: separate budgets of concurrent plugin calls, so one kind of work (a
/// flood of stalled uploads) cannot take the instances another kind needs. The engine's
/// instance pool is sized to their sum. A call that finds its budget full waits up to
/// `queue_wait_ms`, then the request gets a 503 with `Retry-After`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PluginCallsConfig {
    /// Uploads (`add`) running at once in each store.
    pub uploads_per_store: u32,
    /// Downloads (`get`) running at once from each store.
    pub downloads_per_store: u32,
    /// Other calls of each store (`size`, `delete`, `discard-partial`).
    pub other_per_store: u32,
    /// Disk-format inspector calls (one per upload, stage or import being inspected).
    pub inspector: u32,
    /// Metadata validator calls, all validators together.
    pub validators: u32,
    /// How long a call waits for a free place in its budget.
    pub queue_wait_ms: u64,
    /// A download whose reader takes no byte for this long is cut, so that a client that
    /// stops reading cannot hold a download place (and the plugin instance) forever.
    pub reader_stall_s: u64,
}

impl Default for PluginCallsConfig {
    fn default() -> Self {
        PluginCallsConfig {
            uploads_per_store: 16,
            downloads_per_store: 48,
            other_per_store: 16,
            inspector: 32,
            validators: 16,
            queue_wait_ms: 2000,
            reader_stall_s: 60,
        }
    }
}
