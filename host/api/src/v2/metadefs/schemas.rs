//! `/v2/schemas/metadefs/{name}`: the JSON schemas of metadata definition resources and
//! their collections, in the structure Glance serves (python-glanceclient validates its
//! requests against them).

use axum::Json;
use axum::extract::Path;
use serde_json::{Value, json};

use super::validate::PROPERTY_TYPES;
use crate::error::ApiError;
use glass_images::Error;

fn type_enum() -> Value {
    let mut types: Vec<Value> = PROPERTY_TYPES.iter().map(|t| json!(t)).collect();
    types.push(Value::Null);
    Value::Array(types)
}

fn times(what: &str) -> (Value, Value) {
    (
        json!({"type": "string", "readOnly": true, "format": "date-time",
               "description": format!("When the {what} was created")}),
        json!({"type": "string", "readOnly": true, "format": "date-time",
               "description": format!("When the {what} last changed")}),
    )
}

/// The attributes a property definition may have.
fn property_attributes() -> Value {
    json!({
        "name": {"type": "string", "maxLength": 80},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "operators": {"type": "array", "items": {"type": "string"}},
        "type": {"type": "string", "enum": type_enum()},
        "required": {"$ref": "#/definitions/stringArray"},
        "minimum": {"type": "number"},
        "maximum": {"type": "number"},
        "maxLength": {"$ref": "#/definitions/positiveInteger"},
        "minLength": {"$ref": "#/definitions/positiveIntegerDefault0"},
        "pattern": {"type": "string", "format": "regex"},
        "enum": {"type": "array"},
        "readonly": {"type": "boolean"},
        "default": {},
        "items": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": type_enum()},
                "enum": {"type": "array"},
            },
        },
        "maxItems": {"$ref": "#/definitions/positiveInteger"},
        "minItems": {"$ref": "#/definitions/positiveIntegerDefault0"},
        "uniqueItems": {"type": "boolean", "default": false},
        "additionalItems": {"type": "boolean"},
    })
}

fn definitions(with_property: bool, string_array_min: Option<u64>) -> Value {
    let mut string_array =
        json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true});
    if let Some(min) = string_array_min {
        string_array["minItems"] = json!(min);
    }
    let mut defs = json!({
        "positiveInteger": {"type": "integer", "minimum": 0},
        "positiveIntegerDefault0": {"allOf": [{"$ref": "#/definitions/positiveInteger"}, {"default": 0}]},
        "stringArray": string_array,
    });
    if with_property {
        defs["property"] = json!({
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["title", "type"],
                "properties": property_attributes(),
            },
        });
    }
    defs
}

pub fn namespace_schema() -> Value {
    let (created, updated) = times("namespace");
    json!({
        "name": "namespace",
        "properties": {
            "namespace": {"type": "string", "maxLength": 80, "description": "Unique name of the namespace"},
            "display_name": {"type": "string", "maxLength": 80, "description": "Name to show in user interfaces"},
            "description": {"type": "string", "maxLength": 500, "description": "What the namespace is for"},
            "visibility": {"type": "string", "enum": ["public", "private"], "description": "Who can see the namespace"},
            "protected": {"type": "boolean", "description": "A protected namespace cannot be deleted"},
            "owner": {"type": "string", "maxLength": 255, "description": "Owning project"},
            "created_at": created,
            "updated_at": updated,
            "schema": {"readOnly": true, "type": "string"},
            "self": {"readOnly": true, "type": "string"},
            "resource_type_associations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "prefix": {"type": "string"},
                        "properties_target": {"type": "string"},
                    },
                },
            },
            "properties": {"$ref": "#/definitions/property"},
            "objects": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "required": {"$ref": "#/definitions/stringArray"},
                        "properties": {"$ref": "#/definitions/property"},
                    },
                },
            },
            "tags": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
        },
        "additionalProperties": false,
        "definitions": definitions(true, None),
        "required": ["namespace"],
    })
}

pub fn object_schema() -> Value {
    let (created, updated) = times("object");
    json!({
        "name": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 80},
            "description": {"type": "string"},
            "required": {"$ref": "#/definitions/stringArray"},
            "properties": {"$ref": "#/definitions/property"},
            "schema": {"readOnly": true, "type": "string"},
            "self": {"readOnly": true, "type": "string"},
            "created_at": created,
            "updated_at": updated,
        },
        "additionalProperties": false,
        "definitions": definitions(true, None),
        "required": ["name"],
    })
}

pub fn property_schema() -> Value {
    json!({
        "name": "property",
        "properties": property_attributes(),
        "additionalProperties": false,
        "definitions": definitions(false, Some(1)),
        "required": ["type", "title", "name"],
    })
}

pub fn tag_schema() -> Value {
    let (created, updated) = times("tag");
    json!({
        "name": "tag",
        "properties": {
            "name": {"type": "string", "maxLength": 80},
            "created_at": created,
            "updated_at": updated,
        },
        "additionalProperties": false,
        "required": ["name"],
    })
}

pub fn resource_type_schema() -> Value {
    let (created, updated) = times("association");
    json!({
        "name": "resource_type_association",
        "properties": {
            "name": {"type": "string", "maxLength": 80, "description": "Resource type name, as Heat names resource types (OS::Glance::Image, ...)"},
            "prefix": {"type": "string", "maxLength": 80, "description": "Prefix of the namespace's properties on this resource type, separator included"},
            "properties_target": {"type": "string", "maxLength": 80, "description": "Which key/value set of the resource the properties apply to, when it has several"},
            "created_at": created,
            "updated_at": updated,
        },
        "additionalProperties": false,
        "required": ["name"],
    })
}

fn links() -> Value {
    json!([
        {"rel": "first", "href": "{first}"},
        {"rel": "next", "href": "{next}"},
        {"rel": "describedby", "href": "{schema}"},
    ])
}

/// A list of `item` under `name`; the item's definitions are lifted so `$ref`s resolve.
fn collection(name: &str, mut item: Value) -> Value {
    let defs = item.as_object_mut().and_then(|o| o.remove("definitions"));
    let mut schema = json!({
        "name": name,
        "properties": {
            name: {"type": "array", "items": item},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": links(),
    });
    if let Some(defs) = defs {
        schema["definitions"] = defs;
    }
    schema
}

fn properties_collection() -> Value {
    let mut item = property_schema();
    let defs = item.as_object_mut().and_then(|o| o.remove("definitions"));
    // Inside the collection a property's name is its key.
    item["required"] = json!(["type", "title"]);
    json!({
        "name": "properties",
        "properties": {
            "properties": {"type": "object", "additionalProperties": item},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": links(),
        "definitions": defs,
    })
}

pub async fn show(Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let schema = match name.as_str() {
        "namespace" => namespace_schema(),
        "namespaces" => collection("namespaces", namespace_schema()),
        "object" => object_schema(),
        "objects" => collection("objects", object_schema()),
        "property" => property_schema(),
        "properties" => properties_collection(),
        "tag" => tag_schema(),
        "tags" => collection("tags", tag_schema()),
        "resource_type" => resource_type_schema(),
        "resource_types" => collection("resource_type_associations", resource_type_schema()),
        _ => return Err(Error::not_found().into()),
    };
    Ok(Json(schema))
}
