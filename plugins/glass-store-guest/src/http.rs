//! A small blocking HTTP/1.1 client over `wasi:http/outgoing-handler`, for drivers of remote
//! backends (S3, Swift, HTTP). The host performs the exchange, only to the `host:port`s the
//! operator granted the store, with its network timeouts.
//!
//! Bodies can be spliced: [`Body::Stream`] moves exactly `length` bytes from a host
//! input-stream (the image being uploaded) into the request body, and
//! [`Response::splice_to`] moves the response body into a host output-stream (the download),
//! both with `blocking-splice`, so image bytes never enter the guest's memory.
//!
//! There is no "splice up to N bytes" body: a request body of unknown length would need
//! chunked transfer encoding, which S3 does not accept for PUT without its own signed-chunk
//! framing. A driver that must send a part of unknown length (the S3 driver with an image of
//! unknown size) reads at most one part into its memory with [`crate::read_up_to`] and sends
//! it as [`Body::Bytes`]; its store's memory cap must then exceed the part size.
//!
//! Errors: [`HttpError`] says what failed; `StoreError::from` maps a host refusal (the store
//! was not granted that `host:port`) to `access-denied` and network failures to `unavailable`.

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse,
    Method as WasiMethod, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};
use crate::{SPLICE_STEP, StoreError};

/// The methods the drivers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`: read a resource (its body can be spliced with [`Response::splice_to`]).
    Get,
    /// `HEAD`: a resource's headers only (sizes, existence).
    Head,
    /// `PUT`: store a body.
    Put,
    /// `POST`: S3's multipart calls, Swift's bulk operations.
    Post,
    /// `DELETE`: remove a resource.
    Delete,
}

impl Method {
    /// The method's name on the wire (`GET`, …), as signatures need it.
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
    /// The method.
    pub method: Method,
    /// The absolute URL: scheme (`http` or `https`), authority (`host[:port]`, which the
    /// store must be granted) and path with query, already percent-encoded as it is to be
    /// sent ([`uri_encode`]).
    pub url: String,
    /// Header names and values. `host` comes from the URL's authority and `content-length`
    /// from the body: a driver sets neither (a `content-length` it sets is sent as given).
    pub headers: Vec<(String, String)>,
}

