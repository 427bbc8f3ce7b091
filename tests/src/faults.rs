//! Fault injection for the black-box tests: [`FaultProxy`], a TCP proxy on loopback in front
//! of a real server that can pass bytes, stall every connection, or cut them all (and refuse
//! new ones), also after a given number of bytes; listings of what a real S3 or Swift
//! backend holds (to find orphaned data); a seeded random source for workloads.
//!
//! The shared backends of `../shared/backends` serve other tests at the same time: faults are
//! injected on the proxy's side, never by stopping those servers.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with the bytes of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Forward nothing, keep every connection open (a hung server); new connections are
    /// accepted and stall too.
    Stall,
    /// Close every connection and close new ones at once (a dead server).
    Cut,
}

struct Shared {
    target: String,
    mode: watch::Sender<Mode>,
    /// Bytes forwarded client → server and server → client.
    up: AtomicU64,
    down: AtomicU64,
    /// Switch to [`Mode::Cut`] once `up + down` reaches this (u64::MAX: never).
    cut_at: AtomicU64,
}

impl Shared {
    fn forwarded(&self, n: u64, up: bool) {
        let counter = if up { &self.up } else { &self.down };
        counter.fetch_add(n, Ordering::SeqCst);
        let total = self.up.load(Ordering::SeqCst) + self.down.load(Ordering::SeqCst);
        if total >= self.cut_at.load(Ordering::SeqCst) {
            self.cut_at.store(u64::MAX, Ordering::SeqCst);
            self.mode.send_replace(Mode::Cut);
        }
    }
}

/// A TCP proxy from an ephemeral loopback port to `target`; stops when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy to `target` (`host:port`), passing bytes.
    pub async fn start(target: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            target: target.to_string(),
            mode: watch::channel(Mode::Pass).0,
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            cut_at: AtomicU64::new(u64::MAX),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = accepting.clone();
                tokio::spawn(async move {
                    // Connect upstream only once passing: a stalled connection must not
                    // hold a worker of the (shared) server.
                    let mut mode = shared.mode.subscribe();
                    loop {
                        let current = *mode.borrow_and_update();
                        match current {
                            Mode::Pass => break,
                            Mode::Cut => return,
                            Mode::Stall => {
                                if mode.changed().await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    if let Ok(server) = TcpStream::connect(&shared.target).await {
                        relay(shared, client, server).await;
                    }
                });
            }
        });
        FaultProxy { addr, shared, task }
    }

    /// `host:port` of the proxy.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// `http://host:port` of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        self.shared.cut_at.store(u64::MAX, Ordering::SeqCst);
        self.shared.mode.send_replace(mode);
    }

    /// Cuts every connection once `bytes` more have been forwarded (either way).
    pub fn cut_after(&self, bytes: u64) {
        let now = self.forwarded();
        self.shared.cut_at.store(now + bytes, Ordering::SeqCst);
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Bytes forwarded so far, both ways.
    pub fn forwarded(&self) -> u64 {
        self.shared.up.load(Ordering::SeqCst) + self.shared.down.load(Ordering::SeqCst)
    }

    /// Waits until `bytes` more than `from` have been forwarded (panics after `limit`).
    pub async fn wait_forwarded(&self, from: u64, bytes: u64, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.forwarded() < from + bytes {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the proxy to {} forwarded only {} of {bytes} bytes",
                self.shared.target,
                self.forwarded() - from
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.mode.send_replace(Mode::Cut);
        self.task.abort();
    }
}

async fn relay(shared: Arc<Shared>, client: TcpStream, server: TcpStream) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(shared.clone(), client_read, server_write, true);
    let down = pump(shared, server_read, client_write, false);
    // Either side ending (or a cut) ends the connection: both sockets are dropped.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Copies `from` to `to` while the mode allows; returns on end of stream, error or cut.
async fn pump(
    shared: Arc<Shared>,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    up: bool,
) {
    let mut mode = shared.mode.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Wait while stalled; leave on a cut.
        loop {
            let current = *mode.borrow_and_update();
            match current {
                Mode::Pass => break,
                Mode::Cut => return,
                Mode::Stall => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        // A read that raced with a stall or cut is held back (or dropped) too.
        loop {
            let current = *mode.borrow_and_update();
            match current {
                Mode::Pass => break,
                Mode::Cut => return,
                Mode::Stall => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        shared.forwarded(n as u64, up);
    }
}

/// The newest import task of an image once it is over (bounded): an image may be put back
/// a moment before its task is recorded as failed.
pub async fn last_task(client: &crate::Client, id: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let task = crate::import::image_tasks(client, id).await[0].clone();
        if task["status"] == "success" || task["status"] == "failure" {
            return task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task not over: {task}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// xorshift64*: the workloads' random choices, reproducible from the printed seed.
pub struct Rng(u64);

impl Rng {
    /// From `$GLASS_FAULT_SEED` if set, else from the clock; prints the seed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("GLASS_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: seed {seed} (rerun with GLASS_FAULT_SEED={seed})");
        Rng(seed | 1)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Hex SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of every `<tag>…</tag>` in `xml`.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string()))
        .collect()
}

/// What an S3 bucket holds under `prefix`: (object keys, keys of unfinished multipart
/// uploads), signed with SigV4 by curl (at most 1000 of each: the tests write a few).
pub fn s3_listing(
    endpoint: &str,
    access: &str,
    secret: &str,
    bucket: &str,
    prefix: &str,
) -> (Vec<String>, Vec<String>) {
    let user = format!("{access}:{secret}");
    let base = format!("{}/{bucket}", endpoint.trim_end_matches('/'));
    let signed = |query: &str| {
        curl(&[
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &user,
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            &format!("{base}?{query}"),
        ])
    };
    // SigV4 signs the query as sent: encode it canonically (prefix=a%2Fb, sorted).
    let prefix_q: String = prefix
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let objects = signed(&format!("list-type=2&prefix={prefix_q}"));
    let uploads = signed(&format!("prefix={prefix_q}&uploads="));
    let keys = xml_values(&objects, "Contents")
        .iter()
        .flat_map(|c| xml_values(c, "Key"))
        .collect();
    let pending = xml_values(&uploads, "Upload")
        .iter()
        .flat_map(|u| xml_values(u, "Key"))
        .collect();
    (keys, pending)
}

/// The object names of a Swift container (empty if it does not exist), with tempauth v1.
pub fn swift_listing(auth_url: &str, user: &str, key: &str, container: &str) -> Vec<String> {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "30",
            "-D",
            "-",
            "-o",
            "/dev/null",
        ])
        .args(["-H", &format!("X-Auth-User: {user}")])
        .args(["-H", &format!("X-Auth-Key: {key}")])
        .arg(auth_url)
        .output()
        .expect("run curl");
    let headers = String::from_utf8_lossy(&out.stdout);
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("tempauth gave no {name}: {headers}"))
    };
    let (token, storage) = (header("X-Auth-Token"), header("X-Storage-Url"));
    let listed = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(["-H", &format!("X-Auth-Token: {token}")])
        .arg(format!("{storage}/{container}?format=plain"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    match code {
        "404" => Vec::new(),
        "200" | "204" => body.lines().map(str::to_string).collect(),
        _ => panic!("listing swift container {container}: {code} {body}"),
    }
}
