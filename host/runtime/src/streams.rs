//! Adapters between the host's async byte streams and the `wasi:io` streams a driver gets.
//! Every byte that crosses is counted: the count feeds the call's deadline (progress, see
//! `call`) and lets the host check a driver's claims ("stored N bytes", "wrote N bytes")
//! against what actually moved, so a failure is never a silent truncation.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::oneshot;

use crate::store::{ByteReader, StoreError};

/// What the host saw of an `add`'s input while the driver read it.
#[derive(Debug, Default)]
pub(crate) struct InputWatch {
    eof: AtomicBool,
    error: Mutex<Option<String>>,
}

impl InputWatch {
    /// The input ended normally.
    pub fn reached_eof(&self) -> bool {
        self.eof.load(Ordering::Acquire)
    }

    /// Why reading the input failed, if it did.
    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_error(&self, e: String) {
        self.error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    }
}

/// The input of an `add`, as the driver's `input-stream` reads it: counts bytes, records
/// the end or the error, and fails once `cancel`'s sender is dropped (the caller of `add`
/// went away), so the driver stops and cleans up instead of storing half an image.
pub(crate) struct WatchedReader {
    inner: ByteReader,
    progress: Arc<AtomicU64>,
    watch: Arc<InputWatch>,
    cancel: Option<oneshot::Receiver<()>>,
}

impl WatchedReader {
    pub fn new(
        inner: ByteReader,
        progress: Arc<AtomicU64>,
        watch: Arc<InputWatch>,
        cancel: oneshot::Receiver<()>,
    ) -> Self {
        Self {
            inner,
            progress,
            watch,
            cancel: Some(cancel),
        }
    }
}

impl AsyncRead for WatchedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(())); // nothing asked: not an end of stream
        }
        if let Some(cancel) = self.cancel.as_mut()
            && Pin::new(cancel).poll(cx).is_ready()
        {
            self.cancel = None;
            let e = "the caller abandoned the upload".to_string();
            self.watch.set_error(e.clone());
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::Interrupted, e)));
        }
        if self.cancel.is_none() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the caller abandoned the upload",
            )));
        }
        let before = buf.filled().len();
        match ready!(Pin::new(&mut self.inner).poll_read(cx, buf)) {
            Ok(()) => {
                let n = buf.filled().len() - before;
                if n == 0 {
                    self.watch.eof.store(true, Ordering::Release);
                } else {
                    self.progress.fetch_add(n as u64, Ordering::Relaxed);
                }
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                self.watch.set_error(e.to_string());
                Poll::Ready(Err(e))
            }
        }
    }
}

/// The writing end of a `get`'s pipe, as the driver's `output-stream` writes it; counts
/// bytes for the deadline, and fails a write that the reader leaves waiting for `stall`
/// (a client that stopped reading): the call then ends and gives its place back.
pub(crate) struct CountingWriter {
    inner: DuplexStream,
    progress: Arc<AtomicU64>,
    stall: std::time::Duration,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl CountingWriter {
    pub fn new(inner: DuplexStream, progress: Arc<AtomicU64>, stall: std::time::Duration) -> Self {
        Self {
            inner,
            progress,
            stall,
            waiting: None,
        }
    }
}

impl AsyncWrite for CountingWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(written) => {
                this.waiting = None;
                let n = written?;
                this.progress.fetch_add(n as u64, Ordering::Relaxed);
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                let stall = this.stall;
                let timer = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the reader took nothing for {} s", stall.as_secs()),
                )))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The reading end of a `get`'s pipe, handed to the caller. It ends only when the driver's
/// call has ended too, and then checks the outcome: the call failed, or the driver claims a
/// different count than what arrived, becomes an `io::Error` (carrying the `StoreError`)
/// instead of a clean end of stream.
pub(crate) struct GetReader {
    head: Bytes,
    pipe: DuplexStream,
    delivered: u64,
    outcome: Option<oneshot::Receiver<Result<u64, StoreError>>>,
}

impl GetReader {
    pub fn new(pipe: DuplexStream, outcome: oneshot::Receiver<Result<u64, StoreError>>) -> Self {
        Self {
            head: Bytes::new(),
            pipe,
            delivered: 0,
            outcome: Some(outcome),
        }
    }

    /// Waits for the first bytes or the end of the call, whichever comes first, so that a
    /// failure before any byte (not found, bad location, fault) is returned as such rather
    /// than inside the stream.
    pub async fn first_bytes(mut self) -> Result<Self, StoreError> {
        let mut head = vec![0u8; 16 * 1024];
        let n = std::future::poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut head);
            ready!(Pin::new(&mut self).poll_read(cx, &mut buf))?;
            Poll::Ready(Ok::<_, io::Error>(buf.filled().len()))
        })
        .await
        .map_err(into_store_error)?;
        head.truncate(n);
        self.head = Bytes::from(head);
        Ok(self)
    }
}

impl AsyncRead for GetReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(())); // nothing asked: not an end of stream
        }
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            let chunk = self.head.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        if self.outcome.is_none() {
            return Poll::Ready(Ok(())); // ended and checked
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.pipe).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        if n > 0 {
            self.delivered += n as u64;
            return Poll::Ready(Ok(()));
        }
        // The driver dropped its output stream (or its store is gone): wait for its result.
        let outcome = self.outcome.as_mut().expect("checked above");
        let result = ready!(Pin::new(outcome).poll(cx));
        self.outcome = None;
        Poll::Ready(match result {
            Ok(Ok(written)) if written == self.delivered => Ok(()),
            Ok(Ok(written)) => Err(io::Error::other(StoreError::Other(format!(
                "the store reported {written} bytes written but {} arrived",
                self.delivered
            )))),
            Ok(Err(e)) => Err(io::Error::other(e)),
            Err(_) => Err(io::Error::other(StoreError::Other(
                "the store call ended without a result".into(),
            ))),
        })
    }
}

/// The `StoreError` inside an error from `GetReader`, or `Other` with its text.
fn into_store_error(e: io::Error) -> StoreError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<StoreError>())
    {
        Some(store_error) => store_error.clone(),
        None => StoreError::Other(e.to_string()),
    }
}

/// Discards the first `skip` bytes of `inner`: how the host serves a ranged read from a
/// driver without the `ranged-reads` capability.
pub(crate) struct Skip<R> {
    inner: R,
    skip: u64,
}

impl<R> Skip<R> {
    pub fn new(inner: R, skip: u64) -> Self {
        Self { inner, skip }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Skip<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.skip > 0 {
            let mut scratch = [0u8; 8192];
            let want = scratch
                .len()
                .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            let mut tmp = ReadBuf::new(&mut scratch[..want]);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut tmp))?;
            let n = tmp.filled().len();
            if n == 0 {
                self.skip = 0;
                return Poll::Ready(Ok(()));
            }
            self.skip -= n as u64;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}
