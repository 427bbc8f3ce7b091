//! The local image cache for images whose data lives in a remote store (a store with
//! `cache = true`; by default every driver but `store-fs`).
//!
//! Layout under the cache directory: `<id>` (the bytes), `<id>.json` ([`CacheEntry`]: size,
//! md5 checksum, blake3, hits, times), `incomplete/<id>` (a fill in progress) and `queue/<id>`
//! (an image queued for prefetch). A fill is written to `incomplete/`, its blake3 computed
//! on the way, and renamed into place only when every byte arrived and the digest matches
//! the one recorded at upload: a partial or failed read never becomes a cache entry. Before
//! an entry is served its recorded size and checksum are compared with the image's; the
//! cleaner also re-hashes entries and drops any that do not match, belong to images that are
//! gone, or were stalled in `incomplete/` for longer than `stall_time_s`. The pruner removes
//! the least recently used entries until the cache fits in `max_size_mb`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::config::ImageCacheConfig;

/// What the cache keeps about one entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheEntry {
    pub image_id: Uuid,
    pub size: u64,
    /// The image's md5 `checksum` when the entry was written.
    pub checksum: Option<String>,
    pub blake3: String,
    pub hits: u64,
    /// Seconds since the epoch.
    pub last_accessed: f64,
    pub last_modified: f64,
}

