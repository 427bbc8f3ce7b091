//! Glance's JSON-patch dialect for images (`application/openstack-images-v2.1-json-patch`):
//! a list of `add`, `replace` and `remove` operations on top-level attributes.

use glass_registry::Image;
use serde_json::Value;

use crate::Error;
use crate::auth::identity::Identity;
use crate::properties;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Add(Value),
    Replace(Value),
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The attribute the change targets (the path's first and only segment, unescaped).
    pub attribute: String,
    pub op: Op,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

/// Unescapes one JSON-pointer segment (`~1` is `/`, `~0` is `~`).
fn unescape(segment: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(segment.len());
    let mut chars = segment.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => {
                    return Err(bad(format!(
                        "Pointer `/{segment}` contains \"~\" not part of a recognized escape sequence."
                    )));
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn attribute(path: &str) -> Result<String, Error> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(bad(format!("Pointer `{path}` does not start with \"/\".")));
    };
    if rest.contains("//") {
        return Err(bad(format!("Pointer `{path}` contains adjacent \"/\".")));
    }
    if rest.ends_with('/') {
        return Err(bad(format!("Pointer `{path}` end with \"/\".")));
    }
    if rest.is_empty() || rest.contains('/') {
        return Err(bad(format!(
            "Invalid JSON pointer for this resource: '{path}'"
        )));
    }
    unescape(rest)
}

/// Which JSON-patch dialect a request speaks, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `application/openstack-images-v2.1-json-patch`: `{"op": "add", "path": "/x", "value"}`.
    V21,
    /// `application/openstack-images-v2.0-json-patch`: `{"add": "/x", "value"}`.
    V20,
}

impl Dialect {
    pub fn from_media_type(media_type: &str) -> Option<Dialect> {
        match media_type {
            "application/openstack-images-v2.1-json-patch" => Some(Dialect::V21),
            "application/openstack-images-v2.0-json-patch" => Some(Dialect::V20),
            _ => None,
        }
    }
}

const OPS: [&str; 3] = ["add", "remove", "replace"];

/// The operation name and path of one change, in either dialect.
fn op_and_path(
    fields: &serde_json::Map<String, Value>,
    dialect: Dialect,
) -> Result<(&str, &str), Error> {
    match dialect {
        Dialect::V21 => {
            let op = fields.get("op").and_then(Value::as_str).ok_or_else(|| {
                bad("Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.")
            })?;
            if !OPS.contains(&op) {
                return Err(bad(format!(
                    "Invalid operation: `{op}`. It must be one of the following: add, remove, replace."
                )));
            }
            let path = fields
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Unable to find 'path' in JSON Schema change"))?;
            Ok((op, path))
        }
        Dialect::V20 => {
            let mut found = OPS
                .iter()
                .filter_map(|op| fields.get(*op).map(|path| (*op, path)));
            let (op, path) = found.next().ok_or_else(|| {
                bad("Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".")
            })?;
            if found.next().is_some() {
                return Err(bad(
                    "Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".",
                ));
            }
            let path = path
                .as_str()
                .ok_or_else(|| bad("Pointers must be strings."))?;
            Ok((op, path))
        }
    }
}

/// Parses a patch document; read-only and reserved attributes are refused here (403), before
/// anything is applied.
pub fn parse(doc: &Value, dialect: Dialect) -> Result<Vec<Change>, Error> {
    let Value::Array(items) = doc else {
        return Err(bad(
            "Request body must be a JSON array of operation objects.",
        ));
    };
    let mut changes = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(fields) = item else {
            return Err(bad("Operations must be JSON objects."));
        };
        let (op_name, path) = op_and_path(fields, dialect)?;
        let attribute = attribute(path)?;
        let value = || {
            fields.get("value").cloned().ok_or_else(|| {
                bad(format!(
                    "Operation \"{op_name}\" requires a member named \"value\"."
                ))
            })
        };
        let op = match op_name {
            "add" => Op::Add(value()?),
            "replace" => Op::Replace(value()?),
            _ => Op::Remove,
        };
        properties::check_writable(&attribute)?;
        changes.push(Change { attribute, op });
    }
    Ok(changes)
}

/// Applies one change to `image`.
pub fn apply(image: &mut Image, change: &Change, caller: &Identity) -> Result<(), Error> {
    let name = change.attribute.as_str();
    let core = properties::is_core(name);
    match &change.op {
        Op::Add(v) => properties::set(image, name, v, caller),
        Op::Replace(v) => {
            if !core && !image.properties.contains_key(name) {
                return Err(Error::Conflict(format!("Property {name} does not exist.")));
            }
            properties::set(image, name, v, caller)
        }
        Op::Remove => {
            if core {
                return Err(Error::Forbidden(format!(
                    "Property {name} may not be removed."
                )));
            }
            if image.properties.remove(name).is_none() {
                return Err(Error::Conflict(format!("Property {name} does not exist.")));
            }
            Ok(())
        }
    }
}
