//! `/v2/images/{id}/members[/{member_id}]`: sharing an image with other projects. The owner
//! adds and removes members; a member accepts or rejects; only `shared` images have members.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use glass_registry::{Image, Member, MemberStatus, Visibility, now};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::json_body;
use crate::state::AppState;
use glass_images::Error;
use glass_images::Identity;
use glass_images::access::{check_image_rule, parse_image_id, visible_image};
use glass_images::view::format_time;

fn member_json(m: &Member) -> Value {
    json!({
        "member_id": m.member_id,
        "image_id": m.image_id.to_string(),
        "status": m.status.as_str(),
        "created_at": format_time(&m.created_at),
        "updated_at": format_time(&m.updated_at),
        "schema": "/v2/schemas/member",
    })
}

fn is_owner_or_admin(who: &Identity, image: &Image) -> bool {
    who.is_admin() || who.viewer().owns(image)
}

/// Only `shared` images have members; `refusal` is Glance's error for the action.
fn require_shared(image: &Image, refusal: impl FnOnce() -> Error) -> Result<(), Error> {
    if image.visibility == Visibility::Shared {
        Ok(())
    } else {
        Err(refusal())
    }
}

fn forbidden(msg: String) -> Error {
    Error::Forbidden(msg)
}

/// Longest member (project) id, in characters: Glance's `image_members.member` column is
/// `String(255)`.
pub const MAX_MEMBER_ID: usize = 255;

/// The one field of a member request body, with Glance's messages for each way it is wrong.
fn body_field(body: &Bytes, field: &str) -> Result<String, Error> {
    let bad = |m: &str| Error::BadRequest(m.to_string());
    if body.is_empty() {
        return Err(bad("Body expected in request."));
    }
    let (missing, empty, shape) = if field == "member" {
        (
            "Member to be added not specified",
            "Member can't be empty",
            "Expected a member in the form: {\"member\": \"image_id\"}",
        )
    } else {
        (
            "Status not specified",
            "Status not specified",
            "Expected a status in the form: {\"status\": \"status\"}",
        )
    };
    let Value::Object(map) = json_body(body)? else {
        return Err(bad(shape));
    };
    match map.get(field) {
        None => Err(bad(missing)),
        Some(Value::String(s)) if s.is_empty() => Err(bad(empty)),
        Some(Value::String(s)) if field == "member" && s.chars().count() > MAX_MEMBER_ID => {
            Err(Error::BadRequest(format!(
                "Member id should not be greater than {MAX_MEMBER_ID} characters."
            )))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        // A number or an object is no project id (Glance would store its Python repr).
        Some(_) => Err(bad(shape)),
    }
}

pub async fn list(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_image_id(&id)?;
    let image = visible_image(&state, &who, id).await?;
    require_shared(&image, || {
        forbidden(format!(
            "Not allowed to list members for image {id}: Only shared images have members."
        ))
    })?;
    check_image_rule(&state, &who, &image, "get_members")?;
    let members = state.registry.list_members(id).await?;
    let members: Vec<Value> = members
        .iter()
        .filter(|m| is_owner_or_admin(&who, &image) || Some(&m.member_id) == who.project.as_ref())
        .map(member_json)
        .collect();
    Ok(Json(
        json!({"members": members, "schema": "/v2/schemas/members"}),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    who: Identity,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_image_id(&id)?;
    let member_id = body_field(&body, "member")?;
    let image = visible_image(&state, &who, id).await?;
    check_image_rule(&state, &who, &image, "add_member")?;
    require_shared(&image, || {
        forbidden(format!("Not allowed to create members for image {id}."))
    })?;
    let count = state.registry.list_members(id).await?.len();
    if count >= state.config.image_member_quota {
        return Err(Error::PayloadTooLarge(format!(
            "Image member limit exceeded for image {id}: The limit has been exceeded on the number of allowed image members for this image. Attempted: {}, Maximum: {}:",
            count + 1,
            state.config.image_member_quota
        )).into());
    }
    let t = now();
    let member = state
        .registry
        .add_member(Member {
            image_id: id,
            member_id,
            status: MemberStatus::Pending,
            created_at: t,
            updated_at: t,
        })
        .await?;
    Ok(Json(member_json(&member)))
}

/// The membership if the caller may see it: the image's owner, an admin, or the member.
async fn visible_member(
    state: &AppState,
    who: &Identity,
    image: &Image,
    member_id: &str,
) -> Result<Member, Error> {
    let not_found =
        || Error::NotFound(format!("{member_id} is not a member of image {}", image.id));
    if !is_owner_or_admin(who, image) && who.project.as_deref() != Some(member_id) {
        return Err(not_found());
    }
    state
        .registry
        .get_member(image.id, member_id)
        .await?
        .ok_or_else(not_found)
}

pub async fn show(
    State(state): State<AppState>,
    who: Identity,
    Path((id, member_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_image_id(&id)?;
    let image = visible_image(&state, &who, id).await?;
    require_shared(&image, || {
        Error::NotFound("Only shared images have members.".into())
    })?;
    let member = visible_member(&state, &who, &image, &member_id).await?;
    Ok(Json(member_json(&member)))
}

pub async fn update(
    State(state): State<AppState>,
    who: Identity,
    Path((id, member_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_image_id(&id)?;
    let status = body_field(&body, "status")?;
    let status = MemberStatus::parse(&status).ok_or_else(|| {
        Error::BadRequest(
            "Incorrect request: Status must be \"pending\", \"accepted\" or \"rejected\".".into(),
        )
    })?;
    let image = visible_image(&state, &who, id).await?;
    require_shared(&image, || {
        forbidden(format!("Not allowed to update members for image {id}."))
    })?;
    let mut member = visible_member(&state, &who, &image, &member_id).await?;
    check_image_rule(&state, &who, &image, "modify_member")?;
    member.status = status;
    member.updated_at = now();
    let member = state.registry.update_member(member).await?;
    Ok(Json(member_json(&member)))
}

pub async fn delete(
    State(state): State<AppState>,
    who: Identity,
    Path((id, member_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = parse_image_id(&id)?;
    let image = visible_image(&state, &who, id).await?;
    require_shared(&image, || {
        forbidden(format!("Not allowed to delete members for image {id}."))
    })?;
    visible_member(&state, &who, &image, &member_id).await?;
    check_image_rule(&state, &who, &image, "delete_member")?;
    state.registry.delete_member(id, &member_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
