//! The staging area of glance-direct and web-download (Glance's `os_glance_staging_store`):
//! a host-owned directory (`[import] staging_directory`) with its own quota. It is an
//! [`ImageStore`] so the shared upload pipeline (`image_data::stream_into_store`) writes to
//! it exactly as to a store: `<id>.partial`, fsync, rename to `<id>`. Files derived from a
//! staged image by import plugins are `<id>.<step>`; everything named after an image goes
//! when its import ends (or at start-up, [`Staging::sweep`]).

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

use crate::stores::{ByteReader, ImageStore, StoreError, StoreInfo, Stored};

pub struct Staging {
    dir: PathBuf,
    quota: u64,
    /// Room promised to writes in flight, by reservation id: what they may still write,
    /// and the staging names whose bytes they cover (not counted twice).
    reserved: Mutex<Vec<Held>>,
    next: AtomicU64,
}

struct Held {
    id: u64,
    bytes: u64,
    covers: Vec<String>,
}

/// Room in the staging area held by one write until dropped ([`Staging::reserve`]).
pub struct Reservation {
    staging: Arc<Staging>,
    id: u64,
    bytes: u64,
}

impl Reservation {
    /// The bytes reserved: the most the write may put in the staging area.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut held = self
            .staging
            .reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        held.retain(|h| h.id != self.id);
    }
}

impl Staging {
    /// Opens (creating) the staging directory.
    pub fn open(dir: PathBuf, quota: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Staging {
            dir,
            quota,
            reserved: Mutex::new(Vec::new()),
            next: AtomicU64::new(1),
        })
    }

    /// Reserves room for a write, atomically with every other reservation: `want` bytes
    /// when the size is known, otherwise all the room left up to `cap`. `covers` names the
    /// staging files the write produces (their bytes count within the reservation, not
    /// beside it). Refused with the room left when `want` does not fit.
    pub fn reserve(
        self: &Arc<Self>,
        want: Option<u64>,
        cap: u64,
        covers: Vec<String>,
    ) -> Result<Reservation, u64> {
        let mut held = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        let skip: Vec<&str> = held
            .iter()
            .flat_map(|h| h.covers.iter().map(String::as_str))
            .chain(covers.iter().map(String::as_str))
            .collect();
        let promised: u64 = held.iter().map(|h| h.bytes).sum();
        let used = self.usage_except(&skip).saturating_add(promised);
        let room = self.quota.saturating_sub(used);
        let bytes = match want {
            Some(w) if w > room => return Err(room),
            Some(w) => w,
            None => room.min(cap),
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        held.push(Held { id, bytes, covers });
        Ok(Reservation {
            staging: self.clone(),
            id,
            bytes,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of a staged location (a bare file name: no separators, no dot-dot).
    pub fn path(&self, location: &str) -> Result<PathBuf, StoreError> {
        let ok = !location.is_empty()
            && location.len() <= 128
            && !location.starts_with('.')
            && location
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if ok {
            Ok(self.dir.join(location))
        } else {
            Err(StoreError::InvalidLocation(format!(
                "{location:?} is not a staging file name"
            )))
        }
    }

    /// Bytes held now (files, and the files of plugins' private directories).
    pub fn usage(&self) -> u64 {
        self.usage_except(&[])
    }

    fn usage_except(&self, skip: &[&str]) -> u64 {
        let size = |path: &Path| -> u64 {
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.is_file() => m.len(),
                Ok(m) if m.is_dir() => std::fs::read_dir(path)
                    .map(|d| {
                        d.flatten()
                            .filter_map(|e| e.metadata().ok())
                            .filter(|m| m.is_file())
                            .map(|m| m.len())
                            .sum()
                    })
                    .unwrap_or(0),
                _ => 0,
            }
        };
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| !e.file_name().to_str().is_some_and(|n| skip.contains(&n)))
                    .map(|e| size(&e.path()))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Bytes that may still be staged, less what writes in flight have reserved.
    pub fn room(&self) -> u64 {
        let held = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        let skip: Vec<&str> = held
            .iter()
            .flat_map(|h| h.covers.iter().map(String::as_str))
            .collect();
        let promised: u64 = held.iter().map(|h| h.bytes).sum();
        self.quota
            .saturating_sub(self.usage_except(&skip).saturating_add(promised))
    }

    /// A fresh private directory for a plugin step on `image` (`<id>.<step>/`, mode 0700,
    /// emptied first): a tool run there sees no other staged file.
    pub fn work_dir(&self, image: Uuid, step: &str) -> Result<PathBuf, StoreError> {
        let path = self.path(&format!("{image}.{step}"))?;
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io_error)?;
        }
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(io_error)?;
        Ok(path)
    }

    /// Whether the image has staged data.
    pub fn has(&self, image: Uuid) -> bool {
        self.dir.join(image.to_string()).is_file()
    }

    /// Removes everything staged for `image` (its data, partial data, derived files).
    pub async fn remove_all(&self, image: Uuid) {
        let prefix = image.to_string();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !(name == prefix || name.starts_with(&format!("{prefix}."))) {
                continue;
            }
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                tokio::fs::remove_dir_all(entry.path()).await
            } else {
                tokio::fs::remove_file(entry.path()).await
            };
            if let Err(e) = removed
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(image = %image, file = name, error = %e,
                    "removing staged data failed");
            }
        }
    }

    /// The images that have anything staged, and files that belong to no image.
    pub fn staged_images(&self) -> (Vec<Uuid>, Vec<PathBuf>) {
        let mut images = Vec::new();
        let mut strays = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return (images, strays);
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.split('.').next())
                .and_then(|n| Uuid::parse_str(n).ok());
            match id {
                Some(id) if !images.contains(&id) => images.push(id),
                Some(_) => {}
                None => strays.push(entry.path()),
            }
        }
        (images, strays)
    }

    /// Copies a file into the staging area under `location` (plugins write their output
    /// next to it and rename).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        tokio::fs::rename(self.path(from)?, self.path(to)?)
            .await
            .map_err(io_error)
    }
}

