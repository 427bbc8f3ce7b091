//! The registry's one error type.

use uuid::Uuid;

use crate::metadef::MetadefKind;
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
    /// A listing that cannot name a point to resume from within three times its budget
    /// (an order no index serves, over images the viewer may not see).
    #[error("this listing is too costly to answer: {0}")]
    TooCostly(String),
    /// A metadata definition namespace that does not exist.
    #[error("Metadata definition namespace={0} was not found.")]
    MetadefNamespaceNotFound(String),
    /// A record in a namespace (`name`, of `kind`) that does not exist.
    #[error("{}", metadef_not_found(*.kind, .namespace, .name))]
    MetadefNotFound {
        kind: MetadefKind,
        namespace: String,
        name: String,
    },
    /// A name already taken (for a namespace, `namespace` and `name` are both its name).
    #[error("{}", metadef_duplicate(*.kind, .namespace, .name))]
    MetadefDuplicate {
        kind: MetadefKind,
        namespace: String,
        name: String,
    },
    #[error("stored record is corrupt or of an unknown version: {0}")]
    Corrupt(String),
    #[error("storage engine failure: {0}")]
    Engine(String),
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Glance's wording for a missing metadata definition record.
fn metadef_not_found(kind: MetadefKind, namespace: &str, name: &str) -> String {
    match kind {
        MetadefKind::Namespace => format!("Metadata definition namespace={name} was not found."),
        MetadefKind::Object => format!("Could not find metadata object {name}"),
        MetadefKind::Property => format!("Could not find property {name}"),
        MetadefKind::Tag => format!("Could not find metadata tag {name}"),
        MetadefKind::Association => format!(
            "The metadata definition resource-type association of resource-type={name} to namespace={namespace}, was not found."
        ),
    }
}

/// Glance's wording for a name already taken.
fn metadef_duplicate(kind: MetadefKind, namespace: &str, name: &str) -> String {
    match kind {
        MetadefKind::Namespace => {
            format!("The metadata definition namespace={name} already exists.")
        }
        MetadefKind::Object => format!(
            "A metadata definition object with name={name} already exists in namespace={namespace}."
        ),
        MetadefKind::Property => format!(
            "A metadata definition property with name={name} already exists in namespace={namespace}."
        ),
        MetadefKind::Tag => {
            format!("A metadata tag with name={name} already exists in namespace={namespace}.")
        }
        MetadefKind::Association => format!(
            "The metadata definition resource-type association of resource-type={name} to namespace={namespace} already exists."
        ),
    }
}
