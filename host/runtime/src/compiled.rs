//! Compiled components cached on disk as precompiled artefacts (`.cwasm`), so a restart loads
//! a plugin in well under a millisecond instead of compiling it again.
//!
//! An artefact is named `<sha256 of the component>-<engine tag>.cwasm`. The engine tag hashes
//! wasmtime's own compatibility hash (its version and every setting that changes the code it
//! generates) with Glass's cache format, so a new wasmtime or a changed `Config` never loads
//! an old artefact: it misses, compiles, and writes a new one beside the old. Files are
//! written to a temporary name, synced and renamed, so a reader never sees half a file even
//! with several processes sharing the directory.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Bumped when Glass changes how it names or writes artefacts.
const CACHE_FORMAT: &str = "glass-cwasm-1";

pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_tag: String,
}

/// A compiled component and the hex sha256 of the component's bytes.
pub(crate) struct Compiled {
    pub component: Component,
    pub digest: String,
    pub from_cache: bool,
}

impl ComponentCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the plugin cache {}", dir.display()))?;
        let mut hasher = ShaHasher(Sha256::new());
        CACHE_FORMAT.hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_tag = hex(&hasher.0.finalize()[..8]);
        Ok(Self { dir, engine_tag })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The component for `bytes`: from the cache if an artefact is there and loads, else
    /// compiled (slow: hundreds of milliseconds) and written to the cache.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> anyhow::Result<Compiled> {
        let digest = hex(&Sha256::digest(bytes));
        let path = self.dir.join(format!("{digest}-{}.cwasm", self.engine_tag));
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(component) => {
                    return Ok(Compiled {
                        component,
                        digest,
                        from_cache: true,
                    });
                }
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "ignoring an unusable precompiled plugin; compiling again"
                ),
            }
        }
        let component = Component::new(engine, bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        if let Err(e) = self.store(&path, &component) {
            // Serving works without the cache; only the next start is slower.
            tracing::warn!(path = %path.display(), error = %e, "could not cache a compiled plugin");
        }
        Ok(Compiled {
            component,
            digest,
            from_cache: false,
        })
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let artefact = component.serialize()?;
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}.cwasm",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&artefact)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(result?)
    }
}

/// Loads a precompiled artefact. The file is read into memory rather than mapped: a mapped
/// file that something truncates later would crash the process (SIGBUS).
///
/// `unsafe` because wasmtime runs the machine code in the file as is. What makes it sound
/// here: only Glass writes this directory (under its data directory, same trust as the
/// binary), each file appears through an atomic rename after being fully written and synced,
/// and wasmtime itself rejects a file made by another version or configuration.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    let bytes = std::fs::read(path)?;
    // SAFETY: see the function's documentation.
    let component = unsafe { Component::deserialize(engine, &bytes) }?;
    Ok(component)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Feeds `Hash` output into sha256: stable across processes and Rust releases, unlike
/// `DefaultHasher`.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0 // never used: the digest is read from the sha256 state
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
