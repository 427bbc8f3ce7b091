//! Checks of metadata definition request bodies against the shapes Glance's schemas give
//! them, with messages in Glance's form ("Provided object does not match schema 'x': ..."),
//! and the normalization Glance applies to a property definition (`default` kept as text).
//! Also used by the definitions file loader, so files and the API accept the same documents.

use serde_json::{Map, Value};

use glass_images::Error;

/// Property types a definition may declare.
pub const PROPERTY_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Keys a property definition may carry.
const PROPERTY_KEYS: [&str; 20] = [
    "name",
    "title",
    "type",
    "description",
    "operators",
    "required",
    "minimum",
    "maximum",
    "maxLength",
    "minLength",
    "pattern",
    "enum",
    "readonly",
    "default",
    "items",
    "maxItems",
    "minItems",
    "uniqueItems",
    "additionalItems",
    "confidential",
];

/// Validates one body against the named schema.
pub struct Checker {
    schema: &'static str,
}

impl Checker {
    pub fn new(schema: &'static str) -> Self {
        Checker { schema }
    }

    pub fn error(&self, detail: impl std::fmt::Display, at: &str) -> Error {
        let place = if at.is_empty() {
            String::new()
        } else {
            format!(" (at '{at}')")
        };
        Error::BadRequest(format!(
            "Provided object does not match schema '{}': {detail}{place}",
            self.schema
        ))
    }

    /// Refuses keys outside `allowed`.
    pub fn only(&self, map: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), Error> {
        match map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(extra) => Err(self.error(
                format!("Additional properties are not allowed ('{extra}' was unexpected)"),
                at,
            )),
            None => Ok(()),
        }
    }

    fn type_error(&self, value: &Value, want: &str, at: &str) -> Error {
        self.error(format!("{value} is not of type '{want}'"), at)
    }

    /// An optional string no longer than `max` characters.
    pub fn string(
        &self,
        map: &Map<String, Value>,
        key: &str,
        max: Option<usize>,
        at: &str,
    ) -> Result<Option<String>, Error> {
        let here = join(at, key);
        match map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                if max.is_some_and(|m| s.chars().count() > m) {
                    return Err(self.error(format!("'{s}' is too long"), &here));
                }
                Ok(Some(s.clone()))
            }
            Some(other) => Err(self.type_error(other, "string", &here)),
        }
    }

    /// A string that must be present.
    pub fn required_string(
        &self,
        map: &Map<String, Value>,
        key: &str,
        max: Option<usize>,
        at: &str,
    ) -> Result<String, Error> {
        self.string(map, key, max, at)?
            .ok_or_else(|| self.error(format!("'{key}' is a required property"), at))
    }

    pub fn boolean(
        &self,
        map: &Map<String, Value>,
        key: &str,
        at: &str,
    ) -> Result<Option<bool>, Error> {
        match map.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.type_error(other, "boolean", &join(at, key))),
        }
    }

    /// An array of distinct strings (at least `min_items` of them).
    pub fn string_array(
        &self,
        map: &Map<String, Value>,
        key: &str,
        min_items: usize,
        at: &str,
    ) -> Result<Option<Vec<String>>, Error> {
        let here = join(at, key);
        let Some(value) = map.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(self.type_error(value, "array", &here));
        };
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            let Value::String(s) = item else {
                return Err(self.type_error(item, "string", &here));
            };
            if out.contains(s) {
                return Err(self.error(format!("{value} has non-unique elements"), &here));
            }
            out.push(s.clone());
        }
        if out.len() < min_items {
            return Err(self.error(format!("{value} is too short"), &here));
        }
        Ok(Some(out))
    }

    /// An array of objects (each checked by the caller).
    pub fn objects<'a>(
        &self,
        map: &'a Map<String, Value>,
        key: &str,
        at: &str,
    ) -> Result<Vec<&'a Map<String, Value>>, Error> {
        let here = join(at, key);
        match map.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_object()
                        .ok_or_else(|| self.type_error(i, "object", &here))
                })
                .collect(),
            Some(other) => Err(self.type_error(other, "array", &here)),
        }
    }

    /// A map of property name to definition, each checked and normalized.
    pub fn properties(
        &self,
        map: &Map<String, Value>,
        key: &str,
        at: &str,
    ) -> Result<Map<String, Value>, Error> {
        let here = join(at, key);
        match map.get(key) {
            None => Ok(Map::new()),
            Some(Value::Object(props)) => {
                let mut out = Map::new();
                for (name, def) in props {
                    let def = def
                        .as_object()
                        .ok_or_else(|| self.type_error(def, "object", &join(&here, name)))?;
                    let mut schema = self.property(def, &join(&here, name))?;
                    schema.remove("name");
                    out.insert(name.clone(), Value::Object(schema));
                }
                Ok(out)
            }
            Some(other) => Err(self.type_error(other, "object", &here)),
        }
    }

    /// One property definition, checked and normalized (`name` kept if given).
    pub fn property(
        &self,
        def: &Map<String, Value>,
        at: &str,
    ) -> Result<Map<String, Value>, Error> {
        self.only(def, &PROPERTY_KEYS, at)?;
        self.string(def, "name", Some(80), at)?;
        self.required_string(def, "title", None, at)?;
        let kind = self.required_string(def, "type", None, at)?;
        if !PROPERTY_TYPES.contains(&kind.as_str()) {
            return Err(self.error(
                format!("'{kind}' is not one of {PROPERTY_TYPES:?}"),
                &join(at, "type"),
            ));
        }
        self.string(def, "description", None, at)?;
        self.string(def, "pattern", None, at)?;
        self.string_array(def, "operators", 0, at)?;
        self.string_array(def, "required", 0, at)?;
        for key in ["minimum", "maximum"] {
            if let Some(v) = def.get(key).filter(|v| !v.is_number()) {
                return Err(self.type_error(v, "number", &join(at, key)));
            }
        }
        for key in ["maxLength", "minLength", "maxItems", "minItems"] {
            if let Some(v) = def.get(key).filter(|v| v.as_u64().is_none()) {
                return Err(if v.is_i64() {
                    self.error(format!("{v} is less than the minimum of 0"), &join(at, key))
                } else {
                    self.type_error(v, "integer", &join(at, key))
                });
            }
        }
        for key in ["readonly", "uniqueItems", "additionalItems", "confidential"] {
            self.boolean(def, key, at)?;
        }
        if let Some(v) = def.get("enum").filter(|v| !v.is_array()) {
            return Err(self.type_error(v, "array", &join(at, "enum")));
        }
        if let Some(items) = def.get("items") {
            let here = join(at, "items");
            let items = items
                .as_object()
                .ok_or_else(|| self.type_error(items, "object", &here))?;
            self.only(items, &["type", "enum"], &here)?;
            if let Some(kind) = self.string(items, "type", None, &here)?
                && !PROPERTY_TYPES.contains(&kind.as_str())
            {
                return Err(self.error(
                    format!("'{kind}' is not one of {PROPERTY_TYPES:?}"),
                    &join(&here, "type"),
                ));
            }
            if let Some(v) = items.get("enum").filter(|v| !v.is_array()) {
                return Err(self.type_error(v, "array", &join(&here, "enum")));
            }
        }
        let mut out = def.clone();
        // Glance keeps a property's default as text.
        if let Some(default) = out.get_mut("default")
            && !default.is_string()
            && !default.is_null()
        {
            *default = Value::String(default.to_string());
        }
        Ok(out)
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}
