//! Helpers for the metadata definitions tests: the fixture namespace files (Glance's
//! `etc/metadefs` format, written for Glass), loading them into a server's registry, and the
//! few requests [`Client`] has no shortcut for.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::Value;

use crate::{Client, TestServer, into_json};

/// `tests/fixtures/metadefs`: three namespace files.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/metadefs")
}

/// The namespaces the fixture files define.
pub const FIXTURE_NAMESPACES: [&str; 3] = [
    "GLASS::Test::ComputeLimits",
    "GLASS::Test::ImageHints",
    "GLASS::Test::Software",
];

/// Loads a directory of namespace files into the server's registry, as
/// `glass manage load-metadefs` does; the error (file, line, reason) as text.
pub async fn load(server: &TestServer, dir: &Path) -> Result<Vec<String>, String> {
    glass_host::manage::metadefs_files::load(&*server.state.registry, dir)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// Copies the fixture files into a fresh temporary directory (to add broken files to).
pub fn fixtures_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(fixtures_dir()).expect("fixtures") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    dir
}

impl Client {
    /// Like [`Client::request`], asking for errors as JSON (Glance's `{"message", ...}`).
    pub fn jrequest(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request(method, path)
            .header("Accept", "application/json")
    }

    pub async fn jget(&self, path: &str) -> (u16, Value) {
        into_json(self.jrequest(Method::GET, path).send().await.expect("GET")).await
    }

    pub async fn jpost(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json_with(Method::POST, path, body, None).await
    }

    pub async fn jput(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json_with(Method::PUT, path, body, None).await
    }

    /// A request without a body.
    pub async fn jsend(&self, method: Method, path: &str) -> (u16, Value) {
        into_json(self.jrequest(method, path).send().await.expect("send")).await
    }

    /// A request with a JSON body and one extra header.
    pub async fn send_json_with(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        header: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let mut rb = self.jrequest(method, path).json(body);
        if let Some((k, v)) = header {
            rb = rb.header(k, v);
        }
        into_json(rb.send().await.expect("send")).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.jsend(Method::DELETE, path).await
    }

    /// A raw body with a JSON content type (malformed JSON, empty bodies).
    pub async fn send_raw(&self, method: Method, path: &str, body: &str) -> (u16, Value) {
        let rb = self
            .jrequest(method, path)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        into_json(rb.send().await.expect("send")).await
    }
}
