//! The conformance suite of `glass:store@0.1.0` drivers: what every store driver must do, as
//! the host sees it (through [`ImageStore`]). Run it against your driver loaded by the
//! runtime, with its backend reachable:
//!
//! ```ignore
//! let store = runtime.load_store(spec).await?;
//! let report = conformance::run(Driver::read_write(store.clone()).raw(store)).await;
//! report.assert_passed();
//! ```
//!
//! Every case runs, even after a failure, under a time limit (a hang is a failure, not a
//! stuck test); the [`Report`] lists each case with its time and what went wrong. Test
//! images are generated as they stream (never held whole in memory) and checked byte by
//! byte; the suite removes what it stored.
//!
//! Two halves: [`Half::ReadWrite`] (`add`, `get`, `size`, `delete`, `discard-partial`) for
//! drivers that store images, [`Half::ReadOnly`] (`get` and `size` of an object that exists,
//! writes refused with `access-denied`) for drivers that serve existing data, such as
//! `store-http`.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use glass_runtime::WasmStore;
use glass_runtime::store::{ByteReader, ImageStore, StoreError, Stored};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use uuid::Uuid;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The driver under test and what the suite may assume about it.
pub struct Driver {
    /// The driver as the host calls it.
    pub store: Arc<dyn ImageStore>,
    /// The same component as a plugin: lets the suite pass image ids the host never would,
    /// to check the driver's own validation.
    pub raw: Option<Arc<WasmStore>>,
    /// The same driver configured against a backend that cannot be reached (a closed port,
    /// no directory): bad locations must still be refused as `invalid-location`, which shows
    /// the driver refused them without touching its backend.
    pub offline: Option<Arc<dyn ImageStore>>,
    /// Locations this driver could not have produced, besides the suite's own.
    pub garbage: Vec<String>,
    pub half: Half,
    /// How long one case may take before it counts as a hang.
    pub case_timeout: Duration,
}

/// Which half of the contract the driver implements.
#[derive(Clone)]
pub enum Half {
    /// A store that writes: every function of the contract.
    ReadWrite {
        /// The driver's part or segment size, when it has one and the test configured it
        /// small: images below, at and above it (several parts) are stored and read back,
        /// and ranges cross part boundaries.
        part_size: Option<u64>,
    },
    /// A store that serves data it did not write; `add` and `delete` are refused.
    ReadOnly {
        /// A location that exists, and a local copy of its bytes to compare with.
        known: Known,
        /// A well-formed location with nothing there.
        missing: String,
    },
}

/// An object a read-only store serves, and the same bytes in a local file.
#[derive(Clone)]
pub struct Known {
    pub location: String,
    pub copy: PathBuf,
    /// Also read the whole object once and compare (costly for a large object).
    pub full_read: bool,
}

impl Driver {
    pub fn read_write(store: Arc<dyn ImageStore>) -> Self {
        Self::new(store, Half::ReadWrite { part_size: None })
    }

    pub fn read_only(store: Arc<dyn ImageStore>, known: Known, missing: String) -> Self {
        Self::new(store, Half::ReadOnly { known, missing })
    }

    fn new(store: Arc<dyn ImageStore>, half: Half) -> Self {
        Self {
            store,
            raw: None,
            offline: None,
            garbage: Vec::new(),
            half,
            case_timeout: Duration::from_secs(300),
        }
    }

    /// See [`Half::ReadWrite`]'s `part_size`.
    pub fn part_size(mut self, bytes: u64) -> Self {
        if let Half::ReadWrite { part_size } = &mut self.half {
            *part_size = Some(bytes);
        }
        self
    }

    pub fn raw(mut self, plugin: Arc<WasmStore>) -> Self {
        self.raw = Some(plugin);
        self
    }

    pub fn offline(mut self, store: Arc<dyn ImageStore>) -> Self {
        self.offline = Some(store);
        self
    }

    pub fn garbage(mut self, locations: impl IntoIterator<Item = String>) -> Self {
        self.garbage.extend(locations);
        self
    }
}

/// The outcome of every case.
pub struct Report {
    pub driver: String,
    pub cases: Vec<CaseResult>,
    pub elapsed: Duration,
}

