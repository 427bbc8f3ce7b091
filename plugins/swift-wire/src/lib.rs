//! Swift's and Keystone's formats and the store-swift driver's rules about them, in a crate
//! free of WASI imports so that its tests and fuzz target run natively: locations,
//! container names, segment names and sizes, the SLO manifest, authentication answers (v1
//! tempauth headers, v3 Keystone token and catalog), the cached token's file, the answer of
//! an SLO delete, container listings, and HTTP statuses mapped to [`SwiftError`].

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// How a Swift or Keystone answer failed, as the driver reports it (store-swift maps each
/// case to the store contract's error of the same name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwiftError {
    /// The object is not there (404).
    NotFound,
    /// Authentication or authorization refused (401, 403).
    AccessDenied(String),
    /// The server may answer later (timeouts, 429, 5xx).
    Unavailable(String),
    /// Anything else.
    Other(String),
}

/// At most 80 characters of untrusted input, for error messages.
pub fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A lowercase, hyphenated UUID: the only object names this driver writes.
pub fn is_canonical_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

pub const MIB: u64 = 1 << 20;
/// Swift's default `max_file_size` (5 GiB): no single PUT, hence no segment, may be larger.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * MIB;
/// Swift's default `max_manifest_segments`.
pub const MAX_SEGMENTS: u64 = 1000;
/// An image of unknown size doubles its segment size after every this many segments, so
/// that `MAX_SEGMENTS` segments hold far more than `MAX_SEGMENTS * segment_size`.
pub const SEGMENTS_PER_SIZE: u64 = 100;
/// A token is not used in its last minute: a request started with it must not meet its end.
pub const EXPIRY_MARGIN: u64 = 60;
/// How long a token whose server did not say when it expires is used (a 401 still
/// re-authenticates earlier).
pub const DEFAULT_LIFETIME: u64 = 3600;
/// Every location this driver hands out starts with this.
pub const LOCATION_SCHEME: &str = "swift://";
/// The segments of an SLO go to `<container>` followed by this.
pub const SEGMENTS_SUFFIX: &str = "_segments";
/// Swift's `MAX_CONTAINER_NAME_LENGTH`.
const MAX_CONTAINER_NAME: usize = 256;

// ---------------------------------------------------------------------------------------
// Names and locations

/// A container name Swift accepts, leaving room for the segments container's suffix.
pub fn check_container(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the container name is empty".into());
    }
    if name.len() + SEGMENTS_SUFFIX.len() > MAX_CONTAINER_NAME {
        return Err(format!(
            "the container name is longer than {} bytes",
            MAX_CONTAINER_NAME - SEGMENTS_SUFFIX.len()
        ));
    }
    if name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!(
            "the container name {name:?} contains '/' or a control character"
        ));
    }
    Ok(())
}

/// The location of `object` (an image id) in `container`.
pub fn location(container: &str, object: &str) -> String {
    format!("{LOCATION_SCHEME}{container}/{object}")
}

/// The object (image id) a location names: exactly `swift://<container>/<image uuid>`, the
/// container being the store's. Anything else is a location this store did not write.
pub fn object_of<'a>(location: &'a str, container: &str) -> Result<&'a str, String> {
    let bad = || {
        format!(
            "not a location of this store (swift://{container}/<image uuid>): {:?}",
            truncate(location)
        )
    };
    let rest = location.strip_prefix(LOCATION_SCHEME).ok_or_else(bad)?;
    let object = rest
        .strip_prefix(container)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(bad)?;
    if is_canonical_uuid(object) {
        Ok(object)
    } else {
        Err(bad())
    }
}

/// The name of segment `index` (from 0) of `object`: `<object>/00000001`, …
pub fn segment_name(object: &str, index: u64) -> String {
    format!("{}{:08}", segment_prefix(object), index + 1)
}

/// What every segment name of `object` starts with.
pub fn segment_prefix(object: &str) -> String {
    format!("{object}/")
}

// ---------------------------------------------------------------------------------------
// Segment sizes and the manifest

