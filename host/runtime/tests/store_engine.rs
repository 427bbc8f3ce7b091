//! Engine-limit and contract tests of the plugin runtime with real components: the built-in
//! `store-fs` and the misbehaving fixtures from `plugins/fixtures` (built by host/build.rs).

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use glass_runtime::store::{ByteReader, ImageStore, StoreError};
use glass_runtime::{
    ComponentSource, Grants, Limits, Runtime, RuntimeConfig, StoreSpec, WasmStore,
};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Helpers

/// Compiled components are shared by every test run (compiling in a debug build is slow).
fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

fn runtime() -> Runtime {
    Runtime::with_config(RuntimeConfig {
        max_concurrent_calls: 32,
        max_memory_bytes: 256 << 20,
        ..RuntimeConfig::new(shared_cache())
    })
    .expect("runtime")
}

fn fixture(path: &str) -> ComponentSource {
    ComponentSource::Path(PathBuf::from(path))
}

const TRAP: &str = env!("GLASS_FIXTURE_STORE_TRAP");
const SPIN: &str = env!("GLASS_FIXTURE_STORE_SPIN");
const HOG: &str = env!("GLASS_FIXTURE_STORE_HOG");

fn limits(deadline_ms: u64) -> Limits {
    Limits {
        memory_bytes: 32 << 20,
        cpu_deadline: Duration::from_millis(deadline_ms),
        ..Limits::default()
    }
}

async fn load(
    rt: &Runtime,
    id: &str,
    component: ComponentSource,
    dir: Option<&Path>,
    limits: Limits,
) -> Arc<WasmStore> {
    rt.load_store(StoreSpec {
        id: id.into(),
        component,
        grants: Grants {
            dir: dir.map(Path::to_path_buf),
            ..Grants::default()
        },
        limits,
    })
    .await
    .expect("load store")
}

async fn fs_store(rt: &Runtime, dir: &Path) -> Arc<WasmStore> {
    load(
        rt,
        "file",
        ComponentSource::builtin("store-fs").unwrap(),
        Some(dir),
        limits(2_000),
    )
    .await
}

fn bytes_reader(data: Vec<u8>) -> ByteReader {
    Box::pin(io::Cursor::new(data))
}

async fn read_all(mut r: ByteReader) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out)
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A deterministic stream of `len` bytes: a block of prime length repeated, so a byte out
/// of place is detected. Generates as it goes: the image is never in memory.
struct Pattern {
    block: Arc<Vec<u8>>,
    pos: u64,
    len: u64,
}

const BLOCK: usize = 1_048_573; // prime

fn block() -> Arc<Vec<u8>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    Arc::new(
        (0..BLOCK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect(),
    )
}

impl Pattern {
    fn new(block: Arc<Vec<u8>>, len: u64) -> Self {
        Self { block, pos: 0, len }
    }
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let left = self.len - self.pos;
        let at = (self.pos % BLOCK as u64) as usize;
        let n = (buf.remaining() as u64).min(left).min((BLOCK - at) as u64) as usize;
        buf.put_slice(&self.block[at..at + n]);
        self.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Reads `r` to its end, comparing with the pattern from `offset`; returns the byte count.
async fn check_pattern(mut r: ByteReader, block: &[u8], offset: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = offset;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(pos - offset);
        }
        for (i, b) in buf[..n].iter().enumerate() {
            let p = pos + i as u64;
            assert_eq!(*b, block[(p % BLOCK as u64) as usize], "byte {p} differs");
        }
        pos += n as u64;
    }
}

/// A reader that yields `chunks` chunks of `size` bytes with `pause` before each, then, after
/// `end_pause`, either ends or fails.
struct Paced {
    left: usize,
    size: usize,
    pause: Duration,
    end_pause: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    fail_at_end: bool,
}

impl Paced {
    fn new(chunks: usize, size: usize, pause: Duration, fail_at_end: bool) -> Self {
        Self {
            left: chunks,
            size,
            pause,
            end_pause: Duration::ZERO,
            sleep: None,
            fail_at_end,
        }
    }