pub struct CaseResult {
    pub name: String,
    pub elapsed: Duration,
    pub outcome: Result<(), String>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| c.outcome.is_err())
    }

    /// Panics with the list of failed cases, if any.
    pub fn assert_passed(&self) {
        let failed: Vec<String> = self
            .failures()
            .map(|c| format!("  {}: {}", c.name, c.outcome.as_ref().unwrap_err()))
            .collect();
        assert!(
            failed.is_empty(),
            "{}: {} of {} conformance cases failed:\n{}",
            self.driver,
            failed.len(),
            self.cases.len(),
            failed.join("\n")
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "conformance of {}: {} cases, {} failed, {:.1} s",
            self.driver,
            self.cases.len(),
            self.failures().count(),
            self.elapsed.as_secs_f64()
        )?;
        for c in &self.cases {
            let status = match &c.outcome {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("FAILED: {e}"),
            };
            writeln!(
                f,
                "  {:>7.2} s  {}  {status}",
                c.elapsed.as_secs_f64(),
                c.name
            )?;
        }
        Ok(())
    }
}

type CaseOutcome = Result<(), String>;

/// Runs every case of the driver's half, prints the report on stderr and returns it.
pub async fn run(driver: Driver) -> Report {
    let begun = Instant::now();
    let half = driver.half.clone();
    let suite = Suite {
        name: driver.store.info().driver,
        driver,
        created: Mutex::new(Vec::new()),
        cases: Mutex::new(Vec::new()),
    };
    let report = match half {
        Half::ReadWrite { part_size } => read_write(suite, part_size).await,
        Half::ReadOnly { known, missing } => read_only(suite, known, missing).await,
    };
    let report = Report {
        elapsed: begun.elapsed(),
        ..report
    };
    eprintln!("{report}");
    report
}

struct Suite {
    name: String,
    driver: Driver,
    /// Locations and image ids the cases stored, removed at the end whatever happened.
    created: Mutex<Vec<(Uuid, Option<String>)>>,
    cases: Mutex<Vec<CaseResult>>,
}

impl Suite {
    fn store(&self) -> &dyn ImageStore {
        &*self.driver.store
    }

    async fn case(&self, name: impl Into<String>, body: impl Future<Output = CaseOutcome>) {
        let name = name.into();
        let begun = Instant::now();
        let outcome = match tokio::time::timeout(self.driver.case_timeout, body).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "did not finish within {} s",
                self.driver.case_timeout.as_secs()
            )),
        };
        self.cases.lock().unwrap().push(CaseResult {
            name,
            elapsed: begun.elapsed(),
            outcome,
        });
    }

    fn report(self) -> Report {
        Report {
            driver: self.name,
            cases: self.cases.into_inner().unwrap(),
            elapsed: Duration::ZERO,
        }
    }

    /// Adds `len` bytes of the pattern `seed` as image `id`, checking what `add` returns.
    async fn add(
        &self,
        id: Uuid,
        seed: u64,
        len: u64,
        hint: Option<u64>,
    ) -> Result<Stored, String> {
        self.created.lock().unwrap().push((id, None));
        let stored = self
            .store()
            .add(id, Box::pin(Pattern::new(seed, len)), hint)
            .await
            .map_err(|e| format!("add of {len} bytes (hint {hint:?}): {e:?}"))?;
        self.created
            .lock()
            .unwrap()
            .push((id, Some(stored.location.clone())));
        if stored.size != len {
            return Err(format!(
                "add of {len} bytes reported {} bytes stored",
                stored.size
            ));
        }
        if stored.location.is_empty() {
            return Err("add returned an empty location".into());
        }
        Ok(stored)
    }

    /// Checks that `location` holds the pattern `seed`, `len` bytes: `size` and a full `get`.
    async fn check_stored(&self, location: &str, seed: u64, len: u64) -> CaseOutcome {
        let size = self
            .store()
            .size(location)
            .await
            .map_err(|e| format!("size: {e:?}"))?;
        if size != len {
            return Err(format!("size says {size}, {len} bytes were stored"));
        }
        self.check_range(location, seed, len, 0, None).await
    }

    /// `get(location, offset, length)` returns exactly the pattern's bytes there.
    async fn check_range(
        &self,
        location: &str,
        seed: u64,
        len: u64,
        offset: u64,
        length: Option<u64>,
    ) -> CaseOutcome {
        let want = length.map_or(len.saturating_sub(offset), |l| {
            l.min(len.saturating_sub(offset))
        });
        let reader = self
            .store()
            .get(location, offset, length)
            .await
            .map_err(|e| format!("get({offset}, {length:?}): {e:?}"))?;
        let got = check_pattern(reader, seed, offset)
            .await
            .map_err(|e| format!("get({offset}, {length:?}) of {len} bytes: {e}"))?;
        if got != want {
            return Err(format!(
                "get({offset}, {length:?}) of {len} bytes returned {got} bytes, expected {want}"
            ));
        }
        Ok(())
    }

    async fn delete(&self, location: &str) -> CaseOutcome {
        self.store()
            .delete(location)
            .await
            .map_err(|e| format!("delete: {e:?}"))
    }

    /// `get`, `size` and `delete` of `location` all fail with `not-found`.
    async fn check_missing(&self, location: &str) -> CaseOutcome {
        self.check_refused(location, |e| matches!(e, StoreError::NotFound), "NotFound")
            .await
    }

    async fn check_refused(
        &self,
        location: &str,
        want: impl Fn(&StoreError) -> bool,
        what: &str,
    ) -> CaseOutcome {
        check_refused(self.store(), location, want, what, true).await
    }

    /// Removes what the cases stored (errors ignored: most of it is gone already).
    async fn clean_up(&self) {
        let created = std::mem::take(&mut *self.created.lock().unwrap());
        for (id, location) in created {
            match location {
                Some(location) => {
                    let _ = self.store().delete(&location).await;
                }
                None => {
                    let _ = self.store().discard_partial(id).await;
                }
            }
        }
    }
}