/// The segment size for an image of known `size`: `segment_size`, or larger when the image
/// would otherwise need more than `MAX_SEGMENTS` segments.
pub fn known_segment_size(size: u64, segment_size: u64) -> Result<u64, String> {
    let needed = size.div_ceil(MAX_SEGMENTS).next_multiple_of(MIB);
    let chosen = segment_size.max(needed);
    if chosen > MAX_OBJECT_SIZE {
        return Err(format!(
            "an image of {size} bytes needs segments larger than Swift's 5 GiB object limit"
        ));
    }
    Ok(chosen)
}

/// The size of segment `index` (from 0) of an image of unknown size: `segment_size` for the
/// first `SEGMENTS_PER_SIZE` segments, then doubling, at most `MAX_OBJECT_SIZE`.
pub fn unknown_segment_size(segment_size: u64, index: u64) -> u64 {
    let doublings = (index / SEGMENTS_PER_SIZE).min(32) as u32;
    segment_size
        .checked_mul(1u64 << doublings)
        .unwrap_or(MAX_OBJECT_SIZE)
        .min(MAX_OBJECT_SIZE)
}

/// A stored segment, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `/<container>/<object>` (not encoded; Swift reads it as a name).
    pub path: String,
    /// The ETag Swift answered (the MD5), or `None` to let Swift take the one it has.
    pub etag: Option<String>,
    pub size: u64,
}

/// The body of `PUT <object>?multipart-manifest=put`: every segment with its ETag and size,
/// which Swift checks against the segments it holds before it accepts the manifest.
pub fn manifest(segments: &[Segment]) -> String {
    Value::Array(
        segments
            .iter()
            .map(|s| {
                json!({
                    "path": s.path,
                    "etag": s.etag.as_deref().map(|e| e.trim_matches('"')),
                    "size_bytes": s.size,
                })
            })
            .collect(),
    )
    .to_string()
}

// ---------------------------------------------------------------------------------------
// Authentication and the cached token

/// A token and the storage URL it works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token: String,
    pub storage_url: String,
    /// Seconds since the epoch.
    pub expires_at: u64,
}

impl Session {
    /// True while the token has more than `EXPIRY_MARGIN` seconds left.
    pub fn usable(&self, now: u64) -> bool {
        self.expires_at > now.saturating_add(EXPIRY_MARGIN)
    }

    /// The token file's content. `fingerprint` identifies the settings that obtained it.
    pub fn to_file(&self, fingerprint: &str) -> String {
        json!({
            "fingerprint": fingerprint,
            "token": self.token,
            "storage_url": self.storage_url,
            "expires_at": self.expires_at,
        })
        .to_string()
    }

    /// The session a token file holds, if it was obtained with the same settings
    /// (`fingerprint`) and is still usable at `now`.
    pub fn from_file(bytes: &[u8], fingerprint: &str, now: u64) -> Option<Session> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        if v["fingerprint"].as_str()? != fingerprint {
            return None;
        }
        let session = Session {
            token: v["token"].as_str().filter(|t| !t.is_empty())?.to_owned(),
            storage_url: v["storage_url"].as_str()?.to_owned(),
            expires_at: v["expires_at"].as_u64()?,
        };
        session.usable(now).then_some(session)
    }
}

/// A digest of everything that decides which token authentication gives (the key
/// included, so that a changed key is used at once), for the token file. Never the key
/// itself.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The session of a v1 (tempauth) answer: its `X-Auth-Token`, `X-Storage-Url` and
/// `X-Auth-Token-Expires` (seconds left) headers.
pub fn v1_session(
    token: Option<&str>,
    storage_url: Option<&str>,
    expires_in: Option<&str>,
    now: u64,
) -> Result<Session, String> {
    let token = token.map(str::trim).filter(|t| !t.is_empty());
    let storage_url = storage_url.map(str::trim).filter(|u| !u.is_empty());
    let (Some(token), Some(storage_url)) = (token, storage_url) else {
        return Err("the v1 authentication answer has no X-Auth-Token or X-Storage-Url".into());
    };
    let lifetime = expires_in
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_LIFETIME);
    Ok(Session {
        token: token.to_owned(),
        storage_url: storage_url.trim_end_matches('/').to_owned(),
        expires_at: now.saturating_add(lifetime),
    })
}