    fn end_pause(mut self, pause: Duration) -> Self {
        self.end_pause = pause;
        self
    }
}

impl AsyncRead for Paced {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let pause = if self.left == 0 {
            self.end_pause
        } else {
            self.pause
        };
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if self.left == 0 {
            return Poll::Ready(if self.fail_at_end {
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "client went away",
                ))
            } else {
                Ok(())
            });
        }
        self.sleep = None;
        let n = self.size.min(buf.remaining());
        buf.put_slice(&vec![0x5A; n]);
        self.left -= 1;
        Poll::Ready(Ok(()))
    }
}

/// Every file under `root` with its contents.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                out.insert(
                    path.clone(),
                    format!("-> {:?}", std::fs::read_link(&path).unwrap()).into_bytes(),
                );
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_fault(result: Result<impl std::fmt::Debug, StoreError>, plugin: &str, kind: &str) {
    match result {
        Err(StoreError::PluginFault { plugin: p, reason }) => {
            assert_eq!(p, plugin);
            assert!(
                reason.starts_with(kind),
                "reason {reason:?} should start with {kind:?}"
            );
        }
        other => panic!("expected a {kind} fault of {plugin}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// store-fs: the contract

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_round_trip_with_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = fs_store(&rt, tmp.path()).await;
    let info = store.info();
    assert_eq!(info.driver, "store-fs");
    assert!(info.can_write && info.can_delete && info.ranged_reads);

    let id = Uuid::new_v4();
    let data = sample(300_001);
    let stored = store
        .add(id, bytes_reader(data.clone()), Some(data.len() as u64))
        .await
        .unwrap();
    assert_eq!(stored.location, format!("file:///{id}"));
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(
        std::fs::read(tmp.path().join(id.to_string())).unwrap(),
        data
    );
    assert_eq!(files_in(tmp.path()), vec![id.to_string()]);

    assert_eq!(
        store.size(&stored.location).await.unwrap(),
        data.len() as u64
    );
    let all = read_all(store.get(&stored.location, 0, None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(all, data);
    let range = read_all(
        store
            .get(&stored.location, 1000, Some(70_000))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(range, &data[1000..71_000]);
    let tail = read_all(
        store
            .get(&stored.location, 299_990, Some(100))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(tail, &data[299_990..]);
    let past_end = read_all(store.get(&stored.location, 400_000, None).await.unwrap())
        .await
        .unwrap();
    assert!(past_end.is_empty());

    // An empty image round-trips too.
    let empty = Uuid::new_v4();
    let stored_empty = store
        .add(empty, bytes_reader(Vec::new()), Some(0))
        .await
        .unwrap();
    assert_eq!(stored_empty.size, 0);
    assert!(
        read_all(store.get(&stored_empty.location, 0, None).await.unwrap())
            .await
            .unwrap()
            .is_empty()
    );

    // Adding again is refused and changes nothing.
    let again = store.add(id, bytes_reader(vec![1, 2, 3]), None).await;
    assert_eq!(again.unwrap_err(), StoreError::AlreadyExists);
    assert_eq!(
        std::fs::read(tmp.path().join(id.to_string())).unwrap(),
        data
    );

    store.delete(&stored.location).await.unwrap();
    assert_eq!(
        store.size(&stored.location).await.unwrap_err(),
        StoreError::NotFound
    );
    assert_eq!(
        store.get(&stored.location, 0, None).await.err(),
        Some(StoreError::NotFound)
    );
    assert_eq!(
        store.delete(&stored.location).await.unwrap_err(),
        StoreError::NotFound
    );
    assert_eq!(files_in(tmp.path()), vec![empty.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_streams_64_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = fs_store(&rt, tmp.path()).await;
    let block = block();
    let len: u64 = 64 << 20;
    let id = Uuid::new_v4();
    let stored = store
        .add(id, Box::pin(Pattern::new(block.clone(), len)), Some(len))
        .await
        .unwrap();
    assert_eq!(stored.size, len);
    assert_eq!(
        std::fs::metadata(tmp.path().join(id.to_string()))
            .unwrap()
            .len(),
        len
    );
    let got = check_pattern(
        store.get(&stored.location, 0, None).await.unwrap(),
        &block,
        0,
    )
    .await
    .unwrap();
    assert_eq!(got, len);
    let offset = 33_554_467;
    let got = check_pattern(
        store
            .get(&stored.location, offset, Some(5 << 20))
            .await
            .unwrap(),
        &block,
        offset,
    )
    .await
    .unwrap();
    assert_eq!(got, 5 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_failed_input_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = fs_store(&rt, tmp.path()).await;
    let id = Uuid::new_v4();
    let input = Paced::new(20, 64 * 1024, Duration::from_millis(1), true);
    let err = store.add(id, Box::pin(input), None).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Input(ref m) if m.contains("client went away")),
        "{err:?}"
    );
    assert!(
        files_in(tmp.path()).is_empty(),
        "{:?}",
        files_in(tmp.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_abandoned_add_is_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = fs_store(&rt, tmp.path()).await;
    let id = Uuid::new_v4();
    // A client that sends a little, then stalls for a long time; the caller gives up.
    let input = Paced::new(1000, 64 * 1024, Duration::from_millis(200), false);
    let attempt = tokio::time::timeout(
        Duration::from_millis(700),
        store.add(id, Box::pin(input), None),
    )
    .await;
    assert!(attempt.is_err(), "the add should still be running");
    // The driver sees its input fail and removes the partial file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !files_in(tmp.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            files_in(tmp.path())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_discard_partial_removes_only_that_images_data() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = fs_store(&rt, tmp.path()).await;
    let crashed = Uuid::new_v4();
    let other = Uuid::new_v4();
    let other_done = Uuid::new_v4();
    // What a crash mid-upload leaves, beside a finished image and another upload's partial.
    std::fs::write(
        tmp.path().join(format!("{crashed}.partial")),
        b"half an image",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join(format!("{other}.partial")),
        b"someone else's",
    )
    .unwrap();
    let done = store
        .add(crashed, bytes_reader(b"finished".to_vec()), None)
        .await;
    // add over a stale partial works (the partial is rewritten) and the image is whole.
    let done = done.unwrap();
    assert_eq!(
        read_all(store.get(&done.location, 0, None).await.unwrap())
            .await
            .unwrap(),
        b"finished"
    );
    std::fs::write(tmp.path().join(format!("{crashed}.partial")), b"half again").unwrap();

    // The host calls discard-partial only for an image it recorded no data for: the
    // complete file is then an add that finished just before a crash, and goes too.
    let kept = store
        .add(other_done, bytes_reader(b"kept".to_vec()), None)
        .await
        .unwrap();
    store.discard_partial(crashed).await.unwrap();
    assert_eq!(files_in(tmp.path()), {
        let mut v = vec![other_done.to_string(), format!("{other}.partial")];
        v.sort();
        v
    });
    // Nothing to discard is fine.
    store.discard_partial(crashed).await.unwrap();
    store.discard_partial(Uuid::new_v4()).await.unwrap();
    assert_eq!(
        read_all(store.get(&kept.location, 0, None).await.unwrap())
            .await
            .unwrap(),
        b"kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_never_leaves_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let granted = root.join("images");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(root.join("secret.txt"), b"top secret").unwrap();
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), b"root:x:0:0").unwrap();
    let rt = runtime();
    let store = fs_store(&rt, &granted).await;

    // A symlink planted in the directory that points outside it.
    let planted = Uuid::new_v4();
    std::os::unix::fs::symlink(root.join("secret.txt"), granted.join(planted.to_string())).unwrap();
    let outside = std::fs::canonicalize(root.join("secret.txt")).unwrap();

    let before = snapshot(root);
    let id = Uuid::new_v4().to_string();
    let locations = [
        "file:///../secret.txt".to_string(),
        "file:///../../../../etc/passwd".into(),
        "file:///etc/passwd".into(),
        "/etc/passwd".into(),
        "../secret.txt".into(),
        outside.display().to_string(),
        format!("file://{}", outside.display()),
        "file:///%2e%2e/secret.txt".into(),
        "file:///..%2fsecret.txt".into(),
        "file:////etc/passwd".into(),
        "file://localhost/etc/passwd".into(),
        format!("file:///{id}/../../secret.txt"),
        format!("file:///../images/{id}"),
        format!("file:///{}", id.to_uppercase()),
        format!("file:///{id}.partial"),
        format!("file:///{id}\0"),
        format!("file:///{id}/"),
        format!("file:///{id} "),
        "file:///".into(),
        String::new(),
    ];
    for location in &locations {
        for result in [
            store.get(location, 0, None).await.err(),
            store.size(location).await.err(),
            store.delete(location).await.err(),
        ] {
            assert!(
                matches!(result, Some(StoreError::InvalidLocation(_))),
                "{location:?} gave {result:?}"
            );
        }
    }
    // The planted symlink is never followed out of the directory.
    let planted_location = format!("file:///{planted}");
    assert!(store.get(&planted_location, 0, None).await.is_err());
    assert!(store.size(&planted_location).await.is_err());

    let ids = [
        "../x",
        "../../secret.txt",
        "..",
        ".",
        "",
        "/etc/passwd",
        "a/b",
        "images/../secret.txt",
        "%2e%2e%2fsecret.txt",
        &format!("{id}/.."),
        &format!("{id}\n"),
        &id.to_uppercase(),
        &id.replace('-', ""),
        &format!("{{{id}}}"),
    ];
    for bad in ids {
        let add = store
            .add_raw(bad, bytes_reader(b"evil".to_vec()), None)
            .await;
        assert!(
            matches!(add, Err(StoreError::InvalidLocation(_))),
            "add {bad:?} gave {add:?}"
        );
        let discard = store.discard_partial_raw(bad).await;
        assert!(
            matches!(discard, Err(StoreError::InvalidLocation(_))),
            "discard {bad:?} gave {discard:?}"
        );
    }
    assert_eq!(
        snapshot(root),
        before,
        "something outside the contract changed"
    );
    assert_eq!(
        std::fs::read(root.join("secret.txt")).unwrap(),
        b"top secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_without_a_granted_directory_is_denied() {
    let rt = runtime();
    let store = load(
        &rt,
        "nodir",
        ComponentSource::builtin("store-fs").unwrap(),
        None,
        limits(2_000),
    )
    .await;
    let add = store
        .add(Uuid::new_v4(), bytes_reader(b"x".to_vec()), None)
        .await;
    assert!(matches!(add, Err(StoreError::AccessDenied(_))), "{add:?}");
    let size = store.size(&format!("file:///{}", Uuid::new_v4())).await;
    assert!(matches!(size, Err(StoreError::AccessDenied(_))), "{size:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_concurrent_adds_and_gets() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = fs_store(&rt, tmp.path()).await;
    let block = block();
    let mut tasks = Vec::new();
    for i in 0..12u64 {
        let store = store.clone();
        let block = block.clone();
        tasks.push(tokio::spawn(async move {
            let len = (1 << 20) + i * 4099;
            let stored = store
                .add(
                    Uuid::new_v4(),
                    Box::pin(Pattern::new(block.clone(), len)),
                    None,
                )
                .await
                .unwrap();
            let got = check_pattern(
                store.get(&stored.location, 0, None).await.unwrap(),
                &block,
                0,
            )
            .await
            .unwrap();
            assert_eq!(got, len);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(files_in(tmp.path()).len(), 12);
}

// ---------------------------------------------------------------------------------------
// Faults: traps, deadlines, memory

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_is_a_fault_and_the_next_call_works() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let trap = load(&rt, "trappy", fixture(TRAP), None, limits(2_000)).await;
    let good = fs_store(&rt, tmp.path()).await;

    let add = trap
        .add(Uuid::new_v4(), bytes_reader(sample(100_000)), None)
        .await;
    assert_fault(add, "trappy", "trap");
    let get = trap.get("anything", 0, None).await.map(|_| ());
    assert_fault(get, "trappy", "trap");
    // The same plugin answers its next call normally: a fresh instance per call.
    assert_eq!(
        trap.size("anything").await.unwrap_err(),
        StoreError::NotFound
    );
    trap.delete("anything").await.unwrap();
    // And another plugin is unaffected.
    let stored = good
        .add(Uuid::new_v4(), bytes_reader(b"fine".to_vec()), None)
        .await
        .unwrap();
    assert_eq!(
        read_all(good.get(&stored.location, 0, None).await.unwrap())
            .await
            .unwrap(),
        b"fine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_hits_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let spin = load(&rt, "spinner", fixture(SPIN), None, limits(300)).await;
    let good = fs_store(&rt, tmp.path()).await;

    let started = Instant::now();
    let add = spin
        .add(Uuid::new_v4(), bytes_reader(sample(10)), None)
        .await;
    let took = started.elapsed();
    assert_fault(add, "spinner", "deadline");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "took {took:?}"
    );

    let started = Instant::now();
    assert_fault(spin.size("x").await, "spinner", "deadline");
    assert!(started.elapsed() < Duration::from_secs(3));

    // get: the driver writes a few bytes, then spins. The reader is handed out, delivers
    // them, and then fails: never a silent truncation.
    let started = Instant::now();
    let mut reader = spin.get("x", 0, None).await.expect("first bytes arrive");
    let mut got = Vec::new();
    let err = reader.read_to_end(&mut got).await.unwrap_err();
    assert_eq!(got, b"partial data");
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<StoreError>())
        .cloned();
    assert_fault(inner.map_or(Ok(()), Err), "spinner", "deadline");
    assert!(started.elapsed() < Duration::from_secs(3));

    // The host keeps serving.
    spin.delete("x").await.unwrap();
    good.add(Uuid::new_v4(), bytes_reader(b"ok".to_vec()), None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hog_hits_the_memory_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let hog = load(&rt, "hog", fixture(HOG), None, limits(5_000)).await;
    let good = fs_store(&rt, tmp.path()).await;

    let started = Instant::now();
    assert_fault(
        hog.add(Uuid::new_v4(), bytes_reader(sample(10)), None)
            .await,
        "hog",
        "memory",
    );
    assert_fault(hog.get("x", 0, None).await.map(|_| ()), "hog", "memory");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(hog.size("x").await.unwrap_err(), StoreError::NotFound);
    good.add(Uuid::new_v4(), bytes_reader(b"ok".to_vec()), None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upload_outlives_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    // A 100 ms deadline, an upload of ~2 s that pauses 250 ms between chunks: the driver is
    // parked in a host call while it waits, and each chunk is progress.
    let store = load(
        &rt,
        "file",
        ComponentSource::builtin("store-fs").unwrap(),
        Some(tmp.path()),
        limits(100),
    )
    .await;
    let started = Instant::now();
    let input = Paced::new(8, 64 * 1024, Duration::from_millis(250), false);
    let stored = store
        .add(Uuid::new_v4(), Box::pin(input), None)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(stored.size, 8 * 64 * 1024);
    assert_eq!(store.size(&stored.location).await.unwrap(), stored.size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_in_the_host_is_not_guest_time() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = load(
        &rt,
        "file",
        ComponentSource::builtin("store-fs").unwrap(),
        Some(tmp.path()),
        limits(100),
    )
    .await;
    // Chunks 150 ms apart (each arrival is progress), then 600 ms without any byte before
    // the end: the driver spends that in a host call, which the deadline does not count.
    let input = Paced::new(3, 64 * 1024, Duration::from_millis(150), false)
        .end_pause(Duration::from_millis(600));
    let stored = store
        .add(Uuid::new_v4(), Box::pin(input), None)
        .await
        .unwrap();
    assert_eq!(stored.size, 3 * 64 * 1024);
}

// ---------------------------------------------------------------------------------------
// Loading: cache, hot swap, bad components

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached() {
    let cache = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        max_concurrent_calls: 8,
        max_memory_bytes: 64 << 20,
        ..RuntimeConfig::new(cache.path())
    };
    let spec = || StoreSpec {
        id: "file".into(),
        component: ComponentSource::builtin("store-fs").unwrap(),
        grants: Grants {
            dir: Some(images.path().to_path_buf()),
            ..Grants::default()
        },
        limits: limits(2_000),
    };
    let first = Instant::now();
    let a = Runtime::with_config(config())
        .unwrap()
        .load_store(spec())
        .await
        .unwrap();
    let compile = first.elapsed();
    let artefacts: Vec<_> = files_in(cache.path());
    assert_eq!(artefacts.len(), 1, "{artefacts:?}");
    assert!(artefacts[0].starts_with(&a.digest()) && artefacts[0].ends_with(".cwasm"));

    let second = Instant::now();
    let b = Runtime::with_config(config())
        .unwrap()
        .load_store(spec())
        .await
        .unwrap();
    let cached = second.elapsed();
    assert_eq!(files_in(cache.path()), artefacts);
    assert!(
        cached < compile,
        "cached load {cached:?} vs compile {compile:?}"
    );
    eprintln!("store-fs: compile+load {compile:?}, cached load {cached:?}");
    b.add(Uuid::new_v4(), bytes_reader(b"x".to_vec()), None)
        .await
        .unwrap();

    // A damaged artefact is replaced, not trusted.
    std::fs::write(cache.path().join(&artefacts[0]), b"garbage").unwrap();
    let c = Runtime::with_config(config())
        .unwrap()
        .load_store(spec())
        .await
        .unwrap();
    c.add(Uuid::new_v4(), bytes_reader(b"y".to_vec()), None)
        .await
        .unwrap();
    assert!(
        std::fs::metadata(cache.path().join(&artefacts[0]))
            .unwrap()
            .len()
            > 1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_the_component() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = load(
        &rt,
        "swappy",
        fixture(TRAP),
        Some(tmp.path()),
        limits(2_000),
    )
    .await;
    assert_eq!(store.info().driver, "store-trap");
    assert_fault(
        store
            .add(Uuid::new_v4(), bytes_reader(b"x".to_vec()), None)
            .await,
        "swappy",
        "trap",
    );
    store
        .reload(ComponentSource::builtin("store-fs").unwrap())
        .await
        .unwrap();
    assert_eq!(store.info().driver, "store-fs");
    store
        .add(Uuid::new_v4(), bytes_reader(b"x".to_vec()), None)
        .await
        .unwrap();
    // A broken replacement is refused and the current version keeps serving.
    let broken = tmp.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm not really").unwrap();
    assert!(store.reload(ComponentSource::Path(broken)).await.is_err());
    assert_eq!(store.info().driver, "store-fs");

    // The status counts calls and faults per version and lists the version replaced.
    let status = store.status();
    assert_eq!(status.current.name, "store-fs");
    assert_eq!(status.current.wit, "glass:store@0.1.0");
    assert!(status.current.capabilities.contains(&"write"));
    assert_eq!(status.current.faults, 0);
    assert!(status.current.calls >= 2, "{status:?}"); // info + add
    assert_eq!(status.previous.len(), 1);
    assert_eq!(status.previous[0].name, "store-trap");
    assert!(status.previous[0].faults >= 1, "{status:?}");

    // Rollback returns to the replaced version; a second one has nothing to return to.
    let back = store.rollback().unwrap();
    assert_eq!(back.current.name, "store-trap");
    assert!(back.previous.is_empty());
    assert!(store.rollback().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_are_refused() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let missing = rt
        .load_store(StoreSpec {
            id: "missing".into(),
            component: ComponentSource::Path(tmp.path().join("nope.wasm")),
            grants: Grants::default(),
            limits: limits(1_000),
        })
        .await;
    assert!(missing.is_err());
    let too_big = rt
        .load_store(StoreSpec {
            id: "big".into(),
            component: ComponentSource::builtin("store-fs").unwrap(),
            grants: Grants::default(),
            limits: Limits {
                memory_bytes: 1 << 40,
                cpu_deadline: Duration::from_secs(1),
                ..Limits::default()
            },
        })
        .await;
    assert!(too_big.is_err());
}

// ---------------------------------------------------------------------------------------
// Throughput: `cargo test -p glass-host --release --test store_engine -- --ignored --nocapture`
// (GLASS_BENCH_MIB sets the size, default 1024; GLASS_BENCH_BLOCKING=0 turns
// `blocking_file_io` off).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput figure; run explicitly in release"]
async fn throughput_native_vs_wasm() {
    let mib: u64 = std::env::var("GLASS_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let len = mib << 20;
    let tmp = tempfile::tempdir().unwrap();
    let block = block();
    let rate = |d: Duration| len as f64 / d.as_secs_f64() / 1e6;

    // Native: tokio::fs with 64 KiB chunks, the same input stream.
    let native = tmp.path().join("native");
    let t = Instant::now();
    {
        let mut file = tokio::fs::File::create(&native).await.unwrap();
        let mut input = Pattern::new(block.clone(), len);
        tokio::io::copy_buf(
            &mut tokio::io::BufReader::with_capacity(64 * 1024, &mut input),
            &mut file,
        )
        .await
        .unwrap();
        file.sync_data().await.unwrap();
    }
    let native_write = t.elapsed();
    let t = Instant::now();
    let mut file = tokio::io::BufReader::with_capacity(
        64 * 1024,
        tokio::fs::File::open(&native).await.unwrap(),
    );
    let n = tokio::io::copy(&mut file, &mut tokio::io::sink())
        .await
        .unwrap();
    let native_read = t.elapsed();
    assert_eq!(n, len);
    std::fs::remove_file(&native).unwrap();

    let blocking = std::env::var("GLASS_BENCH_BLOCKING").map_or(true, |v| v != "0");
    let rt = Runtime::with_config(RuntimeConfig {
        blocking_file_io: blocking,
        ..RuntimeConfig::new(shared_cache())
    })
    .unwrap();
    let dir = tmp.path().join("wasm");
    let store = load(
        &rt,
        "file",
        ComponentSource::builtin("store-fs").unwrap(),
        Some(&dir),
        limits(5_000),
    )
    .await;
    let t = Instant::now();
    let stored = store
        .add(
            Uuid::new_v4(),
            Box::pin(Pattern::new(block.clone(), len)),
            Some(len),
        )
        .await
        .unwrap();
    let wasm_write = t.elapsed();
    let t = Instant::now();
    let mut reader = store.get(&stored.location, 0, None).await.unwrap();
    let n = tokio::io::copy(&mut reader, &mut tokio::io::sink())
        .await
        .unwrap();
    let wasm_read = t.elapsed();
    assert_eq!(n, len);

    // Per-call overhead: fresh store + instance + one `size` (a stat) each.
    let calls = 2000;
    let t = Instant::now();
    for _ in 0..calls {
        store.size(&stored.location).await.unwrap();
    }
    let per_call = t.elapsed() / calls;

    println!("{mib} MiB (blocking_file_io {blocking})   write MB/s   read MB/s");
    println!(
        "native  {:>10.0}  {:>10.0}",
        rate(native_write),
        rate(native_read)
    );
    println!(
        "wasm    {:>10.0}  {:>10.0}",
        rate(wasm_write),
        rate(wasm_read)
    );
    println!("size() through a fresh instance: {per_call:?} per call");
}
