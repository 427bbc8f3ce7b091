//! Which images a viewer may list (`ImageQuery::in_scope`), as disjoint parts that an index
//! can each serve in the listing's order.
//!
//! An admin's scope is one condition, which barely filters. A non-admin sees the images of
//! their project, public (and, when asked, community) images, and shared images they are a
//! member of: an OR that no single index serves, so a page walked the whole catalogue in
//! creation order when little of it is visible. Split into parts, each is one index range:
//! owned images by `images_by_owner (owner, created_at, id)`, each open visibility by
//! `images_by_visibility (visibility, created_at, id)`, and shared images from the viewer's
//! memberships (`image_members_by_member (member, status, image_id)`). The parts are
//! disjoint (owned or not; open and shared differ in visibility), so the listing is their
//! UNION ALL, each part ordered and limited to the page, and their union ordered and limited
//! again: each of the global page's rows is within its own part's first page.

use tokio_postgres::types::Type;

use super::sql::Sql;
use crate::model::{MemberStatus, Visibility};
use crate::query::{ImageQuery, MemberStatusFilter, VisibilityScope};

fn visibility(v: Visibility) -> String {
    format!("i.visibility = '{}'", v.as_str())
}

/// The scope as conditions on `images i`, pairwise exclusive, whose union is the scope.
/// None at all when nothing is visible.
pub(super) fn parts(sql: &mut Sql, query: &ImageQuery) -> Vec<String> {
    let viewer = &query.viewer;
    let project = viewer
        .project
        .as_ref()
        .map(|p| sql.param(p.as_bytes().to_vec(), Type::BYTEA));
    if viewer.is_admin {
        // Admins see every project's images; community ones only when asked for.
        let part = match (query.visibility, &project) {
            (VisibilityScope::Default, Some(p)) => {
                format!("(i.visibility <> 'community' OR i.owner = {p})")
            }
            (VisibilityScope::Default, None) => "i.visibility <> 'community'".into(),
            (VisibilityScope::All, _) => "TRUE".into(),
            (VisibilityScope::Only(v), _) => visibility(v),
        };
        return vec![part];
    }
    let mut parts = Vec::new();
    // Not the viewer's: what the parts after the first add to their visibility.
    let others = match &project {
        Some(p) => {
            parts.push(match query.visibility {
                VisibilityScope::Only(v) => format!("i.owner = {p} AND {}", visibility(v)),
                VisibilityScope::Default | VisibilityScope::All => format!("i.owner = {p}"),
            });
            format!(" AND (i.owner IS NULL OR i.owner <> {p})")
        }
        None => String::new(),
    };
    let open: &[Visibility] = match query.visibility {
        VisibilityScope::Default => &[Visibility::Public],
        VisibilityScope::All => &[Visibility::Public, Visibility::Community],
        VisibilityScope::Only(v @ (Visibility::Public | Visibility::Community)) => &[v],
        VisibilityScope::Only(Visibility::Private | Visibility::Shared) => &[],
    };
    for &v in open {
        parts.push(format!("{}{others}", visibility(v)));
    }
    let shared = matches!(
        query.visibility,
        VisibilityScope::Default | VisibilityScope::All | VisibilityScope::Only(Visibility::Shared)
    );
    if let (true, Some(p)) = (shared, &project) {
        let status = match query.member_status {
            MemberStatusFilter::All => String::new(),
            MemberStatusFilter::Accepted => {
                format!(" AND m.status = '{}'", MemberStatus::Accepted.as_str())
            }
            MemberStatusFilter::Only(s) => format!(" AND m.status = '{}'", s.as_str()),
        };
        parts.push(format!(
            "{}{others} AND i.id IN (SELECT m.image_id FROM image_members m \
             WHERE m.member = {p}{status})",
            visibility(Visibility::Shared)
        ));
    }
    parts
}
