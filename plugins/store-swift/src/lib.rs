//! `store-swift`: image data in OpenStack Swift (or Ceph RGW's Swift API), reached only
//! through `wasi:http`, to the hosts the operator granted.
//!
//! # Settings
//! - `auth_version`: `1` (tempauth/swauth: `GET auth_url` with `X-Auth-User`/`X-Auth-Key`) or
//!   `3` (Keystone: `POST auth_url/auth/tokens`, password, scoped to a project). Default 1.
//! - `auth_url`: `http://127.0.0.1:8280/auth/v1.0`, or `http://127.0.0.1:5000/v3` (`/v3` is
//!   added when missing).
//! - `user`, `key`: for v1 `account:user` and its key; for v3 the user's name and password.
//! - v3 only: `project_name` (required), `user_domain_name` and `project_domain_name`
//!   (`Default`), `region` (any when absent), `interface` (`public`): which `object-store`
//!   endpoint of the catalog to use.
//! - `container` (`glance`); segments go to `<container>_segments`. `create_container`
//!   (`true`): create both when missing; when `false` they must exist.
//! - `large_object_size_mb` (5120): an image of known size up to this is one PUT; a larger
//!   one, or one of unknown size, a Static Large Object. `segment_size_mb` (200, at most
//!   5120).
//! - `storage_url`: use this storage URL instead of the one authentication gives (v3: also
//!   when the catalog has no object-store endpoint).
//!
//! # Behaviour
//! - Tokens: each call runs in a fresh instance, so the token and its storage URL are kept in
//!   the store's granted directory (`token.json`, with a digest of the settings that obtained
//!   it) and reused by later calls until a minute before they expire (v3: the token's
//!   `expires_at`; v1: `X-Auth-Token-Expires`, else an hour). A 401 re-authenticates once and
//!   retries, for requests whose body can be sent again; a streamed upload is only started
//!   with a token that has more than a minute left. Without a granted directory every call
//!   authenticates.
//! - `add`: `already-exists` if the object exists. Known size up to `large_object_size_mb`:
//!   one PUT streamed from the host's stream. Otherwise an SLO: segments `<id>/00000001`, …
//!   in `<container>_segments`, each streamed (known size: with its length; unknown: chunked,
//!   up to the segment size), then the manifest (`?multipart-manifest=put`, each segment's
//!   path, ETag and size). An image of unknown size that ends within its first 4 MiB (and is
//!   below `large_object_size_mb`) is one PUT of those bytes, as is an empty one. Memory
//!   stays at a few MiB whatever the sizes. Segments grow so that an image fits in Swift's
//!   1000 segments (known size: evenly; unknown: doubling every 100 segments). A failed
//!   upload removes the segments it wrote; leftovers of an earlier attempt are removed first.
//! - Locations are `swift://<container>/<image id>`, the container being the store's.
//! - `get`: a ranged GET spliced into the host's stream. `size`: HEAD (an SLO's manifest
//!   gives the total). `delete`: `?multipart-manifest=delete` for an SLO (segments too), a
//!   plain DELETE otherwise. `discard-partial`: the object if present, and every segment
//!   under `<id>/`.
//! - Errors: 404 → `not-found`; 401 (after re-authenticating) and 403 → `access-denied`,
//!   saying which; 5xx, timeouts and connection failures → `unavailable`; the server's message
//!   is kept.

mod upload;
mod wire;

use std::cell::RefCell;

use glass_store_guest::bindings::wasi::clocks::{monotonic_clock, wall_clock};
use glass_store_guest::bindings::wasi::filesystem::preopens;
use glass_store_guest::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, OpenFlags, PathFlags,
};
use glass_store_guest::http::{self, Body, Method, Ranged, Request, Response, uri_encode};
use glass_store_guest::{
    Capabilities, Driver, DriverInfo, InputStream, OutputStream, StoreError, Stored, bool_setting,
    check_image_id, expect_end, number_setting, read_up_to, required_setting, setting,
};
use upload::Pending;
use wire::{MIB, Segment, Session};

