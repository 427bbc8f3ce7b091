//! How images look on the wire: the JSON body Glance returns for an image, and its timestamps.

use glass_registry::{Image, Timestamp};
use serde_json::{Map, Value, json};

/// Glance's timestamp format: whole seconds, UTC, `Z`.
pub fn format_time(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The image as `GET /v2/images/{id}` shows it.
pub fn image_json(image: &Image) -> Value {
    let mut body = Map::new();
    for (k, v) in &image.properties {
        body.insert(k.clone(), Value::String(v.clone()));
    }
    let id = image.id.to_string();
    let core = json!({
        "name": image.name,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "visibility": image.visibility.as_str(),
        "size": image.size,
        "virtual_size": image.virtual_size,
        "status": image.status.as_str(),
        "checksum": image.checksum,
        "protected": image.protected,
        "min_ram": image.min_ram,
        "min_disk": image.min_disk,
        "owner": image.owner,
        "os_hidden": image.os_hidden,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "id": id,
        "created_at": format_time(&image.created_at),
        "updated_at": format_time(&image.updated_at),
        "tags": image.tags,
        "self": format!("/v2/images/{id}"),
        "file": format!("/v2/images/{id}/file"),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(core) = core {
        body.extend(core);
    }
    if !image.locations.is_empty() {
        let mut stores: Vec<&str> = image.locations.iter().map(|l| l.store.as_str()).collect();
        stores.dedup();
        body.insert("stores".into(), Value::String(stores.join(",")));
    }
    Value::Object(body)
}
