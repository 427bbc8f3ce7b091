//! The store conformance suite (`glass_tests::conformance`) run against every store driver
//! and its real backend (`glass_tests::backends`: SeaweedFS for S3, Swift with tempauth,
//! nginx for HTTP); the failure modes of remote stores (wrong credentials, unreachable or
//! silent server, host not granted); and large images streamed through S3 and Swift with
//! the test process's memory watched.
//!
//! A driver that is not built yet (neither built in nor in the plugins' build output) is
//! skipped with a message, unless `GLASS_CONFORMANCE_STRICT=1` (`scripts/test` sets it).
//! `GLASS_DRIVER_STORE_S3=path.wasm` (…`_SWIFT`, `_HTTP`, `_FS`) tests another build.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use glass_runtime::store::{ImageStore, StoreError};
use glass_runtime::{
    ComponentSource, Grants, Limits, Runtime, RuntimeConfig, StoreSpec, WasmStore,
};
use glass_tests::backends::{self, Backend};
use glass_tests::conformance::{self, Driver, Known, Pattern, check_pattern};
use tokio::sync::RwLock;
use uuid::Uuid;

const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Helpers

/// Tests that measure the process's memory take this for writing; every other test of this
/// module takes it for reading, so nothing else of it runs while memory is measured. The
/// other modules of the test binary do not know it: the measuring tests also run alone in a
/// process of their own ([`alone_in_a_process`]).
static MEMORY: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

fn runtime() -> Runtime {
    Runtime::with_config(RuntimeConfig {
        max_concurrent_calls: 32,
        max_memory_bytes: 256 << 20,
        ..RuntimeConfig::new(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"))
    })
    .expect("runtime")
}

fn limits(network_timeout: Duration) -> Limits {
    Limits {
        network_timeout,
        ..Limits::default()
    }
}

/// The component of driver `name` (`store-s3`): `GLASS_DRIVER_STORE_S3` if set, else the
/// built-in one, else the one the plugins' build left beside this test's target directory.
/// `None` (the test is skipped) if there is none, unless `GLASS_CONFORMANCE_STRICT=1`.
fn driver_source(name: &str) -> Option<ComponentSource> {
    let var = format!("GLASS_DRIVER_{}", name.to_uppercase().replace('-', "_"));
    if let Some(path) = std::env::var_os(&var).filter(|p| !p.is_empty()) {
        return Some(ComponentSource::Path(path.into()));
    }
    if let Some(source) = ComponentSource::builtin(name) {
        return Some(source);
    }
    // target/<profile>/deps/<this test> → target/wasm-plugins/wasm32-wasip2/release/
    let built = std::env::current_exe().ok().and_then(|exe| {
        let target = exe.parent()?.parent()?.parent()?.to_path_buf();
        let path = target
            .join("wasm-plugins/wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        path.is_file().then_some(path)
    });
    if let Some(path) = built {
        return Some(ComponentSource::Path(path));
    }
    let strict = std::env::var("GLASS_CONFORMANCE_STRICT").is_ok_and(|v| v == "1");
    assert!(
        !strict,
        "driver {name} is not built (GLASS_CONFORMANCE_STRICT=1)"
    );
    eprintln!("SKIPPED: driver {name} is neither built in nor built (set {var}=<component>)");
    None
}

async fn load(
    rt: &Runtime,
    id: &str,
    component: ComponentSource,
    grants: Grants,
    limits: Limits,
) -> Arc<WasmStore> {
    rt.load_store(StoreSpec {
        id: id.into(),
        component,
        grants,
        limits,
    })
    .await
    .unwrap_or_else(|e| panic!("loading store {id}: {e:#}"))
}

/// Failed checks, collected so that one test reports all of them.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, result: Result<(), String>) {
        if let Err(e) = result {
            self.0.push(e);
        }
    }

    fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} failures:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A short unique lowercase name for a bucket or container of this run.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A server that accepts connections and never answers: requests to it can only time out.
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

// ---------------------------------------------------------------------------------------
// Drivers

/// The bucket every S3 test of this process uses, each under its own prefix. One bucket, not
/// one per test: SeaweedFS gives each bucket volumes of its own, and has few to give.
static S3_BUCKET: LazyLock<String> = LazyLock::new(|| unique("glass-test"));

