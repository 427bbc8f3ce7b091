//! The one error type of image operations: what went wrong, in the kinds Glance's API
//! distinguishes (the API crate maps each kind to its HTTP status in one place).

use glass_registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
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

impl Error {
    pub fn not_found() -> Self {
        Error::NotFound("The resource could not be found.".into())
    }

    pub fn image_not_found(id: impl std::fmt::Display) -> Self {
        Error::NotFound(format!("No image found with ID {id}"))
    }
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::ImageNotFound(id) => Error::image_not_found(id),
            RegistryError::DuplicateImage(id) => {
                Error::Conflict(format!("Image ID {id} already exists!"))
            }
            RegistryError::Stale(_) => {
                Error::Conflict("The image was changed by another request; try again.".into())
            }
            RegistryError::InvalidTransition { from, to } => Error::Conflict(format!(
                "Image status transition from {from} to {to} is not allowed"
            )),
            RegistryError::MemberNotFound { image, member } => {
                Error::NotFound(format!("{member} is not a member of image {image}"))
            }
            RegistryError::DuplicateMember { image, member } => {
                Error::Conflict(format!("Member {member} is duplicated for image {image}"))
            }
            RegistryError::MarkerNotFound(id) => {
                Error::BadRequest(format!("No image found with ID {id}"))
            }
            RegistryError::TooCostly(_) => Error::BadRequest(
                "This listing is too costly for the catalogue: add a filter or sort by \
                 created_at."
                    .into(),
            ),
            RegistryError::TaskNotFound(id) => {
                Error::NotFound(format!("Task with the given id {id} was not found"))
            }
            e @ (RegistryError::MetadefNamespaceNotFound(_)
            | RegistryError::MetadefNotFound { .. }) => Error::NotFound(e.to_string()),
            e @ RegistryError::MetadefDuplicate { .. } => Error::Conflict(e.to_string()),
            e @ (RegistryError::Corrupt(_) | RegistryError::Engine(_)) => {
                Error::Internal(e.to_string())
            }
        }
    }
}
