//! Interoperable image import (Glance's `api_image_import` flow): the methods glance-direct
//! (from the staging area), web-download (from a URL, `web`), copy-image (between stores)
//! and glance-download (from another Images API endpoint), run as background tokio tasks that
//! outlive the request which started them, with their state persisted as registry `Task`s.
//!
//! An import holds the image's import lock, the property `os_glance_import_task` (set in
//! the same compare-and-swap that moves the image to `importing`), and keeps Glance's
//! progress properties: `os_glance_importing_to_stores` (stores still to do) and
//! `os_glance_failed_import` (stores that failed). Every write it makes to the image
//! re-checks the lock; an import that lost it stops and removes what it wrote.
//!
//! Data moves through the shared upload pipeline (`upload::stream_into_store`: hashing,
//! size cap and disk-format inspection): staging → each store, or store → store. A failure
//! with `all_stores_must_succeed` (or with no store done) undoes the copies this task made
//! and puts the image back to `queued` (copy-image leaves it `active`). Start-up recovery of
//! imports that died with the process is in `recovery`.

pub mod accept;
pub mod config;
mod copies;
mod copy_image;
mod glance_direct;
pub mod imports;
pub mod inspect;
pub mod journal;
mod lock;
pub mod network;
pub mod recovery;
pub mod stage;
pub mod staging;
pub mod steps;
mod task;
pub mod web;
mod web_download;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::Service;
pub use imports::Imports;
pub use lock::{merge_store_list, revert_status};
pub use task::{close_task, journal, new_task, pending_task, set_task, spawn};

/// The image property holding the id of the task that owns the image's import.
pub const LOCK_KEY: &str = "os_glance_import_task";
/// Stores an import still has to write.
pub const IMPORTING_KEY: &str = "os_glance_importing_to_stores";
/// Stores an import failed to write.
pub const FAILED_KEY: &str = "os_glance_failed_import";
/// The task type of an import, as Glance names it.
pub const TASK_TYPE: &str = "api_image_import";

/// Starts loading the built-in disk-format inspector (`plugins/inspect-format`) with the
/// limits of `[image_format]`, in the background: compiling it takes seconds on a cold
/// cache, and only inspections need to wait for it.
pub fn load_inspector(state: &Service, runtime: &glass_runtime::Runtime) {
    if !state.config.image_format.inspect {
        return;
    }
    let cfg = &state.config.image_format;
    let limits = glass_runtime::Limits {
        memory_bytes: cfg.inspector_memory_mb << 20,
        cpu_deadline: std::time::Duration::from_millis(cfg.inspector_deadline_ms.max(1)),
        network_timeout: std::time::Duration::from_secs(1),
    };
    let _ = state.imports.loader.set((runtime.clone(), limits));
    let imports = state.imports.clone();
    tokio::spawn(async move {
        if let Err(e) = imports.inspector().await {
            tracing::error!(error = %e, "loading the disk-format inspector failed");
        }
    });
}

/// Why an import stopped: the message its task fails with.
pub(crate) type Failure = String;

/// The import methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    GlanceDirect,
    WebDownload,
    CopyImage,
    GlanceDownload,
}

impl Method {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "glance-direct" => Method::GlanceDirect,
            "web-download" => Method::WebDownload,
            "copy-image" => Method::CopyImage,
            "glance-download" => Method::GlanceDownload,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::GlanceDirect => "glance-direct",
            Method::WebDownload => "web-download",
            Method::CopyImage => "copy-image",
            Method::GlanceDownload => "glance-download",
        }
    }
}

/// An accepted import request, as the task runs it.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub method: Method,
    /// web-download: the URL; glance-download: the remote image's URL.
    pub uri: Option<String>,
    pub stores: Vec<String>,
    pub all_stores_must_succeed: bool,
    /// glance-download: the remote endpoint and image.
    pub remote: Option<RemoteImage>,
    /// Property injection applies (the caller is not an admin, or `inject_for_admins`).
    pub inject: bool,
}

/// The image a glance-download pulls.
#[derive(Debug, Clone)]
pub struct RemoteImage {
    pub endpoint: String,
    pub image_id: String,
    pub token: Option<String>,
}

/// A byte stream of downloaded data, as the pipeline takes it.
pub type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Maps any byte stream to a [`BodyStream`].
pub fn body_stream<S, E>(s: S) -> BodyStream
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    Box::pin(s.map(|r| r.map_err(|e| std::io::Error::other(e.to_string()))))
}
