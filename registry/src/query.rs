//! Image listing queries: who is asking, which images they may see, filters, sort order and
//! paging. Evaluation of one image against a query lives here so every backend agrees on it.

use std::cmp::Ordering;
use uuid::Uuid;

use crate::model::{Image, ImageStatus, MemberStatus, Timestamp, Visibility};

/// The identity a query runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Viewer {
    pub project: Option<String>,
    pub is_admin: bool,
}

impl Viewer {
    pub fn owns(&self, image: &Image) -> bool {
        self.project.is_some() && image.owner == self.project
    }

    /// May this viewer see (GET) the image at all? `membership` is the viewer's member status
    /// on the image, if any.
    pub fn can_see(&self, image: &Image, membership: Option<MemberStatus>) -> bool {
        if self.is_admin || self.owns(image) || image.owner.is_none() {
            return true;
        }
        match image.visibility {
            Visibility::Public | Visibility::Community => true,
            Visibility::Shared => membership.is_some(),
            Visibility::Private => false,
        }
    }
}

/// The `visibility` list filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VisibilityScope {
    /// No filter given: what Glance lists by default.
    #[default]
    Default,
    Only(Visibility),
    All,
}

/// The `member_status` list filter (default `accepted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberStatusFilter {
    #[default]
    Accepted,
    Only(MemberStatus),
    All,
}

impl MemberStatusFilter {
    fn admits(self, status: MemberStatus) -> bool {
        match self {
            MemberStatusFilter::All => true,
            MemberStatusFilter::Accepted => status == MemberStatus::Accepted,
            MemberStatusFilter::Only(s) => s == status,
        }
    }
}

/// String-valued core attributes that can be filtered with `in:` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    Id,
    Name,
    Status,
    Owner,
    DiskFormat,
    ContainerFormat,
    Checksum,
    OsHashValue,
}

/// Comparison operators for date filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    CreatedAt,
    UpdatedAt,
}

/// One filter; a query holds a conjunction of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// The attribute equals one of the values (a null attribute matches none).
    Text {
        field: TextField,
        values: Vec<String>,
    },
    SizeMin(i64),
    SizeMax(i64),
    Protected(bool),
    OsHidden(bool),
    /// The image carries this tag.
    Tag(String),
    /// An extra property equals one of the values.
    Property {
        key: String,
        values: Vec<String>,
    },
    Time {
        field: TimeField,
        op: Comparison,
        at: Timestamp,
    },
}

impl Filter {
    pub fn matches(&self, image: &Image) -> bool {
        match self {
            Filter::Text { field, values } => {
                let value = text_value(image, *field);
                values.iter().any(|v| value.as_deref() == Some(v.as_str()))
            }
            Filter::SizeMin(min) => image
                .size
                .is_some_and(|s| i128::from(s) >= i128::from(*min)),
            Filter::SizeMax(max) => image
                .size
                .is_some_and(|s| i128::from(s) <= i128::from(*max)),
            Filter::Protected(p) => image.protected == *p,
            Filter::OsHidden(h) => image.os_hidden == *h,
            Filter::Tag(tag) => image.tags.contains(tag),
            Filter::Property { key, values } => image
                .properties
                .get(key)
                .is_some_and(|v| values.iter().any(|w| w == v)),
            Filter::Time { field, op, at } => {
                let t = match field {
                    TimeField::CreatedAt => image.created_at,
                    TimeField::UpdatedAt => image.updated_at,
                };
                // The API shows whole seconds, so compare what the user can see.
                let ord = t.timestamp().cmp(&at.timestamp());
                match op {
                    Comparison::Eq => ord == Ordering::Equal,
                    Comparison::Neq => ord != Ordering::Equal,
                    Comparison::Gt => ord == Ordering::Greater,
                    Comparison::Gte => ord != Ordering::Less,
                    Comparison::Lt => ord == Ordering::Less,
                    Comparison::Lte => ord != Ordering::Greater,
                }
            }
        }
    }
}

fn text_value(image: &Image, field: TextField) -> Option<String> {
    match field {
        TextField::Id => Some(image.id.to_string()),
        TextField::Name => image.name.clone(),
        TextField::Status => Some(image.status.as_str().to_string()),
        TextField::Owner => image.owner.clone(),
        TextField::DiskFormat => image.disk_format.clone(),
        TextField::ContainerFormat => image.container_format.clone(),
        TextField::Checksum => image.checksum.clone(),
        TextField::OsHashValue => image.os_hash_value.clone(),
    }
}

/// Attributes a listing can be sorted by (Glance's sort keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    Name,
    Status,
    ContainerFormat,
    DiskFormat,
    Size,
    Id,
    CreatedAt,
    UpdatedAt,
}