struct SwiftStore;

glass_store_guest::export_driver!(SwiftStore);

const TOKEN_FILE: &str = "token.json";
/// An image of unknown size is read up to this much before deciding between one PUT and an
/// SLO.
const SMALL_IMAGE: u64 = 4 * MIB;

struct Config {
    auth_version: u64,
    auth_url: String,
    user: String,
    key: String,
    project: String,
    user_domain: String,
    project_domain: String,
    region: Option<String>,
    interface: String,
    container: String,
    create_container: bool,
    large_object_size: u64,
    segment_size: u64,
    storage_url: Option<String>,
}

fn other(message: impl Into<String>) -> StoreError {
    StoreError::Other(message.into())
}

fn http_url(name: &str, value: String) -> Result<String, StoreError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.trim_end_matches('/').to_owned())
    } else {
        Err(other(format!(
            "setting {name} is not an http(s) URL: {value:?}"
        )))
    }
}

impl Config {
    fn from_settings() -> Result<Self, StoreError> {
        let auth_version = number_setting("auth_version", 1)?;
        if auth_version != 1 && auth_version != 3 {
            return Err(other(format!(
                "setting auth_version must be 1 or 3, not {auth_version}"
            )));
        }
        let mut auth_url = http_url("auth_url", required_setting("auth_url")?)?;
        let project = if auth_version == 3 {
            if !auth_url.ends_with("/v3") {
                auth_url.push_str("/v3");
            }
            required_setting("project_name")?
        } else {
            String::new()
        };
        let container = setting("container").unwrap_or_else(|| "glance".into());
        wire::check_container(&container).map_err(|e| other(format!("setting container: {e}")))?;
        let segment_mb = number_setting("segment_size_mb", 200)?;
        if !(1..=wire::MAX_OBJECT_SIZE / MIB).contains(&segment_mb) {
            return Err(other(format!(
                "setting segment_size_mb must be between 1 and 5120, not {segment_mb}"
            )));
        }
        Ok(Config {
            auth_version,
            auth_url,
            user: required_setting("user")?,
            key: required_setting("key")?,
            project,
            user_domain: setting("user_domain_name").unwrap_or_else(|| "Default".into()),
            project_domain: setting("project_domain_name").unwrap_or_else(|| "Default".into()),
            region: setting("region").filter(|r| !r.is_empty()),
            interface: setting("interface").unwrap_or_else(|| "public".into()),
            container,
            create_container: bool_setting("create_container", true),
            large_object_size: number_setting("large_object_size_mb", 5120)?.saturating_mul(MIB),
            segment_size: segment_mb * MIB,
            storage_url: setting("storage_url")
                .filter(|u| !u.is_empty())
                .map(|u| http_url("storage_url", u))
                .transpose()?,
        })
    }

    /// Identifies the token these settings obtain (see [`wire::fingerprint`]).
    fn fingerprint(&self) -> String {
        wire::fingerprint(&[
            &self.auth_version.to_string(),
            &self.auth_url,
            &self.user,
            &self.key,
            &self.project,
            &self.user_domain,
            &self.project_domain,
            self.region.as_deref().unwrap_or(""),
            &self.interface,
        ])
    }

    fn segments_container(&self) -> String {
        format!("{}{}", self.container, wire::SEGMENTS_SUFFIX)
    }
}

fn now() -> u64 {
    wall_clock::now().seconds
}

/// The granted directory, if any: where the token is kept between calls.
fn state_dir() -> Option<Descriptor> {
    preopens::get_directories()
        .into_iter()
        .next()
        .map(|(d, _)| d)
}

/// The token in use during this call.
struct Active {
    session: Session,
    /// Obtained during this call: a 401 with it is final.
    fresh: bool,
}

/// One call's access to Swift.
struct Swift {
    cfg: Config,
    fingerprint: String,
    active: RefCell<Option<Active>>,
}

/// A request body that can be sent again (after a re-authentication).
#[derive(Clone, Copy)]
enum Replayable<'a> {
    Empty,
    Bytes(&'a [u8]),
}

