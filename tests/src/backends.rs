//! The real storage servers the remote store drivers are tested against, started once per
//! test process by the scripts in `../shared/backends/` (relative to the repository root):
//! SeaweedFS for S3, OpenStack Swift with tempauth, nginx for HTTP. See that directory's
//! README for what each installs and costs.
//!
//! - Each script is idempotent (a no-op when its server runs) and prints `KEY=value`
//!   connection details on stdout; [`Backend`] holds them.
//! - Starts are serialized across processes (other test binaries, `scripts/test` starting
//!   them in the background) by an exclusive lock on one file: two scripts must not run at
//!   once, they would race on apt's lock and on the servers' pid files.
//! - Nothing here stops a server: `scripts/test` stops, at its end, those it found stopped.
//!
//! `GLASS_BACKENDS_DIR` overrides where the scripts are.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One started server: what its start script printed.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: &'static str,
    vars: BTreeMap<String, String>,
    /// How long the start script took in this process (waiting for the lock included).
    pub start_time: Duration,
}

impl Backend {
    /// The value of `key` as the start script printed it (its first word).
    pub fn var(&self, key: &str) -> &str {
        self.vars.get(key).map(String::as_str).unwrap_or_else(|| {
            panic!(
                "start-{}.sh printed no {key}= (it printed {:?})",
                self.name, self.vars
            )
        })
    }

    /// `host:port` of a URL the script printed (for `Grants::hosts`).
    pub fn authority(&self, key: &str) -> String {
        authority(self.var(key))
    }
}

/// `host:port` of an `http://host:port/...` URL.
pub fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// SeaweedFS's S3 gateway: `S3_ENDPOINT`, `S3_ACCESS_KEY`, `S3_SECRET_KEY`,
/// `S3_READONLY_ACCESS_KEY`, `S3_READONLY_SECRET_KEY`.
pub async fn s3() -> &'static Backend {
    started("s3", &S3).await
}

/// Swift with tempauth: `SWIFT_AUTH_URL` (v1), `SWIFT_USER`, `SWIFT_KEY`,
/// `SWIFT_STORAGE_URL`.
pub async fn swift() -> &'static Backend {
    started("swift", &SWIFT).await
}

/// nginx: `HTTP_BASE_URL`, `HTTP_DOC_ROOT` (a directory it serves), `HTTP_TEST_OBJECT` (a
/// 512 MiB random file; its sha256 beside it in `test-512MiB.bin.sha256`).
pub async fn http() -> &'static Backend {
    started("http", &HTTP).await
}

static S3: OnceLock<Result<Backend, String>> = OnceLock::new();
static SWIFT: OnceLock<Result<Backend, String>> = OnceLock::new();
static HTTP: OnceLock<Result<Backend, String>> = OnceLock::new();

async fn started(
    name: &'static str,
    cell: &'static OnceLock<Result<Backend, String>>,
) -> &'static Backend {
    // The script takes seconds to minutes: run it off the async threads. `OnceLock` makes
    // the other tests of this process wait for the first start instead of running it again.
    let result = tokio::task::spawn_blocking(move || cell.get_or_init(|| start(name)))
        .await
        .expect("backend start task");
    match result {
        Ok(backend) => backend,
        Err(e) => panic!("{e}"),
    }
}

/// Where the backend scripts are: `$GLASS_BACKENDS_DIR`, else `../shared/backends` from the
/// repository root.
pub fn scripts_dir() -> PathBuf {
    match std::env::var_os("GLASS_BACKENDS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("shared")
            .join("backends"),
    }
}

/// The lock every start takes (`scripts/test` takes the same one with `flock(1)`).
pub fn lock_path() -> PathBuf {
    std::env::temp_dir().join("glass-backends-start.lock")
}

fn start(name: &'static str) -> Result<Backend, String> {
    let script = scripts_dir().join(format!("start-{name}.sh"));
    if !script.is_file() {
        return Err(format!(
            "backend {name}: {} not found (set GLASS_BACKENDS_DIR to the directory of the \
             start-*.sh scripts)",
            script.display()
        ));
    }
    let begun = Instant::now();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path())
        .map_err(|e| format!("backend {name}: opening {}: {e}", lock_path().display()))?;
    // std opens files close-on-exec: the servers the script leaves running do not inherit
    // the lock (`flock -o` in scripts/test, for the same reason).
    lock.lock()
        .map_err(|e| format!("backend {name}: locking {}: {e}", lock_path().display()))?;
    let output = Command::new("bash")
        .arg(&script)
        .current_dir(scripts_dir())
        .output();
    drop(lock);
    let output =
        output.map_err(|e| format!("backend {name}: running {}: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "backend {name}: {} failed ({}):\n{stderr}",
            script.display(),
            output.status
        ));
    }
    let vars = parse_vars(&String::from_utf8_lossy(&output.stdout));
    let start_time = begun.elapsed();
    eprintln!(
        "backend {name} ready in {:.1} s{}",
        start_time.as_secs_f64(),
        if stderr.trim().is_empty() {
            String::new()
        } else {
            format!(":\n{}", stderr.trim_end())
        }
    );
    Ok(Backend {
        name,
        vars,
        start_time,
    })
}

/// Every `KEY=value` word of the scripts' output (a line may hold several, followed by
/// comments in parentheses; other lines, such as apt's, are skipped).
fn parse_vars(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .split_whitespace()
        .filter_map(|word| {
            let (key, value) = word.split_once('=')?;
            let is_key = key.starts_with(|c: char| c.is_ascii_uppercase())
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_key.then(|| (key.to_owned(), value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_script_output() {
        let vars = parse_vars(
            "Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]\n\
             S3_ENDPOINT=http://127.0.0.1:8333   (path-style; any region, e.g. us-east-1)\n\
             S3_READONLY_ACCESS_KEY=RO  S3_READONLY_SECRET_KEY=ro-secret\n\
             HTTP_DOC_ROOT=/tmp/glass-http/www   (drop image files here)\n",
        );
        assert_eq!(vars["S3_ENDPOINT"], "http://127.0.0.1:8333");
        assert_eq!(vars["S3_READONLY_ACCESS_KEY"], "RO");
        assert_eq!(vars["S3_READONLY_SECRET_KEY"], "ro-secret");
        assert_eq!(vars["HTTP_DOC_ROOT"], "/tmp/glass-http/www");
        assert_eq!(vars.len(), 4);
        assert_eq!(authority("http://127.0.0.1:8333"), "127.0.0.1:8333");
        assert_eq!(authority("http://127.0.0.1:8180/x/y"), "127.0.0.1:8180");
    }
}
