//! `store-swift`: image data in OpenStack Swift (or Ceph RGW's Swift API), reached only
//! through `wasi:http` to the hosts the operator granted.
//!
//! Settings: `auth_version` (`1` tempauth, `3` Keystone), `auth_url`, `user`, `key`; for v3
//! also `project_name`, `user_domain_name` and `project_domain_name` (Default), `region`,
//! `interface` (public); `container` (glance), `create_container` (true),
//! `large_object_size_mb` (5120), `segment_size_mb` (200), `storage_url` (overrides the one
//! authentication gives).
//!
//! - Token reuse: each call runs in a fresh instance, so the token and storage URL are kept
//!   in the store's granted directory (`token.json`) until a minute before they expire;
//!   without a directory every call authenticates. A 401 on a request whose body can be sent
//!   again re-authenticates once and retries.
//! - An image of known size up to `large_object_size_mb` is one streamed PUT; a larger one, or
//!   one of unknown size, a Static Large Object: segments `<object>/<n>` in the container
//!   `<container>_segments` (streamed with their exact length when the size is known, one
//!   buffered segment at a time otherwise), then the manifest. A failed upload removes the
//!   segments it wrote.
//! - Locations are `swift://<container>/<image id>`.

use glass_store_guest::bindings::wasi::clocks::wall_clock;
use glass_store_guest::bindings::wasi::filesystem::preopens;
use glass_store_guest::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, OpenFlags, PathFlags,
};
use glass_store_guest::http::{
    self, Body, HttpError, Method, Ranged, Request, Response, uri_encode,
};
use glass_store_guest::{
    Capabilities, Driver, DriverInfo, InputStream, OutputStream, StoreError, Stored, bool_setting,
    check_image_id, expect_end, number_setting, read_up_to, required_setting, setting, truncate,
};
use serde_json::{Value, json};

struct SwiftStore;

glass_store_guest::export_driver!(SwiftStore);

const MIB: u64 = 1 << 20;
const TOKEN_FILE: &str = "token.json";

struct Config {
    auth_version: u64,
    auth_url: String,
    user: String,
    key: String,
    project: Option<String>,
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

fn config() -> Result<Config, StoreError> {
    Ok(Config {
        auth_version: number_setting("auth_version", 1)?,
        auth_url: required_setting("auth_url")?
            .trim_end_matches('/')
            .to_owned(),
        user: required_setting("user")?,
        key: required_setting("key")?,
        project: setting("project_name"),
        user_domain: setting("user_domain_name").unwrap_or_else(|| "Default".into()),
        project_domain: setting("project_domain_name").unwrap_or_else(|| "Default".into()),
        region: setting("region"),
        interface: setting("interface").unwrap_or_else(|| "public".into()),
        container: setting("container").unwrap_or_else(|| "glance".into()),
        create_container: bool_setting("create_container", true),
        large_object_size: number_setting("large_object_size_mb", 5120)? * MIB,
        segment_size: number_setting("segment_size_mb", 200)?.max(1) * MIB,
        storage_url: setting("storage_url").map(|u| u.trim_end_matches('/').to_owned()),
    })
}

/// A token and where it works.
#[derive(Clone)]
struct Session {
    token: String,
    storage_url: String,
    /// Seconds since the epoch; 0 when the server did not say.
    expires_at: u64,
}

fn now() -> u64 {
    wall_clock::now().seconds
}

/// The granted directory, if any (for the token cache).
fn state_dir() -> Option<Descriptor> {
    preopens::get_directories()
        .into_iter()
        .next()
        .map(|(d, _)| d)
}

fn load_session() -> Option<Session> {
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
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let session = Session {
        token: v["token"].as_str()?.to_owned(),
        storage_url: v["storage_url"].as_str()?.to_owned(),
        expires_at: v["expires_at"].as_u64().unwrap_or(0),
    };
    let fresh = session.expires_at == 0 || session.expires_at > now() + 60;
    fresh.then_some(session)
}

fn save_session(session: &Session) {
    let Some(dir) = state_dir() else { return };
    let body = json!({
        "token": session.token,
        "storage_url": session.storage_url,
        "expires_at": session.expires_at,
    })
    .to_string();
    let tmp = format!("{TOKEN_FILE}.tmp");
    let written = dir
        .open_at(
            PathFlags::empty(),
            &tmp,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )
        .ok()
        .and_then(|f| f.write(body.as_bytes(), 0).ok());
    if written.is_some() {
        let _ = dir.rename_at(&tmp, &dir, TOKEN_FILE);
    }
}

fn forget_session() {
    if let Some(dir) = state_dir() {
        let _ = dir.unlink_file_at(TOKEN_FILE);
    }
}

impl Config {
    fn authenticate(&self) -> Result<Session, StoreError> {
        let mut session = match self.auth_version {
            1 => self.auth_v1()?,
            3 => self.auth_v3()?,
            v => {
                return Err(StoreError::Other(format!(
                    "setting auth_version must be 1 or 3, not {v}"
                )));
            }
        };
        if let Some(url) = &self.storage_url {
            session.storage_url = url.clone();
        }
        save_session(&session);
        Ok(session)
    }

