//! Glass's built-in metadata validator (`glass:metadef@0.1.0`, built in as
//! `validator-metadef`): every image attribute a create or PATCH sets is checked against the
//! JSON-schema rules of the property definitions that govern it, in the namespaces the host
//! passes (those associated with `OS::Glance::Image`; an attribute named `prefix + name` is
//! governed by the definition `name` of a namespace associated with that prefix).
//!
//! Rules: `type` (string, integer, number, boolean, array), `enum`, `minimum`/`maximum`,
//! `pattern` (unanchored, as JSON schema), `minLength`/`maxLength`, `minItems`/`maxItems` and
//! `items` (each element of an array against the item schema). Glance stores extra
//! properties as strings, so a value is read as its definition's type: `"4"` is the integer
//! 4, `"True"` a boolean, `"acpi,pae"` the array `["acpi", "pae"]` (comma-separated, as
//! Horizon and the CLI write multi-valued properties). Attributes the change does not set are
//! not checked, so an image created before a namespace was loaded can still be edited.
//! Definitions whose schema cannot be read, and patterns that do not compile, are skipped.

/// Bindings generated from `wit/glass-metadef@0.1.0`; the export glue is `unsafe` code of
/// wit-bindgen's making.
#[allow(unsafe_code)]
mod bindings {
    use super::Metadef;

    wit_bindgen::generate!({
        path: "../../wit/glass-metadef@0.1.0",
        world: "glass:metadef/validator",
    });

    export!(Metadef);
}

use bindings::exports::glass::metadef::validate::{
    Change, ChangeOp, Guest, Namespace, Property, ValidatorInfo, Violation,
};
use serde_json::{Map, Number, Value};

struct Metadef;

impl Guest for Metadef {
    fn info() -> ValidatorInfo {
        ValidatorInfo {
            name: "validator-metadef".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn validate(
        image: Vec<Property>,
        change: Vec<Change>,
        namespaces: Vec<Namespace>,
    ) -> Result<(), Vec<Violation>> {
        let mut violations = Vec::new();
        let mut checked: Vec<&str> = Vec::new();
        for c in &change {
            if matches!(c.op, ChangeOp::Remove) || checked.contains(&c.name.as_str()) {
                continue;
            }
            checked.push(&c.name);
            // The value as the image will hold it (a later operation may have replaced it).
            let Some(property) = image.iter().find(|p| p.name == c.name) else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(&property.value) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            for ns in &namespaces {
                let prefix = ns.prefix.as_deref().unwrap_or("");
                let Some(short) = c.name.strip_prefix(prefix) else {
                    continue;
                };
                let Some(def) = ns.properties.iter().find(|d| d.name == short) else {
                    continue;
                };
                let Ok(Value::Object(schema)) = serde_json::from_str::<Value>(&def.schema) else {
                    continue;
                };
                for (rule, message) in rules(&value, &schema) {
                    violations.push(Violation {
                        property: c.name.clone(),
                        rule: rule.into(),
                        message: format!("{message} (namespace {})", ns.name),
                    });
                }
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }
}

/// How a value is shown in messages: strings quoted, the rest as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// The value read as the JSON-schema `ty`, or why it cannot be.
fn coerce(value: &Value, ty: &str) -> Result<Value, String> {
    let fail = || format!("{} is not of type '{ty}'", show(value));
    match (ty, value) {
        ("string", Value::String(_)) => Ok(value.clone()),
        ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(value.clone()),
        ("integer", Value::String(s)) => {
            s.trim().parse::<i64>().map(Value::from).map_err(|_| fail())
        }
        ("number", Value::Number(_)) => Ok(value.clone()),
        ("number", Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(fail),
        ("boolean", Value::Bool(_)) => Ok(value.clone()),
        ("boolean", Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(fail()),
        },
        ("array", Value::Array(_)) => Ok(value.clone()),
        ("array", Value::String(s)) => Ok(Value::Array(
            s.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.into()))
                .collect(),
        )),
        ("object", Value::Object(_)) | ("null", Value::Null) => Ok(value.clone()),
        ("string" | "integer" | "number" | "boolean" | "array" | "object" | "null", _) => {
            Err(fail())
        }
        // A type this validator does not know: nothing to check against.
        _ => Ok(value.clone()),
    }
}

/// The value read as the schema's `type` (a name or a list of names; none: as is).
fn typed(value: &Value, schema: &Map<String, Value>) -> Result<Value, String> {
    match schema.get("type") {
        Some(Value::String(ty)) => coerce(value, ty),
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            names
                .iter()
                .find_map(|ty| coerce(value, ty).ok())
                .ok_or_else(|| format!("{} is not of type {}", show(value), names.join(" or ")))
        }
        _ => Ok(value.clone()),
    }
}

/// Equal as JSON, numbers compared by value (`4` and `4.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The rules `value` breaks under `schema`, as (rule, message).
fn rules(value: &Value, schema: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let value = match typed(value, schema) {
        Ok(v) => v,
        Err(message) => {
            out.push(("type", message));
            return out;
        }
    };
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.iter().any(|a| same(a, &value))
    {
        let options: Vec<String> = allowed.iter().map(show).collect();
        out.push((
            "enum",
            format!("{} is not one of: {}", show(&value), options.join(", ")),
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            out.push((
                "minimum",
                format!(
                    "{} is less than the minimum of {}",
                    show(&value),
                    schema["minimum"]
                ),
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            out.push((
                "maximum",
                format!(
                    "{} is greater than the maximum of {}",
                    show(&value),
                    schema["maximum"]
                ),
            ));
        }
    }
    if let Value::String(s) = &value {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            out.push((
                "minLength",
                format!("{} is shorter than {min} characters", show(&value)),
            ));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            out.push((
                "maxLength",
                format!("{} is longer than {max} characters", show(&value)),
            ));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Ok(re) = regex_lite::Regex::new(pattern)
            && !re.is_match(s)
        {
            out.push((
                "pattern",
                format!("{} does not match the pattern '{pattern}'", show(&value)),
            ));
        }
    }
    if let Value::Array(items) = &value {
        let count = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && count < min
        {
            out.push(("minItems", format!("{count} items, fewer than {min}")));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && count > max
        {
            out.push(("maxItems", format!("{count} items, more than {max}")));
        }
        if let Some(Value::Object(item_schema)) = schema.get("items") {
            for item in items {
                for (_, message) in rules(item, item_schema) {
                    out.push(("items", format!("item {message}")));
                }
            }
        }
    }
    out
}
