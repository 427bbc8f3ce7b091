//! `glass replicate compare|livecopy|dump|load`: copies images — metadata and data — between
//! two services speaking the Images API v2 (Glass or Glance), or through a dump directory,
//! like Glance's `glance-replicator`. Every command is idempotent: an image already present
//! on the target with the same checksum is not copied again (only differing metadata is
//! patched), so a second run copies nothing. Data streams from source to target without a
//! temporary file and is checked against the source's checksum. `--every SECONDS` keeps
//! a target in sync on a schedule. Progress goes to stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use glass_images::properties::READ_ONLY;

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Report images of SOURCE missing from, or different on, TARGET.
    Compare { source: String, target: String },
    /// Copy images (metadata and data) from SOURCE to TARGET.
    Livecopy {
        source: String,
        target: String,
        /// Repeat every so many seconds, keeping TARGET in sync.
        #[arg(long)]
        every: Option<u64>,
    },
    /// Write SOURCE's images into DIR (one `<id>.json` and `<id>.img` each).
    Dump { source: String, dir: PathBuf },
    /// Copy the images of a dump DIR into TARGET.
    Load { dir: PathBuf, target: String },
}

/// Tokens for the two sides (`X-Auth-Token`), when they need one.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub source: Option<String>,
    pub target: Option<String>,
}

/// Attributes that are not copied: set by the target itself, or reserved for its import
/// machinery (`os_glance_*`).
fn copied(name: &str) -> bool {
    !(READ_ONLY.contains(&name) || name == "locations" || name.starts_with("os_glance_"))
}

/// The attributes of `image` a target should carry (id included).
fn replicated_metadata(image: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (name, value) in image.as_object().into_iter().flatten() {
        if name == "id" || copied(name) {
            out.insert(name.clone(), value.clone());
        }
    }
    out
}

/// Differences that matter between a source image and its copy.
fn differences(source: &Value, target: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for key in ["status", "checksum", "size", "os_hash_value"] {
        if source[key] != target[key] {
            found.push(format!("{key}: {} != {}", source[key], target[key]));
        }
    }
    let (s, t) = (replicated_metadata(source), replicated_metadata(target));
    for (name, value) in &s {
        let theirs = t.get(name).unwrap_or(&Value::Null);
        let equal = if name == "tags" {
            sorted(value) == sorted(theirs)
        } else {
            value == theirs
        };
        if !equal {
            found.push(format!("{name}: {value} != {theirs}"));
        }
    }
    for name in t.keys().filter(|n| !s.contains_key(*n)) {
        found.push(format!("{name}: only on the target"));
    }
    found
}

fn sorted(v: &Value) -> Vec<String> {
    let mut items: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    items.sort();
    items
}

/// One Images API v2 endpoint.
#[derive(Clone)]
struct Endpoint {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Endpoint {
    fn new(url: &str, token: Option<String>) -> Self {
        Endpoint {
            base: url.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/json");
        match &self.token {
            Some(t) => r.header("X-Auth-Token", t),
            None => r,
        }
    }

    async fn json(&self, r: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let response = r
            .send()
            .await
            .with_context(|| format!("{what} at {}", self.base))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{what} at {}: {status}: {}", self.base, body.trim());
        }
        Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Every image the caller can see, hidden ones and every visibility included.
    async fn list(&self) -> anyhow::Result<Vec<Value>> {
        let mut images = BTreeMap::new();
        for hidden in ["false", "true"] {
            let mut path = format!("/v2/images?visibility=all&os_hidden={hidden}&limit=1000");
            loop {
                let page = self
                    .json(self.request(reqwest::Method::GET, &path), "listing images")
                    .await?;
                for image in page["images"].as_array().into_iter().flatten() {
                    if let Some(id) = image["id"].as_str() {
                        images.insert(id.to_owned(), image.clone());
                    }
                }
                match page["next"].as_str() {
                    Some(next) if page["images"].as_array().is_some_and(|a| !a.is_empty()) => {
                        path = next.to_owned()
                    }
                    _ => break,
                }
            }
        }
        Ok(images.into_values().collect())
    }

    async fn get(&self, id: &str) -> anyhow::Result<Option<Value>> {
        let response = self
            .request(reqwest::Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await
            .with_context(|| format!("reading image {id} at {}", self.base))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "reading image {id} at {}: {status}: {}",
                self.base,
                body.trim()
            );
        }
        Ok(Some(serde_json::from_str(&body)?))
    }

    async fn create(&self, metadata: &BTreeMap<String, Value>) -> anyhow::Result<Value> {
        let r = self
            .request(reqwest::Method::POST, "/v2/images")
            .json(metadata);
        self.json(r, "creating an image").await
    }

