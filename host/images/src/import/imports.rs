//! [`Imports`]: what the import machinery shares across requests (the staging area, the
//! disk-format inspector, the journal).

use std::sync::Arc;

use super::journal::Journal;
use super::staging::Staging;
use crate::Error;
use crate::config::Config;

/// What the import machinery shares across requests: the staging area and the inspector.
pub struct Imports {
    pub staging: Arc<Staging>,
    /// The disk-format inspector component, compiled in the background from start-up
    /// ([`load_inspector`]); the first inspection waits for it.
    pub(crate) inspector: tokio::sync::OnceCell<Arc<glass_runtime::WasmInspector>>,
    /// How to load it (unset: inspection is off).
    pub(crate) loader: std::sync::OnceLock<(glass_runtime::Runtime, glass_runtime::Limits)>,
    /// The imports running on this node (`recovery`).
    pub journal: Journal,
}

impl Imports {
    pub fn open(config: &Config) -> std::io::Result<Self> {
        let dir = config.data_dir.join(&config.import.staging_directory);
        let quota = config.import.staging_quota_mb.saturating_mul(1 << 20);
        Ok(Imports {
            staging: Arc::new(Staging::open(dir, quota)?),
            inspector: Default::default(),
            loader: Default::default(),
            journal: Journal::open(config.data_dir.join("import-tasks"))?,
        })
    }
}

impl Imports {
    /// The inspector, once loaded (waits for the load); `None` when inspection is off. An
    /// inspector that cannot be loaded is a 503: data is never let through uninspected.
    pub async fn inspector(&self) -> Result<Option<Arc<glass_runtime::WasmInspector>>, Error> {
        let Some((runtime, limits)) = self.loader.get() else {
            return Ok(None);
        };
        self.inspector
            .get_or_try_init(|| async {
                runtime
                    .load_inspector(
                        "inspect-format",
                        glass_runtime::ComponentSource::Bytes(glass_runtime::INSPECT_FORMAT),
                        *limits,
                    )
                    .await
            })
            .await
            .map(|i| Some(i.clone()))
            .map_err(|e| {
                Error::Unavailable(format!("the disk-format inspector is unavailable: {e:#}"))
            })
    }
}
