//! Checksums computed by the host while image bytes stream past: md5 (Glance's `checksum`),
//! sha512 (`os_hash_value`) and blake3 (kept for the auditor). Each digest runs on its own
//! blocking thread fed through a bounded channel, so the three run in parallel and an upload
//! is only as slow as the slowest one, and memory stays bounded.

use bytes::Bytes;
use md5::Md5;
use sha2::{Digest, Sha512};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks queued per digest before the upload waits for the slowest hash.
const QUEUE: usize = 32;

/// The digests of a complete stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub md5: String,
    pub sha512: String,
    pub blake3: String,
}

/// Feeds every chunk to the three digests in parallel.
pub struct ParallelHasher {
    senders: Vec<mpsc::Sender<Bytes>>,
    workers: Vec<JoinHandle<String>>,
    size: u64,
}

impl Default for ParallelHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl ParallelHasher {
    pub fn new() -> Self {
        let (senders, workers) = [
            spawn_worker(
                Md5::new(),
                |h, b| h.update(b),
                |h| hex::encode(h.finalize()),
            ),
            spawn_worker(
                Sha512::new(),
                |h, b| h.update(b),
                |h| hex::encode(h.finalize()),
            ),
            spawn_worker(
                blake3::Hasher::new(),
                |h, b| {
                    h.update(b);
                },
                |h| h.finalize().to_hex().to_string(),
            ),
        ]
        .into_iter()
        .unzip();
        ParallelHasher {
            senders,
            workers,
            size: 0,
        }
    }

    /// Queues a chunk for every digest (a cheap reference-counted clone each).
    pub async fn update(&mut self, chunk: &Bytes) {
        self.size += chunk.len() as u64;
        for tx in &self.senders {
            // A worker only stops when its sender is dropped, so send cannot fail.
            let _ = tx.send(chunk.clone()).await;
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Waits for every digest to see the whole stream.
    pub async fn finish(self) -> Digests {
        drop(self.senders);
        let mut out = Vec::with_capacity(3);
        for w in self.workers {
            out.push(w.await.expect("digest worker panicked"));
        }
        let blake3 = out.pop().unwrap_or_default();
        let sha512 = out.pop().unwrap_or_default();
        let md5 = out.pop().unwrap_or_default();
        Digests {
            size: self.size,
            md5,
            sha512,
            blake3,
        }
    }
}

/// One digest on its own blocking thread, fed through a bounded channel.
fn spawn_worker<H: Send + 'static>(
    mut state: H,
    update: fn(&mut H, &[u8]),
    finish: fn(H) -> String,
) -> (mpsc::Sender<Bytes>, JoinHandle<String>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let handle = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = rx.blocking_recv() {
            update(&mut state, &chunk);
        }
        finish(state)
    });
    (tx, handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn digests_match_known_values() {
        let mut h = ParallelHasher::new();
        h.update(&Bytes::from_static(b"hello ")).await;
        h.update(&Bytes::from_static(b"world")).await;
        let d = h.finish().await;
        assert_eq!(d.size, 11);
        assert_eq!(d.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(
            d.sha512,
            "309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f"
        );
        assert_eq!(d.blake3, blake3::hash(b"hello world").to_hex().to_string());
    }

    #[tokio::test]
    async fn empty_stream_has_empty_digests() {
        let d = ParallelHasher::new().finish().await;
        assert_eq!(d.size, 0);
        assert_eq!(d.md5, "d41d8cd98f00b204e9800998ecf8427e");
    }
}