struct S3Config {
    endpoint: String,
    access_key: String,
    secret_key: String,
    bucket: String,
    prefix: String,
    part_size_mb: u64,
}

impl S3Config {
    fn new(s3: &Backend, prefix: &str, part_size_mb: u64) -> Self {
        Self {
            endpoint: s3.var("S3_ENDPOINT").to_owned(),
            access_key: s3.var("S3_ACCESS_KEY").to_owned(),
            secret_key: s3.var("S3_SECRET_KEY").to_owned(),
            bucket: S3_BUCKET.clone(),
            prefix: prefix.to_owned(),
            part_size_mb,
        }
    }

    fn grants(&self, hosts: Vec<String>) -> Grants {
        let part = self.part_size_mb.to_string();
        Grants {
            dir: None,
            hosts,
            settings: settings(&[
                ("endpoint", &self.endpoint),
                ("bucket", &self.bucket),
                ("region", "us-east-1"),
                ("access_key", &self.access_key),
                ("secret_key", &self.secret_key),
                ("addressing", "path"),
                ("part_size_mb", &part),
                ("large_object_threshold_mb", &part),
                ("create_bucket", "true"),
                ("prefix", &self.prefix),
            ]),
        }
    }

    async fn load(
        &self,
        rt: &Runtime,
        source: ComponentSource,
        timeout: Duration,
    ) -> Arc<WasmStore> {
        let hosts = vec![backends::authority(&self.endpoint)];
        load(rt, "s3", source, self.grants(hosts), limits(timeout)).await
    }