/// `get`, `size` and (with `delete`) `delete` of `location` each fail as `want` says.
async fn check_refused(
    store: &dyn ImageStore,
    location: &str,
    want: impl Fn(&StoreError) -> bool,
    what: &str,
    delete: bool,
) -> CaseOutcome {
    let shown = show(location);
    match store.get(location, 0, None).await {
        Err(e) if want(&e) => {}
        Err(e) => return Err(format!("get({shown}): {e:?}, expected {what}")),
        Ok(mut r) => {
            // The error may only show once bytes are asked for.
            let mut buf = Vec::new();
            let read = r.read_to_end(&mut buf).await;
            return Err(format!(
                "get({shown}) succeeded ({} bytes, {read:?}), expected {what}",
                buf.len()
            ));
        }
    }
    match store.size(location).await {
        Err(e) if want(&e) => {}
        other => return Err(format!("size({shown}): {other:?}, expected {what}")),
    }
    if delete {
        match store.delete(location).await {
            Err(e) if want(&e) => {}
            other => return Err(format!("delete({shown}): {other:?}, expected {what}")),
        }
    }
    Ok(())
}

fn show(location: &str) -> String {
    let mut s: String = location.chars().take(60).collect();
    if s.len() < location.len() {
        s.push('…');
    }
    format!("{s:?}")
}

fn fail(condition: bool, message: impl FnOnce() -> String) -> CaseOutcome {
    if condition { Err(message()) } else { Ok(()) }
}

// ---------------------------------------------------------------------------------------
// The read-write half

