//! Helpers for the import tests: a tiny HTTP server on loopback that serves fixed files and
//! redirects (the web-download source), staging and importing through the API, waiting for
//! an import to end, and disk images made with `qemu-img` or by hand.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Client;

/// What the test HTTP server answers for a path.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this body.
    Body(Arc<Vec<u8>>),
    /// A redirect (302) to this URL.
    Redirect(String),
    /// This status, no body.
    Status(u16),
    /// 200 with a Content-Length but the connection closes after `sent` bytes.
    Truncated { len: usize, sent: usize },
    /// 200, then this many bytes very slowly (one byte per 100 ms).
    Slow(usize),
}

/// A loopback HTTP/1.1 server answering GETs from a fixed table; stops when dropped.
pub struct WebServer {
    pub ip: std::net::Ipv4Addr,
    pub port: u16,
    routes: Arc<std::sync::Mutex<HashMap<String, Reply>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebServer {
    pub async fn start() -> WebServer {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST).await
    }

    /// On another loopback address (`127.0.0.2`, …).
    pub async fn start_on(ip: std::net::Ipv4Addr) -> WebServer {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<std::sync::Mutex<HashMap<String, Reply>>> = Default::default();
        let table = routes.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let table = table.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let reply = table
                        .lock()
                        .unwrap()
                        .get(&path)
                        .cloned()
                        .unwrap_or(Reply::Status(404));
                    let _ = answer(&mut socket, reply).await;
                });
            }
        });
        WebServer {
            ip,
            port,
            routes,
            task,
        }
    }

    /// `http://<ip>:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip, self.port)
    }

    pub fn route(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.into(), reply);
    }

    pub fn serve(&self, path: &str, body: Vec<u8>) {
        self.route(path, Reply::Body(Arc::new(body)));
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(socket: &mut tokio::net::TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Body(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body).await?;
        }
        Reply::Redirect(to) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            socket.write_all(head.as_bytes()).await?;
        }
        Reply::Status(code) => {
            let head =
                format!("HTTP/1.1 {code} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            socket.write_all(head.as_bytes()).await?;
        }
        Reply::Truncated { len, sent } => {
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&vec![7u8; sent]).await?;
        }
        Reply::Slow(len) => {
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
            socket.write_all(head.as_bytes()).await?;
            for _ in 0..len {
                socket.write_all(b"x").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    socket.flush().await?;
    socket.shutdown().await
}

/// `PUT /v2/images/{id}/stage`.
pub async fn stage(client: &Client, id: &str, data: Vec<u8>) -> (u16, Value) {
    let r = client
        .request(Method::PUT, &format!("/v2/images/{id}/stage"))
        .header("Content-Type", "application/octet-stream")
        .header("Accept", "application/json")
        .body(data)
        .send()
        .await
        .unwrap();
    crate::into_json(r).await
}

/// `POST /v2/images/{id}/import` with `body`.
pub async fn import(client: &Client, id: &str, body: Value) -> (u16, Value) {
    let r = client
        .request(Method::POST, &format!("/v2/images/{id}/import"))
        .header("Accept", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap();
    crate::into_json(r).await
}

/// The import request of a method, e.g. `method("glance-direct")`.
pub fn method(name: &str) -> Value {
    json!({"method": {"name": name}})
}

/// The image once its import task is over (no `os_glance_import_task` left, no longer
/// `importing`, and the task itself finished); panics after 60 s.
pub async fn wait_import(client: &Client, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, image) = client.get_json(&format!("/v2/images/{id}")).await;
        assert_eq!(status, 200, "{image}");
        // The task is finished just after the image (as in Glance): wait for both.
        if image.get("os_glance_import_task").is_none()
            && image["status"] != "importing"
            && tasks_over(client, id).await
        {
            return image;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "import of {id} did not end: {image}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether none of the image's tasks that `client` may see is still pending or processing.
async fn tasks_over(client: &Client, id: &str) -> bool {
    let (status, body) = client.get_json(&format!("/v2/images/{id}/tasks")).await;
    // Those who may not see the image's tasks (404 or 403) wait for the image only.
    if status == 404 || status == 403 {
        return true;
    }
    assert_eq!(status, 200, "{body}");
    body["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks array: {body}"))
        .iter()
        .all(|t| t["status"] != "pending" && t["status"] != "processing")
}

/// The image's import tasks (`GET /v2/images/{id}/tasks`), newest first.
pub async fn image_tasks(client: &Client, id: &str) -> Vec<Value> {
    let (status, body) = client.get_json(&format!("/v2/images/{id}/tasks")).await;
    assert_eq!(status, 200, "{body}");
    body["tasks"].as_array().cloned().unwrap_or_default()
}

/// Runs `qemu-img` with `args`; panics if it fails.
pub fn qemu_img(args: &[&str]) -> String {
    let out = std::process::Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img (apt-get install qemu-utils)");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether qemu-img is installed (tests that need it say so and stop otherwise).
pub fn have_qemu_img() -> bool {
    std::process::Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A disk image of `format` and virtual size `size` made by qemu-img in `dir`, with extra
/// `-o` options; its bytes.
pub fn make_image(dir: &Path, name: &str, format: &str, size: &str, options: &[&str]) -> Vec<u8> {
    let path = dir.join(name);
    let path = path.to_str().unwrap();
    let mut args = vec!["create", "-q", "-f", format];
    for o in options {
        args.push("-o");
        args.push(o);
    }
    args.push(path);
    args.push(size);
    qemu_img(&args);
    std::fs::read(path).unwrap()
}
