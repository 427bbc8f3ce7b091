//! [`UndoGuard`]: the one guard of unfinished data (an upload, a stage). Unless disarmed it
//! runs its undo (partial data discarded, image back to `queued`) when the operation fails,
//! and also when the client goes away and the request's future is dropped mid-way.

use std::future::Future;
use std::pin::Pin;

type Undo = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct UndoGuard {
    undo: Option<Undo>,
}

impl UndoGuard {
    /// Arms a guard that runs `undo` unless disarmed.
    pub fn new(undo: impl Future<Output = ()> + Send + 'static) -> Self {
        UndoGuard {
            undo: Some(Box::pin(undo)),
        }
    }

    /// The operation finished: nothing to undo.
    pub fn disarm(mut self) {
        self.undo = None;
    }

    /// Undoes now, before the caller answers (so the client sees the image queued again).
    pub async fn undo(mut self) {
        if let Some(undo) = self.undo.take() {
            undo.await;
        }
    }
}

impl Drop for UndoGuard {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            tokio::spawn(undo);
        }
    }
}