/// The body of Keystone's `POST /v3/auth/tokens`: password authentication, scoped to a
/// project by name.
pub fn v3_request(
    user: &str,
    user_domain: &str,
    password: &str,
    project: &str,
    project_domain: &str,
) -> String {
    json!({"auth": {
        "identity": {
            "methods": ["password"],
            "password": {"user": {
                "name": user,
                "domain": {"name": user_domain},
                "password": password,
            }},
        },
        "scope": {"project": {"name": project, "domain": {"name": project_domain}}},
    }})
    .to_string()
}

/// The session of a v3 answer: the `X-Subject-Token` header, the `object-store` endpoint
/// of the catalog for `interface` (and `region`, if given) — or `fallback_url` when the
/// catalog has none — and the token's `expires_at`.
pub fn v3_session(
    subject_token: Option<&str>,
    body: &[u8],
    interface: &str,
    region: Option<&str>,
    fallback_url: Option<&str>,
    now: u64,
) -> Result<Session, String> {
    let token = subject_token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("Keystone's answer has no X-Subject-Token")?;
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("Keystone's token is not JSON: {e}"))?;
    let interface = interface.trim_end_matches("URL");
    let storage_url = v["token"]["catalog"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|service| service["type"] == "object-store")
        .flat_map(|service| service["endpoints"].as_array().into_iter().flatten())
        .find(|e| {
            e["interface"] == interface
                && region.is_none_or(|r| e["region_id"] == r || e["region"] == r)
        })
        .and_then(|e| e["url"].as_str())
        .or(fallback_url)
        .map(|u| u.trim_end_matches('/').to_owned())
        .ok_or_else(|| {
            format!(
                "Keystone's catalog has no object-store endpoint for interface {interface}{} \
                 (set storage_url)",
                region
                    .map(|r| format!(" in region {r}"))
                    .unwrap_or_default()
            )
        })?;
    let expires_at = v["token"]["expires_at"]
        .as_str()
        .and_then(parse_iso8601)
        .unwrap_or(now.saturating_add(DEFAULT_LIFETIME));
    Ok(Session {
        token: token.to_owned(),
        storage_url,
        expires_at,
    })
}

/// `2026-11-22T12:34:56.000000Z` (UTC, as Keystone writes it) to seconds since the epoch.
pub fn parse_iso8601(s: &str) -> Option<u64> {
    let (date, time) = s.trim().split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))
        .unwrap_or(time);
    let mut t = time.splitn(3, ':');
    let h = t.next()?.parse::<i64>().ok()?;
    let min = t.next()?.parse::<i64>().ok()?;
    let sec = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    // Four-digit years only: a larger one would overflow the day count below.
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&min)
        || !(0..=60).contains(&sec)
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + min * 60 + sec).ok()
}

// ---------------------------------------------------------------------------------------
// Answers

/// The outcome of `DELETE <object>?multipart-manifest=delete` (asked with
/// `Accept: application/json`): Swift answers 200 even when some deletions failed and says
/// so in the body.
pub fn slo_delete_result(body: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the answer to the SLO delete is not JSON: {e}"))?;
    let status = v["Response Status"].as_str().unwrap_or("");
    let errors: Vec<String> = v["Errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| match e.as_array().map(Vec::as_slice) {
            Some([name, why]) => format!(
                "{}: {}",
                name.as_str().unwrap_or("?"),
                why.as_str().unwrap_or("?")
            ),
            _ => e.to_string(),
        })
        .collect();
    if status.starts_with('2') && errors.is_empty() {
        Ok(())
    } else {
        let body = v["Response Body"].as_str().unwrap_or("");
        Err(
            format!("Swift's SLO delete: {status} {body} {}", errors.join("; "))
                .trim()
                .to_owned(),
        )
    }
}

