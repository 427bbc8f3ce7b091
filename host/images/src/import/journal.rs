//! The journal of the imports running on this node (`<data_dir>/import-tasks/<task>.json`,
//! fsynced, removed when the task ends): what `recovery` finds after a crash.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the journal keeps of a running import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalEntry {
    pub task: Uuid,
    pub image: Uuid,
    pub method: String,
    pub stores: Vec<String>,
}

/// The journal of the imports running on this node.
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Journal { dir })
    }

    fn path(&self, task: Uuid) -> PathBuf {
        self.dir.join(format!("{task}.json"))
    }

    /// Records a starting import (durably: written, fsynced, renamed into place).
    pub fn record(&self, entry: &JournalEntry) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{}.tmp", entry.task));
        let bytes = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.path(entry.task))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The import ended.
    pub fn remove(&self, task: Uuid) {
        if let Err(e) = std::fs::remove_file(self.path(task))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(task = %task, error = %e, "removing the import journal entry");
        }
    }

    /// Every journaled import.
    pub fn entries(&self) -> Vec<(PathBuf, Option<JournalEntry>)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.flatten()
            .map(|e| e.path())
            .map(|p| {
                let entry = std::fs::read(&p)
                    .ok()
                    .filter(|_| p.extension().is_some_and(|x| x == "json"))
                    .and_then(|b| serde_json::from_slice(&b).ok());
                (p, entry)
            })
            .collect()
    }
}
