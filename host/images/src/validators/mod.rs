//! Metadata validators on the image write path: the configured `[[validators]]` (each a
//! `glass:metadef@0.1.0` component, [`WasmValidator`]), called in order on image create and
//! PATCH, before anything is written.
//!
//! Each is given the image as it would be after the request (every attribute as the API
//! shows it), the request's changes, and the metadata definition namespaces associated with
//! `OS::Glance::Image` that the image's owner can see, each with the prefix of that
//! association. Its verdict:
//! - accept: the next validator runs;
//! - violations, `mode = "enforce"`: the request is refused with 400 naming each property,
//!   rule and validator (later validators are not called);
//! - violations, `mode = "warn"`: logged, counted (`glass_validator_results`), let through;
//! - a fault (trap, deadline, memory cap, no free slot), `on_failure = "closed"`: 503;
//!   `on_failure = "open"`: logged, counted, let through. A fault never harms the host: the
//!   call's instance is dropped and the next call gets a new one.
//!
//! A PATCH is validated against the image as read just before the change is applied; the
//! write that follows is a compare-and-swap that may land on a copy changed meanwhile (the
//! properties a request sets are validated whatever else changed).

pub mod set;

pub use set::{ValidatorEntry, ValidatorSet};

use std::sync::Arc;

use glass_registry::{Image, MetadefDefinition, MetadefVisibility};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::Error;
use crate::Service;
use crate::access::{check_image_rule, visible_image};
use crate::auth::identity::Identity;
use crate::config::{ValidatorFailure, ValidatorMode};
use crate::patch::{self, Change, Op};
use crate::view::image_body;
use glass_runtime::{
    ValidationInput, ValidatorChange, ValidatorChangeOp, ValidatorNamespace, ValidatorProperty,
    ValidatorPropertyDefinition, Violation,
};

/// The resource type whose namespaces apply to images.
pub const IMAGE_RESOURCE_TYPE: &str = "OS::Glance::Image";

/// Validates an image about to be created from the attributes of the request body.
pub async fn check_create(
    state: &Service,
    image: &Image,
    body: &Map<String, Value>,
) -> Result<(), Error> {
    if state.validators.entries().is_empty() {
        return Ok(());
    }
    let changes = body
        .iter()
        .filter(|(name, _)| name.as_str() != "id")
        .map(|(name, value)| ValidatorChange {
            op: ValidatorChangeOp::Add,
            name: name.clone(),
            value: Some(value.to_string()),
        })
        .collect();
    run(state, image, changes).await
}

/// Validates a PATCH: its changes applied to the image as it is now. A request that will
/// fail anyway (not the owner, a change that does not apply) is left to that error.
pub async fn check_patch(
    state: &Service,
    who: &Identity,
    id: Uuid,
    changes: &[Change],
) -> Result<(), Error> {
    if state.validators.entries().is_empty() {
        return Ok(());
    }
    let Ok(mut image) = visible_image(state, who, id).await else {
        return Ok(());
    };
    if check_image_rule(state, who, &image, "modify_image").is_err() {
        return Ok(());
    }
    for change in changes {
        if patch::apply(&mut image, change, who).is_err() {
            return Ok(());
        }
    }
    let changes = changes
        .iter()
        .map(|c| {
            let (op, value) = match &c.op {
                Op::Add(v) => (ValidatorChangeOp::Add, Some(v.to_string())),
                Op::Replace(v) => (ValidatorChangeOp::Replace, Some(v.to_string())),
                Op::Remove => (ValidatorChangeOp::Remove, None),
            };
            ValidatorChange {
                op,
                name: c.attribute.clone(),
                value,
            }
        })
        .collect();
    run(state, &image, changes).await
}

/// Runs the chain on `image` after `changes`.
async fn run(state: &Service, image: &Image, changes: Vec<ValidatorChange>) -> Result<(), Error> {
    let properties = match serde_json::to_value(image_body(image)) {
        Ok(Value::Object(fields)) => fields
            .into_iter()
            .map(|(name, value)| ValidatorProperty {
                name,
                value: value.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let input = Arc::new(ValidationInput {
        image: properties,
        changes,
        namespaces: image_namespaces(state, image.owner.as_deref()).await?,
    });
    for entry in state.validators.entries() {
        match entry.plugin.validate(input.clone()).await {
            Ok(Ok(())) => state.metrics.validator_result(&entry.id, "accepted"),
            Ok(Err(violations)) => {
                let text = describe(&entry.id, &violations);
                match entry.mode {
                    ValidatorMode::Enforce => {
                        state.metrics.validator_result(&entry.id, "refused");
                        tracing::info!(image = %image.id, validator = %entry.id, violations = %text,
                            "image refused by a validator");
                        return Err(Error::BadRequest(text));
                    }
                    ValidatorMode::Warn => {
                        state.metrics.validator_result(&entry.id, "warned");
                        tracing::warn!(image = %image.id, validator = %entry.id, violations = %text,
                            "image breaks a validator's rules (warn mode: let through)");
                    }
                }
            }
            Err(fault) => match entry.on_failure {
                ValidatorFailure::Closed => {
                    state.metrics.validator_result(&entry.id, "failed-closed");
                    tracing::warn!(image = %image.id, validator = %entry.id, error = %fault,
                        "validator failed; refusing the request (on_failure = closed)");
                    return Err(Error::Unavailable(format!(
                        "Image metadata validator {} failed; try again later.",
                        entry.id
                    )));
                }
                ValidatorFailure::Open => {
                    state.metrics.validator_result(&entry.id, "failed-open");
                    tracing::warn!(image = %image.id, validator = %entry.id, error = %fault,
                        "validator failed; letting the request through (on_failure = open)");
                }
            },
        }
    }
    Ok(())
}

/// The 400 message: every violation with its property, rule and validator.
fn describe(validator: &str, violations: &[Violation]) -> String {
    let each: Vec<String> = violations
        .iter()
        .map(|v| {
            format!(
                "Property '{}' violates rule '{}': {}",
                v.property, v.rule, v.message
            )
        })
        .collect();
    format!(
        "Image metadata refused by validator {validator}: {}",
        each.join("; ")
    )
}

/// The namespaces associated with `OS::Glance::Image` that `owner` can see (public ones,
/// unowned ones and its own, as the metadefs API decides), each with the association's prefix and its property definitions.
async fn image_namespaces(
    state: &Service,
    owner: Option<&str>,
) -> Result<Vec<ValidatorNamespace>, Error> {
    let mut out = Vec::new();
    for ns in state.registry.list_metadef_namespaces().await? {
        let visible = ns.visibility == MetadefVisibility::Public
            || ns.owner.is_none()
            || (owner.is_some() && ns.owner.as_deref() == owner);
        if !visible {
            continue;
        }
        let Some(def) = state.registry.get_metadef_definition(&ns.namespace).await? else {
            continue;
        };
        if let Some(namespace) = for_images(&def) {
            out.push(namespace);
        }
    }
    Ok(out)
}

/// `def` as a validator sees it, if it is associated with images.
fn for_images(def: &MetadefDefinition) -> Option<ValidatorNamespace> {
    let association = def
        .associations
        .iter()
        .find(|a| a.name == IMAGE_RESOURCE_TYPE)?;
    Some(ValidatorNamespace {
        name: def.namespace.namespace.clone(),
        prefix: association.prefix.clone().filter(|p| !p.is_empty()),
        properties: def
            .properties
            .iter()
            .map(|p| ValidatorPropertyDefinition {
                name: p.name.clone(),
                schema: Value::Object(p.schema.clone()).to_string(),
            })
            .collect(),
    })
}
