//! The scrub queue: the persisted jobs of data to remove (`<data_dir>/scrub/<id>.json`,
//! written as temp file, fsync, rename) and of unfinished uploads to discard
//! (`<id>.discard.json`). The reaper (`periodic::reaper`) works it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use glass_registry::Image;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use uuid::Uuid;

/// One image whose data is to be removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScrubJob {
    /// The record as it was when deleted: what a restore puts back.
    pub image: Image,
    /// Seconds since the epoch when the data may go.
    pub due_at: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The image lives on; only the copies in `image.locations` go (a copy removed from one
    /// store). A copy the live image references again is kept.
    #[serde(default)]
    pub copies_only: bool,
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Discards of an image's unfinished uploads still to do, by store.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct DiscardJob {
    pub(crate) stores: Vec<String>,
}

/// The persisted jobs. One lock orders the reaper, new jobs and restores.
pub struct ScrubQueue {
    pub(crate) dir: PathBuf,
    pub(crate) lock: Mutex<()>,
}

impl ScrubQueue {
    pub fn open(dir: PathBuf) -> std::io::Result<ScrubQueue> {
        std::fs::create_dir_all(&dir)?;
        Ok(ScrubQueue {
            dir,
            lock: Mutex::new(()),
        })
    }

    pub(crate) fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub(crate) fn write(&self, job: &ScrubJob) -> std::io::Result<()> {
        let path = self.path(job.image.id);
        let tmp = path.with_extension("json.tmp");
        let file = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&file, job).map_err(std::io::Error::other)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)
    }

    pub(crate) fn read(&self, id: Uuid) -> Option<ScrubJob> {
        serde_json::from_slice(&std::fs::read(self.path(id)).ok()?).ok()
    }

    pub(crate) fn discard_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.discard.json"))
    }

    pub(crate) fn write_json(&self, path: &Path, value: &impl Serialize) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let file = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&file, value).map_err(std::io::Error::other)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(&self.dir)
    }

    /// Every job, oldest due first.
    pub fn jobs(&self) -> Vec<ScrubJob> {
        let mut jobs: Vec<ScrubJob> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                self.read(name.strip_suffix(".json")?.parse().ok()?)
            })
            .collect();
        jobs.sort_by_key(|j| (j.due_at, j.image.id));
        jobs
    }

    /// Records that `image`'s data goes after `delay`.
    pub async fn schedule(&self, image: &Image, delay: Duration) -> std::io::Result<()> {
        let _guard = self.lock.lock().await;
        self.write(&ScrubJob {
            image: image.clone(),
            due_at: now() + delay.as_secs(),
            attempts: 0,
            last_error: None,
            copies_only: false,
        })
    }

    /// Records that the copies in `image.locations` of a live image go now.
    pub async fn schedule_copies(&self, image: &Image) -> std::io::Result<()> {
        let _guard = self.lock.lock().await;
        let path = self.path(image.id);
        let mut job = self.read(image.id).unwrap_or(ScrubJob {
            image: image.clone(),
            due_at: now(),
            attempts: 0,
            last_error: None,
            copies_only: true,
        });
        if path.exists() && job.copies_only {
            job.image.locations.extend(image.locations.iter().cloned());
        }
        self.write(&job)
    }
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