async fn read_write(s: Suite, part_size: Option<u64>) -> Report {
    s.case("info describes a writable store", async {
        let info = s.store().info();
        fail(info.driver.is_empty(), || "empty driver name".into())?;
        fail(!looks_like_semver(&info.version), || {
            format!("version {:?} is not semver", info.version)
        })?;
        fail(!info.can_write || !info.can_delete, || {
            format!("a read-write store must claim write and delete: {info:?}")
        })
    })
    .await;

    // Sizes around the interesting boundaries, with and without a size hint.
    let mut sizes: Vec<(u64, bool)> = vec![
        (0, true),
        (0, false),
        (1, true),
        (64 * KIB - 1, false),
        (MIB + 3, true),
    ];
    let big = part_size.map(|p| 2 * p + p / 2 + 3);
    if let (Some(p), Some(big)) = (part_size, big) {
        sizes.extend([(p, false), (p + 1, true), (big, true), (big, false)]);
    }
    for (len, hint) in sizes {
        let name = format!(
            "add then get {len} bytes, size hint {}",
            if hint { "given" } else { "absent" }
        );
        s.case(name, async {
            let (id, seed) = (Uuid::new_v4(), len ^ 0x5eed);
            let stored = s.add(id, seed, len, hint.then_some(len)).await?;
            s.check_stored(&stored.location, seed, len).await?;
            s.delete(&stored.location).await
        })
        .await;
    }

    // Ranges of one image: inside it, across part boundaries, past its end.
    let len = big.unwrap_or(MIB + 3);
    let seed = 0xa11ce;
    let ranged = s.add(Uuid::new_v4(), seed, len, Some(len)).await;
    let mut ranges: Vec<(u64, Option<u64>)> = vec![
        (0, Some(1)),
        (100, Some(1000)),
        (len / 2, None),
        (0, Some(0)),
        (len - 1, None),
        (len - 10, Some(100)), // past the end: 10 bytes
        (len, None),           // at the end: nothing
        (len, Some(5)),
    ];
    if let Some(p) = part_size {
        ranges.extend([
            (p - 10, Some(20)),
            (p - 1, Some(2)),
            (p, Some(1)),
            (1, Some(2 * p)),     // across two boundaries
            (p + 7, Some(p + 5)), // from inside one part into the third
            (2 * p - 3, None),
        ]);
    }
    s.case(format!("ranged get of {len} bytes"), async {
        let stored = ranged.as_ref().map_err(Clone::clone)?;
        let mut failed = Vec::new();
        for &(offset, length) in &ranges {
            if let Err(e) = s
                .check_range(&stored.location, seed, len, offset, length)
                .await
            {
                failed.push(e);
            }
        }
        fail(!failed.is_empty(), || failed.join("; "))
    })
    .await;
    if let Ok(stored) = &ranged {
        let _ = s.store().delete(&stored.location).await;
    }

    s.case("add twice: already-exists, first data intact", async {
        let id = Uuid::new_v4();
        let first = s.add(id, 1, 100 * KIB + 1, Some(100 * KIB + 1)).await?;
        let second_len = part_size.map_or(3 * KIB, |p| p + 7);
        match s
            .store()
            .add(id, Box::pin(Pattern::new(2, second_len)), None)
            .await
        {
            Err(StoreError::AlreadyExists) => {}
            other => {
                if let Ok(stored) = &other {
                    s.created
                        .lock()
                        .unwrap()
                        .push((id, Some(stored.location.clone())));
                }
                return Err(format!("second add: {other:?}, expected AlreadyExists"));
            }
        }
        s.check_stored(&first.location, 1, 100 * KIB + 1).await?;
        s.delete(&first.location).await
    })
    .await;

    s.case("delete, then get/size/delete: not-found", async {
        let id = Uuid::new_v4();
        let stored = s.add(id, 3, 10 * KIB, Some(10 * KIB)).await?;
        s.delete(&stored.location).await?;
        s.check_missing(&stored.location).await?;
        // The id is free again.
        let again = s.add(id, 4, 5 * KIB, None).await?;
        s.check_stored(&again.location, 4, 5 * KIB).await?;
        s.delete(&again.location).await
    })
    .await;

    s.case("location of an image never stored: not-found", async {
        let id = Uuid::new_v4();
        let stored = s.add(id, 5, 1, Some(1)).await?;
        s.delete(&stored.location).await?;
        let id_text = id.to_string();
        if !stored.location.contains(&id_text) {
            return Ok(()); // opaque location: the deleted one above is all we can test
        }
        let other = stored
            .location
            .replace(&id_text, &Uuid::new_v4().to_string());
        s.check_missing(&other).await
    })
    .await;

    // A valid location to build bad ones from.
    let template_id = Uuid::new_v4();
    let template = s.add(template_id, 6, 1, Some(1)).await;
    let mut garbage = vec![
        String::new(),
        "garbage".to_owned(),
        "../../../../etc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
        "file:///etc/passwd".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "x".repeat(10_000),
    ];
    if let Ok(t) = &template {
        let (loc, id) = (&t.location, template_id.to_string());
        garbage.push(format!("{loc}/../../../../etc/passwd"));
        garbage.push(format!("{loc}\0"));
        if loc.contains(&id) {
            garbage.push(loc.replace(&id, "not-a-uuid"));
            garbage.push(loc.replace(&id, &format!("../{id}")));
            garbage.push(loc.replace(&id, &id.to_uppercase()));
            garbage.push(loc.replace(&id, &format!("{id}.partial")));
        }
    }
    garbage.extend(s.driver.garbage.iter().cloned());
    s.case("malformed locations: invalid-location", async {
        let template = template.as_ref().map_err(Clone::clone)?;
        let mut failed = Vec::new();
        for location in &garbage {
            let invalid = |e: &StoreError| matches!(e, StoreError::InvalidLocation(_));
            if let Err(e) = s.check_refused(location, invalid, "InvalidLocation").await {
                failed.push(e);
            }
        }
        // Nothing of the real image was touched.
        s.check_stored(&template.location, 6, 1).await?;
        fail(!failed.is_empty(), || failed.join("; "))
    })
    .await;
    if let Some(offline) = s.driver.offline.clone() {
        s.case(
            "malformed locations refused without touching the backend (backend unreachable)",
            async {
                let mut failed = Vec::new();
                for location in &garbage {
                    let invalid = |e: &StoreError| matches!(e, StoreError::InvalidLocation(_));
                    if let Err(e) =
                        check_refused(&*offline, location, invalid, "InvalidLocation", true).await
                    {
                        failed.push(e);
                    }
                }
                fail(!failed.is_empty(), || failed.join("; "))
            },
        )
        .await;
    }
    if let Ok(t) = &template {
        let _ = s.store().delete(&t.location).await;
    }

    if let Some(raw) = s.driver.raw.clone() {
        s.case("malformed image ids: invalid-location", async {
            let id = Uuid::new_v4().to_string();
            let bad = [
                String::new(),
                "not-a-uuid".into(),
                "../../../../etc/passwd".into(),
                id.to_uppercase(),
                format!("{id}/x"),
                format!("../{id}"),
                format!("{id}.partial"),
                id.replace('-', ""),
            ];
            let mut failed = Vec::new();
            for image_id in &bad {
                match raw
                    .add_raw(image_id, Box::pin(Pattern::new(7, 10)), Some(10))
                    .await
                {
                    Err(StoreError::InvalidLocation(_)) => {}
                    other => {
                        if let Ok(stored) = &other {
                            let _ = raw.delete(&stored.location).await;
                        }
                        failed.push(format!("add({}): {other:?}", show(image_id)));
                    }
                }
                match raw.discard_partial_raw(image_id).await {
                    Err(StoreError::InvalidLocation(_)) => {}
                    other => failed.push(format!("discard-partial({}): {other:?}", show(image_id))),
                }
            }
            fail(!failed.is_empty(), || failed.join("; "))
        })
        .await;
    }

    // An input that fails midway: the add fails and leaves nothing behind.
    let mut fail_points = vec![(0, 50 * KIB), (100 * KIB, MIB)];
    if let Some(p) = part_size {
        fail_points.push((p + p / 2, 3 * p));
    }
    for (fail_after, len) in fail_points {
        for hint in [true, false] {
            let name = format!(
                "input failing after {fail_after} of {len} bytes (size hint {}): error, nothing left",
                if hint { "given" } else { "absent" }
            );
            s.case(name, async {
                let id = Uuid::new_v4();
                s.created.lock().unwrap().push((id, None));
                let input = Pattern::new(8, len).failing_after(fail_after);
                match s
                    .store()
                    .add(id, Box::pin(input), hint.then_some(len))
                    .await
                {
                    Err(_) => {}
                    Ok(stored) => {
                        s.created
                            .lock()
                            .unwrap()
                            .push((id, Some(stored.location.clone())));
                        return Err(format!(
                            "add succeeded ({stored:?}) although its input failed"
                        ));
                    }
                }
                // The driver cleaned up after itself: the id is free without discard-partial.
                let stored = s
                    .add(id, 9, 20 * KIB, Some(20 * KIB))
                    .await
                    .map_err(|e| format!("a failed add left something behind: {e}"))?;
                s.check_stored(&stored.location, 9, 20 * KIB).await?;
                s.delete(&stored.location).await?;
                // And discard-partial of that id has nothing to do.
                s.store()
                    .discard_partial(id)
                    .await
                    .map_err(|e| format!("discard-partial after a failed add: {e:?}"))
            })
            .await;
        }
    }

    s.case("discard-partial of an unknown image: ok", async {
        let id = Uuid::new_v4();
        for _ in 0..2 {
            s.store()
                .discard_partial(id)
                .await
                .map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    })
    .await;

    s.case(
        "discard-partial removes a complete add the host never recorded",
        async {
            let id = Uuid::new_v4();
            let len = part_size.map_or(200 * KIB, |p| p + 11);
            let stored = s.add(id, 10, len, None).await?;
            s.store()
                .discard_partial(id)
                .await
                .map_err(|e| format!("discard-partial: {e:?}"))?;
            s.check_missing(&stored.location).await?;
            let again = s.add(id, 11, 3, Some(3)).await?;
            s.check_stored(&again.location, 11, 3).await?;
            s.delete(&again.location).await
        },
    )
    .await;

    s.case(
        "size hint lower or higher than the data: exactly the data stored, or a clean error",
        async {
            // The contract says a driver "must store exactly what the stream delivers"; the
            // host never passes a wrong hint (it fails an upload whose size differs from the
            // one declared), so a driver may also take the hint as exact and refuse the
            // rest: then the add fails and leaves nothing behind. Storing other bytes, or
            // claiming success with another size, never passes.
            let mut cases = vec![(100 * KIB, 50 * KIB), (100 * KIB, 200 * KIB), (10, 0)];
            if let Some(p) = part_size {
                cases.extend([(p + 5, p - 1), (2 * p + 5, 1), (p - 5, 3 * p)]);
            }
            let mut failed = Vec::new();
            let mut refused = 0;
            for (i, (len, hint)) in cases.into_iter().enumerate() {
                let seed = 12 + i as u64;
                let id = Uuid::new_v4();
                s.created.lock().unwrap().push((id, None));
                let input = Box::pin(Pattern::new(seed, len));
                let result = match s.store().add(id, input, Some(hint)).await {
                    Ok(stored) => {
                        s.created
                            .lock()
                            .unwrap()
                            .push((id, Some(stored.location.clone())));
                        async {
                            fail(stored.size != len, || {
                                format!("add reported {} bytes stored", stored.size)
                            })?;
                            s.check_stored(&stored.location, seed, len).await?;
                            s.delete(&stored.location).await
                        }
                        .await
                    }
                    Err(_) => {
                        refused += 1;
                        async {
                            let again = s.add(id, seed, 7, Some(7)).await.map_err(|e| {
                                format!("the refused add left something behind: {e}")
                            })?;
                            s.check_stored(&again.location, seed, 7).await?;
                            s.delete(&again.location).await
                        }
                        .await
                    }
                };
                if let Err(e) = result {
                    failed.push(format!("{len} bytes, hint {hint}: {e}"));
                }
            }
            if refused > 0 {
                eprintln!("{}: {refused} adds with a wrong size hint refused", s.name);
            }
            fail(!failed.is_empty(), || failed.join("; "))
        },
    )
    .await;

    s.case("concurrent adds of different images", async {
        let mut lens: Vec<u64> = (1..=8).map(|k| k * 64 * KIB + k).collect();
        if let Some(p) = part_size {
            lens[0] = 2 * p + 1;
            lens[1] = p + 3;
        }
        let s = &s;
        let adds = lens.iter().enumerate().map(|(i, &len)| {
            let seed = 100 + i as u64;
            let hint = (i % 2 == 0).then_some(len);
            async move {
                let stored = s.add(Uuid::new_v4(), seed, len, hint).await?;
                s.check_stored(&stored.location, seed, len).await?;
                Ok::<_, String>(stored)
            }
        });
        let results = join_all(adds).await;
        let mut failed = Vec::new();
        let mut locations = std::collections::HashSet::new();
        for r in results {
            match r {
                Ok(stored) => {
                    if !locations.insert(stored.location.clone()) {
                        failed.push(format!("location {} given twice", stored.location));
                    }
                    if let Err(e) = s.delete(&stored.location).await {
                        failed.push(e);
                    }
                }
                Err(e) => failed.push(e),
            }
        }
        fail(!failed.is_empty(), || failed.join("; "))
    })
    .await;

    s.clean_up().await;
    s.report()
}

// ---------------------------------------------------------------------------------------
// The read-only half

async fn read_only(s: Suite, known: Known, missing: String) -> Report {
    let copy_len = std::fs::metadata(&known.copy).map(|m| m.len());
    let loc = known.location.clone();

    s.case("info describes a read-only store", async {
        let info = s.store().info();
        fail(info.driver.is_empty(), || "empty driver name".into())?;
        fail(!looks_like_semver(&info.version), || {
            format!("version {:?} is not semver", info.version)
        })?;
        fail(info.can_write || info.can_delete, || {
            format!("a read-only store claims write or delete: {info:?}")
        })
    })
    .await;

    s.case("size of a known object", async {
        let want = copy_len
            .as_ref()
            .map_err(|e| format!("the local copy: {e}"))?;
        let size = s
            .store()
            .size(&loc)
            .await
            .map_err(|e| format!("size: {e:?}"))?;
        fail(size != *want, || {
            format!("size {size}, the object has {want}")
        })
    })
    .await;

    s.case("ranged get of a known object", async {
        let len = *copy_len
            .as_ref()
            .map_err(|e| format!("the local copy: {e}"))?;
        let ranges = [
            (0, Some(1)),
            (0, Some(0)),
            (12_345, Some(64 * KIB)),
            (len / 2, Some(MIB + 1)),
            (len - MIB, None),
            (len - 10, Some(100)),
            (len - 1, None),
            (len, None),
            (len, Some(5)),
        ];
        let mut failed = Vec::new();
        for (offset, length) in ranges {
            let want = length.map_or(len - offset, |l| l.min(len - offset));
            let result = async {
                let expected = read_copy(&known.copy, offset, want)?;
                let mut got = Vec::new();
                s.store()
                    .get(&loc, offset, length)
                    .await
                    .map_err(|e| format!("{e:?}"))?
                    .read_to_end(&mut got)
                    .await
                    .map_err(|e| format!("reading: {e}"))?;
                fail(got.len() as u64 != want, || {
                    format!("{} bytes, expected {want}", got.len())
                })?;
                fail(got != expected, || "wrong bytes".into())
            }
            .await;
            if let Err(e) = result {
                failed.push(format!("get({offset}, {length:?}): {e}"));
            }
        }
        fail(!failed.is_empty(), || failed.join("; "))
    })
    .await;

    if known.full_read {
        s.case("full get of a known object", async {
            let reader = s
                .store()
                .get(&loc, 0, None)
                .await
                .map_err(|e| format!("get: {e:?}"))?;
            let copy = tokio::fs::File::open(&known.copy)
                .await
                .map_err(|e| format!("the local copy: {e}"))?;
            let n = compare_streams(reader, copy).await?;
            let want = copy_len.as_ref().map_err(|e| e.to_string())?;
            fail(n != *want, || format!("{n} bytes, expected {want}"))
        })
        .await;
    }

    s.case("add refused: access-denied", async {
        match s
            .store()
            .add(Uuid::new_v4(), Box::pin(Pattern::new(1, 10)), Some(10))
            .await
        {
            Err(StoreError::AccessDenied(_)) => Ok(()),
            other => Err(format!("add: {other:?}, expected AccessDenied")),
        }
    })
    .await;

    s.case("delete refused: access-denied, object intact", async {
        match s.store().delete(&loc).await {
            Err(StoreError::AccessDenied(_)) => {}
            other => return Err(format!("delete: {other:?}, expected AccessDenied")),
        }
        let want = copy_len.as_ref().map_err(|e| e.to_string())?;
        match s.store().size(&loc).await {
            Ok(n) if n == *want => Ok(()),
            other => Err(format!("size after the refused delete: {other:?}")),
        }
    })
    .await;

    s.case("missing object: not-found", async {
        check_refused(
            s.store(),
            &missing,
            |e| matches!(e, StoreError::NotFound),
            "NotFound",
            false,
        )
        .await
    })
    .await;

    let mut garbage = vec![
        String::new(),
        "garbage".to_owned(),
        "../../../../etc/passwd".to_owned(),
        "file:///etc/passwd".to_owned(),
        "ftp://127.0.0.1/x".to_owned(),
        "x".repeat(10_000),
    ];
    garbage.extend(s.driver.garbage.iter().cloned());
    s.case("malformed locations: invalid-location", async {
        let mut failed = Vec::new();
        for location in &garbage {
            let invalid = |e: &StoreError| matches!(e, StoreError::InvalidLocation(_));
            if let Err(e) =
                check_refused(s.store(), location, invalid, "InvalidLocation", false).await
            {
                failed.push(e);
            }
        }
        fail(!failed.is_empty(), || failed.join("; "))
    })
    .await;

    s.case("discard-partial of an unknown image: ok", async {
        s.store()
            .discard_partial(Uuid::new_v4())
            .await
            .map_err(|e| format!("{e:?}"))
    })
    .await;

    s.report()
}

fn read_copy(path: &std::path::Path, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("the local copy: {e}"))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0; len as usize];
    file.read_exact(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Reads two streams to their ends, comparing them; returns the length of `actual`.
pub async fn compare_streams(
    mut actual: impl AsyncRead + Unpin,
    mut expected: impl AsyncRead + Unpin,
) -> Result<u64, String> {
    let mut a = vec![0u8; 256 * 1024];
    let mut b = vec![0u8; 256 * 1024];
    let mut pos = 0u64;
    loop {
        let n = actual
            .read(&mut a)
            .await
            .map_err(|e| format!("reading at byte {pos}: {e}"))?;
        if n == 0 {
            let extra = expected
                .read(&mut b[..1])
                .await
                .map_err(|e| e.to_string())?;
            return fail(extra > 0, || {
                format!("stream ends at byte {pos}, too early")
            })
            .map(|()| pos);
        }
        expected
            .read_exact(&mut b[..n])
            .await
            .map_err(|e| format!("{n} bytes at byte {pos}, past the expected end: {e}"))?;
        if a[..n] != b[..n] {
            let at = a[..n].iter().zip(&b[..n]).position(|(x, y)| x != y);
            return Err(format!("bytes differ at {}", pos + at.unwrap_or(0) as u64));
        }
        pos += n as u64;
    }
}

fn looks_like_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

// ---------------------------------------------------------------------------------------
// Test data: generated as it streams, checkable at any offset.

/// Length of the random block the pattern repeats: a prime, so the block never lines up
/// with a part size and a part stored at the wrong place is seen.
const BLOCK: u64 = 1_048_573;

static BLOCK_BYTES: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..BLOCK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
});