/// What a request sends. `PUT` and `POST` always send a `content-length` (0 for
/// [`Body::Empty`]); other methods send one only with a non-empty body.
pub enum Body<'a> {
    /// No body.
    Empty,
    /// These bytes, from guest memory (small documents, buffered parts).
    Bytes(&'a [u8]),
    /// Exactly `length` bytes spliced from a host input-stream into the request body
    /// (`blocking-splice`: they never enter guest memory), sent with that content-length.
    /// If the input ends first, [`send`] fails with [`HttpError::InputEnded`]; bytes after
    /// `length` stay in the input.
    Stream {
        /// The stream the bytes come from (the image being added).
        from: &'a InputStream,
        /// How many bytes to send.
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
    /// The body to send ([`Body::Stream`]) ended before its declared length.
    InputEnded {
        /// The length the request announced.
        expected: u64,
        /// The bytes the input delivered before it ended.
        got: u64,
    },
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

/// A refusal by the host is `access-denied`, an input that ended early is `other`, any other
/// failure `unavailable` (the same call may work later).
impl From<HttpError> for StoreError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied(_) => StoreError::AccessDenied(e.to_string()),
            HttpError::InputEnded { .. } => StoreError::Other(e.to_string()),
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// The wasi-http error code as an [`HttpError`]: `HttpRequestDenied` is the host refusing a
/// `host:port` the store was not granted.
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

/// A response whose body has not been read yet (read it with [`Response::read_to_vec`],
/// [`Response::text`] or [`Response::splice_to`]; dropping it discards the rest).
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers as received (names lowercase), values decoded lossily as UTF-8.
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

    /// Moves the body into `sink` (at most `limit` bytes, all of it if `None`) with
    /// `blocking-splice`, flushes `sink` and returns the count. The body ending early is not
    /// an error here (the count says how much came); the connection failing mid-way is.
    pub fn splice_to(mut self, sink: &OutputStream, limit: Option<u64>) -> Result<u64, HttpError> {
        let Some(stream) = self.stream.take() else {
            return Ok(0);
        };
        crate::splice(sink, &stream, limit).map_err(|crate::SpliceError::Failed(m)| {
            HttpError::Network(format!("streaming the response body: {m}"))
        })
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
/// transmits (so a body larger than any buffer flows). Any status is a response, not an
/// error: the caller maps it. If the server answers before it has read the whole body (a
/// refusal), that answer is returned rather than the broken upload.
pub fn send(req: &Request, body: Body) -> Result<Response, HttpError> {
    let length = body.length();
    let has_body = !matches!(body, Body::Empty) || matches!(req.method, Method::Put | Method::Post);
    let content_length = has_body.then_some(length);
    let (outgoing, future) = start(req, content_length)?;
    if has_body && let Err(e) = write_body(&outgoing, body) {
        // Dropped unfinished, the body tells the host the request failed: it is aborted,
        // never completed with fewer bytes.
        drop(outgoing);
        if matches!(e, HttpError::InputEnded { .. }) {
            return Err(e);
        }
        // The server may have answered before reading everything (401, 403, 413…): its
        // answer says more than the broken upload. The future settles promptly now.
        future.subscribe().block();
        return match future.get() {
            Some(Ok(Ok(response))) => Ok(response_of(response)),
            _ => Err(e),
        };
    }
    finish(outgoing, future)
}

/// Sends a request whose body has no declared length (`Transfer-Encoding: chunked`):
/// `write` produces it into the host's outgoing stream and returns what it wants to report
/// (how much it sent, say). If `write` fails the body is dropped unfinished, so the host
/// aborts the request and the server stores nothing.
pub fn send_chunked<T>(
    req: &Request,
    write: impl FnOnce(&OutputStream) -> Result<T, HttpError>,
) -> Result<(Response, T), HttpError> {
    let (outgoing, future) = start(req, None)?;
    let written = {
        let sink = outgoing
            .write()
            .map_err(|_| HttpError::Protocol("request body stream taken twice".into()))?;
        write(&sink)?
    };
    Ok((finish(outgoing, future)?, written))
}

/// Builds the request (headers lower-cased; `content-length` added when given and not set
/// by the caller) and hands it to the host: its body, and the future of the response.
fn start(
    req: &Request,
    content_length: Option<u64>,
) -> Result<(OutgoingBody, FutureIncomingResponse), HttpError> {
    let (scheme, authority, path) = split_url(&req.url)?;
    let mut entries: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    if let Some(length) = content_length
        && !entries.iter().any(|(n, _)| n == "content-length")
    {
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
    Ok((outgoing, future))
}

/// Finishes the body and waits for the response head.
fn finish(outgoing: OutgoingBody, future: FutureIncomingResponse) -> Result<Response, HttpError> {
    OutgoingBody::finish(outgoing, None).map_err(error_code)?;
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response_of(response)),
        Some(Ok(Err(code))) => Err(error_code(code)),
        Some(Err(())) | None => Err(HttpError::Protocol("response already taken".into())),
    }
}

/// Wraps a response head; its body stream is opened now and read later.
fn response_of(response: IncomingResponse) -> Response {
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = response.consume().ok();
    let stream = body.as_ref().and_then(|b| b.stream().ok());
    Response {
        status,
        headers,
        stream,
        _body: body,
        _response: response,
    }
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
                    // Either side may be closed: if the request body still takes bytes, it
                    // was the input, which ended early.
                    Err(StreamError::Closed) => {
                        return match sink.check_write() {
                            Ok(_) => Err(HttpError::InputEnded {
                                expected: length,
                                got: moved,
                            }),
                            Err(e) => failed(e, moved, length),
                        };
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
/// `None` when the whole object is wanted. `length` must not be 0 (no range says "nothing":
/// a driver answers an empty read itself).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_ranges_and_urls() {
        assert_eq!(uri_encode("test$file.text", false), "test%24file.text");
        assert_eq!(uri_encode("p/a b~é", false), "p/a%20b~%C3%A9");
        assert_eq!(uri_encode("p/q", true), "p%2Fq");
        assert_eq!(range(0, None), None);
        assert_eq!(range(5, None).as_deref(), Some("bytes=5-"));
        assert_eq!(range(0, Some(10)).as_deref(), Some("bytes=0-9"));
        assert_eq!(range(7, Some(1)).as_deref(), Some("bytes=7-7"));
        let (s, a, p) = split_url("https://h:8/x/y?z=1").unwrap();
        assert!(matches!(s, Scheme::Https));
        assert_eq!((a, p), ("h:8", "/x/y?z=1"));
        let (s, a, p) = split_url("http://h").unwrap();
        assert!(matches!(s, Scheme::Http));
        assert_eq!((a, p), ("h", "/"));
        assert!(split_url("ftp://h/x").is_err());
        assert!(split_url("http:///x").is_err());
    }
}
