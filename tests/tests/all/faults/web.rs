//! The HTTP source of a web-download import failing mid-transfer: a private nginx started
//! for this test by `../shared/backends/start-http.sh` (its own directory and port) killed
//! with `SIGKILL` in the middle of the download, then restarted; and hung (`SIGSTOP`) in the
//! middle of one. The import fails, the image is not left `importing`, nothing is left in the
//! staging area, and a later import of the same image succeeds with the right bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use glass_host::config::AuthMode;
use glass_tests::data::{get_file, new_image, pseudo_random};
use glass_tests::faults::{last_task, sha256};
use glass_tests::import::{image_tasks, import, wait_import};
use glass_tests::{TestServer, backends};
use serde_json::json;

/// A private nginx; its master is sent SIGTERM when dropped (if the pid file still names the
/// master this start made: a killed one's pid may belong to another process by then).
struct Nginx {
    dir: PathBuf,
    port: u16,
    master: String,
}

impl Nginx {
    fn start(dir: &Path, port: u16) -> Nginx {
        let out = Command::new("bash")
            .arg(backends::scripts_dir().join("start-http.sh"))
            .env("HTTP_DIR", dir)
            .env("HTTP_PORT", port.to_string())
            .env("HTTP_NO_FIXTURE", "1")
            .output()
            .expect("start-http.sh");
        assert!(
            out.status.success(),
            "start-http.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let master = std::fs::read_to_string(dir.join("nginx.pid"))
            .unwrap()
            .trim()
            .to_string();
        Nginx {
            dir: dir.to_path_buf(),
            port,
            master,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The master's pid and its workers'.
    fn pids(&self) -> Vec<String> {
        let master = self.master.clone();
        let workers = Command::new("pgrep")
            .args(["-P", &master])
            .output()
            .unwrap();
        let mut pids = vec![master];
        pids.extend(
            String::from_utf8_lossy(&workers.stdout)
                .split_whitespace()
                .map(str::to_string),
        );
        pids
    }

    fn signal(&self, signal: &str) {
        for pid in self.pids() {
            let _ = Command::new("kill").args([signal, &pid]).status();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("nginx.pid"))
            && pid.trim() == self.master
        {
            let _ = Command::new("kill").args(["-CONT", &self.master]).status();
            let _ = Command::new("kill").args(["-TERM", &self.master]).status();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn staging_files(data: &Path) -> Vec<String> {
    std::fs::read_dir(data.join("staging"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

async fn wait_staged(data: &Path, admin: &glass_tests::Client, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !staging_files(data).iter().any(|f| f.ends_with(".partial")) {
        if Instant::now() > deadline {
            let (_, image) = admin.get_json(&format!("/v2/images/{id}")).await;
            panic!(
                "no bytes staged: {:?}, image {image}, tasks {:?}",
                staging_files(data),
                image_tasks(admin, id).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Some bytes in (the slow location sends 1 MiB/s).
    tokio::time::sleep(Duration::from_millis(700)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn web_download_source_killed_and_hung_mid_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let nginx = Nginx::start(&dir.path().join("http"), port);
    let payload = pseudo_random(6 << 20, 9);
    std::fs::write(dir.path().join("http/www/image.raw"), &payload).unwrap();
    let server = TestServer::start_with(|c| {
        c.auth = AuthMode::TrustedHeaders;
        c.import.web_download.allowed_networks = vec!["127.0.0.1".into()];
        c.import.web_download.allowed_ports = Vec::new();
        c.import.web_download.connect_timeout_s = 2;
    })
    .await;
    let data_dir = server.state.config.data_dir.clone();
    let admin = server.admin();
    let id = new_image(&admin).await;
    let slow = json!({"method": {"name": "web-download", "uri": nginx.url("/slow/image.raw")}});

    // Killed mid-transfer.
    assert_eq!(import(&admin, &id, slow.clone()).await.0, 202);
    wait_staged(&data_dir, &admin, &id).await;
    nginx.signal("-KILL");
    // The killed master may linger as a zombie (no init reaping here): the start script
    // would take it for running.
    let _ = std::fs::remove_file(dir.path().join("http/nginx.pid"));
    let image = wait_import(&admin, &id).await;
    let tasks = [last_task(&admin, &id).await];
    eprintln!(
        "source killed: image {}, task {}: {}",
        image["status"], tasks[0]["status"], tasks[0]["message"]
    );
    assert_eq!(image["status"], "queued", "{image}");
    assert_eq!(tasks[0]["status"], "failure");
    assert!(
        staging_files(&data_dir).is_empty(),
        "{:?}",
        staging_files(&data_dir)
    );

    // Restarted, then hung mid-transfer: bounded by connect_timeout_s (2 s).
    let nginx = Nginx::start(&dir.path().join("http"), port);
    assert_eq!(import(&admin, &id, slow).await.0, 202);
    wait_staged(&data_dir, &admin, &id).await;
    let started = Instant::now();
    nginx.signal("-STOP");
    let image = wait_import(&admin, &id).await;
    let took = started.elapsed();
    nginx.signal("-CONT");
    let tasks = [last_task(&admin, &id).await];
    eprintln!(
        "source hung: image {} after {took:?}, task {}: {}",
        image["status"], tasks[0]["status"], tasks[0]["message"]
    );
    assert_eq!(image["status"], "queued", "{image}");
    assert_eq!(tasks[0]["status"], "failure");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(
        staging_files(&data_dir).is_empty(),
        "{:?}",
        staging_files(&data_dir)
    );

    // The source is back: the same image imports with the right bytes.
    let fast = json!({"method": {"name": "web-download", "uri": nginx.url("/image.raw")}});
    assert_eq!(import(&admin, &id, fast).await.0, 202);
    let image = wait_import(&admin, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    let (code, got) = get_file(&admin, &id).await;
    assert_eq!(code, 200);
    assert_eq!(sha256(&got.unwrap()), sha256(&payload));
    let images: Vec<String> = std::fs::read_dir(data_dir.join("images"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(images, vec![id.clone()], "only the active image's file");
}
