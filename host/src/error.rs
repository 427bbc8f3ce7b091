//! The host's one error type and the one place that turns errors into HTTP responses in
//! Glance's shape: `{"message", "code", "title"}` for clients that accept JSON, Glance's HTML
//! page otherwise. Handlers return [`ApiError`]; [`render_errors`] writes the body once the
//! request's `Accept` header is known; it also gives axum's bare 405 answers that body.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use glass_registry::RegistryError;

/// Media types an image PATCH accepts.
pub const PATCH_MEDIA_TYPES: &str =
    "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// No valid token (`auth = "keystone"`).
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("The request media type {0} is not supported by this server.")]
    UnsupportedMediaType(String),
    /// A PATCH with the wrong media type: 415 with `Accept-Patch`.
    #[error(
        "The request media type {0} is not supported by this server.\n\nImage PATCH expects Content-Type one of: application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch"
    )]
    PatchMediaType(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    RangeNotSatisfiable(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// The message of an error response, carried in the response's extensions until
/// [`render_errors`] renders it for the client.
#[derive(Debug, Clone)]
struct ErrorMessage(String);

impl ApiError {
    pub fn not_found() -> Self {
        ApiError::NotFound("The resource could not be found.".into())
    }

    pub fn image_not_found(id: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("No image found with ID {id}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) | ApiError::PatchMediaType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::ImageNotFound(id) => ApiError::image_not_found(id),
            RegistryError::DuplicateImage(id) => {
                ApiError::Conflict(format!("Image ID {id} already exists!"))
            }
            RegistryError::Stale(_) => {
                ApiError::Conflict("The image was changed by another request; try again.".into())
            }
            RegistryError::InvalidTransition { from, to } => ApiError::Conflict(format!(
                "Image status transition from {from} to {to} is not allowed"
            )),
            RegistryError::MemberNotFound { image, member } => {
                ApiError::NotFound(format!("{member} is not a member of image {image}"))
            }
            RegistryError::DuplicateMember { image, member } => {
                ApiError::Conflict(format!("Member {member} is duplicated for image {image}"))
            }
            RegistryError::MarkerNotFound(id) => {
                ApiError::BadRequest(format!("No image found with ID {id}"))
            }
            RegistryError::TaskNotFound(id) => {
                ApiError::NotFound(format!("Task with the given id {id} was not found"))
            }
            e @ (RegistryError::MetadefNamespaceNotFound(_)
            | RegistryError::MetadefNotFound { .. }) => ApiError::NotFound(e.to_string()),
            e @ RegistryError::MetadefDuplicate { .. } => ApiError::Conflict(e.to_string()),
            e @ (RegistryError::Corrupt(_) | RegistryError::Engine(_)) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "The server has either erred or is incapable of performing the requested operation."
                    .to_string()
            }
            other => other.to_string(),
        };
        let mut response = status.into_response();
        if let ApiError::PatchMediaType(_) = &self {
            response
                .headers_mut()
                .insert("accept-patch", HeaderValue::from_static(PATCH_MEDIA_TYPES));
        }
        response.extensions_mut().insert(ErrorMessage(message));
        response
    }
}

fn wants_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// Middleware: renders the body of every error response for the client that asked.
pub async fn render_errors(request: Request, next: Next) -> Response {
    let json = wants_json(&request);
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let message = match response.extensions_mut().remove::<ErrorMessage>() {
        Some(ErrorMessage(message)) => message,
        // axum's own answer to a known path with a wrong method. Its `Allow` lists HEAD
        // wherever GET is routed; Glance lists only the methods it routes.
        None if response.status() == StatusCode::METHOD_NOT_ALLOWED => {
            let allow = response
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|m| *m != "HEAD")
                        .collect::<Vec<_>>()
                        .join(", ")
                });
            if let Some(v) = allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
                response.headers_mut().insert(header::ALLOW, v);
            }
            format!("The method {method} is not allowed for this resource.")
        }
        // Other answers axum gives on its own (a body over the size limit, a path it cannot
        // decode): same shape as ours.
        None if response.status().is_client_error() || response.status().is_server_error() => {
            match response.status() {
                StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large.".to_string(),
                other => other.canonical_reason().unwrap_or("Error").to_string(),
            }
        }
        None => return response,
    };
    let status = response.status();
    let code = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let title = status.canonical_reason().unwrap_or("Error");
    let (content_type, body) = if json {
        let body = serde_json::json!({
            "message": format!("{message}<br /><br />\n\n\n"),
            "code": code,
            "title": title,
        });
        ("application/json", body.to_string())
    } else {
        let body = format!(
            "<html>\n <head>\n  <title>{code}</title>\n </head>\n <body>\n  <h1>{code}</h1>\n  {}<br /><br />\n\n\n\n </body>\n</html>",
            html_escape(&message)
        );
        ("text/html; charset=UTF-8", body)
    };
    let (mut parts, _) = response.into_parts();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    parts.headers.remove(header::CONTENT_LENGTH);
    if method == Method::HEAD {
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    Response::from_parts(parts, axum::body::Body::from(body))
}
