//! The registry's one error type.

use uuid::Uuid;

use crate::model::ImageStatus;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("image {0} not found")]
    ImageNotFound(Uuid),
    #[error("an image with identifier {0} already exists")]
    DuplicateImage(Uuid),
    #[error("image {0} was changed by another request")]
    Stale(Uuid),
    #[error("image status cannot change from {from} to {to}")]
    InvalidTransition { from: ImageStatus, to: ImageStatus },
    #[error("member {member} of image {image} not found")]
    MemberNotFound { image: Uuid, member: String },
    #[error("member {member} of image {image} already exists")]
    DuplicateMember { image: Uuid, member: String },
    #[error("marker {0} not found")]
    MarkerNotFound(Uuid),
    #[error("task {0} not found")]
    TaskNotFound(Uuid),
    #[error("stored record is corrupt or of an unknown version: {0}")]
    Corrupt(String),
    #[error("storage engine failure: {0}")]
    Engine(String),
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