impl SortKey {
    pub const ALL: [SortKey; 8] = [
        SortKey::Name,
        SortKey::Status,
        SortKey::ContainerFormat,
        SortKey::DiskFormat,
        SortKey::Size,
        SortKey::Id,
        SortKey::CreatedAt,
        SortKey::UpdatedAt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Status => "status",
            SortKey::ContainerFormat => "container_format",
            SortKey::DiskFormat => "disk_format",
            SortKey::Size => "size",
            SortKey::Id => "id",
            SortKey::CreatedAt => "created_at",
            SortKey::UpdatedAt => "updated_at",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Compares two images on this key alone, ascending; SQL-style NULLs first.
    pub fn compare(self, a: &Image, b: &Image) -> Ordering {
        match self {
            SortKey::Name => a.name.cmp(&b.name),
            SortKey::Status => a.status.as_str().cmp(b.status.as_str()),
            SortKey::ContainerFormat => a.container_format.cmp(&b.container_format),
            SortKey::DiskFormat => a.disk_format.cmp(&b.disk_format),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Id => a.id.cmp(&b.id),
            SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
            SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    Asc,
    Desc,
}

impl SortDir {
    pub fn as_str(self) -> &'static str {
        match self {
            SortDir::Asc => "asc",
            SortDir::Desc => "desc",
        }
    }
}

/// A complete image listing request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageQuery {
    pub viewer: Viewer,
    pub visibility: VisibilityScope,
    pub member_status: MemberStatusFilter,
    pub filters: Vec<Filter>,
    /// Sort order as asked; [`ImageQuery::full_sort`] appends the tie-breakers.
    pub sort: Vec<(SortKey, SortDir)>,
    pub marker: Option<Uuid>,
    pub limit: usize,
    /// How much work (records read, index seeks) an engine may spend on one page. A query
    /// no index serves stops there and answers with what it found and a `next` marker to
    /// resume from, rather than walking the whole catalogue.
    pub budget: usize,
}

/// [`ImageQuery::budget`] unless configured: a few milliseconds of work.
pub const DEFAULT_LIST_BUDGET: usize = 10_000;

impl Default for ImageQuery {
    fn default() -> Self {
        ImageQuery {
            viewer: Viewer::default(),
            visibility: VisibilityScope::Default,
            member_status: MemberStatusFilter::Accepted,
            filters: Vec::new(),
            sort: Vec::new(),
            marker: None,
            limit: 25,
            budget: DEFAULT_LIST_BUDGET,
        }
    }
}

impl ImageQuery {
    /// The sort order with the tie-breakers (created_at, then id) appended where missing, so
    /// the order is total and paging with a marker is stable. Glance's rule for their
    /// direction: the query's direction if it has exactly one, otherwise descending.
    pub fn full_sort(&self) -> Vec<(SortKey, SortDir)> {
        let mut sort = self.sort.clone();
        let first = sort.first().map(|(_, d)| *d).unwrap_or(SortDir::Desc);
        let dir = if sort.iter().all(|(_, d)| *d == first) {
            first
        } else {
            SortDir::Desc
        };
        for key in [SortKey::CreatedAt, SortKey::Id] {
            if !sort.iter().any(|(k, _)| *k == key) {
                sort.push((key, dir));
            }
        }
        sort
    }

    /// Does this image belong in the listing? `membership` is the viewer's member status on
    /// the image, if any.
    pub fn admits(&self, image: &Image, membership: Option<MemberStatus>) -> bool {
        self.in_scope(image, membership) && self.filters.iter().all(|f| f.matches(image))
    }

    fn in_scope(&self, image: &Image, membership: Option<MemberStatus>) -> bool {
        if image.status == ImageStatus::Killed {
            return false;
        }
        let viewer = &self.viewer;
        let owned = viewer.owns(image);
        if viewer.is_admin {
            // Admins see every project's images; community ones only when asked for.
            return match self.visibility {
                VisibilityScope::Default => owned || image.visibility != Visibility::Community,
                VisibilityScope::All => true,
                VisibilityScope::Only(v) => image.visibility == v,
            };
        }
        let shared_with_viewer = image.visibility == Visibility::Shared
            && membership.is_some_and(|s| self.member_status.admits(s));
        let candidate = owned
            || matches!(image.visibility, Visibility::Public | Visibility::Community)
            || shared_with_viewer;
        candidate
            && match self.visibility {
                VisibilityScope::Default => image.visibility != Visibility::Community || owned,
                VisibilityScope::All => true,
                VisibilityScope::Only(v) => image.visibility == v,
            }
    }

    /// Total order of the listing: `Less` means `a` comes first.
    pub fn compare(sort: &[(SortKey, SortDir)], a: &Image, b: &Image) -> Ordering {
        for (key, dir) in sort {
            let ord = key.compare(a, b);
            let ord = match dir {
                SortDir::Asc => ord,
                SortDir::Desc => ord.reverse(),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePage {
    pub images: Vec<Image>,
    /// The marker the next page starts after, when more images may follow: the last image
    /// returned, or, when the query's budget ran out, the last image examined (one the viewer
    /// may see), so that a client following `next` links resumes where the engine stopped.
    pub next: Option<Uuid>,
    /// Work spent on the page (records read and index seeks): what tests hold engines to.
    pub examined: usize,
}

impl ImagePage {
    /// Do more images (may) follow?
    pub fn more(&self) -> bool {
        self.next.is_some()
    }
}
