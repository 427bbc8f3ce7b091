//! The one place that turns errors into HTTP responses in Glance's shape:
//! `{"message", "code", "title"}` for clients that accept JSON, Glance's HTML page otherwise.
//! Handlers return [`ApiError`] (an image operation's [`Error`] on its way out); [`render_errors`]
//! writes the body once the request's `Accept` header is known; it also gives axum's bare 405
//! answers that body.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use glass_images::Error;

/// Media types an image PATCH accepts.
pub const PATCH_MEDIA_TYPES: &str =
    "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch";

/// An error as a handler returns it: any [`Error`] (or what converts into one) turns into
/// this with `?`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<glass_registry::RegistryError> for ApiError {
    fn from(e: glass_registry::RegistryError) -> Self {
        ApiError(e.into())
    }
}

/// The message of an error response, carried in the response's extensions until
/// [`render_errors`] renders it for the client.
#[derive(Debug, Clone)]
struct ErrorMessage(String);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        status(&self.0)
    }
}

/// The HTTP status of each kind of error: the one mapping.
pub fn status(e: &Error) -> StatusCode {
    {
        match e {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) | Error::PatchMediaType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Error::Gone(_) => StatusCode::GONE,
            Error::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self.0 {
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "The server has either erred or is incapable of performing the requested operation."
                    .to_string()
            }
            other => other.to_string(),
        };
        let mut response = status.into_response();
        if let Error::PatchMediaType(_) = &self.0 {
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
