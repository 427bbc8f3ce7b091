//! web-download and glance-download: the URL's bytes into the staging area, every hop
//! checked by `web`.

use std::sync::Arc;

use uuid::Uuid;

use super::Failure;
use super::lock::as_task;
use crate::Service;
use crate::stores::ImageStore;
use crate::upload::{Sizes, stream_into_store};

/// web-download / glance-download: the URL's bytes into the staging area (size of the
/// image then recorded, as Glance does), every hop checked by `web`.
pub(super) async fn download_to_staging(
    state: &Service,
    task: Uuid,
    image: Uuid,
    uri: &str,
    token: Option<&str>,
) -> Result<(), Failure> {
    let staging = state.imports.staging.clone();
    staging.remove_all(image).await;
    let cfg = &state.config.import.web_download;
    let limit = cfg
        .max_size_mb
        .saturating_mul(1 << 20)
        .min(state.config.image_size_cap);
    let download = super::web::open(cfg, uri, limit, token)
        .await
        .map_err(|e| format!("web-download of {uri} refused or failed: {e}"))?;
    let length = download.length;
    // Room reserved before writing (atomic with other stages and downloads).
    let covers = vec![image.to_string(), format!("{image}.partial")];
    let reservation = staging.reserve(length, limit, covers).map_err(|room| {
        format!("web-download of {uri}: the staging area has room for {room} bytes only")
    })?;
    let cap = limit.min(reservation.bytes());
    let staging_store: Arc<dyn ImageStore> = staging.clone();
    let streamed = stream_into_store(
        state,
        image,
        "staging",
        &staging_store,
        download.body,
        Sizes {
            declared: length,
            content_length: None,
            cap,
        },
        None,
    )
    .await;
    drop(reservation);
    let streamed = match streamed {
        Ok(s) => s,
        Err(e) => {
            let _ = staging_store.discard_partial(image).await;
            return Err(format!("web-download of {uri} failed: {e}"));
        }
    };
    as_task(state, task, image, |img| {
        img.size = Some(streamed.digests.size);
        Ok(())
    })
    .await?;
    tracing::info!(task = %task, image = %image, size = streamed.digests.size,
        "web-download staged");
    Ok(())
}