    /// curl arguments that sign a request with these credentials.
    fn signed(&self) -> Vec<String> {
        [
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &format!("{}:{}", self.access_key, self.secret_key),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// What is stored under the prefix: objects and unfinished multipart uploads (a failed
    /// upload must have been aborted), as `(key, upload id)`. Asked by curl, independently of
    /// the driver.
    fn leftovers(&self) -> Result<Vec<(String, Option<String>)>, String> {
        let base = format!("{}/{}", self.endpoint, self.bucket);
        let mut found = Vec::new();
        // Written as SigV4 canonicalizes it (curl signs the query as written): encoded,
        // sorted, every parameter with `=`.
        let prefix = self.prefix.replace('/', "%2F");
        let list = format!("{base}?list-type=2&prefix={prefix}");
        for key in xml_values(&curl(&self.signed(), &["-f", &list])?, "Key") {
            found.push((key, None));
        }
        let uploads = format!("{base}?prefix={prefix}&uploads=");
        let body = curl(&self.signed(), &["-f", &uploads])?;
        for upload in body.split("<Upload>").skip(1) {
            let key = xml_values(upload, "Key").into_iter().next();
            let id = xml_values(upload, "UploadId").into_iter().next();
            found.push((key.unwrap_or_default(), id));
        }
        Ok(found)
    }
}

/// The text of every `<tag>` element of a small XML answer.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    xml.split(&format!("<{tag}>"))
        .skip(1)
        .filter_map(|s| {
            s.split_once(&format!("</{tag}>"))
                .map(|(v, _)| v.to_owned())
        })
        .collect()
}

/// Holds the shared test bucket for one test: on drop removes what is left under the test's
/// prefix, and the bucket itself once no test of this process holds it.
struct S3Bucket {
    config: S3Config,
}

static S3_HOLDERS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl S3Bucket {
    fn hold(s3: &Backend, prefix: &str) -> Self {
        *S3_HOLDERS.lock().unwrap() += 1;
        Self {
            config: S3Config::new(s3, prefix, 5),
        }
    }
}

impl Drop for S3Bucket {
    fn drop(&mut self) {
        let c = &self.config;
        let base = format!("{}/{}", c.endpoint, c.bucket);
        for (key, upload) in c.leftovers().unwrap_or_default() {
            let url = match upload {
                Some(id) => format!("{base}/{key}?uploadId={id}"),
                None => format!("{base}/{key}"),
            };
            let _ = curl(&c.signed(), &["-X", "DELETE", &url]);
        }
        let mut holders = S3_HOLDERS.lock().unwrap();
        *holders -= 1;
        if *holders == 0 {
            let _ = curl(&c.signed(), &["-X", "DELETE", &base]);
        }
    }
}

struct SwiftConfig {
    auth_url: String,
    user: String,
    key: String,
    container: String,
    segment_size_mb: u64,
    token_dir: tempfile::TempDir,
}

impl SwiftConfig {
    fn new(swift: &Backend, container: &str, segment_size_mb: u64) -> Self {
        Self {
            auth_url: swift.var("SWIFT_AUTH_URL").to_owned(),
            user: swift.var("SWIFT_USER").to_owned(),
            key: swift.var("SWIFT_KEY").to_owned(),
            container: container.to_owned(),
            segment_size_mb,
            token_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn grants(&self, hosts: Vec<String>) -> Grants {
        let segment = self.segment_size_mb.to_string();
        Grants {
            dir: Some(self.token_dir.path().to_path_buf()),
            hosts,
            settings: settings(&[
                ("auth_version", "1"),
                ("auth_url", &self.auth_url),
                ("user", &self.user),
                ("key", &self.key),
                ("container", &self.container),
                ("create_container", "true"),
                ("large_object_size_mb", &segment),
                ("segment_size_mb", &segment),
            ]),
        }
    }

    async fn load(
        &self,
        rt: &Runtime,
        source: ComponentSource,
        timeout: Duration,
    ) -> Arc<WasmStore> {
        let hosts = vec![backends::authority(&self.auth_url)];
        load(rt, "swift", source, self.grants(hosts), limits(timeout)).await
    }

    /// A token and the storage URL, through tempauth, independently of the driver.
    fn token(&self) -> Result<(String, String), String> {
        let user = format!("X-Auth-User: {}", self.user);
        let key = format!("X-Auth-Key: {}", self.key);
        let headers = curl(
            &[],
            &[
                "-f",
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-H",
                &user,
                "-H",
                &key,
                &self.auth_url,
            ],
        )?;
        let header = |name: &str| {
            headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        match (header("x-auth-token"), header("x-storage-url")) {
            (Some(t), Some(s)) => Ok((format!("X-Auth-Token: {t}"), s)),
            _ => Err(format!("no token in the auth response: {headers}")),
        }
    }

    /// The objects in the container and in any container whose name starts with it
    /// (segments), as `container/object`.
    fn leftovers(&self) -> Result<Vec<String>, String> {
        let (auth, storage) = self.token()?;
        let containers = curl(&[], &["-f", "-H", &auth, &storage])?;
        let mut found = Vec::new();
        for container in containers
            .lines()
            .filter(|c| c.starts_with(&self.container))
        {
            let objects = curl(&[], &["-f", "-H", &auth, &format!("{storage}/{container}")])?;
            found.extend(objects.lines().map(|o| format!("{container}/{o}")));
        }
        Ok(found)
    }
}

/// A test's Swift containers: deleted, with what is left in them, on drop.
struct SwiftContainers {
    config: SwiftConfig,
}

impl SwiftContainers {
    fn hold(swift: &Backend, container: &str) -> Self {
        Self {
            config: SwiftConfig::new(swift, container, 1),
        }
    }
}

impl Drop for SwiftContainers {
    fn drop(&mut self) {
        let c = &self.config;
        let Ok((auth, storage)) = c.token() else {
            return;
        };
        for object in c.leftovers().unwrap_or_default() {
            let _ = curl(
                &[],
                &["-X", "DELETE", "-H", &auth, &format!("{storage}/{object}")],
            );
        }
        let containers = curl(&[], &["-f", "-H", &auth, &storage]).unwrap_or_default();
        for container in containers.lines().filter(|n| n.starts_with(&c.container)) {
            let _ = curl(
                &[],
                &[
                    "-X",
                    "DELETE",
                    "-H",
                    &auth,
                    &format!("{storage}/{container}"),
                ],
            );
        }
    }
}

fn http_grants(hosts: Vec<String>) -> Grants {
    Grants {
        dir: None,
        hosts,
        settings: Vec::new(),
    }
}

/// `curl` with `pre` and `args`; its stdout, or the failure. Synchronous (also used in
/// `Drop`); every call is short.
fn curl(pre: &[String], args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(pre)
        .args(args)
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "curl {args:?}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------------------------------
// The conformance suite, per driver

/// The servers answer, independently of any driver (tells a driver failure from a backend
/// one): a signed S3 request, a Swift token, the HTTP fixture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_answer() {
    let _shared = MEMORY.read().await;
    let (s3, swift, http) = (
        backends::s3().await,
        backends::swift().await,
        backends::http().await,
    );
    let mut failed = Failures::default();
    let config = S3Config::new(s3, "unused/", 5);
    let endpoint = s3.var("S3_ENDPOINT");
    failed.check(curl(&config.signed(), &["-f", "-o", "/dev/null", endpoint]).map(drop));
    let wrong = S3Config {
        secret_key: "wrong".into(),
        ..S3Config::new(s3, "unused/", 5)
    };
    let code = curl(
        &wrong.signed(),
        &["-o", "/dev/null", "-w", "%{http_code}", endpoint],
    );
    failed.check(match code {
        Ok(c) if c == "403" => Ok(()),
        other => Err(format!("S3 with a wrong secret: {other:?}, expected 403")),
    });
    failed.check(SwiftConfig::new(swift, "unused", 1).token().map(drop));
    let fixture = PathBuf::from(http.var("HTTP_DOC_ROOT")).join("test-512MiB.bin");
    let want = std::fs::metadata(fixture)
        .map(|m| m.len().to_string())
        .map_err(|e| e.to_string());
    let head = [
        "-f",
        "-I",
        "-o",
        "/dev/null",
        "-w",
        "%header{content-length}",
    ];
    let got = curl(&[], &[&head[..], &[http.var("HTTP_TEST_OBJECT")]].concat());
    failed.check(match (want, got) {
        (Ok(w), Ok(g)) if w == g => Ok(()),
        other => Err(format!("HTTP fixture size: {other:?}")),
    });
    failed.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_conformance() {
    let _shared = MEMORY.read().await;
    let Some(source) = driver_source("store-fs") else {
        return;
    };
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let grants = |dir: Option<&Path>| Grants {
        dir: dir.map(Path::to_path_buf),
        ..Grants::default()
    };
    let store = load(
        &rt,
        "file",
        source.clone(),
        grants(Some(dir.path())),
        Limits::default(),
    )
    .await;
    // Without its directory store-fs can reach nothing.
    let offline = load(&rt, "file-offline", source, grants(None), Limits::default()).await;
    let report = conformance::run(
        Driver::read_write(store.clone())
            .raw(store)
            .offline(offline)
            .part_size(4 * MIB),
    )
    .await;
    report.assert_passed();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "store-fs left files behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_conformance() {
    let _shared = MEMORY.read().await;
    let Some(source) = driver_source("store-s3") else {
        return;
    };
    let s3 = backends::s3().await;
    let _bucket = S3Bucket::hold(s3, "conformance/");
    let rt = runtime();
    let config = S3Config::new(s3, "conformance/", 5);
    let store = config
        .load(&rt, source.clone(), Duration::from_secs(10))
        .await;
    let offline = {
        let endpoint = format!("http://127.0.0.1:{}", closed_port());
        let offline = S3Config {
            endpoint: endpoint.clone(),
            ..S3Config::new(s3, "conformance/", 5)
        };
        offline.load(&rt, source, Duration::from_secs(2)).await
    };
    let report = conformance::run(
        Driver::read_write(store.clone())
            .raw(store)
            .offline(offline)
            .part_size(5 * MIB),
    )
    .await;
    let left = config.leftovers();
    report.assert_passed();
    assert_eq!(left, Ok(vec![]), "store-s3 left data in its bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swift_conformance() {
    let _shared = MEMORY.read().await;
    let Some(source) = driver_source("store-swift") else {
        return;
    };
    let swift = backends::swift().await;
    let container = unique("glass-conformance");
    let _containers = SwiftContainers::hold(swift, &container);
    let rt = runtime();
    let config = SwiftConfig::new(swift, &container, 1);
    let store = config
        .load(&rt, source.clone(), Duration::from_secs(10))
        .await;
    // (Its config lives as long as the store: it holds the granted token directory.)
    let offline_config = SwiftConfig {
        auth_url: format!("http://127.0.0.1:{}/auth/v1.0", closed_port()),
        ..SwiftConfig::new(swift, &config.container, 1)
    };
    let offline = offline_config
        .load(&rt, source, Duration::from_secs(2))
        .await;
    let report = conformance::run(
        Driver::read_write(store.clone())
            .raw(store)
            .offline(offline)
            .part_size(MIB),
    )
    .await;
    let left = config.leftovers();
    report.assert_passed();
    assert_eq!(left, Ok(vec![]), "store-swift left objects behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_conformance() {
    let _shared = MEMORY.read().await;
    let Some(source) = driver_source("store-http") else {
        return;
    };
    let http = backends::http().await;
    let rt = runtime();
    let base = http.var("HTTP_BASE_URL").trim_end_matches('/').to_owned();
    let hosts = vec![http.authority("HTTP_BASE_URL")];
    let store = load(
        &rt,
        "http",
        source,
        http_grants(hosts),
        limits(Duration::from_secs(10)),
    )
    .await;
    let object = http.var("HTTP_TEST_OBJECT").to_owned();
    let copy = PathBuf::from(http.var("HTTP_DOC_ROOT")).join("test-512MiB.bin");
    let known = Known {
        location: object.clone(),
        copy: copy.clone(),
        full_read: false, // done below against the published sha256
    };
    let missing = format!("{base}/no-such-image-{}.bin", Uuid::new_v4());
    let report = conformance::run(Driver::read_only(store.clone(), known, missing)).await;

    // The whole 512 MiB through the driver, against the sha256 published beside it.
    let begun = Instant::now();
    let want = std::fs::read_to_string(copy.with_extension("bin.sha256")).unwrap();
    let want = want.split_whitespace().next().unwrap().to_owned();
    let got = sha256_of(store.get(&object, 0, None).await.unwrap()).await;
    eprintln!(
        "store-http: full read of 512 MiB in {:.1} s",
        begun.elapsed().as_secs_f64()
    );
    report.assert_passed();
    assert_eq!(got, want, "sha256 of the fixture read through store-http");
}

/// The sha256 of a stream, by `sha256sum` (the bytes pass through, never held).
async fn sha256_of(mut reader: glass_runtime::store::ByteReader) -> String {
    use std::process::Stdio;
    let mut child = tokio::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::copy(&mut reader, &mut stdin)
        .await
        .expect("stream");
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// Failures of remote stores: a clear error in bounded time, never a hang.

/// Runs `call`, which must fail as `want` says within `within`.
async fn fails_within<T>(
    what: &str,
    within: Duration,
    want: impl Fn(&StoreError) -> bool,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<(), String> {
    let begun = Instant::now();
    // A hang shows as a failure, not as a stuck test.
    let outcome = tokio::time::timeout(within + Duration::from_secs(30), call)
        .await
        .map(|r| r.map(drop));
    let elapsed = begun.elapsed();
    eprintln!("{what}: {outcome:?} after {:.2} s", elapsed.as_secs_f64());
    match outcome {
        Err(_) => Err(format!("{what}: still running after {elapsed:?}")),
        Ok(Err(e)) if want(&e) && elapsed <= within => Ok(()),
        Ok(Err(e)) if want(&e) => Err(format!("{what}: {e:?} but only after {elapsed:?}")),
        Ok(Err(e)) => Err(format!("{what}: {e:?} after {elapsed:?}")),
        Ok(Ok(())) => Err(format!("{what}: succeeded")),
    }
}

fn denied(e: &StoreError) -> bool {
    matches!(e, StoreError::AccessDenied(_))
}

fn unavailable(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_))
}

fn small() -> glass_runtime::store::ByteReader {
    Box::pin(Pattern::new(1, 1000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_failures_are_clear_and_bounded() {
    let _shared = MEMORY.read().await;
    let rt = runtime();
    let timeout = Duration::from_secs(2);
    // Connecting, first byte, between bytes: a few network timeouts at most.
    let bound = 4 * timeout;
    let (silent, _server) = silent_server().await;
    let mut failed = Failures::default();
    let mut check = |r: Result<(), String>| failed.check(r);

    if let Some(source) = driver_source("store-s3") {
        let s3 = backends::s3().await;
        let _bucket = S3Bucket::hold(s3, "failures/");
        let good = S3Config::new(s3, "failures/", 5);
        let good_store = good.load(&rt, source.clone(), timeout).await;
        let stored = good_store.add(Uuid::new_v4(), small(), Some(1000)).await;
        let location = stored
            .as_ref()
            .map(|s| s.location.clone())
            .unwrap_or_default();
        check(
            stored
                .map(drop)
                .map_err(|e| format!("s3 add with good credentials: {e:?}")),
        );

        let wrong = S3Config {
            secret_key: "wrong-secret".into(),
            ..S3Config::new(s3, "failures/", 5)
        };
        let store = wrong.load(&rt, source.clone(), timeout).await;
        check(
            fails_within(
                "s3 wrong secret: add",
                bound,
                denied,
                store.add(Uuid::new_v4(), small(), Some(1000)),
            )
            .await,
        );
        check(
            fails_within(
                "s3 wrong secret: size",
                bound,
                denied,
                store.size(&location),
            )
            .await,
        );
        check(
            fails_within(
                "s3 wrong secret: get",
                bound,
                denied,
                store.get(&location, 0, None),
            )
            .await,
        );

        let readonly = S3Config {
            access_key: s3.var("S3_READONLY_ACCESS_KEY").into(),
            secret_key: s3.var("S3_READONLY_SECRET_KEY").into(),
            ..S3Config::new(s3, "failures/", 5)
        };
        let store = readonly.load(&rt, source.clone(), timeout).await;
        check(
            fails_within(
                "s3 read-only key: add",
                bound,
                denied,
                store.add(Uuid::new_v4(), small(), Some(1000)),
            )
            .await,
        );

        for (what, port) in [("closed port", closed_port()), ("silent server", silent)] {
            let config = S3Config {
                endpoint: format!("http://127.0.0.1:{port}"),
                ..S3Config::new(s3, "failures/", 5)
            };
            let store = config.load(&rt, source.clone(), timeout).await;
            check(
                fails_within(
                    &format!("s3 {what}: add"),
                    bound,
                    unavailable,
                    store.add(Uuid::new_v4(), small(), None),
                )
                .await,
            );
            check(
                fails_within(
                    &format!("s3 {what}: size"),
                    bound,
                    unavailable,
                    store.size(&location),
                )
                .await,
            );
        }

        // Endpoint right, but the operator granted another host.
        let store = load(
            &rt,
            "s3-ungranted",
            source,
            good.grants(vec!["127.0.0.1:1".into()]),
            limits(timeout),
        )
        .await;
        check(
            fails_within(
                "s3 host not granted: add",
                bound,
                denied,
                store.add(Uuid::new_v4(), small(), Some(1000)),
            )
            .await,
        );
        check(
            fails_within(
                "s3 host not granted: size",
                bound,
                denied,
                store.size(&location),
            )
            .await,
        );
        let _ = good_store.delete(&location).await;
    }

    if let Some(source) = driver_source("store-swift") {
        let swift = backends::swift().await;
        let container = unique("glass-failures");
        let _containers = SwiftContainers::hold(swift, &container);
        let good = SwiftConfig::new(swift, &container, 1);
        let good_store = good.load(&rt, source.clone(), timeout).await;
        let stored = good_store.add(Uuid::new_v4(), small(), Some(1000)).await;
        let location = stored
            .as_ref()
            .map(|s| s.location.clone())
            .unwrap_or_default();
        check(
            stored
                .map(drop)
                .map_err(|e| format!("swift add with good credentials: {e:?}")),
        );

        let wrong = SwiftConfig {
            key: "wrong-key".into(),
            ..SwiftConfig::new(swift, &good.container, 1)
        };
        let store = wrong.load(&rt, source.clone(), timeout).await;
        check(
            fails_within(
                "swift wrong key: add",
                bound,
                denied,
                store.add(Uuid::new_v4(), small(), Some(1000)),
            )
            .await,
        );
        check(
            fails_within(
                "swift wrong key: size",
                bound,
                denied,
                store.size(&location),
            )
            .await,
        );

        for (what, port) in [("closed port", closed_port()), ("silent server", silent)] {
            let config = SwiftConfig {
                auth_url: format!("http://127.0.0.1:{port}/auth/v1.0"),
                ..SwiftConfig::new(swift, &good.container, 1)
            };
            let store = config.load(&rt, source.clone(), timeout).await;
            check(
                fails_within(
                    &format!("swift {what}: add"),
                    bound,
                    unavailable,
                    store.add(Uuid::new_v4(), small(), None),
                )
                .await,
            );
            check(
                fails_within(
                    &format!("swift {what}: size"),
                    bound,
                    unavailable,
                    store.size(&location),
                )
                .await,
            );
        }

        let store = load(
            &rt,
            "swift-ungranted",
            source,
            good.grants(vec!["127.0.0.1:1".into()]),
            limits(timeout),
        )
        .await;
        check(
            fails_within(
                "swift host not granted: add",
                bound,
                denied,
                store.add(Uuid::new_v4(), small(), Some(1000)),
            )
            .await,
        );
        let _ = good_store.delete(&location).await;
    }

    if let Some(source) = driver_source("store-http") {
        let http = backends::http().await;
        let object = http.var("HTTP_TEST_OBJECT").to_owned();
        let granted = vec![http.authority("HTTP_BASE_URL")];
        let store = load(
            &rt,
            "http",
            source.clone(),
            http_grants(granted),
            limits(timeout),
        )
        .await;
        for (what, port) in [("closed port", closed_port()), ("silent server", silent)] {
            let grants = http_grants(vec![format!("127.0.0.1:{port}")]);
            let store = load(&rt, "http-down", source.clone(), grants, limits(timeout)).await;
            let url = format!("http://127.0.0.1:{port}/image.bin");
            check(
                fails_within(
                    &format!("http {what}: size"),
                    bound,
                    unavailable,
                    store.size(&url),
                )
                .await,
            );
            check(
                fails_within(
                    &format!("http {what}: get"),
                    bound,
                    unavailable,
                    store.get(&url, 0, None),
                )
                .await,
            );
        }
        // A URL on a host the store was not granted.
        let elsewhere = format!("http://127.0.0.1:{}/image.bin", closed_port());
        check(
            fails_within(
                "http host not granted: size",
                bound,
                denied,
                store.size(&elsewhere),
            )
            .await,
        );
        check(
            fails_within(
                "http host not granted: get",
                bound,
                denied,
                store.get(&elsewhere, 0, None),
            )
            .await,
        );
        // The /slow/ path trickles at 1 MiB/s: slow is not dead, it must not time out.
        let slow = object.replace("/test-512MiB.bin", "/slow/test-512MiB.bin");
        check(match store.get(&slow, 0, Some(3 * MIB)).await {
            Ok(reader) => check_ok_len(reader, 3 * MIB)
                .await
                .map_err(|e| format!("http slow get: {e}")),
            Err(e) => Err(format!("http slow get: {e:?}")),
        });
    }

    failed.assert_none();
}

async fn check_ok_len(
    mut reader: glass_runtime::store::ByteReader,
    want: u64,
) -> Result<(), String> {
    let n = tokio::io::copy(&mut reader, &mut tokio::io::sink())
        .await
        .map_err(|e| e.to_string())?;
    if n == want {
        Ok(())
    } else {
        Err(format!("{n} bytes, expected {want}"))
    }
}

// ---------------------------------------------------------------------------------------
// Large images: streamed through, byte-identical, memory flat.

/// RSS now and the peak since the last reset, in bytes (`/proc/self/status`).
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak RSS to the current RSS (Linux ≥ 4.0).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Set in the child process a memory test reruns itself in.
const ALONE: &str = "GLASS_TEST_ALONE";

/// The tests of every module share this binary's process, and the RSS measured here is the
/// process's: a memory test reruns itself as the only test of a child process of the same
/// binary (`--exact`, `GLASS_TEST_ALONE=1`) and passes if that run passed. `true` in that
/// child (measure here), `false` in the parent once the child passed.
async fn alone_in_a_process(test: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    // libtest names a test by its path without the crate: `store_conformance::<test>`.
    let module = module_path!();
    let path = format!(
        "{}::{test}",
        module.split_once("::").map_or(module, |(_, m)| m)
    );
    let out = tokio::process::Command::new(std::env::current_exe().expect("current exe"))
        .args([path.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .output()
        .await
        .expect("run the test in a child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{path} failed in its own process");
    assert!(
        stdout.contains(" 1 passed;"),
        "{path} did not run in its own process"
    );
    false
}

/// Uploads `len` generated bytes without a size hint (the case where a store must not
/// buffer what it does not know the end of), downloads them, compares byte by byte and
/// checks the process's peak RSS grew by less than 64 MiB.
async fn big_round_trip(store: Arc<WasmStore>, len: u64) {
    let name = store.info().driver;
    let id = Uuid::new_v4();
    reset_peak();
    let (before, _) = memory();
    let begun = Instant::now();
    let stored = store
        .add(id, Box::pin(Pattern::new(77, len)), None)
        .await
        .unwrap_or_else(|e| panic!("{name}: add of {} MiB: {e:?}", len / MIB));
    let up = begun.elapsed();
    assert_eq!(stored.size, len);
    assert_eq!(store.size(&stored.location).await.unwrap(), len);
    let begun = Instant::now();
    let reader = store.get(&stored.location, 0, None).await.unwrap();
    let got = check_pattern(reader, 77, 0).await;
    let down = begun.elapsed();
    let (after, peak) = memory();
    store.delete(&stored.location).await.unwrap();
    let rate = |d: Duration| len as f64 / MIB as f64 / d.as_secs_f64();
    eprintln!(
        "{name}: {} MiB up {:.1} s ({:.0} MiB/s), down {:.1} s ({:.0} MiB/s); RSS {} → {} MiB, peak {} MiB",
        len / MIB,
        up.as_secs_f64(),
        rate(up),
        down.as_secs_f64(),
        rate(down),
        before / MIB,
        after / MIB,
        peak / MIB
    );
    assert_eq!(got, Ok(len), "{name}: download differs");
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 64 * MIB,
        "{name}: peak RSS grew by {} MiB moving {} MiB",
        growth / MIB,
        len / MIB
    );
}

async fn big_s3(len: u64) {
    let Some(source) = driver_source("store-s3") else {
        return;
    };
    let s3 = backends::s3().await;
    let _alone = MEMORY.write().await;
    let rt = runtime();
    let _bucket = S3Bucket::hold(s3, "big/");
    let config = S3Config::new(s3, "big/", 5);
    let store = config.load(&rt, source, Duration::from_secs(30)).await;
    big_round_trip(store, len).await;
}

async fn big_swift(len: u64) {
    let Some(source) = driver_source("store-swift") else {
        return;
    };
    let swift = backends::swift().await;
    let _alone = MEMORY.write().await;
    let rt = runtime();
    // Swift caps a static large object at 1000 segments: 8 MiB segments for up to ~8 GiB.
    let container = unique("glass-big");
    let _containers = SwiftContainers::hold(swift, &container);
    let config = SwiftConfig::new(swift, &container, 8);
    let store = config.load(&rt, source, Duration::from_secs(30)).await;
    big_round_trip(store, len).await;
}

/// The control: the same measurement with the file store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_256_mib_streamed_memory_flat() {
    if !alone_in_a_process("fs_256_mib_streamed_memory_flat").await {
        return;
    }
    let Some(source) = driver_source("store-fs") else {
        return;
    };
    let _alone = MEMORY.write().await;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let grants = Grants {
        dir: Some(dir.path().to_path_buf()),
        ..Grants::default()
    };
    let store = load(&rt, "file", source, grants, Limits::default()).await;
    big_round_trip(store, 256 * MIB).await;
}

/// The size of the large-image tests: 1 GiB (the acceptance criterion), or
/// `GLASS_STREAM_MIB` for a quicker local run. Measured on the shared 2-core machine (debug
/// build): S3 ≈ 47 s, Swift ≈ 36 s.
fn stream_len() -> u64 {
    std::env::var("GLASS_STREAM_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
        * MIB
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_1_gib_streamed_memory_flat() {
    if !alone_in_a_process("s3_1_gib_streamed_memory_flat").await {
        return;
    }
    big_s3(stream_len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swift_1_gib_streamed_memory_flat() {
    if !alone_in_a_process("swift_1_gib_streamed_memory_flat").await {
        return;
    }
    big_swift(stream_len()).await;
}
