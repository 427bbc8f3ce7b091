//! The typed records the registry keeps: images, members, tasks, and the rules that belong to
//! the records themselves (the image state machine, the member and task statuses).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A point in time as the registry stores it (UTC, microsecond precision).
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to microseconds so it survives a round trip through storage.
pub fn now() -> Timestamp {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Glance's image statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageStatus {
    Queued,
    Saving,
    Active,
    Killed,
    Deleted,
    Uploading,
    Importing,
    PendingDelete,
    Deactivated,
}

impl ImageStatus {
    pub const ALL: [ImageStatus; 9] = [
        ImageStatus::Queued,
        ImageStatus::Saving,
        ImageStatus::Active,
        ImageStatus::Killed,
        ImageStatus::Deleted,
        ImageStatus::Uploading,
        ImageStatus::Importing,
        ImageStatus::PendingDelete,
        ImageStatus::Deactivated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Active => "active",
            ImageStatus::Killed => "killed",
            ImageStatus::Deleted => "deleted",
            ImageStatus::Uploading => "uploading",
            ImageStatus::Importing => "importing",
            ImageStatus::PendingDelete => "pending_delete",
            ImageStatus::Deactivated => "deactivated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Glance's image state machine. Staying in the same status is always allowed.
    pub fn can_become(self, next: ImageStatus) -> bool {
        use ImageStatus::*;
        if self == next {
            return true;
        }
        matches!(
            (self, next),
            (Queued, Saving | Uploading | Importing | Active | Deleted)
                | (Saving, Active | Killed | Queued | Deleted)
                | (Uploading, Importing | Queued | Deleted)
                | (Importing, Active | Queued | Deleted)
                | (Active, Deactivated | PendingDelete | Deleted)
                | (Deactivated, Active | PendingDelete | Deleted)
                | (Killed, Deleted)
                | (PendingDelete, Active | Deleted)
        )
    }
}

impl std::fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may see an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Private,
    Shared,
    Community,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Shared => "shared",
            Visibility::Community => "community",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            "shared" => Some(Visibility::Shared),
            "community" => Some(Visibility::Community),
            _ => None,
        }
    }
}

/// Where an image's bytes live: a store id and a location string only that store understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub url: String,
    /// Store-specific metadata, shown to admins as Glance does (`metadata` of a location).
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// The store the bytes are in (Glance's `store` location metadata key).
    pub store: String,
    /// blake3 of the bytes as written, for the auditor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

/// An image record with every Glance core attribute plus free-form extra properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: Uuid,
    pub name: Option<String>,
    pub status: ImageStatus,
    pub visibility: Visibility,
    pub protected: bool,
    pub os_hidden: bool,
    pub owner: Option<String>,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_disk: u64,
    pub min_ram: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub tags: BTreeSet<String>,
    pub locations: Vec<Location>,
    /// Extra properties: Glance keeps them as strings.
    pub properties: BTreeMap<String, String>,
    /// Bumped by the registry on every write; compare-and-swap checks it.
    pub revision: u64,
}

impl Image {
    /// A new queued image with Glance's defaults.
    pub fn new(id: Uuid, owner: Option<String>) -> Self {
        let t = now();
        Image {
            id,
            name: None,
            status: ImageStatus::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            owner,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            disk_format: None,
            container_format: None,
            min_disk: 0,
            min_ram: 0,
            created_at: t,
            updated_at: t,
            tags: BTreeSet::new(),
            locations: Vec::new(),
            properties: BTreeMap::new(),
            revision: 0,
        }
    }
}

/// The status a member gives to an image shared with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Pending,
    Accepted,
    Rejected,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Accepted => "accepted",
            MemberStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(MemberStatus::Pending),
            "accepted" => Some(MemberStatus::Accepted),
            "rejected" => Some(MemberStatus::Rejected),
            _ => None,
        }
    }
}

/// A project an image is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub image_id: Uuid,
    pub member_id: String,
    pub status: MemberStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Status of an asynchronous task (import and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Processing,
    Success,
    Failure,
}

/// An asynchronous task, as Glance's `/v2/tasks` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: Uuid,
    pub task_type: String,
    pub status: TaskStatus,
    pub owner: Option<String>,
    pub image_id: Option<Uuid>,
    pub user_id: Option<String>,
    pub request_id: Option<String>,
    pub input: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub message: String,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub revision: u64,
}
