//! `/v2/schemas/*`: the JSON schemas clients download to validate and build requests
//! (python-glanceclient builds its patches from the image schema).

use axum::Json;
use axum::extract::Path;
use serde_json::{Value, json};

use crate::error::ApiError;
use glass_images::Error;
use glass_images::properties::{CONTAINER_FORMATS, DISK_FORMATS};

const UUID_PATTERN: &str =
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

fn nullable_enum(options: &[&str]) -> Vec<Value> {
    std::iter::once(Value::Null)
        .chain(options.iter().map(|o| Value::String(o.to_string())))
        .collect()
}

fn read_only_text(description: &str) -> Value {
    json!({"type": "string", "readOnly": true, "description": description})
}

fn extra_text(description: &str) -> Value {
    json!({"type": "string", "description": description, "is_base": false})
}

pub fn image_schema() -> Value {
    let statuses: Vec<&str> = glass_registry::ImageStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    json!({
        "name": "image",
        "properties": {
            "id": {"type": "string", "description": "Image identifier (UUID)", "pattern": UUID_PATTERN},
            "name": {"type": ["null", "string"], "description": "Human-readable name", "maxLength": 255},
            "status": {"type": "string", "readOnly": true, "description": "Lifecycle status", "enum": statuses},
            "visibility": {"type": "string", "description": "Who can see the image", "enum": ["community", "public", "private", "shared"]},
            "protected": {"type": "boolean", "description": "A protected image cannot be deleted"},
            "os_hidden": {"type": "boolean", "description": "Hidden from default listings"},
            "checksum": {"type": ["null", "string"], "readOnly": true, "description": "MD5 of the image data", "maxLength": 32},
            "os_hash_algo": {"type": ["null", "string"], "readOnly": true, "description": "Algorithm of os_hash_value", "maxLength": 64},
            "os_hash_value": {"type": ["null", "string"], "readOnly": true, "description": "Hex digest of the image data", "maxLength": 128},
            "owner": {"type": ["null", "string"], "description": "Owning project", "maxLength": 255},
            "size": {"type": ["null", "integer"], "readOnly": true, "description": "Size of the data in bytes"},
            "virtual_size": {"type": ["null", "integer"], "readOnly": true, "description": "Virtual disk size in bytes"},
            "container_format": {"type": ["null", "string"], "description": "Container format", "enum": nullable_enum(&CONTAINER_FORMATS)},
            "disk_format": {"type": ["null", "string"], "description": "Disk format", "enum": nullable_enum(&DISK_FORMATS)},
            "created_at": read_only_text("When the image was registered"),
            "updated_at": read_only_text("When the image last changed"),
            "tags": {"type": "array", "description": "Tags", "items": {"type": "string", "maxLength": 255}},
            "direct_url": read_only_text("Location of the data, when exposed"),
            "min_ram": {"type": "integer", "description": "Minimum RAM in MB to boot"},
            "min_disk": {"type": "integer", "description": "Minimum disk in GB to boot"},
            "self": read_only_text("Link to this image"),
            "file": read_only_text("Link to this image's data"),
            "stores": read_only_text("Stores holding the data, comma-separated"),
            "schema": read_only_text("Link to this schema"),
            "locations": {
                "type": "array",
                "description": "Where the data is stored",
                "items": {
                    "type": "object",
                    "properties": {
                        "url": {"type": "string", "maxLength": 255},
                        "metadata": {"type": "object"},
                    },
                    "required": ["url", "metadata"],
                },
            },
            "kernel_id": {"type": ["null", "string"], "pattern": UUID_PATTERN, "description": "Kernel image id (AMI)", "is_base": false},
            "ramdisk_id": {"type": ["null", "string"], "pattern": UUID_PATTERN, "description": "Ramdisk image id (AMI)", "is_base": false},
            "instance_uuid": extra_text("Server this snapshot was taken from"),
            "architecture": extra_text("CPU architecture"),
            "os_distro": extra_text("Operating system distribution"),
            "os_version": extra_text("Operating system version"),
            "description": extra_text("Free-form description"),
            "cinder_encryption_key_id": extra_text("Encryption key of a volume image"),
            "cinder_encryption_key_deletion_policy": {"type": "string", "enum": ["on_image_deletion", "do_not_delete"], "description": "What happens to the key on delete", "is_base": false},
        },
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

pub fn images_schema() -> Value {
    json!({
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

pub fn member_schema() -> Value {
    json!({
        "name": "member",
        "properties": {
            "member_id": {"type": "string", "description": "The project the image is shared with"},
            "image_id": {"type": "string", "description": "The shared image", "pattern": UUID_PATTERN},
            "created_at": {"type": "string", "description": "When the membership was created"},
            "updated_at": {"type": "string", "description": "When the membership last changed"},
            "status": {"type": "string", "description": "The member's answer", "enum": ["pending", "accepted", "rejected"]},
            "schema": {"readOnly": true, "type": "string"},
        },
    })
}

pub fn members_schema() -> Value {
    json!({
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": member_schema()},
            "schema": {"type": "string"},
        },
        "links": [{"rel": "describedby", "href": "{schema}"}],
    })
}

pub fn task_schema() -> Value {
    let text = |d: &str| json!({"type": "string", "description": d});
    json!({
        "name": "task",
        "properties": {
            "id": {"type": "string", "description": "Task identifier", "pattern": UUID_PATTERN},
            "type": {"type": "string", "description": "Kind of task", "enum": ["import", "api_image_import", "location_import"]},
            "status": {"type": "string", "description": "Task status", "enum": ["pending", "processing", "success", "failure"]},
            "input": {"type": ["null", "object"], "description": "Parameters of the task"},
            "result": {"type": ["null", "object"], "description": "Result of the task"},
            "owner": text("Owning project"),
            "message": text("Human-readable message, usually on failure"),
            "image_id": text("Image the task works on"),
            "request_id": text("Request that started the task"),
            "user_id": text("User that started the task"),
            "expires_at": {"type": ["null", "string"], "description": "When the task record may be removed"},
            "created_at": text("When the task was created"),
            "updated_at": text("When the task last changed"),
            "self": {"readOnly": true, "type": "string"},
            "schema": {"readOnly": true, "type": "string"},
        },
    })
}

pub fn tasks_schema() -> Value {
    json!({
        "name": "tasks",
        "properties": {
            "tasks": {"type": "array", "items": task_schema()},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

pub async fn show(Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let schema = match name.as_str() {
        "image" => image_schema(),
        "images" => images_schema(),
        "member" => member_schema(),
        "members" => members_schema(),
        "task" => task_schema(),
        "tasks" => tasks_schema(),
        _ => return Err(Error::not_found().into()),
    };
    Ok(Json(schema))
}
