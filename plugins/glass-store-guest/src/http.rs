//! A small blocking HTTP/1.1 client over `wasi:http/outgoing-handler`, for drivers of remote
//! backends (S3, Swift, HTTP). The host performs the exchange, only to the `host:port`s the
//! operator granted the store, with its network timeouts.
//!
//! Bodies can be spliced: [`Body::Stream`] moves exactly `length` bytes from a host
//! input-stream (the image being uploaded) into the request body, and
//! [`Response::splice_to`] moves the response body into a host output-stream (the download),
//! both with `blocking-splice`, so image bytes never enter the guest's memory.

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method as WasiMethod, OutgoingBody,
    OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};
use crate::{SPLICE_STEP, StoreError};

/// The methods the drivers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }

    fn wasi(self) -> WasiMethod {
        match self {
            Method::Get => WasiMethod::Get,
            Method::Head => WasiMethod::Head,
            Method::Put => WasiMethod::Put,
            Method::Post => WasiMethod::Post,
            Method::Delete => WasiMethod::Delete,
        }
    }
}

/// A request: method, absolute URL (`http(s)://host[:port]/path?query`) and headers.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// What a request sends.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Exactly `length` bytes spliced from a host input-stream; fewer is an error.
    Stream {
        from: &'a InputStream,
        length: u64,
    },
}

impl Body<'_> {
    fn length(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Stream { length, .. } => *length,
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused: the store was not granted this `host:port`.
    Denied(String),
    /// Connecting, or waiting for the server, failed or timed out.
    Network(String),
    /// The request could not be built or the exchange broke.
    Protocol(String),
    /// The body to send ended before its declared length.
    InputEnded { expected: u64, got: u64 },
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Denied(m) => write!(f, "request refused by the host: {m}"),
            HttpError::Network(m) => write!(f, "network error: {m}"),
            HttpError::Protocol(m) => write!(f, "HTTP error: {m}"),
            HttpError::InputEnded { expected, got } => {
                write!(f, "the data ended after {got} of {expected} bytes")
            }
        }
    }
}

impl From<HttpError> for StoreError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied(_) => StoreError::AccessDenied(e.to_string()),
            HttpError::InputEnded { .. } => StoreError::Other(e.to_string()),
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

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

/// A response whose body has not been read yet.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    // Field order matters: the stream must be dropped before its body.
    stream: Option<InputStream>,
    _body: Option<IncomingBody>,
    _response: IncomingResponse,
}

impl Response {
    /// The first value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The whole body, at most `limit` bytes (more is an error).
    pub fn read_to_vec(mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        let Some(stream) = self.stream.take() else {
            return Ok(out);
        };
        loop {
            match stream.blocking_read(SPLICE_STEP) {
                Ok(chunk) => {
                    if out.len() + chunk.len() > limit {
                        return Err(HttpError::Protocol(format!(
                            "response body larger than {limit} bytes"
                        )));
                    }
                    out.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => return Ok(out),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(HttpError::Network(e.to_debug_string()));
                }
            }
        }
    }