impl<'a> From<Replayable<'a>> for Body<'a> {
    fn from(b: Replayable<'a>) -> Self {
        match b {
            Replayable::Empty => Body::Empty,
            Replayable::Bytes(b) => Body::Bytes(b),
        }
    }
}

impl Swift {
    fn new() -> Result<Self, StoreError> {
        let cfg = Config::from_settings()?;
        Ok(Swift {
            fingerprint: cfg.fingerprint(),
            cfg,
            active: RefCell::new(None),
        })
    }

    // -----------------------------------------------------------------------------------
    // Tokens

    /// A token with more than a minute left: the one in use, the cached one, or a new one.
    fn session(&self) -> Result<Session, StoreError> {
        let now = now();
        if let Some(a) = &*self.active.borrow()
            && a.session.usable(now)
        {
            return Ok(a.session.clone());
        }
        if let Some(session) = self.load_session(now) {
            *self.active.borrow_mut() = Some(Active {
                session: session.clone(),
                fresh: false,
            });
            return Ok(session);
        }
        self.authenticate()
    }

    /// True when the token in use was obtained during this call.
    fn fresh(&self) -> bool {
        self.active.borrow().as_ref().is_some_and(|a| a.fresh)
    }

    fn load_session(&self, now: u64) -> Option<Session> {
        let dir = state_dir()?;
        let file = dir
            .open_at(
                PathFlags::empty(),
                TOKEN_FILE,
                OpenFlags::empty(),
                DescriptorFlags::READ,
            )
            .ok()?;
        let (bytes, _) = file.read(64 * 1024, 0).ok()?;
        Session::from_file(&bytes, &self.fingerprint, now)
    }

    /// Writes the token file (a temporary file renamed into place: a reader never sees half
    /// of one). A failure only costs later calls an authentication.
    fn save_session(&self, session: &Session) {
        let Some(dir) = state_dir() else { return };
        let tmp = format!(
            "{TOKEN_FILE}.{}-{}.tmp",
            wall_clock::now().nanoseconds,
            monotonic_clock::now()
        );
        let body = session.to_file(&self.fingerprint);
        let written = dir
            .open_at(
                PathFlags::empty(),
                &tmp,
                OpenFlags::CREATE | OpenFlags::TRUNCATE,
                DescriptorFlags::WRITE,
            )
            .and_then(|f| f.write(body.as_bytes(), 0));
        match written.and_then(|_| dir.rename_at(&tmp, &dir, TOKEN_FILE)) {
            Ok(()) => {}
            Err(e) => {
                let _ = dir.unlink_file_at(&tmp);
                eprintln!("store-swift: cannot keep the token in {TOKEN_FILE}: {e:?}");
            }
        }
    }

    fn forget_session(&self) {
        *self.active.borrow_mut() = None;
        if let Some(dir) = state_dir() {
            let _ = dir.unlink_file_at(TOKEN_FILE);
        }
    }

    fn authenticate(&self) -> Result<Session, StoreError> {
        let session = match self.cfg.auth_version {
            3 => self.auth_v3()?,
            _ => self.auth_v1()?,
        };
        self.save_session(&session);
        *self.active.borrow_mut() = Some(Active {
            session: session.clone(),
            fresh: true,
        });
        Ok(session)
    }

    fn auth_v1(&self) -> Result<Session, StoreError> {
        let cfg = &self.cfg;
        let r = http::send(
            &Request {
                method: Method::Get,
                url: cfg.auth_url.clone(),
                headers: vec![
                    ("x-auth-user".into(), cfg.user.clone()),
                    ("x-auth-key".into(), cfg.key.clone()),
                ],
            },
            Body::Empty,
        )?;
        if !(200..300).contains(&r.status) {
            let status = r.status;
            return Err(wire::auth_error(
                status,
                &cfg.auth_url,
                &cfg.user,
                &r.text(),
            ));
        }
        wire::v1_session(
            r.header("x-auth-token"),
            r.header("x-storage-url"),
            r.header("x-auth-token-expires"),
            now(),
        )
        .map_err(other)
    }