pub struct ImageCache {
    dir: PathBuf,
    max_size: u64,
    stall_time: Duration,
    /// Serialises the meta-file rewrites of hits.
    meta_lock: Mutex<()>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl ImageCache {
    pub fn open(dir: PathBuf, config: &ImageCacheConfig) -> std::io::Result<ImageCache> {
        std::fs::create_dir_all(dir.join("incomplete"))?;
        std::fs::create_dir_all(dir.join("queue"))?;
        Ok(ImageCache {
            dir,
            max_size: config.max_size_mb.saturating_mul(1 << 20),
            stall_time: Duration::from_secs(config.stall_time_s),
            meta_lock: Mutex::new(()),
        })
    }

    fn data_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn meta_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn queue_path(&self, id: Uuid) -> PathBuf {
        self.dir.join("queue").join(id.to_string())
    }

    pub fn entry(&self, id: Uuid) -> Option<CacheEntry> {
        let bytes = std::fs::read(self.meta_path(id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The cached bytes of an image, if the entry matches the image's size and checksum;
    /// counts the hit. A mismatching entry is removed.
    pub fn open_for(&self, id: Uuid, size: u64, checksum: Option<&str>) -> Option<std::fs::File> {
        let mut entry = self.entry(id)?;
        let file = std::fs::File::open(self.data_path(id)).ok();
        let file_len = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len());
        if entry.size != size || entry.checksum.as_deref() != checksum || file_len != Some(size) {
            tracing::warn!(image = %id, "cache entry does not match the image: dropped");
            self.delete(id);
            return None;
        }
        let _guard = self.meta_lock.lock().expect("cache meta lock");
        entry.hits += 1;
        entry.last_accessed = now_secs();
        let _ = self.write_meta(&entry);
        file
    }

    fn write_meta(&self, entry: &CacheEntry) -> std::io::Result<()> {
        let path = self.meta_path(entry.image_id);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(entry).expect("entry serialises"))?;
        std::fs::rename(tmp, path)
    }

    /// Starts filling the entry of `id`, unless it is cached or being filled already.
    pub async fn begin_fill(&self, id: Uuid) -> Option<Filler> {
        if self.meta_path(id).exists() {
            return None;
        }
        let path = self.dir.join("incomplete").join(id.to_string());
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .ok()?;
        Some(Filler {
            id,
            path,
            file: Some(file),
            hasher: blake3::Hasher::new(),
            written: 0,
            failed: false,
        })
    }

    /// Completes a fill whose every byte was written: kept only if `expected_blake3` (the
    /// digest recorded at upload, when there is one) matches. Returns whether it was kept.
    pub async fn finish_fill(
        &self,
        mut filler: Filler,
        size: u64,
        checksum: Option<String>,
        expected_blake3: Option<&str>,
    ) -> bool {
        let Some(mut file) = filler.file.take() else {
            return false;
        };
        let digest = filler.hasher.finalize().to_hex().to_string();
        let complete = !filler.failed
            && filler.written == size
            && expected_blake3.is_none_or(|e| e == digest)
            && file.flush().await.is_ok()
            && file.sync_all().await.is_ok();
        drop(file);
        if !complete {
            let _ = std::fs::remove_file(&filler.path);
            tracing::warn!(image = %filler.id, written = filler.written, size,
                "cache fill incomplete or not matching: discarded");
            return false;
        }
        let entry = CacheEntry {
            image_id: filler.id,
            size,
            checksum,
            blake3: digest,
            hits: 0,
            last_accessed: now_secs(),
            last_modified: now_secs(),
        };
        let kept = std::fs::rename(&filler.path, self.data_path(filler.id)).is_ok()
            && self.write_meta(&entry).is_ok();
        if kept {
            let _ = std::fs::remove_file(self.queue_path(filler.id));
            self.prune();
        }
        kept
    }

    /// Every complete entry.
    pub fn list(&self) -> Vec<CacheEntry> {
        let mut entries: Vec<CacheEntry> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".json")?.parse().ok()?;
                self.entry(id)
            })
            .collect();
        entries.sort_by_key(|e| e.image_id);
        entries
    }

    /// Images waiting for the prefetcher.
    pub fn queued(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = std::fs::read_dir(self.dir.join("queue"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
            .collect();
        ids.sort();
        ids
    }

    pub fn queue(&self, id: Uuid) -> std::io::Result<()> {
        std::fs::write(self.queue_path(id), b"")
    }

    pub fn dequeue(&self, id: Uuid) -> bool {
        std::fs::remove_file(self.queue_path(id)).is_ok()
    }

    /// Removes a cached entry; true if there was one.
    pub fn delete(&self, id: Uuid) -> bool {
        let had = std::fs::remove_file(self.meta_path(id)).is_ok();
        let _ = std::fs::remove_file(self.data_path(id));
        had
    }

    pub fn delete_all(&self) -> usize {
        self.list()
            .iter()
            .filter(|e| self.delete(e.image_id))
            .count()
    }

    pub fn dequeue_all(&self) -> usize {
        self.queued()
            .into_iter()
            .filter(|id| self.dequeue(*id))
            .count()
    }

    pub fn total_size(&self) -> u64 {
        self.list().iter().map(|e| e.size).sum()
    }

    /// Removes least recently used entries until the cache fits in its maximum size.
    /// Returns (entries, bytes) removed.
    pub fn prune(&self) -> (usize, u64) {
        let mut entries = self.list();
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        entries.sort_by(|a, b| a.last_accessed.total_cmp(&b.last_accessed));
        let (mut files, mut bytes) = (0, 0);
        for entry in entries {
            if total <= self.max_size {
                break;
            }
            if self.delete(entry.image_id) {
                total -= entry.size;
                files += 1;
                bytes += entry.size;
            }
        }
        if files > 0 {
            tracing::info!(files, bytes, "image cache pruned");
        }
        (files, bytes)
    }

    /// Removes fills stalled for longer than the stall time, data files without an entry,
    /// and entries whose bytes do not hash to their recorded blake3 or whose image is no
    /// longer active with the same checksum (`current` has each cached image's size and
    /// checksum; an image missing from it is gone). Returns the number of files removed.
    pub async fn clean(&self, current: &HashMap<Uuid, (u64, Option<String>)>) -> usize {
        let mut removed = 0;
        for entry in std::fs::read_dir(self.dir.join("incomplete"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let stalled = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= self.stall_time);
            if stalled && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        for entry in self.list() {
            let valid = match current.get(&entry.image_id) {
                Some((size, checksum)) => {
                    *size == entry.size
                        && *checksum == entry.checksum
                        && hash_file(&self.data_path(entry.image_id)).await.as_deref()
                            == Some(entry.blake3.as_str())
                }
                None => false,
            };
            if !valid && self.delete(entry.image_id) {
                removed += 1;
            }
        }
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(id) = name.parse::<Uuid>()
                && !self.meta_path(id).exists()
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }
}

async fn hash_file(path: &Path) -> Option<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(path).ok()?).ok()?;
        Some(hasher.finalize().to_hex().to_string())
    })
    .await
    .ok()
    .flatten()
}

/// A cache fill in progress. Dropped unfinished, it removes its partial file.
pub struct Filler {
    id: Uuid,
    path: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: blake3::Hasher,
    written: u64,
    failed: bool,
}

impl Filler {
    pub async fn write(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        self.hasher.update(chunk);
        let written = match self.file.as_mut() {
            Some(file) => file.write_all(chunk).await.is_ok(),
            None => false,
        };
        if written {
            self.written += chunk.len() as u64;
        } else {
            self.failed = true;
        }
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        if self.file.is_some() || self.failed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
