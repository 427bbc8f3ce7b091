//! A PUT whose length is not declared (`Transfer-Encoding: chunked`): a segment of an image
//! whose size the host does not know. Its body is what the driver already read (at most a
//! few MiB), then bytes spliced from the image stream up to the segment's size or the end of
//! the stream, so memory stays bounded whatever the segment size. The guest HTTP client
//! always declares a length, hence this small sender of its own.
//!
//! A body that fails half-way is aborted (the outgoing body is dropped, not finished): Swift
//! then stores nothing. A segment is only ever referenced by a manifest with the size and
//! ETag it was sent with, which Swift checks.

use glass_store_guest::bindings::wasi::http::outgoing_handler;
use glass_store_guest::bindings::wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use glass_store_guest::http::HttpError;
use glass_store_guest::{InputStream, OutputStream, SPLICE_STEP, StoreError, StreamError};

/// Bytes read from the image stream and not sent yet.
#[derive(Default)]
pub struct Pending {
    bytes: Vec<u8>,
    start: usize,
}

impl Pending {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes, start: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.bytes.len()
    }

    fn rest(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Reads the next bytes of `data` (at most one splice step); `None` at its end.
pub fn read_chunk(data: &InputStream) -> Result<Option<Vec<u8>>, StoreError> {
    loop {
        match data.blocking_read(SPLICE_STEP) {
            Ok(chunk) if chunk.is_empty() => continue,
            Ok(chunk) => return Ok(Some(chunk)),
            Err(StreamError::Closed) => return Ok(None),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "reading the image data: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
}

/// What Swift answered to a chunked PUT, and what was sent.
pub struct Sent {
    pub status: u16,
    pub etag: Option<String>,
    /// The answer's body when the status is not 2xx (for the error message).
    pub text: String,
    /// Bytes sent in the body.
    pub length: u64,
    /// The image stream ended within this body.
    pub input_ended: bool,
}

/// PUTs to `url` the pending bytes, then bytes spliced from `data`, `limit` in all (fewer
/// when `data` ends first), without a declared length.
pub fn put_chunked(
    url: &str,
    headers: &[(String, String)],
    pending: &mut Pending,
    data: &InputStream,
    limit: u64,
) -> Result<Sent, HttpError> {
    let (scheme, authority, path) = split_url(url)?;
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&entries)
        .map_err(|e| HttpError::Protocol(format!("invalid header: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let bad = |what: &str| HttpError::Protocol(format!("invalid {what} in {url}"));
    request
        .set_method(&Method::Put)
        .map_err(|_| bad("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|_| bad("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|_| bad("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|_| bad("path"))?;
    let body = request
        .body()
        .map_err(|_| HttpError::Protocol("request body taken twice".into()))?;
    let future = outgoing_handler::handle(request, None).map_err(error_code)?;
    // On any error below `body` is dropped unfinished: the host aborts the request.
    let (length, input_ended) = {
        let sink = body
            .write()
            .map_err(|_| HttpError::Protocol("request body stream taken twice".into()))?;
        let sent = send_body(&sink, pending, data, limit)?;
        drop(sink);
        sent
    };
    OutgoingBody::finish(body, None).map_err(error_code)?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(error_code(code)),
        Some(Err(())) | None => {
            return Err(HttpError::Protocol("response already taken".into()));
        }
    };
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .into_iter()
        .next()
        .map(|v| String::from_utf8_lossy(&v).trim_matches('"').to_owned());
    let text = if (200..300).contains(&status) {
        String::new()
    } else {
        read_text(&response)
    };
    Ok(Sent {
        status,
        etag,
        text,
        length,
        input_ended,
    })
}

/// Writes the pending bytes (at most `limit`), then splices from `data` up to `limit` in all.
/// Returns the bytes sent and whether `data` ended.
fn send_body(
    sink: &OutputStream,
    pending: &mut Pending,
    data: &InputStream,
    limit: u64,
) -> Result<(u64, bool), HttpError> {
    let broken = |e: StreamError| match e {
        StreamError::Closed => HttpError::Network("the server closed the request".into()),
        StreamError::LastOperationFailed(e) => HttpError::Network(e.to_debug_string()),
    };
    let mut sent = 0u64;
    while !pending.is_empty() && sent < limit {
        let permit = match sink.check_write() {
            Ok(0) => {
                sink.subscribe().block();
                continue;
            }
            Ok(n) => n,
            Err(e) => return Err(broken(e)),
        };
        let n = (pending.rest().len() as u64).min(permit).min(limit - sent) as usize;
        sink.write(&pending.rest()[..n]).map_err(broken)?;
        pending.start += n;
        sent += n as u64;
    }
    let mut input_ended = false;
    while sent < limit {
        match sink.blocking_splice(data, (limit - sent).min(SPLICE_STEP)) {
            Ok(n) => sent += n,
            Err(StreamError::Closed) => {
                // Which side closed? An output that still takes writes means the input ended.
                sink.check_write().map_err(broken)?;
                input_ended = true;
                break;
            }
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Network(format!(
                    "moving the image data: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    sink.blocking_flush().map_err(broken)?;
    Ok((sent, input_ended))
}

/// At most 64 KiB of an answer's body, as text.
fn read_text(
    response: &glass_store_guest::bindings::wasi::http::types::IncomingResponse,
) -> String {
    let Ok(body) = response.consume() else {
        return String::new();
    };
    let mut out = Vec::new();
    if let Ok(stream) = body.stream() {
        while out.len() < 64 * 1024 {
            match stream.blocking_read(SPLICE_STEP) {
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(_) => break,
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `http(s)://authority/path?query`.
fn split_url(url: &str) -> Result<(Scheme, &str, &str), HttpError> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(HttpError::Protocol(format!("not an http(s) URL: {url}")));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(HttpError::Protocol(format!("URL without a host: {url}")));
    }
    Ok((scheme, authority, path))
}

/// The guest client's classification of the host's error codes.
fn error_code(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => {
            HttpError::Denied("this store may not reach that host (see its `hosts`)".into())
        }
        ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::HttpResponseTimeout => HttpError::Network(format!("{code:?}")),
        other => HttpError::Protocol(format!("{other:?}")),
    }
}
