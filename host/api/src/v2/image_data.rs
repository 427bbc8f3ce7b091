//! `PUT /v2/images/{id}/file`: image bytes in, streamed from the request body by the image
//! operations' upload (`glass_images::upload`). Downloads are in `image_download`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use glass_images::access::parse_image_id;
use glass_images::upload::{self, Sizes};
use glass_images::{Error, Identity};

use crate::error::ApiError;
use crate::state::AppState;
use crate::{header_u64, media_type};

pub async fn upload(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let media_type = media_type(&headers);
    if media_type != "application/octet-stream" {
        return Err(Error::UnsupportedMediaType(media_type.to_string()).into());
    }
    let id = parse_image_id(&id)?;
    let sizes = Sizes {
        declared: header_u64(&headers, "x-openstack-image-size")?,
        content_length: header_u64(&headers, header::CONTENT_LENGTH.as_str())?,
        cap: state.config.image_size_cap,
    };
    let store = headers
        .get("x-image-meta-store")
        .map(|v| v.to_str().unwrap_or_default().trim());
    upload::upload(&state, &who, id, store, body.into_data_stream(), sizes).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