/// `len` bytes of pattern `seed`: byte `p` is `BLOCK_BYTES[(p + seed) % BLOCK]`. Different
/// seeds give different images; nothing is held in memory but the shared block.
pub struct Pattern {
    seed: u64,
    pos: u64,
    len: u64,
    /// Reads fail once this many bytes were delivered.
    fail_after: Option<u64>,
}

impl Pattern {
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            seed: seed % BLOCK,
            pos: 0,
            len,
            fail_after: None,
        }
    }

    /// The same pattern, but reading fails after `bytes` bytes (an upload cut midway).
    pub fn failing_after(mut self, bytes: u64) -> Self {
        self.fail_after = Some(bytes);
        self
    }
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let end = match self.fail_after {
            Some(f) if f <= self.pos => {
                return Poll::Ready(Err(io::Error::other("injected input failure")));
            }
            Some(f) => f.min(self.len),
            None => self.len,
        };
        let at = ((self.pos + self.seed) % BLOCK) as usize;
        let n = (buf.remaining() as u64)
            .min(end - self.pos)
            .min(BLOCK - at as u64) as usize;
        buf.put_slice(&BLOCK_BYTES[at..at + n]);
        self.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Reads `reader` to its end, checking it is pattern `seed` from byte `offset`; returns the
/// number of bytes read.
pub async fn check_pattern(mut reader: ByteReader, seed: u64, offset: u64) -> Result<u64, String> {
    let seed = seed % BLOCK;
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = offset;
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading at byte {pos}: {e}"))?;
        if n == 0 {
            return Ok(pos - offset);
        }
        let mut i = 0;
        while i < n {
            let at = ((pos + i as u64 + seed) % BLOCK) as usize;
            let k = (n - i).min(BLOCK as usize - at);
            if buf[i..i + k] != BLOCK_BYTES[at..at + k] {
                let j = buf[i..i + k]
                    .iter()
                    .zip(&BLOCK_BYTES[at..at + k])
                    .position(|(x, y)| x != y)
                    .unwrap_or(0);
                return Err(format!("byte {} differs", pos + (i + j) as u64));
            }
            i += k;
        }
        pos += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(mut r: impl AsyncRead + Unpin) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn pattern_checks_at_any_offset() {
        let len = 3 * BLOCK + 17;
        let all = read(Pattern::new(5, len)).await.unwrap();
        assert_eq!(all.len() as u64, len);
        assert_ne!(all[..1000], read(Pattern::new(6, 1000)).await.unwrap()[..]);
        for offset in [0, 1, BLOCK - 1, BLOCK, 2 * BLOCK + 3, len] {
            let tail: ByteReader = Box::pin(io::Cursor::new(all[offset as usize..].to_vec()));
            assert_eq!(check_pattern(tail, 5, offset).await, Ok(len - offset));
        }
        // A wrong seed, a shifted stream or one flipped byte is caught.
        let whole = |v: Vec<u8>| -> ByteReader { Box::pin(io::Cursor::new(v)) };
        assert!(check_pattern(whole(all.clone()), 6, 0).await.is_err());
        assert!(check_pattern(whole(all[1..].to_vec()), 5, 0).await.is_err());
        let mut flipped = all.clone();
        flipped[BLOCK as usize + 9] ^= 1;
        assert_eq!(
            check_pattern(whole(flipped), 5, 0).await,
            Err(format!("byte {} differs", BLOCK + 9))
        );
    }

    #[tokio::test]
    async fn failing_pattern_fails_after_its_bytes() {
        let mut r = Pattern::new(1, 100).failing_after(40);
        let mut buf = vec![0; 1000];
        let mut got = 0;
        let err = loop {
            match r.read(&mut buf).await {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(got, 40);
        assert_eq!(err.to_string(), "injected input failure");
    }

    #[tokio::test]
    async fn streams_compare() {
        let a = read(Pattern::new(1, 300_000)).await.unwrap();
        let same = compare_streams(io::Cursor::new(a.clone()), io::Cursor::new(a.clone())).await;
        assert_eq!(same, Ok(300_000));
        let short = compare_streams(
            io::Cursor::new(a[..10].to_vec()),
            io::Cursor::new(a.clone()),
        );
        assert!(short.await.is_err());
        let long = compare_streams(
            io::Cursor::new(a.clone()),
            io::Cursor::new(a[..10].to_vec()),
        );
        assert!(long.await.is_err());
    }

    #[test]
    fn semver() {
        assert!(looks_like_semver("0.1.0"));
        assert!(looks_like_semver("1.20.3-rc.1"));
        assert!(!looks_like_semver("1.2"));
        assert!(!looks_like_semver("v1.2.3"));
    }
}
