//! Loading images on behalf of a caller: what they may see, and compare-and-swap changes
//! that re-check permissions on the freshest copy.

use glass_registry::{Image, RegistryError, now};
use uuid::Uuid;

use crate::Error;
use crate::Service;
use crate::auth::identity::Identity;
use crate::auth::policy::{self, Target};

/// Parses an image id from a path; anything that is not a UUID names no image.
pub fn parse_image_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::image_not_found(raw))
}

/// The image if the caller may see it; 404 otherwise, as Glance hides what you cannot see.
pub async fn visible_image(state: &Service, who: &Identity, id: Uuid) -> Result<Image, Error> {
    let image = state
        .registry
        .get_image(id)
        .await?
        .ok_or_else(|| Error::image_not_found(id))?;
    if who.is_admin() || who.viewer().owns(&image) {
        return allowed_to_get(state, who, image);
    }
    let membership = match &who.project {
        Some(project) => state
            .registry
            .get_member(id, project)
            .await?
            .map(|m| m.status),
        None => None,
    };
    if who.viewer().can_see(&image, membership) {
        allowed_to_get(state, who, image)
    } else {
        Err(Error::image_not_found(id))
    }
}

/// What the policy rules about an image are checked against: its owner, its visibility,
/// and the caller's project as `member_id` when it sees a shared image it does not own
/// (the registry only shows such an image to a member project, as Glance's does).
pub fn image_target(who: &Identity, image: &Image) -> Target {
    let owner = image.owner.as_deref();
    let visibility = image.visibility.as_str();
    let member = match (&who.project, owner) {
        (Some(p), o) if visibility == "shared" && o != Some(p.as_str()) => Some(p.as_str()),
        _ => None,
    };
    Target::new()
        .with("project_id", owner)
        .with("owner", owner)
        .with("visibility", Some(visibility))
        .with("member_id", member)
}

/// Policy rule `rule` on an image the caller can see: 403 if refused (or 404 when the
/// caller may not even see it, as Glance answers).
pub fn check_image_rule(
    state: &Service,
    who: &Identity,
    image: &Image,
    rule: &str,
) -> Result<(), Error> {
    let target = image_target(who, image);
    if state.policy.allows(rule, who, &target) {
        Ok(())
    } else if state.policy.allows("get_image", who, &target) {
        Err(policy::forbidden(rule))
    } else {
        Err(Error::image_not_found(image.id))
    }
}

/// The `get_image` rule on an image the registry lets the caller see (a reader role at
/// least): 404 when refused.
fn allowed_to_get(state: &Service, who: &Identity, image: Image) -> Result<Image, Error> {
    if state
        .policy
        .allows("get_image", who, &image_target(who, &image))
    {
        Ok(image)
    } else {
        Err(Error::image_not_found(image.id))
    }
}

/// Applies `change` to the current image and stores it with compare-and-swap, retrying when
/// another request got there first. `change` sees the freshest copy each time.
pub async fn modify_image<F>(
    state: &Service,
    who: &Identity,
    id: Uuid,
    mut change: F,
) -> Result<Image, Error>
where
    F: FnMut(&mut Image) -> Result<(), Error>,
{
    for _ in 0..32 {
        let current = visible_image(state, who, id).await?;
        let mut next = current.clone();
        change(&mut next)?;
        if next == current {
            return Ok(current);
        }
        next.updated_at = now();
        match state.registry.update_image(next).await {
            Ok(stored) => return Ok(stored),
            Err(RegistryError::Stale(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict(format!(
        "Image {id} is being changed by too many requests at once; try again."
    )))
}