    fn auth_v1(&self) -> Result<Session, StoreError> {
        let r = http::send(
            &Request {
                method: Method::Get,
                url: self.auth_url.clone(),
                headers: vec![
                    ("x-auth-user".into(), self.user.clone()),
                    ("x-auth-key".into(), self.key.clone()),
                ],
            },
            Body::Empty,
        )?;
        if !(200..300).contains(&r.status) {
            return Err(auth_error(r.status));
        }
        let token = r.header("x-auth-token").map(str::to_owned);
        let storage_url = r.header("x-storage-url").map(str::to_owned);
        let expires_at = r
            .header("x-auth-token-expires")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(0, |secs| now() + secs);
        match (token, storage_url) {
            (Some(token), Some(storage_url)) => Ok(Session {
                token,
                storage_url,
                expires_at,
            }),
            _ => Err(StoreError::Other(
                "the auth answer had no X-Auth-Token or X-Storage-Url".into(),
            )),
        }
    }

    fn auth_v3(&self) -> Result<Session, StoreError> {
        let project = self
            .project
            .clone()
            .ok_or_else(|| StoreError::Other("setting project_name is missing".into()))?;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.user, "domain": {"name": self.user_domain}, "password": self.key}}},
            "scope": {"project": {"name": project, "domain": {"name": self.project_domain}}}
        }})
        .to_string();
        let r = http::send(
            &Request {
                method: Method::Post,
                url: format!("{}/auth/tokens", self.auth_url),
                headers: vec![("content-type".into(), "application/json".into())],
            },
            Body::Bytes(body.as_bytes()),
        )?;
        if r.status != 201 {
            return Err(auth_error(r.status));
        }
        let token = r
            .header("x-subject-token")
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Other("Keystone gave no X-Subject-Token".into()))?;
        let v: Value = serde_json::from_slice(&r.read_to_vec(4 << 20)?)
            .map_err(|e| StoreError::Other(format!("Keystone's token is not JSON: {e}")))?;
        let storage_url = v["token"]["catalog"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["type"] == "object-store")
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .find(|e| {
                e["interface"] == self.interface.as_str()
                    && self
                        .region
                        .as_deref()
                        .is_none_or(|r| e["region"] == r || e["region_id"] == r)
            })
            .and_then(|e| {
                e["url"]
                    .as_str()
                    .map(|u| u.trim_end_matches('/').to_owned())
            })
            .or_else(|| self.storage_url.clone())
            .ok_or_else(|| StoreError::Other("no object-store endpoint in the catalog".into()))?;
        let expires_at = v["token"]["expires_at"]
            .as_str()
            .and_then(parse_iso8601)
            .unwrap_or(0);
        Ok(Session {
            token,
            storage_url,
            expires_at,
        })
    }

    fn session(&self) -> Result<Session, StoreError> {
        match load_session() {
            Some(s) => Ok(s),
            None => self.authenticate(),
        }
    }

    /// A request to `path` under the storage URL, authenticated. A 401 re-authenticates
    /// once and retries, unless the body was a stream (it cannot be sent twice).
    fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<Response, StoreError> {
        let replayable = !matches!(body, Body::Stream { .. });
        let bytes = match &body {
            Body::Bytes(b) => Some(*b),
            _ => None,
        };
        let session = self.session()?;
        let r = self.send_with(&session, method, path, headers, body)?;
        if r.status != 401 || !replayable {
            return Ok(r);
        }
        forget_session();
        let session = self.authenticate()?;
        let body = bytes.map_or(Body::Empty, Body::Bytes);
        let r = self.send_with(&session, method, path, headers, body)?;
        if r.status == 401 {
            return Err(StoreError::AccessDenied(
                "Swift refused the token just issued (401)".into(),
            ));
        }
        Ok(r)
    }

    fn send_with(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<Response, HttpError> {
        let mut all = vec![("x-auth-token".to_string(), session.token.clone())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.clone())));
        http::send(
            &Request {
                method,
                url: format!("{}/{path}", session.storage_url),
                headers: all,
            },
            body,
        )
    }

    fn object_path(&self, container: &str, object: &str) -> String {
        format!(
            "{}/{}",
            uri_encode(container, true),
            uri_encode(object, false)
        )
    }

    fn segments_container(&self) -> String {
        format!("{}_segments", self.container)
    }

    fn ensure_container(&self, container: &str) -> Result<(), StoreError> {
        if !self.create_container {
            return Ok(());
        }
        let r = self.send(Method::Put, &uri_encode(container, true), &[], Body::Empty)?;
        match r.status {
            201 | 202 | 204 => Ok(()),
            status => Err(swift_error(status, r, "creating container")),
        }
    }

    fn head(&self, path: &str) -> Result<Option<Response>, StoreError> {
        let r = self.send(Method::Head, path, &[], Body::Empty)?;
        match r.status {
            200 | 204 => Ok(Some(r)),
            404 => Ok(None),
            status => Err(swift_error(status, r, "HEAD")),
        }
    }

    fn put(&self, path: &str, body: Body) -> Result<Response, StoreError> {
        let r = self.send(Method::Put, path, &[], body)?;
        match r.status {
            201 => Ok(r),
            status => Err(swift_error(status, r, "PUT")),
        }
    }

    fn delete_path(&self, path: &str) -> Result<(), StoreError> {
        let r = self.send(Method::Delete, path, &[], Body::Empty)?;
        match r.status {
            200 | 204 | 404 => Ok(()),
            status => Err(swift_error(status, r, "DELETE")),
        }
    }

    /// Writes the segments and the manifest of an SLO; returns the size.
    fn slo(&self, object: &str, data: &InputStream, size: Option<u64>) -> Result<u64, StoreError> {
        let seg_container = self.segments_container();
        self.ensure_container(&seg_container)?;
        let mut segments: Vec<Value> = Vec::new();
        let mut written: Vec<String> = Vec::new();
        let result = (|| -> Result<u64, StoreError> {
            let mut total = 0u64;
            loop {
                let name = format!("{object}/{:08}", segments.len() + 1);
                let path = self.object_path(&seg_container, &name);
                let (length, r) = match size {
                    Some(size) => {
                        let length = (size - total).min(self.segment_size);
                        if length == 0 && !segments.is_empty() {
                            break;
                        }
                        (
                            length,
                            self.put(&path, Body::Stream { from: data, length })?,
                        )
                    }
                    None => {
                        let part = read_up_to(data, self.segment_size)?;
                        if part.is_empty() && !segments.is_empty() {
                            break;
                        }
                        let length = part.len() as u64;
                        (length, self.put(&path, Body::Bytes(&part))?)
                    }
                };
                written.push(path);
                total += length;
                let etag = r.header("etag").unwrap_or("").trim_matches('"').to_owned();
                segments.push(json!({
                    "path": format!("/{seg_container}/{name}"),
                    "etag": etag,
                    "size_bytes": length,
                }));
                if size.is_none() && length < self.segment_size {
                    break;
                }
            }
            if size.is_some() {
                expect_end(data, total)?;
            }
            let manifest = Value::Array(segments.clone()).to_string();
            let path = format!(
                "{}?multipart-manifest=put",
                self.object_path(&self.container, object)
            );
            self.put(&path, Body::Bytes(manifest.as_bytes()))?;
            Ok(total)
        })();
        if result.is_err() {
            for path in &written {
                let _ = self.delete_path(path);
            }
        }
        result
    }

    fn key_of<'a>(&self, location: &'a str) -> Result<&'a str, StoreError> {
        let bad = || {
            StoreError::InvalidLocation(format!(
                "not a location of container {}: {:?}",
                self.container,
                truncate(location)
            ))
        };
        let rest = location.strip_prefix("swift://").ok_or_else(bad)?;
        let (container, object) = rest.split_once('/').ok_or_else(bad)?;
        if container != self.container || check_image_id(object).is_err() {
            return Err(bad());
        }
        Ok(object)
    }
}

