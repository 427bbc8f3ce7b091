//! `store-http`: a read-only store for images served over HTTP(S). The location is the URL
//! itself; `size` asks with HEAD, `get` streams with a `Range` request. The host must grant
//! the URLs' `host:port`s. `add` and `delete` are refused.

use glass_store_guest::http::{self, Body, Method, Ranged, Request};
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
        let response = http::send(
            &Request {
                method: Method::Get,
                url: url.into(),
                headers,
            },
            Body::Empty,
        )?;
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
        let response = http::send(
            &Request {
                method: Method::Head,
                url: url.into(),
                headers: Vec::new(),
            },
            Body::Empty,
        )?;
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
