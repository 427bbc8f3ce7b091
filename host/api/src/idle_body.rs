//! Request bodies that fail when the client stops sending: every request's body is wrapped
//! so that, once the server waits for the client's next bytes, `[server] body_idle_timeout_s`
//! without one ends the body with an error. An upload or stage then fails like a client
//! that went away (its image is `queued` again, its plugin call ends and frees its place).
//! Time the server spends not reading (a slow store, a full pipe) never counts.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::state::AppState;

/// The error a stalled body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing for {0:?}")]
pub struct BodyIdle(pub Duration);

/// A body that errors after `idle` without a frame while it is being waited on.
pub struct IdleTimeout {
    inner: Body,
    idle: Duration,
    /// Armed while the consumer waits for the client (a poll returned `Pending`).
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl IdleTimeout {
    pub fn new(inner: Body, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            timer: None,
            waiting: false,
        }
    }
}

impl http_body::Body for IdleTimeout {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.idle;
                if !this.waiting {
                    this.waiting = true;
                    match &mut this.timer {
                        Some(timer) => timer.as_mut().reset(deadline),
                        None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let timer = this.timer.as_mut().expect("armed above");
                if timer.as_mut().poll(cx).is_ready() {
                    tracing::info!(idle_s = this.idle.as_secs(), "request body stalled: cut");
                    this.waiting = false;
                    return Poll::Ready(Some(Err(axum::Error::new(BodyIdle(this.idle)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The middleware: wraps the body of every request.
pub async fn cut_idle_bodies(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let idle = Duration::from_secs(state.config.server.body_idle_timeout_s.max(1));
    let (parts, body) = request.into_parts();
    let body = Body::new(IdleTimeout::new(body, idle));
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_stalled_body_errors_and_a_flowing_one_does_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut body = IdleTimeout::new(Body::from_stream(stream), Duration::from_millis(300));
        tx.send(Ok(Bytes::from_static(b"a"))).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        // Not read for a long while (the server was busy): that never counts.
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(Ok(Bytes::from_static(b"b"))).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        // Now the client sends nothing: the body fails after the idle time.
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("sent nothing"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        drop(tx);
    }
}