/// The object names of a JSON container listing that start with `prefix`, and the last
/// name (the marker for the next page).
pub fn listing_names(body: &[u8], prefix: &str) -> Result<(Vec<String>, Option<String>), String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the listing is not JSON: {e}"))?;
    let entries = v.as_array().ok_or("the listing is not a JSON array")?;
    let all: Vec<&str> = entries.iter().filter_map(|e| e["name"].as_str()).collect();
    let last = all.last().map(|s| (*s).to_owned());
    let names = all
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect();
    Ok((names, last))
}

/// What a server said in an error body, on one line: Keystone's JSON `error.message`, or
/// the text of Swift's small HTML page, at most 200 characters.
pub fn server_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body)
        && let Some(m) = v["error"]["message"].as_str()
    {
        return truncate(m).to_owned();
    }
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let line = words.join(" ");
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

/// The store error for an answer of Swift with status `status` to `what` (for example
/// `PUT glance/<id>`), with the server's message.
pub fn swift_error(status: u16, what: &str, body: &str) -> SwiftError {
    let said = server_message(body);
    let message = if said.is_empty() {
        format!("Swift answered {status} to {what}")
    } else {
        format!("Swift answered {status} to {what}: {said}")
    };
    match status {
        404 => SwiftError::NotFound,
        401 => SwiftError::AccessDenied(format!(
            "{message} (authentication: Swift refused the token)"
        )),
        403 => SwiftError::AccessDenied(format!(
            "{message} (authorization: the user may not do this)"
        )),
        408 | 429 | 498 | 499 | 500..=599 => SwiftError::Unavailable(message),
        _ => SwiftError::Other(message),
    }
}

