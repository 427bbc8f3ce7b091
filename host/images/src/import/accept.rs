//! The one gate between bytes and an accepted copy: every path that writes image data a
//! client can later boot (upload, stage, glance-direct / web-download / glance-download
//! imports, copy-image, the 2.17 locations task) gets its inspection here ([`inspection`])
//! and, when it records the copy, checks that the image still has the formats the data was
//! inspected against ([`Formats::still`], called inside the compare-and-swap).

use glass_registry::Image;

use super::inspect::{InspectSession, session};
use crate::Error;
use crate::Service;

/// The formats a copy was inspected against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formats {
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
}

impl Formats {
    pub fn of(image: &Image) -> Self {
        Formats {
            disk_format: image.disk_format.clone(),
            container_format: image.container_format.clone(),
        }
    }

    /// The image (as the compare-and-swap sees it) still has these formats: otherwise the
    /// data was judged against formats the image no longer claims.
    pub fn still(&self, image: &Image) -> Result<(), String> {
        let now = Formats::of(image);
        if &now == self {
            return Ok(());
        }
        Err(format!(
            "the image's formats changed while its data was written (inspected as \
             disk_format {}, container_format {}; the image now says {}, {})",
            shown(&self.disk_format),
            shown(&self.container_format),
            shown(&now.disk_format),
            shown(&now.container_format),
        ))
    }
}

fn shown(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("none")
}

/// The inspection of data about to become a copy of `image` (as read now), with the
/// formats it judges against. `None` only when the deployment turned inspection off or the
/// image's container is not inspected (Glance inspects `bare` only).
pub async fn inspection(
    state: &Service,
    image: &Image,
) -> Result<(Option<InspectSession>, Formats), Error> {
    let formats = Formats::of(image);
    let session = session(state, image).await?;
    Ok((session, formats))
}
