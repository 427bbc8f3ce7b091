//! Who is asking: the [`Identity`] every handler receives, built according to the configured
//! auth mode (noauth, trusted headers, or a Keystone token checked by [`authenticate`], the
//! middleware of `auth = "keystone"`).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use glass_images::auth::keystone::AuthError;
use glass_images::config::AuthMode;
use glass_images::{Error, Identity};

use crate::error::ApiError;
use crate::state::AppState;

/// Paths answered without a token (Glance's version negotiation and health check run
/// before its authtoken filter).
const PUBLIC_PATHS: &[&str] = &["/", "/versions", "/healthcheck", "/metrics"];

/// Headers a client could send to pass as someone else: removed before the handlers run.
const IDENTITY_HEADERS: &[&str] = &[
    "x-identity-status",
    "x-user-id",
    "x-user-name",
    "x-project-id",
    "x-tenant-id",
    "x-project-name",
    "x-roles",
    "x-service-catalog",
    "x-is-admin-project",
];

/// Why a token was not accepted.
fn from_headers(headers: &HeaderMap) -> Identity {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    let roles = text("x-roles")
        .map(|r| {
            r.split(',')
                .map(|r| r.trim().to_lowercase())
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Identity {
        project: text("x-project-id").or_else(|| text("x-tenant-id")),
        user: text("x-user-id"),
        roles: with_implied_roles(roles),
    }
}

/// Adds the roles Keystone's default implied-role chain gives (admin ⇒ member ⇒ reader):
/// Keystone's tokens carry them already, headers from a proxy may not.
fn with_implied_roles(mut roles: Vec<String>) -> Vec<String> {
    for (role, implies) in [("admin", "member"), ("member", "reader")] {
        if roles.iter().any(|r| r == role) && !roles.iter().any(|r| r == implies) {
            roles.push(implies.to_owned());
        }
    }
    roles
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let from_headers = from_headers(&parts.headers);
        Ok(match state.config.auth {
            // No authentication at all: identity headers, when sent, are taken as given (as
            // Glance's noauth pipeline does); without them the caller is the default admin.
            AuthMode::Noauth if from_headers.project.is_none() && from_headers.roles.is_empty() => {
                Identity {
                    project: Some(state.config.noauth_project.clone()),
                    user: Some("admin".into()),
                    roles: vec!["admin".into(), "member".into(), "reader".into()],
                }
            }
            AuthMode::Noauth | AuthMode::TrustedHeaders => from_headers,
            // Set by `keystone::authenticate` from the validated token.
            AuthMode::Keystone => parts
                .extensions
                .get::<Identity>()
                .cloned()
                .ok_or_else(|| ApiError(Error::Unauthorized(AuthError::Invalid.to_string())))?,
        })
    }
}

/// The middleware of `auth = "keystone"`.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(keystone) = state.keystone.as_ref() else {
        return next.run(request).await;
    };
    let headers = request.headers_mut();
    for name in IDENTITY_HEADERS {
        headers.remove(*name);
    }
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let result = match token {
        Some(token) => keystone.validate(&token).await,
        None => Err(AuthError::Invalid),
    };
    match result {
        Ok(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Err(AuthError::Invalid) => {
            let mut response =
                ApiError(Error::Unauthorized(AuthError::Invalid.to_string())).into_response();
            if let Ok(value) = HeaderValue::from_str(&keystone.www_authenticate()) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            response
        }
        Err(AuthError::Unavailable(reason)) => {
            tracing::error!(%reason, "token validation failed");
            ApiError(Error::Unavailable(
                "The authentication service is unavailable.".into(),
            ))
            .into_response()
        }
    }
}