/// The store error for a refused authentication at `url` as `user`.
pub fn auth_error(status: u16, url: &str, user: &str, body: &str) -> SwiftError {
    let said = server_message(body);
    let message = format!("authentication as {user} at {url} answered {status}: {said}");
    let message = message.trim_end_matches([':', ' ']).to_owned();
    match status {
        401 => SwiftError::AccessDenied(format!("{message} (wrong user or key)")),
        403 => SwiftError::AccessDenied(format!("{message} (the user may not have a token)")),
        408 | 429 | 500..=599 => SwiftError::Unavailable(message),
        _ => SwiftError::Other(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b9e8a52-54b4-4c6e-9f3e-1f2a3b4c5d6e";

    #[test]
    fn locations_round_trip_and_are_strict() {
        let loc = location("glance", ID);
        assert_eq!(loc, format!("swift://glance/{ID}"));
        assert_eq!(object_of(&loc, "glance"), Ok(ID));
        for bad in [
            format!("swift://other/{ID}"),
            format!("swift://glance_segments/{ID}"),
            format!("swift://glance/{ID}/00000001"),
            format!("swift://glance//{ID}"),
            format!("swift://glance/{}", ID.to_uppercase()),
            format!("swift://glance/{ID}?multipart-manifest=get"),
            format!("swift://glanc/{ID}"),
            format!("swift://glance{ID}"),
            format!("swift+http://glance/{ID}"),
            format!("file:///{ID}"),
            "swift://glance/".into(),
            "swift://glance/../x".into(),
            String::new(),
        ] {
            assert!(object_of(&bad, "glance").is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn container_names() {
        assert!(check_container("glance").is_ok());
        assert!(check_container("glass images").is_ok());
        assert!(check_container(&"c".repeat(247)).is_ok());
        assert!(check_container(&"c".repeat(248)).is_err());
        assert!(check_container("").is_err());
        assert!(check_container("a/b").is_err());
        assert!(check_container("a\nb").is_err());
    }

    #[test]
    fn segment_names_sort_in_order() {
        assert_eq!(segment_name(ID, 0), format!("{ID}/00000001"));
        assert_eq!(segment_name(ID, 999), format!("{ID}/00001000"));
        assert!(segment_name(ID, 9) < segment_name(ID, 10));
        assert!(segment_name(ID, 3).starts_with(&segment_prefix(ID)));
    }

    #[test]
    fn known_sizes_fit_in_the_segment_limit() {
        let gib = 1024 * MIB;
        assert_eq!(known_segment_size(3 * MIB + MIB / 2, MIB), Ok(MIB));
        assert_eq!(known_segment_size(100 * gib, 200 * MIB), Ok(200 * MIB));
        // 1 TiB in 200 MiB segments would be 5243 of them.
        let s = known_segment_size(1024 * gib, 200 * MIB).unwrap();
        assert!(
            s.is_multiple_of(MIB) && (1024 * gib).div_ceil(s) <= MAX_SEGMENTS,
            "{s}"
        );
        assert!(known_segment_size(MAX_SEGMENTS * MAX_OBJECT_SIZE, MIB).is_ok());
        assert!(known_segment_size(MAX_SEGMENTS * MAX_OBJECT_SIZE + 1, MIB).is_err());
    }

    #[test]
    fn unknown_sizes_grow_their_segments() {
        assert_eq!(unknown_segment_size(MIB, 0), MIB);
        assert_eq!(unknown_segment_size(MIB, 99), MIB);
        assert_eq!(unknown_segment_size(MIB, 100), 2 * MIB);
        assert_eq!(unknown_segment_size(200 * MIB, 999), MAX_OBJECT_SIZE);
        assert_eq!(unknown_segment_size(MAX_OBJECT_SIZE, 500), MAX_OBJECT_SIZE);
        let total: u64 = (0..MAX_SEGMENTS)
            .map(|i| unknown_segment_size(200 * MIB, i))
            .sum();
        // 1000 segments of 200 MiB would hold 195 GiB; growing, they hold 3 TiB.
        assert!(total > 3 * 1024 * 1024 * MIB, "{total}");
    }

    #[test]
    fn manifest_lists_path_etag_and_size() {
        let m = manifest(&[
            Segment {
                path: format!("/glance_segments/{ID}/00000001"),
                etag: Some("\"5d41402abc4b2a76b9719d911017c592\"".into()),
                size: 1048576,
            },
            Segment {
                path: format!("/glance_segments/{ID}/00000002"),
                etag: None,
                size: 5,
            },
        ]);
        let v: Value = serde_json::from_str(&m).unwrap();
        assert_eq!(
            v,
            json!([
                {"path": format!("/glance_segments/{ID}/00000001"),
                 "etag": "5d41402abc4b2a76b9719d911017c592", "size_bytes": 1048576},
                {"path": format!("/glance_segments/{ID}/00000002"),
                 "etag": null, "size_bytes": 5},
            ])
        );
    }

    #[test]
    fn token_file_round_trip() {
        let s = Session {
            token: "AUTH_tk1".into(),
            storage_url: "http://127.0.0.1:8280/v1/AUTH_glance".into(),
            expires_at: 10_000,
        };
        let f = fingerprint(&["1", "http://a/auth/v1.0", "glance:glance", "glancepass"]);
        let file = s.to_file(&f);
        assert!(!file.contains("glancepass"));
        assert_eq!(
            Session::from_file(file.as_bytes(), &f, 5_000),
            Some(s.clone())
        );
        // Too close to its expiry, expired, other settings, garbage.
        assert_eq!(Session::from_file(file.as_bytes(), &f, 10_000 - 60), None);
        assert_eq!(Session::from_file(file.as_bytes(), &f, 20_000), None);
        let other = fingerprint(&["1", "http://a/auth/v1.0", "glance:glance", "wrong"]);
        assert_eq!(Session::from_file(file.as_bytes(), &other, 5_000), None);
        assert_eq!(Session::from_file(b"{\"token\":", &f, 5_000), None);
        assert_eq!(Session::from_file(b"", &f, 5_000), None);
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&["x"]).len(), 64);
    }

    #[test]
    fn v1_answers() {
        let s = v1_session(
            Some("AUTH_tk1"),
            Some("http://127.0.0.1:8280/v1/AUTH_glance/"),
            Some("86399"),
            1000,
        )
        .unwrap();
        assert_eq!(s.token, "AUTH_tk1");
        assert_eq!(s.storage_url, "http://127.0.0.1:8280/v1/AUTH_glance");
        assert_eq!(s.expires_at, 1000 + 86399);
        let s = v1_session(Some("t"), Some("http://x/v1/AUTH_a"), None, 1000).unwrap();
        assert_eq!(s.expires_at, 1000 + DEFAULT_LIFETIME);
        assert!(v1_session(None, Some("http://x"), None, 0).is_err());
        assert!(v1_session(Some("t"), None, None, 0).is_err());
        assert!(v1_session(Some(" "), Some("http://x"), None, 0).is_err());
    }

    #[test]
    fn v3_request_is_a_project_scoped_password_auth() {
        let body = v3_request("glance", "Default", "s3cret", "service", "Default");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["auth"]["identity"]["methods"], json!(["password"]));
        let user = &v["auth"]["identity"]["password"]["user"];
        assert_eq!(user["name"], "glance");
        assert_eq!(user["password"], "s3cret");
        assert_eq!(user["domain"]["name"], "Default");
        assert_eq!(
            v["auth"]["scope"]["project"],
            json!({"name": "service", "domain": {"name": "Default"}})
        );
    }

    fn keystone_token() -> Vec<u8> {
        json!({"token": {
        "expires_at": "2026-11-22T12:34:56.000000Z",
        "catalog": [
            {"type": "image", "endpoints": [
                {"interface": "public", "region": "RegionOne", "region_id": "RegionOne",
                 "url": "http://127.0.0.1:9292"}]},
            {"type": "object-store", "name": "swift", "endpoints": [
                {"interface": "admin", "region": "RegionOne", "region_id": "RegionOne",
                 "url": "http://10.0.0.1:8080/v1"},
                {"interface": "internal", "region": "RegionOne", "region_id": "RegionOne",
                 "url": "http://10.0.0.1:8080/v1/AUTH_p1"},
                {"interface": "public", "region": "RegionTwo", "region_id": "RegionTwo",
                 "url": "http://two:8080/v1/AUTH_p1"},
                {"interface": "public", "region": "RegionOne", "region_id": "RegionOne",
                 "url": "http://one:8080/v1/AUTH_p1/"}]}
        ]}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn v3_answers_pick_the_endpoint() {
        let body = keystone_token();
        let s = v3_session(Some("gAAAA"), &body, "public", None, None, 0).unwrap();
        assert_eq!(s.token, "gAAAA");
        assert_eq!(s.storage_url, "http://two:8080/v1/AUTH_p1");
        assert_eq!(s.expires_at, 1_795_350_896);
        let s = v3_session(Some("t"), &body, "public", Some("RegionOne"), None, 0).unwrap();
        assert_eq!(s.storage_url, "http://one:8080/v1/AUTH_p1");
        let s = v3_session(Some("t"), &body, "internalURL", None, None, 0).unwrap();
        assert_eq!(s.storage_url, "http://10.0.0.1:8080/v1/AUTH_p1");
        assert!(v3_session(Some("t"), &body, "public", Some("RegionThree"), None, 0).is_err());
        let s = v3_session(
            Some("t"),
            &body,
            "public",
            Some("X"),
            Some("http://o/v1/A"),
            0,
        );
        assert_eq!(s.unwrap().storage_url, "http://o/v1/A");
        assert!(v3_session(None, &body, "public", None, None, 0).is_err());
        assert!(v3_session(Some("t"), b"<html>", "public", None, None, 0).is_err());
        // No expiry given: the default lifetime.
        let s = v3_session(
            Some("t"),
            b"{\"token\":{}}",
            "public",
            None,
            Some("http://o"),
            7,
        );
        assert_eq!(s.unwrap().expires_at, 7 + DEFAULT_LIFETIME);
    }

    #[test]
    fn iso8601() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso8601("2026-11-22T12:34:56.000000Z"),
            Some(1_795_350_896)
        );
        assert_eq!(parse_iso8601("2000-02-29T23:59:59Z"), Some(951_868_799));
        assert_eq!(
            parse_iso8601("2038-01-19T03:14:08+00:00"),
            Some(2_147_483_648)
        );
        assert_eq!(parse_iso8601("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(parse_iso8601("2026-11-22"), None);
    }

    /// Found while writing the fuzz target: a Keystone answer's `expires_at` with a huge year
    /// or a huge negative field overflowed the day and second arithmetic (a panic with
    /// overflow checks, a wrapped, wrong expiry without).
    #[test]
    fn iso8601_refuses_what_would_overflow() {
        for s in [
            "9223372036854775807-01-01T00:00:00Z",
            "99999999999-01-01T00:00:00Z",
            "-9223372036854775808-03-01T00:00:00Z",
            "2026-01-01T00:-9223372036854775808:00Z",
            "2026-01-01T-9223372036854775808:00:00Z",
            "2026-01-01T00:00:-9223372036854775808Z",
        ] {
            assert_eq!(parse_iso8601(s), None, "{s}");
        }
        assert_eq!(parse_iso8601("9999-12-31T23:59:59Z"), Some(253_402_300_799));
    }

    #[test]
    fn slo_delete_answers() {
        let ok = br#" {"Response Status": "200 OK", "Response Body": "", "Number Deleted": 4,
                      "Number Not Found": 0, "Errors": []}"#;
        assert_eq!(slo_delete_result(ok), Ok(()));
        let failed = br#"{"Response Status": "409 Conflict", "Response Body": "",
            "Number Deleted": 1, "Number Not Found": 0,
            "Errors": [["/glance_segments/x/00000002", "409 Conflict"]]}"#;
        let e = slo_delete_result(failed).unwrap_err();
        assert!(
            e.contains("409 Conflict") && e.contains("/glance_segments/x/00000002"),
            "{e}"
        );
        assert!(slo_delete_result(b"Response Status: 200 OK").is_err());
    }

    #[test]
    fn listings() {
        let body = format!(
            r#"[{{"name": "{ID}/00000001", "bytes": 1}}, {{"name": "{ID}/00000002", "bytes": 1}},
                {{"name": "{ID}x", "bytes": 1}}]"#
        );
        let (names, last) = listing_names(body.as_bytes(), &segment_prefix(ID)).unwrap();
        assert_eq!(names, vec![segment_name(ID, 0), segment_name(ID, 1)]);
        assert_eq!(last, Some(format!("{ID}x")));
        assert_eq!(listing_names(b"[]", "x"), Ok((vec![], None)));
        assert!(listing_names(b"{}", "x").is_err());
    }

    #[test]
    fn server_messages_are_short_text() {
        assert_eq!(
            server_message(
                "<html><h1>Unauthorized</h1><p>This server could not verify that you are \
                 authorized to access the document you requested.</p></html>"
            ),
            "Unauthorized This server could not verify that you are authorized to access \
             the document you requested."
        );
        assert_eq!(
            server_message(
                r#"{"error": {"code": 401, "title": "Unauthorized",
                   "message": "The request you have made requires authentication."}}"#
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(server_message(""), "");
        assert!(server_message(&"x ".repeat(500)).chars().count() <= 201);
    }

    #[test]
    fn statuses_map_to_store_errors() {
        let what = format!("PUT glance/{ID}");
        assert!(matches!(swift_error(404, &what, ""), SwiftError::NotFound));
        match swift_error(401, &what, "<h1>Unauthorized</h1>") {
            SwiftError::AccessDenied(m) => {
                assert!(m.contains("401") && m.contains("authentication") && m.contains(ID))
            }
            e => panic!("{e:?}"),
        }
        match swift_error(403, &what, "<h1>Forbidden</h1>") {
            SwiftError::AccessDenied(m) => {
                assert!(m.contains("403") && m.contains("authorization") && m.contains("Forbidden"))
            }
            e => panic!("{e:?}"),
        }
        match swift_error(503, &what, "<h1>Service Unavailable</h1>") {
            SwiftError::Unavailable(m) => assert!(m.contains("Service Unavailable")),
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            swift_error(499, &what, ""),
            SwiftError::Unavailable(_)
        ));
        assert!(matches!(swift_error(413, &what, ""), SwiftError::Other(_)));
        match auth_error(401, "http://k/v3/auth/tokens", "glance", "") {
            SwiftError::AccessDenied(m) => assert!(m.contains("glance") && m.contains("401")),
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            auth_error(502, "u", "glance", ""),
            SwiftError::Unavailable(_)
        ));
    }
}
