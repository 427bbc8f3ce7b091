//! Who is making a request: the project, user and roles every handler receives as one small
//! [`Identity`] (the API crate builds it according to the configured auth mode).

use glass_registry::Viewer;

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
}