    fn auth_v3(&self) -> Result<Session, StoreError> {
        let cfg = &self.cfg;
        let url = format!("{}/auth/tokens", cfg.auth_url);
        let body = wire::v3_request(
            &cfg.user,
            &cfg.user_domain,
            &cfg.key,
            &cfg.project,
            &cfg.project_domain,
        );
        let r = http::send(
            &Request {
                method: Method::Post,
                url: url.clone(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("accept".into(), "application/json".into()),
                ],
            },
            Body::Bytes(body.as_bytes()),
        )?;
        if !(200..300).contains(&r.status) {
            let status = r.status;
            return Err(wire::auth_error(status, &url, &cfg.user, &r.text()));
        }
        let token = r.header("x-subject-token").map(str::to_owned);
        let answer = r.read_to_vec(8 << 20)?;
        wire::v3_session(
            token.as_deref(),
            &answer,
            &cfg.interface,
            cfg.region.as_deref(),
            cfg.storage_url.as_deref(),
            now(),
        )
        .map_err(other)
    }

    fn url(&self, session: &Session, path: &str) -> String {
        let base = self
            .cfg
            .storage_url
            .as_deref()
            .unwrap_or(&session.storage_url);
        format!("{base}/{path}")
    }

    fn headers(session: &Session, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all = vec![("x-auth-token".to_owned(), session.token.clone())];
        all.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        all
    }

    // -----------------------------------------------------------------------------------
    // Requests

    /// A request under the storage URL. A 401 with a token from an earlier call
    /// re-authenticates and sends it once more.
    fn request(
        &self,
        method: Method,
        path: &str,
        extra: &[(&str, &str)],
        body: Replayable,
    ) -> Result<Response, StoreError> {
        let send = |session: &Session| {
            http::send(
                &Request {
                    method,
                    url: self.url(session, path),
                    headers: Self::headers(session, extra),
                },
                body.into(),
            )
        };
        let r = send(&self.session()?)?;
        if r.status != 401 || self.fresh() {
            return Ok(r);
        }
        drop(r);
        self.forget_session();
        Ok(send(&self.authenticate()?)?)
    }

    /// A PUT of exactly `length` bytes spliced from `data`. It cannot be sent twice: it
    /// starts only with a token that has more than a minute left, and a 401 is final.
    /// Returns the ETag Swift answered.
    fn put_stream(
        &self,
        path: &str,
        data: &InputStream,
        length: u64,
    ) -> Result<Option<String>, StoreError> {
        let session = self.session()?;
        let r = http::send(
            &Request {
                method: Method::Put,
                url: self.url(&session, path),
                headers: Self::headers(&session, &[]),
            },
            Body::Stream { from: data, length },
        )?;
        let (status, etag) = (r.status, r.header("etag").map(str::to_owned));
        self.created(status, path, &r.text())?;
        Ok(etag)
    }

    /// Checks the answer to a streamed PUT.
    fn created(&self, status: u16, path: &str, text: &str) -> Result<(), StoreError> {
        match status {
            201 => Ok(()),
            401 => {
                // Revoked or lost (tempauth keeps tokens in memcached): the next call
                // authenticates.
                self.forget_session();
                Err(StoreError::AccessDenied(format!(
                    "Swift answered 401 to PUT {path} (authentication: Swift refused the \
                     token during a streamed upload, which cannot be sent again; the next \
                     call authenticates anew)"
                )))
            }
            404 => Err(other(format!(
                "Swift answered 404 to PUT {path}: the container is missing"
            ))),
            _ => Err(wire::swift_error(status, &format!("PUT {path}"), text)),
        }
    }

    /// `r` if its status is one of `ok`, else the error it means.
    fn expect(r: Response, ok: &[u16], what: &str) -> Result<Response, StoreError> {
        if ok.contains(&r.status) {
            Ok(r)
        } else {
            Err(Self::error(r, what))
        }
    }