    /// The body as text (lossy), at most 64 KiB: for error messages.
    pub fn text(self) -> String {
        self.read_to_vec(64 * 1024)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Moves the body into `sink` (at most `limit` bytes) and flushes it. Returns the count.
    pub fn splice_to(mut self, sink: &OutputStream, limit: Option<u64>) -> Result<u64, HttpError> {
        let Some(stream) = self.stream.take() else {
            return Ok(0);
        };
        let moved = crate::splice(sink, &stream, limit)
            .map_err(|e| HttpError::Network(format!("{e:?}")))?;
        Ok(moved)
    }
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

/// Sends a request and waits for the response head. The body is sent while the host
/// transmits (so a body larger than any buffer flows).
pub fn send(req: &Request, body: Body) -> Result<Response, HttpError> {
    let (scheme, authority, path) = split_url(&req.url)?;
    let mut entries: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let length = body.length();
    let has_body = !matches!(body, Body::Empty) || matches!(req.method, Method::Put | Method::Post);
    if has_body && !entries.iter().any(|(n, _)| n == "content-length") {
        entries.push(("content-length".into(), length.to_string().into_bytes()));
    }
    let headers = Fields::from_list(&entries)
        .map_err(|e| HttpError::Protocol(format!("invalid header: {e:?}")))?;
    let request = OutgoingRequest::new(headers);
    let bad = |what: &str| HttpError::Protocol(format!("invalid {what} in {}", req.url));
    request
        .set_method(&req.method.wasi())
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
    let outgoing = request
        .body()
        .map_err(|_| HttpError::Protocol("request body taken twice".into()))?;
    let future = outgoing_handler::handle(request, None).map_err(error_code)?;
    if has_body {
        write_body(&outgoing, body)?;
    }
    OutgoingBody::finish(outgoing, None).map_err(error_code)?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(error_code(code)),
        Some(Err(())) | None => {
            return Err(HttpError::Protocol("response already taken".into()));
        }
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = response.consume().ok();
    let stream = body.as_ref().and_then(|b| b.stream().ok());
    Ok(Response {
        status,
        headers,
        stream,
        _body: body,
        _response: response,
    })
}

/// Writes the request body into the host's outgoing stream.
fn write_body(outgoing: &OutgoingBody, body: Body) -> Result<(), HttpError> {
    let sink = outgoing
        .write()
        .map_err(|_| HttpError::Protocol("request body stream taken twice".into()))?;
    let failed = |e: StreamError, done: u64, total: u64| match e {
        // With an exact content-length the host may close once every byte is queued.
        StreamError::Closed if done == total => Ok(()),
        StreamError::Closed => Err(HttpError::Network("the server closed the request".into())),
        StreamError::LastOperationFailed(e) => Err(HttpError::Network(e.to_debug_string())),
    };
    match body {
        Body::Empty => {}
        Body::Bytes(bytes) => {
            let total = bytes.len() as u64;
            let mut done = 0usize;
            while done < bytes.len() {
                let permit = match sink.check_write() {
                    Ok(0) => {
                        sink.subscribe().block();
                        continue;
                    }
                    Ok(n) => n as usize,
                    Err(e) => return failed(e, done as u64, total),
                };
                let end = (done + permit).min(bytes.len());
                if let Err(e) = sink.write(&bytes[done..end]) {
                    return failed(e, done as u64, total);
                }
                done = end;
            }
            if let Err(e) = sink.blocking_flush() {
                failed(e, total, total)?;
            }
        }
        Body::Stream { from, length } => {
            let mut moved = 0u64;
            while moved < length {
                match sink.blocking_splice(from, (length - moved).min(SPLICE_STEP)) {
                    Ok(n) => moved += n,
                    Err(StreamError::Closed) => {
                        // Which side closed? A closed input is an input that ended early.
                        return Err(HttpError::InputEnded {
                            expected: length,
                            got: moved,
                        });
                    }
                    Err(e) => return failed(e, moved, length),
                }
            }
            if let Err(e) = sink.blocking_flush() {
                failed(e, moved, length)?;
            }
        }
    }
    drop(sink);
    Ok(())
}

/// Percent-encodes `s` as AWS and Swift expect in paths and queries (RFC 3986 unreserved
/// characters kept; `/` kept unless `encode_slash`).
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `Range` header value for `length` bytes from `offset` (to the end if `None`), or
/// `None` when the whole object is wanted.
pub fn range(offset: u64, length: Option<u64>) -> Option<String> {
    (offset > 0 || length.is_some()).then(|| {
        let end = length
            .map(|l| (offset + l - 1).to_string())
            .unwrap_or_default();
        format!("bytes={offset}-{end}")
    })
}

/// What a ranged GET delivered.
pub enum Ranged {
    /// The bytes went into the sink (0 when the range starts past the end: 416).
    Done(u64),
    /// Any other answer (errors, and a 200 to a request that did not start at 0: the server
    /// ignored the range), for the driver to map.
    Refused(Response),
}

/// Streams the answer to a GET sent with [`range`]`(offset, length)` into `sink`.
pub fn splice_ranged(
    response: Response,
    offset: u64,
    length: Option<u64>,
    sink: &OutputStream,
) -> Result<Ranged, HttpError> {
    match response.status {
        206 => Ok(Ranged::Done(response.splice_to(sink, length)?)),
        200 if offset == 0 => Ok(Ranged::Done(response.splice_to(sink, length)?)),
        416 => Ok(Ranged::Done(0)),
        _ => Ok(Ranged::Refused(response)),
    }
}