    /// Makes the target's copyable attributes equal to `wanted` with one JSON patch.
    async fn sync_metadata(
        &self,
        current: &Value,
        wanted: &BTreeMap<String, Value>,
    ) -> anyhow::Result<bool> {
        let have = replicated_metadata(current);
        let mut ops = Vec::new();
        for (name, value) in wanted {
            if name == "id" || have.get(name) == Some(value) {
                continue;
            }
            if name == "tags" && have.get(name).is_some_and(|t| sorted(t) == sorted(value)) {
                continue;
            }
            let op = if have.contains_key(name) {
                "replace"
            } else {
                "add"
            };
            ops.push(json!({"op": op, "path": format!("/{name}"), "value": value}));
        }
        for name in have.keys().filter(|n| !wanted.contains_key(*n)) {
            ops.push(json!({"op": "remove", "path": format!("/{name}")}));
        }
        if ops.is_empty() {
            return Ok(false);
        }
        let id = wanted["id"].as_str().unwrap_or_default();
        let r = self
            .request(reqwest::Method::PATCH, &format!("/v2/images/{id}"))
            .header(
                "Content-Type",
                "application/openstack-images-v2.1-json-patch",
            )
            .body(Value::Array(ops).to_string());
        self.json(r, "updating an image").await?;
        Ok(true)
    }

    async fn download(&self, id: &str) -> anyhow::Result<reqwest::Response> {
        let response = self
            .request(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
            .header("Accept", "application/octet-stream")
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("downloading {id} from {}: {}", self.base, response.status());
        }
        Ok(response)
    }

    async fn upload(&self, id: &str, body: reqwest::Body) -> anyhow::Result<()> {
        let response = self
            .request(reqwest::Method::PUT, &format!("/v2/images/{id}/file"))
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            let status = response.status();
            bail!(
                "uploading {id} to {}: {status}: {}",
                self.base,
                response.text().await.unwrap_or_default().trim()
            );
        }
        Ok(())
    }
}

/// What a copy run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub created: usize,
    pub data_copied: usize,
    pub bytes: u64,
    pub metadata_updated: usize,
    pub unchanged: usize,
    pub failed: usize,
}

/// Runs a `glass replicate` command.
pub async fn run(action: Action, tokens: Tokens) -> anyhow::Result<()> {
    match action {
        Action::Compare { source, target } => {
            let source = Endpoint::new(&source, tokens.source);
            let target = Endpoint::new(&target, tokens.target);
            let found = compare(&source, &target).await?;
            if found.is_empty() {
                println!("no differences");
                Ok(())
            } else {
                for line in &found {
                    println!("{line}");
                }
                bail!("{} image(s) differ", found.len())
            }
        }
        Action::Livecopy {
            source,
            target,
            every,
        } => {
            let source = Endpoint::new(&source, tokens.source);
            let target = Endpoint::new(&target, tokens.target);
            loop {
                let report = livecopy(&source, &target).await?;
                println!("{report:?}");
                match every {
                    Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
                    None if report.failed > 0 => bail!("{} image(s) failed", report.failed),
                    None => return Ok(()),
                }
            }
        }
        Action::Dump { source, dir } => {
            let report = dump(&Endpoint::new(&source, tokens.source), &dir).await?;
            println!("{report:?}");
            Ok(())
        }
        Action::Load { dir, target } => {
            let report = load(&dir, &Endpoint::new(&target, tokens.target)).await?;
            println!("{report:?}");
            if report.failed > 0 {
                bail!("{} image(s) failed", report.failed)
            }
            Ok(())
        }
    }
}

/// One line per source image that is missing from, or differs on, the target.
async fn compare(source: &Endpoint, target: &Endpoint) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for image in source.list().await? {
        let id = image["id"].as_str().unwrap_or_default();
        match target.get(id).await? {
            None => found.push(format!("{id}: missing on the target")),
            Some(copy) => {
                let diff = differences(&image, &copy);
                if !diff.is_empty() {
                    found.push(format!("{id}: {}", diff.join("; ")));
                }
            }
        }
    }
    Ok(found)
}