    /// The error an answer to `what` means.
    fn error(r: Response, what: &str) -> StoreError {
        let status = r.status;
        wire::swift_error(status, what, &r.text())
    }

    /// Checks that `container` exists; creates it if missing and `create_container` allows.
    /// (HEAD first: a user may write objects without being allowed to create containers.)
    fn ensure_container(&self, container: &str) -> Result<(), StoreError> {
        let path = uri_encode(container, true);
        let r = self.request(Method::Head, &path, &[], Replayable::Empty)?;
        match r.status {
            200..=299 => Ok(()),
            404 if self.cfg.create_container => {
                let r = self.request(Method::Put, &path, &[], Replayable::Empty)?;
                Self::expect(r, &[201, 202, 204], &format!("PUT {container}")).map(drop)
            }
            404 => Err(other(format!(
                "container {container} does not exist and create_container is false"
            ))),
            _ => Err(Self::error(r, &format!("HEAD {container}"))),
        }
    }

    /// The answer to a HEAD of the object, `None` if there is none.
    fn head(&self, path: &str) -> Result<Option<Response>, StoreError> {
        let r = self.request(Method::Head, path, &[], Replayable::Empty)?;
        match r.status {
            404 => Ok(None),
            _ => Self::expect(r, &[200, 204], &format!("HEAD {path}")).map(Some),
        }
    }

    /// Deletes an object; true if it was there.
    fn delete_object(&self, path: &str) -> Result<bool, StoreError> {
        let r = self.request(Method::Delete, path, &[], Replayable::Empty)?;
        match r.status {
            404 => Ok(false),
            _ => Self::expect(r, &[200, 204], &format!("DELETE {path}")).map(|_| true),
        }
    }

    /// Deletes what `head` describes: an SLO with its segments, or a plain object.
    fn delete_described(&self, path: &str, head: &Response) -> Result<bool, StoreError> {
        let slo = head
            .header("x-static-large-object")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if !slo {
            return self.delete_object(path);
        }
        let what = format!("DELETE {path}?multipart-manifest=delete");
        let r = self.request(
            Method::Delete,
            &format!("{path}?multipart-manifest=delete"),
            &[("accept", "application/json")],
            Replayable::Empty,
        )?;
        if r.status == 404 {
            return Ok(false);
        }
        let r = Self::expect(r, &[200], &what)?;
        let body = r.read_to_vec(4 << 20)?;
        wire::slo_delete_result(&body).map_err(StoreError::Unavailable)?;
        Ok(true)
    }

