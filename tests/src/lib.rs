//! Helpers for black-box tests of Glass: an in-process server on a real socket
//! ([`TestServer`]), the real `glass` binary as a child process ([`GlassProcess`]), and a small
//! HTTP client that speaks as a chosen project ([`Client`]).

pub mod backends;
pub mod bench;
pub mod conformance;
pub mod data;
pub mod faults;
pub mod import;
pub mod keystone;
pub mod load;
pub mod metadefs;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use glass_host::config::AuthMode;
use glass_host::{AppState, Config};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

pub const ADMIN_PROJECT: &str = "0123456789abcdef0123456789abcdef";

/// A Glass server running inside the test process, on 127.0.0.1 with an ephemeral port and
/// its own data directory.
pub struct TestServer {
    pub url: String,
    pub state: AppState,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts a server with trusted-headers auth, so tests can act as several projects.
    pub async fn start() -> TestServer {
        Self::start_with(|c| c.auth = AuthMode::TrustedHeaders).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        adjust(&mut config);
        let state = glass_host::open_state(config).await.expect("open state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = state.clone();
        tokio::spawn(async move {
            glass_host::serve(listener, serving, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        TestServer {
            url,
            state,
            _dir: dir,
            stop: Some(stop),
        }
    }

    /// A client acting as `project` with the given roles (trusted headers).
    pub fn client(&self, project: &str, roles: &str) -> Client {
        Client::new(&self.url, Some((project.to_string(), roles.to_string())))
    }

    /// A client acting as an admin of [`ADMIN_PROJECT`].
    pub fn admin(&self) -> Client {
        self.client(ADMIN_PROJECT, "admin,member,reader")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An HTTP client bound to one identity.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    http: reqwest::Client,
    identity: Option<(String, String)>,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, identity: Option<(String, String)>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            identity,
            token: None,
        }
    }

    /// A client that sends `X-Auth-Token: token` (`auth = "keystone"`).
    pub fn with_token(base: &str, token: &str) -> Client {
        Client {
            token: Some(token.to_string()),
            ..Client::new(base, None)
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some((project, roles)) = &self.identity {
            rb = rb
                .header("X-Project-Id", project)
                .header("X-User-Id", format!("user-of-{project}"))
                .header("X-Roles", roles);
        }
        if let Some(token) = &self.token {
            rb = rb.header("X-Auth-Token", token);
        }
        rb
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        into_json(self.get(path).await).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("POST");
        into_json(r).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .request(Method::PUT, path)
            .json(body)
            .send()
            .await
            .expect("PUT");
        into_json(r).await
    }

    pub async fn patch(&self, path: &str, ops: &Value) -> (u16, Value) {
        let r = self
            .request(Method::PATCH, path)
            .header(
                "Content-Type",
                "application/openstack-images-v2.1-json-patch",
            )
            .body(ops.to_string())
            .send()
            .await
            .expect("PATCH");
        into_json(r).await
    }

    pub async fn send(&self, method: Method, path: &str) -> (u16, Value) {
        into_json(self.request(method, path).send().await.expect("send")).await
    }

    /// Creates an image and returns its body; panics unless the answer is 201.
    pub async fn create_image(&self, body: Value) -> Value {
        let (status, image) = self.post_json("/v2/images", &body).await;
        assert_eq!(status, 201, "create {body}: {image}");
        image
    }
}

/// Status and JSON body (`Null` when the body is empty or not JSON).
pub async fn into_json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The `glass` binary built beside the running test executable.
pub fn glass_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("glass");
    assert!(
        bin.exists(),
        "{} missing: build it first (cargo build --workspace --bins)",
        bin.display()
    );
    bin
}

/// Runs the `glass` binary with `args` to completion: (success, stdout, stderr).
pub fn run_glass(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(glass_binary())
        .args(args)
        .output()
        .expect("run glass");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The real `glass` binary serving from a data directory, on an ephemeral port.
pub struct GlassProcess {
    pub child: tokio::process::Child,
    pub url: String,
}

impl GlassProcess {
    pub async fn start(data_dir: &Path, config: Option<&Path>) -> GlassProcess {
        let mut cmd = tokio::process::Command::new(glass_binary());
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let mut child = cmd.spawn().expect("spawn glass");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(url) = line.strip_prefix("glass listening on ") {
                    return url.to_string();
                }
            }
            panic!("glass exited before listening");
        })
        .await
        .expect("glass did not start within 30 s");
        GlassProcess { child, url }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub async fn kill9(mut self) {
        self.child.start_kill().expect("kill");
        self.child.wait().await.expect("wait");
    }

    /// SIGTERM and wait for a graceful exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().expect("pid") as i32;
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill -TERM");
        let status = tokio::time::timeout(std::time::Duration::from_secs(30), self.child.wait())
            .await
            .expect("glass did not stop within 30 s")
            .expect("wait");
        assert!(status.success(), "glass exited with {status}");
    }
}
