//! Who is making a request: the project, user and roles every handler receives as one small
//! [`Identity`], built according to the configured auth mode.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use glass_registry::Viewer;

use crate::config::AuthMode;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub project: Option<String>,
    pub user: Option<String>,
    pub roles: Vec<String>,
}

impl Identity {
    /// The host itself, for its own bookkeeping writes (finishing or undoing an upload).
    pub fn system() -> Identity {
        Identity {
            project: None,
            user: Some("glass".into()),
            roles: vec!["admin".into()],
        }
    }

    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }

    pub fn viewer(&self) -> Viewer {
        Viewer {
            project: self.project.clone(),
            is_admin: self.is_admin(),
        }
    }

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
        let from_headers = Identity::from_headers(&parts.headers);
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
            AuthMode::Keystone => parts.extensions.get::<Identity>().cloned().ok_or_else(|| {
                ApiError::Unauthorized(crate::keystone::AuthError::Invalid.to_string())
            })?,
        })
    }
}
