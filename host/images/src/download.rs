//! Image bytes out. The image's locations are tried in the order of their stores' weights
//! (highest first, then the order they were added); if a store fails before or during the
//! transfer, the read continues from the next location at the byte where it stopped, so the
//! client never notices one store being down. If every location fails the stream ends in an
//! error (the client sees a truncated body, never wrong bytes). Full reads of images in
//! cached stores fill the image cache on the way; the prefetcher uses the same path.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use glass_registry::{Image, ImageStatus};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::cache::{Filler, ImageCache};
use crate::metrics::{CacheEvent, Direction, Metrics};
use crate::periodic::auditor::marked_bad;
use crate::stores::{ByteReader, ImageStore};
use crate::upload::store_failure;
use crate::{Error, Service};

/// Size of the chunks read from a store.
const CHUNK: usize = 64 * 1024;

/// The bytes of a read, and whether the cache served them (`hit`) or could have (`miss`).
pub struct Data {
    pub stream: Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send>>,
    pub cache: Option<&'static str>,
}

/// Reads `len` bytes of `image` from `start` (`whole` when that is the whole image, which
/// may fill the cache). `None` when no store has the data of the image.
pub async fn read(
    state: &Service,
    image: &Image,
    start: u64,
    len: u64,
    whole: bool,
) -> Result<Option<Data>, Error> {
    let Some(size) = image.size else {
        return Ok(None);
    };
    let mut cache = None;
    let mut fill = None;
    if let Some(image_cache) = cache_for(state, image) {
        if let Some(file) = image_cache.open_for(image.id, size, image.checksum.as_deref()) {
            state.metrics.cache_event(CacheEvent::Hit);
            let mut file = tokio::fs::File::from_std(file);
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| Error::Internal(format!("reading the image cache: {e}")))?;
            return Ok(Some(Data {
                stream: Box::pin(ReaderStream::with_capacity(file.take(len), CHUNK)),
                cache: Some("hit"),
            }));
        }
        state.metrics.cache_event(CacheEvent::Miss);
        cache = Some("miss");
        if whole {
            fill = Fill::start(image_cache, image).await;
        }
    }
    let mut transfer = Transfer {
        metrics: state.metrics.clone(),
        sources: sources(state, image),
        next: 0,
        reader: None,
        image: image.id.to_string(),
        offset: start,
        remaining: len,
        fill,
        filled: false,
    };
    match transfer.open().await {
        // Glance answers 204 when the store has no data for an active image.
        Err(Error::NotFound(_)) => return Ok(None),
        other => other?,
    }
    let first = match transfer.next_chunk().await {
        Some(Ok(chunk)) => Some(chunk),
        Some(Err(e)) => {
            return Err(Error::Unavailable(format!(
                "No store could deliver the data of image {}: {e}",
                image.id
            )));
        }
        None => None,
    };
    Ok(Some(Data {
        stream: Box::pin(transfer.into_stream(first)),
        cache,
    }))
}

/// The cache, if it is on and the image has a copy in a cached store.
fn cache_for(state: &Service, image: &Image) -> Option<Arc<ImageCache>> {
    let cached_store = image
        .locations
        .iter()
        .any(|l| state.stores.entry(&l.store).is_some_and(|e| e.cacheable));
    state.cache.clone().filter(|_| cached_store)
}

/// Fills the cache with an active image from its store (the prefetcher), unless it is
/// cached or being filled already. True when an entry was written.
pub async fn prefetch(state: &Service, image: &Image) -> Result<bool, Error> {
    let Some(cache) = cache_for(state, image) else {
        return Ok(false);
    };
    let (Some(size), ImageStatus::Active) = (image.size, image.status) else {
        return Ok(false);
    };
    let Some(fill) = Fill::start(cache, image).await else {
        return Ok(false);
    };
    let mut transfer = Transfer {
        metrics: state.metrics.clone(),
        sources: sources(state, image),
        next: 0,
        reader: None,
        image: image.id.to_string(),
        offset: 0,
        remaining: size,
        fill: Some(fill),
        filled: false,
    };
    transfer.open().await?;
    while let Some(chunk) = transfer.next_chunk().await {
        chunk.map_err(|e| Error::Unavailable(e.to_string()))?;
    }
    Ok(transfer.filled)
}

/// A cache fill riding along a full read.
struct Fill {
    cache: Arc<ImageCache>,
    filler: Filler,
    size: u64,
    checksum: Option<String>,
    blake3: Option<String>,
}

