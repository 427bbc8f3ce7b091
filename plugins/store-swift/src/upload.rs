//! A PUT whose length is not declared (`Transfer-Encoding: chunked`): a segment of an image
//! whose size the host does not know. Its body is what the driver already read (at most a
//! few MiB), then bytes spliced from the image stream up to the segment's size or the end of
//! the stream, so memory stays bounded whatever the segment size. The guest HTTP client
//! declares a length for its own bodies; this one goes through its `send_chunked`.
//!
//! A body that fails half-way is aborted (the outgoing body is dropped, not finished): Swift
//! then stores nothing. A segment is only ever referenced by a manifest with the size and
//! ETag it was sent with, which Swift checks.

use glass_store_guest::http::{self, HttpError, Method, Request};
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
    let request = Request {
        method: Method::Put,
        url: url.to_owned(),
        headers: headers.to_vec(),
    };
    let (response, (length, input_ended)) =
        http::send_chunked(&request, |sink| send_body(sink, pending, data, limit))?;
    let status = response.status;
    let etag = response
        .header("etag")
        .map(|v| v.trim_matches('"').to_owned());
    let text = if (200..300).contains(&status) {
        String::new()
    } else {
        response.text()
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