/// Where an image's bytes come from during a copy.
enum DataFrom<'a> {
    Endpoint(&'a Endpoint),
    Dir(&'a Path),
}

async fn livecopy(source: &Endpoint, target: &Endpoint) -> anyhow::Result<CopyReport> {
    let images = source.list().await?;
    copy_all(&images, DataFrom::Endpoint(source), target).await
}

async fn copy_all(
    images: &[Value],
    from: DataFrom<'_>,
    target: &Endpoint,
) -> anyhow::Result<CopyReport> {
    let mut report = CopyReport::default();
    let total = images.len();
    for (n, image) in images.iter().enumerate() {
        let id = image["id"].as_str().unwrap_or_default();
        let name = image["name"].as_str().unwrap_or("");
        match copy_one(image, &from, target, &mut report).await {
            Ok(what) => eprintln!("[{}/{total}] {id} {name}: {what}", n + 1),
            Err(e) => {
                report.failed += 1;
                eprintln!("[{}/{total}] {id} {name}: FAILED: {e:#}", n + 1);
            }
        }
    }
    Ok(report)
}

async fn copy_one(
    image: &Value,
    from: &DataFrom<'_>,
    target: &Endpoint,
    report: &mut CopyReport,
) -> anyhow::Result<String> {
    let id = image["id"].as_str().context("image without id")?;
    let wanted = replicated_metadata(image);
    let existing = target.get(id).await?;
    let copy = match existing {
        Some(copy) => copy,
        None => {
            report.created += 1;
            target.create(&wanted).await?
        }
    };
    let mut what = Vec::new();
    if target.sync_metadata(&copy, &wanted).await? {
        report.metadata_updated += 1;
        what.push("metadata updated".to_owned());
    }
    let source_active = image["status"] == "active";
    if source_active && copy["status"] == "queued" {
        let size = image["size"].as_u64().unwrap_or(0);
        let started = Instant::now();
        let body = match from {
            DataFrom::Endpoint(source) => {
                reqwest::Body::wrap_stream(source.download(id).await?.bytes_stream())
            }
            DataFrom::Dir(dir) => {
                let file = tokio::fs::File::open(dir.join(format!("{id}.img"))).await?;
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file))
            }
        };
        target.upload(id, body).await?;
        let copied = target
            .get(id)
            .await?
            .context("image vanished after upload")?;
        if copied["checksum"] != image["checksum"] {
            bail!(
                "checksum after copy {} differs from the source's {}",
                copied["checksum"],
                image["checksum"]
            );
        }
        report.data_copied += 1;
        report.bytes += size;
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        what.push(format!(
            "{size} bytes copied ({:.0} MB/s)",
            size as f64 / secs / 1e6
        ));
    } else if source_active && copy["checksum"] != image["checksum"] {
        bail!(
            "the target's copy has checksum {} (status {}), the source {}: left alone",
            copy["checksum"],
            copy["status"],
            image["checksum"]
        );
    }
    if what.is_empty() {
        report.unchanged += 1;
        what.push("up to date".into());
    }
    Ok(what.join(", "))
}

/// Writes every image of `source` into `dir`: `<id>.json` and, for active images,
/// `<id>.img`, whose md5 is checked against the image's checksum. An image already dumped
/// with the same checksum is skipped.
async fn dump(source: &Endpoint, dir: &Path) -> anyhow::Result<CopyReport> {
    tokio::fs::create_dir_all(dir).await?;
    let images = source.list().await?;
    let mut report = CopyReport::default();
    let total = images.len();
    for (n, image) in images.iter().enumerate() {
        let id = image["id"].as_str().unwrap_or_default();
        let json_path = dir.join(format!("{id}.json"));
        let previous: Option<Value> = tokio::fs::read(&json_path)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if previous.as_ref() == Some(image) {
            report.unchanged += 1;
            eprintln!("[{}/{total}] {id}: up to date", n + 1);
            continue;
        }
        if image["status"] == "active"
            && previous.as_ref().map(|p| &p["checksum"]) != Some(&image["checksum"])
        {
            let bytes = dump_data(source, image, &dir.join(format!("{id}.img"))).await?;
            report.data_copied += 1;
            report.bytes += bytes;
        }
        tokio::fs::write(&json_path, serde_json::to_vec_pretty(image)?).await?;
        report.created += 1;
        eprintln!("[{}/{total}] {id}: dumped", n + 1);
    }
    Ok(report)
}

async fn dump_data(source: &Endpoint, image: &Value, path: &Path) -> anyhow::Result<u64> {
    let id = image["id"].as_str().unwrap_or_default();
    let partial = path.with_extension("img.partial");
    let mut file = tokio::fs::File::create(&partial).await?;
    let mut md5 = Md5::new();
    let mut size = 0u64;
    let mut stream = source.download(id).await?.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        md5.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    let checksum = hex::encode(md5.finalize());
    if image["checksum"].as_str().is_some_and(|c| c != checksum) {
        let _ = tokio::fs::remove_file(&partial).await;
        bail!(
            "{id}: downloaded data has md5 {checksum}, the image says {}",
            image["checksum"]
        );
    }
    tokio::fs::rename(&partial, path).await?;
    Ok(size)
}

/// Copies a dump directory into `target`.
async fn load(dir: &Path, target: &Endpoint) -> anyhow::Result<CopyReport> {
    let mut images = Vec::new();
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .with_context(|| format!("reading {}", dir.display()))?;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = tokio::fs::read(&path).await?;
            images.push(
                serde_json::from_slice::<Value>(&bytes)
                    .with_context(|| format!("parsing {}", path.display()))?,
            );
        }
    }
    images.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    copy_all(&images, DataFrom::Dir(dir), target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_ignore_server_set_fields_and_tag_order() {
        let a = json!({"id": "x", "name": "n", "status": "active", "checksum": "c", "size": 1,
            "tags": ["a", "b"], "created_at": "t1", "self": "/v2/images/x", "hw": "1"});
        let mut b = a.clone();
        b["created_at"] = json!("t2");
        b["tags"] = json!(["b", "a"]);
        assert!(differences(&a, &b).is_empty());
        b["hw"] = json!("2");
        b["os_glance_import_task"] = json!("ignored");
        assert_eq!(differences(&a, &b).len(), 1, "{:?}", differences(&a, &b));
    }
}
