//! The image attributes a client may write, and their validation against Glance's image
//! schema. Used by create (a JSON object) and by PATCH (one attribute at a time).

use glass_registry::{Image, ImageStatus, Visibility};
use serde_json::Value;

use crate::Error;
use crate::auth::identity::Identity;

pub const DISK_FORMATS: [&str; 11] = [
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
pub const CONTAINER_FORMATS: [&str; 8] = [
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];

/// Attributes the server sets; a client writing one gets 403.
pub const READ_ONLY: [&str; 14] = [
    "id",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "size",
    "virtual_size",
    "status",
    "direct_url",
    "self",
    "file",
    "schema",
    "stores",
];

/// Attributes nobody may write at all.
pub const RESERVED: [&str; 3] = ["deleted", "deleted_at", "location"];

/// Longest extra-property name, in characters (Glance refuses longer names on create; its
/// `image_properties.name` column is `String(255)`).
pub const MAX_PROPERTY_NAME: usize = 255;
/// Longest extra-property value, in bytes: Glance's schema only says "string", its
/// `image_properties.value` column is `Text`, which MySQL (Glance's production database)
/// caps at 65 535 bytes.
pub const MAX_PROPERTY_VALUE: usize = 65_535;
/// Longest tag, in characters (the image schema's `tags.items.maxLength`).
pub const MAX_TAG: usize = 255;

/// Extra properties the image schema types more narrowly than "string".
const UUID_PROPERTIES: [&str; 2] = ["kernel_id", "ramdisk_id"];

fn schema_error(reason: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!(
        "Provided object does not match schema 'image': {reason}"
    ))
}

fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn enum_repr(options: &[&str]) -> String {
    let items: Vec<String> = std::iter::once("None".to_string())
        .chain(options.iter().map(|o| format!("'{o}'")))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Refuses attributes no client may write (403), as Glance does before schema checks.
pub fn check_writable(name: &str) -> Result<(), Error> {
    if READ_ONLY.contains(&name) {
        return Err(Error::Forbidden(format!(
            "Attribute '{name}' is read-only."
        )));
    }
    if RESERVED.contains(&name) || name.starts_with("os_glance") {
        return Err(Error::Forbidden(format!("Attribute '{name}' is reserved.")));
    }
    Ok(())
}

fn optional_text(name: &str, v: &Value, max: usize) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= max => Ok(Some(s.clone())),
        Value::String(s) => Err(schema_error(format!("'{s}' is too long"))),
        other => Err(schema_error(format!(
            "{} is not of type 'null', 'string' (attribute '{name}')",
            python_repr(other)
        ))),
    }
}

fn choice(v: &Value, options: &[&str]) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if options.contains(&s.as_str()) => Ok(Some(s.clone())),
        other => Err(schema_error(format!(
            "{} is not one of {}",
            python_repr(other),
            enum_repr(options)
        ))),
    }
}

fn boolean(name: &str, v: &Value) -> Result<bool, Error> {
    v.as_bool().ok_or_else(|| {
        schema_error(format!(
            "{} is not of type 'boolean' (attribute '{name}')",
            python_repr(v)
        ))
    })
}

fn non_negative(name: &str, v: &Value) -> Result<u64, Error> {
    match v.as_i64() {
        Some(n) if n >= 0 => Ok(n as u64),
        Some(n) => Err(Error::BadRequest(format!(
            "Invalid value '{n}' for parameter '{name}': Cannot be a negative value"
        ))),
        None => Err(schema_error(format!(
            "{} is not of type 'integer' (attribute '{name}')",
            python_repr(v)
        ))),
    }
}

pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

/// Parses a tag list; tags are strings of at most 255 characters.
pub fn tags(v: &Value) -> Result<Vec<String>, Error> {
    let Value::Array(items) = v else {
        return Err(schema_error(format!(
            "{} is not of type 'array' (attribute 'tags')",
            python_repr(v)
        )));
    };
    items
        .iter()
        .map(|t| match t {
            Value::String(s) => tag(s).map(|()| s.clone()),
            other => Err(schema_error(format!(
                "{} is not of type 'string' (attribute 'tags')",
                python_repr(other)
            ))),
        })
        .collect()
}

pub fn tag(s: &str) -> Result<(), Error> {
    if s.chars().count() > MAX_TAG {
        return Err(schema_error(format!("'{s}' is too long")));
    }
    Ok(())
}

/// Refuses an extra-property name longer than Glance allows, with Glance's message.
pub fn property_name(name: &str) -> Result<(), Error> {
    if name.chars().count() > MAX_PROPERTY_NAME {
        return Err(Error::BadRequest(format!(
            "Custom property should not be greater than {MAX_PROPERTY_NAME} characters."
        )));
    }
    Ok(())
}

/// Sets one writable attribute (core or extra) on `image`, validating the value. `caller`
/// decides who may publicize an image or give it away.
pub fn set(image: &mut Image, name: &str, v: &Value, caller: &Identity) -> Result<(), Error> {
    check_writable(name)?;
    match name {
        "name" => image.name = optional_text(name, v, 255)?,
        "disk_format" | "container_format" => {
            if image.status != ImageStatus::Queued {
                return Err(Error::Forbidden(format!(
                    "Attribute {name} can be only replaced for a queued image."
                )));
            }
            if name == "disk_format" {
                image.disk_format = choice(v, &DISK_FORMATS)?;
            } else {
                image.container_format = choice(v, &CONTAINER_FORMATS)?;
            }
        }
        "visibility" => {
            let parsed = v.as_str().and_then(Visibility::parse).ok_or_else(|| {
                schema_error(format!(
                    "{} is not one of ['community', 'public', 'private', 'shared']",
                    python_repr(v)
                ))
            })?;
            image.visibility = parsed;
        }
        "protected" => image.protected = boolean(name, v)?,
        "os_hidden" => image.os_hidden = boolean(name, v)?,
        "min_ram" => image.min_ram = non_negative(name, v)?,
        "min_disk" => image.min_disk = non_negative(name, v)?,
        "owner" => {
            let owner = optional_text(name, v, 255)?;
            if !caller.is_admin() && owner != image.owner {
                return Err(Error::Forbidden(
                    "Owner can't be updated by non admin.".into(),
                ));
            }
            image.owner = owner;
        }
        "tags" => image.tags = tags(v)?.into_iter().collect(),
        "locations" => {
            return Err(Error::Forbidden(
                "It's not allowed to update locations if locations are invisible.".into(),
            ));
        }
        extra => {
            let Value::String(s) = v else {
                return Err(schema_error(format!(
                    "{} is not of type 'string' (attribute '{extra}')",
                    python_repr(v)
                )));
            };
            if UUID_PROPERTIES.contains(&extra) && !is_uuid(s) {
                return Err(schema_error(format!(
                    "'{s}' does not match the UUID pattern (attribute '{extra}')"
                )));
            }
            property_name(extra)?;
            if s.len() > MAX_PROPERTY_VALUE {
                return Err(schema_error(format!(
                    "the value of '{extra}' is too long ({} bytes, at most {MAX_PROPERTY_VALUE})",
                    s.len()
                )));
            }
            image.properties.insert(extra.to_string(), s.clone());
        }
    }
    Ok(())
}

/// True for attributes that belong to the image itself rather than its extra properties.
pub fn is_core(name: &str) -> bool {
    matches!(
        name,
        "id" | "name"
            | "disk_format"
            | "container_format"
            | "visibility"
            | "protected"
            | "os_hidden"
            | "min_ram"
            | "min_disk"
            | "owner"
            | "tags"
            | "locations"
    ) || READ_ONLY.contains(&name)
}