fn auth_error(status: u16) -> StoreError {
    match status {
        401 | 403 => StoreError::AccessDenied(format!(
            "Swift authentication refused the credentials ({status})"
        )),
        _ => StoreError::Unavailable(format!("Swift authentication answered {status}")),
    }
}

fn swift_error(status: u16, r: Response, what: &str) -> StoreError {
    let body = r.text();
    let message = format!("Swift {what} answered {status}: {}", truncate(body.trim()));
    match status {
        404 => StoreError::NotFound,
        401 | 403 => StoreError::AccessDenied(message),
        500..=599 => StoreError::Unavailable(message),
        _ => StoreError::Other(message),
    }
}

/// `2026-11-22T12:34:56.000000Z` to seconds since the epoch.
fn parse_iso8601(s: &str) -> Option<u64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.trim_end_matches('Z').split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    // Days from civil (H. Hinnant's method).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + min * 60 + sec).ok()
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
        let cfg = config()?;
        cfg.ensure_container(&cfg.container)?;
        let path = cfg.object_path(&cfg.container, &image_id);
        if cfg.head(&path)?.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let size = match size_hint {
            Some(size) if size <= cfg.large_object_size => {
                cfg.put(
                    &path,
                    Body::Stream {
                        from: &data,
                        length: size,
                    },
                )?;
                if let Err(e) = expect_end(&data, size) {
                    let _ = cfg.delete_path(&path);
                    return Err(e);
                }
                size
            }
            hint => cfg.slo(&image_id, &data, hint)?,
        };
        Ok(Stored {
            location: format!("swift://{}/{image_id}", cfg.container),
            size,
        })
    }

    fn get(
        location: String,
        offset: u64,
        length: Option<u64>,
        sink: OutputStream,
    ) -> Result<u64, StoreError> {
        let cfg = config()?;
        let object = cfg.key_of(&location)?;
        if length == Some(0) {
            return Ok(0);
        }
        let headers: Vec<(&str, String)> = http::range(offset, length)
            .map(|r| vec![("range", r)])
            .unwrap_or_default();
        let path = cfg.object_path(&cfg.container, object);
        let r = cfg.send(Method::Get, &path, &headers, Body::Empty)?;
        match http::splice_ranged(r, offset, length, &sink)? {
            Ranged::Done(n) => Ok(n),
            Ranged::Refused(r) => Err(swift_error(r.status, r, "GET")),
        }
    }

    fn size(location: String) -> Result<u64, StoreError> {
        let cfg = config()?;
        let object = cfg.key_of(&location)?;
        let r = cfg
            .head(&cfg.object_path(&cfg.container, object))?
            .ok_or(StoreError::NotFound)?;
        r.header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| StoreError::Other("HEAD gave no content-length".into()))
    }

    fn delete(location: String) -> Result<(), StoreError> {
        let cfg = config()?;
        let object = cfg.key_of(&location)?;
        let path = cfg.object_path(&cfg.container, object);
        let head = cfg.head(&path)?.ok_or(StoreError::NotFound)?;
        let slo = head
            .header("x-static-large-object")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if slo {
            cfg.delete_path(&format!("{path}?multipart-manifest=delete"))
        } else {
            cfg.delete_path(&path)
        }
    }

    fn discard_partial(image_id: String) -> Result<(), StoreError> {
        check_image_id(&image_id)?;
        let cfg = config()?;
        let path = cfg.object_path(&cfg.container, &image_id);
        if let Some(head) = cfg.head(&path)? {
            let slo = head.header("x-static-large-object").is_some();
            let suffix = if slo {
                "?multipart-manifest=delete"
            } else {
                ""
            };
            cfg.delete_path(&format!("{path}{suffix}"))?;
        }
        // Segments a dead upload left behind.
        let seg = cfg.segments_container();
        let list = cfg.send(
            Method::Get,
            &format!(
                "{}?format=json&prefix={}",
                uri_encode(&seg, true),
                uri_encode(&format!("{image_id}/"), true)
            ),
            &[],
            Body::Empty,
        )?;
        match list.status {
            200 => {
                let names: Value =
                    serde_json::from_slice(&list.read_to_vec(4 << 20)?).unwrap_or(Value::Null);
                for name in names.as_array().into_iter().flatten() {
                    if let Some(name) = name["name"].as_str() {
                        cfg.delete_path(&cfg.object_path(&seg, name))?;
                    }
                }
                Ok(())
            }
            204 | 404 => Ok(()),
            status => Err(swift_error(status, list, "listing segments")),
        }
    }
}
