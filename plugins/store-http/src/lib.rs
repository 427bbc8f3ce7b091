//! `store-http`: a read-only store for images served over HTTP(S). The location is the URL
//! itself; `size` asks with HEAD (`content-length`), `get` streams with a `Range` request
//! (a server that ignores ranges is refused for reads not starting at 0). Redirects (301,
//! 302, 303, 307, 308) are followed, at most 5. The host must grant the `host:port`s of the
//! URLs and of their redirect targets (the store's `hosts`); no settings. `add` and `delete`
//! are refused (`access-denied`); `discard-partial` has nothing to do.
//!
//! Errors: 404 and 410 are `not-found`, 401 and 403 `access-denied`, anything else (5xx,
//! connection failures) `unavailable`.

use glass_store_guest::http::{self, Body, Method, Ranged, Request, Response};
use glass_store_guest::{
    Capabilities, Driver, DriverInfo, InputStream, OutputStream, StoreError, Stored, truncate,
};

struct HttpStore;

glass_store_guest::export_driver!(HttpStore);

const READ_ONLY: &str = "the http store is read-only";

impl Driver for HttpStore {
    fn info() -> DriverInfo {
        DriverInfo {
            name: "store-http".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: Capabilities::READ | Capabilities::RANGED_READS | Capabilities::READ_ONLY,
        }
    }

    fn add(_: String, _: InputStream, _: Option<u64>) -> Result<Stored, StoreError> {
        Err(StoreError::AccessDenied(READ_ONLY.into()))
    }

    fn get(
        location: String,
        offset: u64,
        length: Option<u64>,
        sink: OutputStream,
    ) -> Result<u64, StoreError> {
        let url = checked(&location)?;
        if length == Some(0) {
            return Ok(0);
        }
        let headers = http::range(offset, length)
            .map(|r| vec![("range".to_string(), r)])
            .unwrap_or_default();
        let response = fetch(Method::Get, url, headers)?;
        match http::splice_ranged(response, offset, length, &sink)? {
            Ranged::Done(n) => Ok(n),
            // A server that ignores ranges answers 200 with the whole body: refused rather
            // than streamed from the start just to skip it.
            Ranged::Refused(r) if r.status == 200 => Err(StoreError::Unavailable(format!(
                "{} ignored the range request",
                truncate(url)
            ))),
            Ranged::Refused(r) => Err(status_error(r.status, url)),
        }
    }

    fn size(location: String) -> Result<u64, StoreError> {
        let url = checked(&location)?;
        let response = fetch(Method::Head, url, Vec::new())?;
        if response.status != 200 {
            return Err(status_error(response.status, url));
        }
        response
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| StoreError::Other(format!("{} sent no content-length", truncate(url))))
    }

    fn delete(_: String) -> Result<(), StoreError> {
        Err(StoreError::AccessDenied(READ_ONLY.into()))
    }

    fn discard_partial(_: String) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The most redirects followed for one request (as Glance's http store).
const MAX_REDIRECTS: usize = 5;

/// Sends a GET or HEAD to `url`, following redirects.
fn fetch(
    method: Method,
    url: &str,
    headers: Vec<(String, String)>,
) -> Result<Response, StoreError> {
    let mut url = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let response = http::send(
            &Request {
                method,
                url: url.clone(),
                headers: headers.clone(),
            },
            Body::Empty,
        )
        .map_err(|e| match e {
            // Say where: a redirect may lead to a host the store was not granted.
            http::HttpError::Denied(_) => {
                StoreError::AccessDenied(format!("{e} (requesting {})", truncate(&url)))
            }
            e => e.into(),
        })?;
        if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
            return Ok(response);
        }
        let target = response
            .header("location")
            .and_then(|l| redirect_target(&url, l.trim()))
            .ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "{} answered {} without a usable location",
                    truncate(&url),
                    response.status
                ))
            })?;
        url = checked(&target)?.to_owned();
    }
    Err(StoreError::Unavailable(format!(
        "more than {MAX_REDIRECTS} redirects from {}",
        truncate(&url)
    )))
}

/// The absolute URL a `Location` header names, relative to `base`: an absolute URL, a
/// network-path (`//host/path`) or an absolute path (`/path`); a relative path replaces
/// the last segment of `base`'s path. The fragment, if any, is dropped.
fn redirect_target(base: &str, location: &str) -> Option<String> {
    let location = location.split('#').next()?;
    if location.is_empty() {
        return None;
    }
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_owned());
    }
    let (scheme, rest) = base.split_once("://")?;
    if let Some(net) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{net}"));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let origin = &base[..scheme.len() + 3 + authority_end];
    if location.starts_with('/') {
        return Some(format!("{origin}{location}"));
    }
    if location.split(['/', '?']).next()?.contains(':') {
        return None; // another scheme (ftp:, mailto:…)
    }
    let path = &rest[authority_end..];
    let path = path.split('?').next().unwrap_or("");
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    Some(format!("{origin}{dir}{location}"))
}

/// The location as an http(s) URL, or `InvalidLocation`.
fn checked(location: &str) -> Result<&str, StoreError> {
    let ok = (location.starts_with("http://") || location.starts_with("https://"))
        && !location
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(location)
    } else {
        Err(StoreError::InvalidLocation(format!(
            "not an http(s) URL: {:?}",
            truncate(location)
        )))
    }
}

fn status_error(status: u16, url: &str) -> StoreError {
    match status {
        404 | 410 => StoreError::NotFound,
        401 | 403 => StoreError::AccessDenied(format!("{} answered {status}", truncate(url))),
        _ => StoreError::Unavailable(format!("{} answered {status}", truncate(url))),
    }
}

#[cfg(test)]
mod tests {
    use super::redirect_target as t;

    #[test]
    fn redirect_targets() {
        let base = "http://127.0.0.1:8180/images/a.img?x=1";
        assert_eq!(
            t(base, "https://cdn:443/b.img").as_deref(),
            Some("https://cdn:443/b.img")
        );
        assert_eq!(
            t(base, "//mirror:81/c").as_deref(),
            Some("http://mirror:81/c")
        );
        assert_eq!(
            t(base, "/other/d.img#frag").as_deref(),
            Some("http://127.0.0.1:8180/other/d.img")
        );
        assert_eq!(
            t(base, "e.img?y=2").as_deref(),
            Some("http://127.0.0.1:8180/images/e.img?y=2")
        );
        assert_eq!(t("http://h:1", "f").as_deref(), Some("http://h:1/f"));
        assert_eq!(t("http://h:1?q", "/g").as_deref(), Some("http://h:1/g"));
        assert_eq!(t(base, "ftp://x/y"), None);
        assert_eq!(t(base, "mailto:a@b"), None);
        assert_eq!(t(base, ""), None);
    }
}