fn io_error(e: std::io::Error) -> StoreError {
    match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound,
        _ => StoreError::Unavailable(format!("staging area: {e}")),
    }
}

#[async_trait]
impl ImageStore for Staging {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            driver: "staging".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            can_write: true,
            can_delete: true,
            ranged_reads: true,
        }
    }

    async fn add(
        &self,
        image: Uuid,
        mut data: ByteReader,
        _size_hint: Option<u64>,
    ) -> Result<Stored, StoreError> {
        let location = image.to_string();
        let path = self.path(&location)?;
        if path.exists() {
            return Err(StoreError::AlreadyExists);
        }
        let partial = self.path(&format!("{location}.partial"))?;
        let mut file = tokio::fs::File::create(&partial).await.map_err(io_error)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        let outcome: Result<(), StoreError> = async {
            loop {
                let n = data
                    .read(&mut buf)
                    .await
                    .map_err(|e| StoreError::Input(e.to_string()))?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n]).await.map_err(io_error)?;
                size += n as u64;
            }
            file.sync_all().await.map_err(io_error)?;
            Ok(())
        }
        .await;
        drop(file);
        if let Err(e) = outcome {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
        tokio::fs::rename(&partial, &path).await.map_err(io_error)?;
        Ok(Stored { location, size })
    }

    async fn get(
        &self,
        location: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<ByteReader, StoreError> {
        let mut file = tokio::fs::File::open(self.path(location)?)
            .await
            .map_err(io_error)?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).await.map_err(io_error)?;
        }
        Ok(match length {
            Some(len) => Box::pin(file.take(len)),
            None => Box::pin(file),
        })
    }

    async fn size(&self, location: &str) -> Result<u64, StoreError> {
        tokio::fs::metadata(self.path(location)?)
            .await
            .map(|m| m.len())
            .map_err(io_error)
    }

    async fn delete(&self, location: &str) -> Result<(), StoreError> {
        tokio::fs::remove_file(self.path(location)?)
            .await
            .map_err(io_error)
    }

    async fn discard_partial(&self, image: Uuid) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path(&format!("{image}.partial"))?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(e)),
            _ => Ok(()),
        }
    }
}