impl Fill {
    async fn start(cache: Arc<ImageCache>, image: &Image) -> Option<Fill> {
        let filler = cache.begin_fill(image.id).await?;
        Some(Fill {
            cache,
            filler,
            size: image.size?,
            checksum: image.checksum.clone(),
            blake3: image.locations.iter().find_map(|l| l.blake3.clone()),
        })
    }
}

/// One place the bytes can be read from.
struct Source {
    store_id: String,
    store: Arc<dyn ImageStore>,
    url: String,
}

/// The image's locations in configured stores, highest store weight first (stable, so equal
/// weights keep the order the locations were added in). Copies the auditor marked bad are
/// never served.
fn sources(state: &Service, image: &Image) -> Vec<Source> {
    let mut sources: Vec<(i64, Source)> = image
        .locations
        .iter()
        .filter(|l| !marked_bad(l))
        .filter_map(|l| {
            let store = state.stores.get(&l.store)?;
            Some((
                state.stores.weight(&l.store),
                Source {
                    store_id: l.store.clone(),
                    store: store.clone(),
                    url: l.url.clone(),
                },
            ))
        })
        .collect();
    sources.sort_by_key(|(weight, _)| std::cmp::Reverse(*weight));
    sources.into_iter().map(|(_, s)| s).collect()
}

/// The state of one download: where the next byte comes from and how many are still due.
struct Transfer {
    metrics: Arc<Metrics>,
    sources: Vec<Source>,
    /// Index of the next source to try.
    next: usize,
    reader: Option<ReaderStream<ByteReader>>,
    image: String,
    /// Image offset of the next byte due.
    offset: u64,
    remaining: u64,
    /// The cache fill this read feeds, if any; completed when the last byte is delivered.
    fill: Option<Fill>,
    /// Set when the fill became a cache entry.
    filled: bool,
}

impl Transfer {
    /// Opens the next source that answers, from the current offset. The error of the last
    /// one tried if none does.
    async fn open(&mut self) -> Result<(), Error> {
        let mut last = Error::Unavailable(format!(
            "No configured store holds a good copy of the data of image {}",
            self.image
        ));
        while let Some(source) = self.sources.get(self.next) {
            self.next += 1;
            match source
                .store
                .get(&source.url, self.offset, Some(self.remaining))
                .await
            {
                Ok(reader) => {
                    self.reader = Some(ReaderStream::with_capacity(reader, CHUNK));
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(image = %self.image, store = %source.store_id, error = %e,
                        "reading image data failed, trying the next location");
                    last = store_failure(&source.store_id, e);
                }
            }
        }
        Err(last)
    }

    /// The next chunk: from the current source; when it fails or ends early, from the next
    /// one at the same offset. `None` once every byte due was delivered.
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            if self.remaining == 0 {
                return None;
            }
            let failure = match self.reader.as_mut()?.next().await {
                Some(Ok(mut chunk)) => {
                    if chunk.len() as u64 > self.remaining {
                        chunk.truncate(self.remaining as usize);
                    }
                    self.offset += chunk.len() as u64;
                    self.remaining -= chunk.len() as u64;
                    let store = &self.sources[self.next - 1].store_id;
                    self.metrics
                        .store_bytes(store, Direction::Out, chunk.len() as u64);
                    if let Some(fill) = self.fill.as_mut() {
                        fill.filler.write(&chunk).await;
                    }
                    // Complete the cache fill before handing over the last bytes: once the
                    // client has them the body may never be polled again.
                    if self.remaining == 0
                        && let Some(fill) = self.fill.take()
                    {
                        let Fill {
                            cache,
                            filler,
                            size,
                            checksum,
                            blake3,
                        } = fill;
                        self.filled = cache
                            .finish_fill(filler, size, checksum, blake3.as_deref())
                            .await;
                    }
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => e.to_string(),
                None => format!("the store ended the data {} bytes early", self.remaining),
            };
            let failed = self.next.saturating_sub(1);
            tracing::warn!(image = %self.image, store = %self.sources[failed].store_id,
                offset = self.offset, error = %failure, "image data read failed mid-way");
            self.reader = None;
            if let Err(e) = self.open().await {
                return Some(Err(std::io::Error::other(e.to_string())));
            }
        }
    }

    /// The body, starting with `first` (already read, so that a download whose every copy
    /// fails before its first byte gets a proper error status instead of a broken body).
    fn into_stream(
        self,
        first: Option<Bytes>,
    ) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
        let rest = futures_util::stream::unfold(Some(self), |transfer| async move {
            let mut t = transfer?;
            match t.next_chunk().await {
                Some(Ok(chunk)) => Some((Ok(chunk), Some(t))),
                Some(Err(e)) => Some((Err(e), None)),
                None => None,
            }
        });
        futures_util::stream::iter(first.map(Ok)).chain(rest)
    }
}
