//! Metadata definition records (Glance's "metadefs"): namespaces and what they contain
//! (properties, objects, tags, resource type associations), plus the global resource types.
//! Property and object schemas are kept as the JSON documents clients send; the host checks
//! their shape, the registry only stores them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::Timestamp;

/// Who may see a namespace: everyone, or its owner (and admins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadefVisibility {
    Public,
    Private,
}

impl MetadefVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            MetadefVisibility::Public => "public",
            MetadefVisibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(MetadefVisibility::Public),
            "private" => Some(MetadefVisibility::Private),
            _ => None,
        }
    }
}

/// The kinds of record a namespace contains, for errors and bulk deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadefKind {
    Namespace,
    Object,
    Property,
    Tag,
    /// A namespace's association with a resource type (named by the resource type).
    Association,
}

impl MetadefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetadefKind::Namespace => "namespace",
            MetadefKind::Object => "object",
            MetadefKind::Property => "property",
            MetadefKind::Tag => "tag",
            MetadefKind::Association => "resource type association",
        }
    }
}

impl std::fmt::Display for MetadefKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A namespace (its own attributes only; see [`MetadefDefinition`] for its contents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadefNamespace {
    /// The unique name (Glance's `namespace`).
    pub namespace: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub visibility: MetadefVisibility,
    /// A protected namespace, and everything in it, cannot be deleted.
    pub protected: bool,
    pub owner: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A named group of properties within a namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadefObject {
    pub namespace: String,
    pub name: String,
    pub description: Option<String>,
    pub required: Vec<String>,
    /// Property name to its schema document.
    pub properties: Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A property definition: a name and its schema document (`type`, `title`, `enum`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadefProperty {
    pub namespace: String,
    pub name: String,
    pub schema: Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadefTag {
    pub namespace: String,
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A kind of resource namespaces apply to (`OS::Glance::Image`, ...). Created on first use
/// by an association; those seeded by a definitions load are protected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadefResourceType {
    pub name: String,
    pub protected: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A namespace applies to a resource type, its properties named with `prefix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadefAssociation {
    pub namespace: String,
    /// The resource type's name.
    pub name: String,
    pub prefix: Option<String>,
    pub properties_target: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A namespace with everything in it: what a definitions file holds, what a namespace
/// create may carry, and what validators read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadefDefinition {
    pub namespace: MetadefNamespace,
    pub properties: Vec<MetadefProperty>,
    pub objects: Vec<MetadefObject>,
    pub tags: Vec<MetadefTag>,
    pub associations: Vec<MetadefAssociation>,
}

impl MetadefDefinition {
    /// A definition with no contents.
    pub fn empty(namespace: MetadefNamespace) -> Self {
        MetadefDefinition {
            namespace,
            properties: Vec::new(),
            objects: Vec::new(),
            tags: Vec::new(),
            associations: Vec::new(),
        }
    }
}

/// What both engines need of a record that lives in a namespace (property, object, tag,
/// resource type association): its names, and how a replacement keeps the stored record's
/// timestamps.
pub trait MetadefRecord: Clone + PartialEq {
    const KIND: MetadefKind;
    fn namespace(&self) -> &str;
    fn name(&self) -> &str;
    fn set_namespace(&mut self, ns: &str);
    /// A change through the API: the stored record's `created_at`.
    fn keep_created_at(&mut self, stored: &Self);
    /// A definition (re)load: the stored `created_at`, and the stored `updated_at` too when
    /// nothing else differs (loading the same definition again is not an update).
    fn keep_stored_timestamps(&mut self, stored: &Self);
}

macro_rules! metadef_record {
    ($ty:ty, $kind:expr) => {
        impl MetadefRecord for $ty {
            const KIND: MetadefKind = $kind;
            fn namespace(&self) -> &str {
                &self.namespace
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn set_namespace(&mut self, ns: &str) {
                self.namespace = ns.to_string();
            }
            fn keep_created_at(&mut self, stored: &Self) {
                self.created_at = stored.created_at;
            }
            fn keep_stored_timestamps(&mut self, stored: &Self) {
                self.created_at = stored.created_at;
                let updated_at = std::mem::replace(&mut self.updated_at, stored.updated_at);
                if self != stored {
                    self.updated_at = updated_at;
                }
            }
        }
    };
}

metadef_record!(MetadefObject, MetadefKind::Object);
metadef_record!(MetadefProperty, MetadefKind::Property);
metadef_record!(MetadefTag, MetadefKind::Tag);
metadef_record!(MetadefAssociation, MetadefKind::Association);

impl MetadefNamespace {
    /// As [`MetadefRecord::keep_stored_timestamps`], for a namespace's own attributes.
    pub fn keep_stored_timestamps(&mut self, stored: &MetadefNamespace) {
        self.created_at = stored.created_at;
        let updated_at = std::mem::replace(&mut self.updated_at, stored.updated_at);
        if self != stored {
            self.updated_at = updated_at;
        }
    }
}
