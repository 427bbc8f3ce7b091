//! A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` into a fresh directory,
//! `pg_ctl start` on a free loopback port with its unix socket in that directory, stopped
//! and removed on drop. PostgreSQL refuses to run as root, so under root the cluster belongs
//! to (and runs as) the `postgres` user, or `nobody` where there is none, via `runuser`.
//!
//! If the process that started a cluster dies without dropping it (killed, or a `static`
//! that is never dropped), a watcher process stops the cluster and removes its directory.
//!
//! The binaries are found in `$GLASS_PG_BIN`, else `pg_config --bindir`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's layout); `scripts/env.sh`'s `ensure_postgres`
//! installs them.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};

/// A running cluster with one database, `glass`, owned by the trusted superuser `glass`.
pub struct TempCluster {
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
}

/// Server settings of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync off: for tests, where a crash of the machine loses nothing of value.
    Relaxed,
    /// PostgreSQL's defaults (fsync on every commit): for benchmarks against engines that
    /// flush before answering.
    Durable,
}

fn output_error(what: &str, out: &Output) -> String {
    format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Where PostgreSQL's server binaries are.
pub fn postgres_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("GLASS_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL not found (no $GLASS_PG_BIN, pg_config or /usr/lib/postgresql/*/bin): \
         install it (scripts/env.sh: ensure_postgres)"
            .to_string()
    })
}

fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(user).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

impl TempCluster {
    /// A relaxed cluster shared by everyone in this process who holds it: started on first
    /// use, stopped when the last holder drops it.
    pub fn shared() -> Result<Arc<TempCluster>, String> {
        static SHARED: Mutex<Weak<TempCluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = shared.upgrade() {
            return Ok(cluster);
        }
        let cluster = Arc::new(Self::start()?);
        *shared = Arc::downgrade(&cluster);
        Ok(cluster)
    }

    /// Starts a cluster for tests (fsync off).
    pub fn start() -> Result<TempCluster, String> {
        Self::start_with(Durability::Relaxed)
    }

    pub fn start_with(durability: Durability) -> Result<TempCluster, String> {
        let bin = postgres_bin()?;
        let root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let (run_as, base) = if root {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|u| user_ids(u).is_some())
                .ok_or("running as root and neither user postgres nor nobody exists")?;
            // Somewhere the unprivileged user can reach whatever $TMPDIR is.
            (Some(user.to_string()), PathBuf::from("/tmp"))
        } else {
            (None, std::env::temp_dir())
        };
        let dir = base.join(format!("glass-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some(user) = &run_as {
            let (uid, gid) = user_ids(user).ok_or("user vanished")?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let mut cluster = TempCluster {
            dir,
            bin,
            run_as,
            port: 0,
        };
        cluster.init(durability)?;
        cluster.watch();
        Ok(cluster)
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn run(&self, what: &str, cmd: &mut Command) -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(output_error(what, &out))
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn init(&mut self, durability: Durability) -> Result<(), String> {
        let data = self.data();
        self.run(
            "initdb",
            self.command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "glass", "-A", "trust", "-E", "UTF8", "--locale=C"])
                .arg("--no-sync"),
        )?;
        let mut options = format!("-c listen_addresses=127.0.0.1 -k {}", self.dir.display());
        if durability == Durability::Relaxed {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        // A port taken between the probe and the start makes pg_ctl fail: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            self.port = free_port()?;
            let started = self.run(
                "pg_ctl start",
                self.command("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(self.dir.join("postgres.log"))
                    .args(["-w", "-t", "60", "-o"])
                    .arg(format!("-p {} {options}", self.port))
                    .arg("start"),
            );
            match started {
                Ok(()) => {
                    let created = Command::new(self.bin.join("createdb"))
                        .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                        .args(["-U", "glass", "glass"])
                        .output()
                        .map_err(|e| format!("createdb: {e}"))?;
                    if !created.status.success() {
                        return Err(output_error("createdb", &created));
                    }
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts a process that stops the cluster and removes its directory once this process
    /// is gone (a no-op after a normal drop).
    fn watch(&self) {
        let stop = self.command("pg_ctl");
        let mut argv = vec![stop.get_program().to_string_lossy().into_owned()];
        argv.extend(stop.get_args().map(|a| a.to_string_lossy().into_owned()));
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} -D {data} -m immediate -w stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            stop = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
            data = quote(&self.data().to_string_lossy()),
            dir = quote(&self.dir.to_string_lossy()),
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// The directory holding the cluster (data, log, socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `glass` database over TCP on loopback.
    pub fn url(&self) -> String {
        self.database_url("glass")
    }

    /// Database `db` over TCP on loopback.
    pub fn database_url(&self, db: &str) -> String {
        format!("postgres://glass@127.0.0.1:{}/{db}", self.port)
    }

    /// The `glass` database over the unix socket.
    pub fn socket_url(&self) -> String {
        format!(
            "host={} port={} user=glass dbname=glass",
            self.dir.display(),
            self.port
        )
    }

    /// Creates another database and returns its URL.
    pub fn create_database(&self, db: &str) -> Result<String, String> {
        self.run(
            "createdb",
            Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "glass", db]),
        )?;
        Ok(self.database_url(db))
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