    /// Deletes every segment named `<object>/…` in the segments container (none, or no
    /// container, is fine).
    fn remove_segments(&self, object: &str) -> Result<(), StoreError> {
        let container = self.cfg.segments_container();
        let prefix = wire::segment_prefix(object);
        let mut marker = String::new();
        loop {
            let path = format!(
                "{}?format=json&prefix={}&marker={}",
                uri_encode(&container, true),
                uri_encode(&prefix, true),
                uri_encode(&marker, true)
            );
            let r = self.request(Method::Get, &path, &[], Replayable::Empty)?;
            let body = match r.status {
                204 | 404 => return Ok(()),
                _ => Self::expect(r, &[200], &format!("GET {container} (listing)"))?
                    .read_to_vec(16 << 20)?,
            };
            let (names, last) = wire::listing_names(&body, &prefix).map_err(other)?;
            for name in &names {
                self.delete_object(&object_path(&container, name))?;
            }
            match last {
                Some(last) if !names.is_empty() => marker = last,
                _ => return Ok(()),
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Uploads

    /// An SLO of `object` from `data`: the segments, then the manifest. Returns the size.
    /// On failure the segments written are removed.
    fn slo(
        &self,
        object: &str,
        data: &InputStream,
        size: Option<u64>,
        pending: Pending,
    ) -> Result<u64, StoreError> {
        let seg_container = self.cfg.segments_container();
        self.ensure_container(&seg_container)?;
        // Leftovers of an attempt that died (the host never runs two adds of one image).
        self.remove_segments(object)?;
        let mut segments = Vec::new();
        let written = match size {
            Some(size) => self.known_segments(object, data, size, &mut segments),
            None => self.unknown_segments(object, data, pending, &mut segments),
        };
        let result = written.and_then(|total| {
            let manifest = wire::manifest(&segments);
            let path = format!(
                "{}?multipart-manifest=put",
                object_path(&self.cfg.container, object)
            );
            let r = self.request(
                Method::Put,
                &path,
                &[("content-type", "application/json")],
                Replayable::Bytes(manifest.as_bytes()),
            )?;
            Self::expect(r, &[201], &format!("PUT {path}"))?;
            Ok(total)
        });
        if result.is_err() {
            for segment in &segments {
                let name = segment.path.trim_start_matches('/');
                let name = name.split_once('/').map_or(name, |(_, n)| n);
                let _ = self.delete_object(&object_path(&seg_container, name));
            }
        }
        result
    }

    fn segment(&self, object: &str, index: u64) -> (String, String) {
        let container = self.cfg.segments_container();
        let name = wire::segment_name(object, index);
        (
            object_path(&container, &name),
            format!("/{container}/{name}"),
        )
    }

    /// Segments of an image of known size, each streamed with its length.
    fn known_segments(
        &self,
        object: &str,
        data: &InputStream,
        size: u64,
        segments: &mut Vec<Segment>,
    ) -> Result<u64, StoreError> {
        let segment_size = wire::known_segment_size(size, self.cfg.segment_size).map_err(other)?;
        let mut total = 0;
        while total < size {
            let length = (size - total).min(segment_size);
            let (path, manifest_path) = self.segment(object, segments.len() as u64);
            let etag = self.put_stream(&path, data, length)?;
            segments.push(Segment {
                path: manifest_path,
                etag,
                size: length,
            });
            total += length;
        }
        expect_end(data, total)?;
        Ok(total)
    }

    /// Segments of an image of unknown size, each sent chunked up to its size: memory holds
    /// at most what `pending` holds.
    fn unknown_segments(
        &self,
        object: &str,
        data: &InputStream,
        mut pending: Pending,
        segments: &mut Vec<Segment>,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            if pending.is_empty() {
                match upload::read_chunk(data)? {
                    Some(chunk) => pending = Pending::new(chunk),
                    None => return Ok(total),
                }
            }
            let index = segments.len() as u64;
            if index == wire::MAX_SEGMENTS {
                return Err(other(format!(
                    "the image needs more than {} segments (segment_size_mb too small)",
                    wire::MAX_SEGMENTS
                )));
            }
            let limit = wire::unknown_segment_size(self.cfg.segment_size, index);
            let (path, manifest_path) = self.segment(object, index);
            let session = self.session()?;
            let sent = upload::put_chunked(
                &self.url(&session, &path),
                &Self::headers(&session, &[]),
                &mut pending,
                data,
                limit,
            )
            .map_err(StoreError::from)?;
            self.created(sent.status, &path, &sent.text)?;
            segments.push(Segment {
                path: manifest_path,
                etag: sent.etag,
                size: sent.length,
            });
            total += sent.length;
            if sent.input_ended {
                return Ok(total);
            }
        }
    }
}

/// `<container>/<object>`, encoded for a URL path.
fn object_path(container: &str, object: &str) -> String {
    format!(
        "{}/{}",
        uri_encode(container, true),
        uri_encode(object, false)
    )
}

impl Driver for SwiftStore {
    fn info() -> DriverInfo {
        DriverInfo {
            name: "store-swift".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: Capabilities::READ
                | Capabilities::WRITE
                | Capabilities::DELETE
                | Capabilities::RANGED_READS,
        }
    }

    fn add(
        image_id: String,
        data: InputStream,
        size_hint: Option<u64>,
    ) -> Result<Stored, StoreError> {
        check_image_id(&image_id)?;
        let swift = Swift::new()?;
        let cfg = &swift.cfg;
        let path = object_path(&cfg.container, &image_id);
        swift.ensure_container(&cfg.container)?;
        if swift.head(&path)?.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let stored = |size| Stored {
            location: wire::location(&cfg.container, &image_id),
            size,
        };
        let small = match size_hint {
            Some(size) if size <= cfg.large_object_size => {
                match swift.put_stream(&path, &data, size) {
                    Ok(_) => {}
                    Err(e @ (StoreError::Unavailable(_) | StoreError::Other(_))) => {
                        // A body that broke off leaves nothing in Swift; make sure.
                        let _ = swift.delete_object(&path);
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
                if let Err(e) = expect_end(&data, size) {
                    let _ = swift.delete_object(&path);
                    return Err(e);
                }
                return Ok(stored(size));
            }
            Some(_) => None,
            None => {
                // Unknown size: an image that ends within its first few MiB is one PUT.
                let limit = SMALL_IMAGE.min(cfg.segment_size).min(cfg.large_object_size);
                let mut head = read_up_to(&data, limit)?;
                let more = if (head.len() as u64) < limit {
                    None
                } else {
                    upload::read_chunk(&data)?
                };
                match more {
                    None => Some(head),
                    Some(more) => {
                        head.extend_from_slice(&more);
                        return swift
                            .slo(&image_id, &data, None, Pending::new(head))
                            .map(stored);
                    }
                }
            }
        };
        match small {
            Some(bytes) => {
                let r = swift.request(Method::Put, &path, &[], Replayable::Bytes(&bytes))?;
                let status = r.status;
                swift.created(status, &path, &r.text())?;
                Ok(stored(bytes.len() as u64))
            }
            None => swift
                .slo(&image_id, &data, size_hint, Pending::default())
                .map(stored),
        }
    }

    fn get(
        location: String,
        offset: u64,
        length: Option<u64>,
        sink: OutputStream,
    ) -> Result<u64, StoreError> {
        let swift = Swift::new()?;
        let object = wire::object_of(&location, &swift.cfg.container)
            .map_err(StoreError::InvalidLocation)?;
        if length == Some(0) {
            return Ok(0);
        }
        let range = http::range(offset, length);
        let extra: Vec<(&str, &str)> = range.iter().map(|r| ("range", r.as_str())).collect();
        let path = object_path(&swift.cfg.container, object);
        let r = swift.request(Method::Get, &path, &extra, Replayable::Empty)?;
        match http::splice_ranged(r, offset, length, &sink)? {
            Ranged::Done(n) => Ok(n),
            Ranged::Refused(r) if r.status == 200 => Err(other(format!(
                "Swift answered 200 to GET {path} with a range: the range was ignored"
            ))),
            Ranged::Refused(r) => Err(Swift::error(r, &format!("GET {path}"))),
        }
    }

    fn size(location: String) -> Result<u64, StoreError> {
        let swift = Swift::new()?;
        let object = wire::object_of(&location, &swift.cfg.container)
            .map_err(StoreError::InvalidLocation)?;
        let r = swift
            .head(&object_path(&swift.cfg.container, object))?
            .ok_or(StoreError::NotFound)?;
        r.header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| other("Swift's HEAD answer has no Content-Length"))
    }

    fn delete(location: String) -> Result<(), StoreError> {
        let swift = Swift::new()?;
        let object = wire::object_of(&location, &swift.cfg.container)
            .map_err(StoreError::InvalidLocation)?;
        let path = object_path(&swift.cfg.container, object);
        let head = swift.head(&path)?.ok_or(StoreError::NotFound)?;
        if swift.delete_described(&path, &head)? {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    fn discard_partial(image_id: String) -> Result<(), StoreError> {
        check_image_id(&image_id)?;
        let swift = Swift::new()?;
        let path = object_path(&swift.cfg.container, &image_id);
        if let Some(head) = swift.head(&path)? {
            swift.delete_described(&path, &head)?;
        }
        swift.remove_segments(&image_id)
    }
}
