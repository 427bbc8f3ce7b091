//! How images look on the wire: the JSON body Glance returns for an image, serialized straight
//! from the record (no intermediate JSON tree), and Glance's timestamp format.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use glass_registry::{Image, Timestamp};
use serde::Serialize;

/// Glance's timestamp format: whole seconds, UTC, `Z`.
pub fn format_time(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The image as `GET /v2/images/{id}` shows it: extra properties beside the core attributes.
#[derive(Debug, Serialize)]
pub struct ImageBody<'a> {
    #[serde(flatten)]
    properties: &'a BTreeMap<String, String>,
    name: &'a Option<String>,
    disk_format: &'a Option<String>,
    container_format: &'a Option<String>,
    visibility: &'static str,
    size: Option<u64>,
    virtual_size: Option<u64>,
    status: &'static str,
    checksum: &'a Option<String>,
    protected: bool,
    min_ram: u64,
    min_disk: u64,
    owner: &'a Option<String>,
    os_hidden: bool,
    os_hash_algo: &'a Option<String>,
    os_hash_value: &'a Option<String>,
    id: String,
    created_at: String,
    updated_at: String,
    tags: Vec<&'a str>,
    #[serde(rename = "self")]
    self_link: String,
    file: String,
    schema: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stores: Option<String>,
}

pub fn image_body(image: &Image) -> ImageBody<'_> {
    let id = image.id.to_string();
    let stores = (!image.locations.is_empty()).then(|| {
        let mut stores: Vec<&str> = image.locations.iter().map(|l| l.store.as_str()).collect();
        stores.dedup();
        stores.join(",")
    });
    ImageBody {
        properties: &image.properties,
        name: &image.name,
        disk_format: &image.disk_format,
        container_format: &image.container_format,
        visibility: image.visibility.as_str(),
        size: image.size,
        virtual_size: image.virtual_size,
        status: image.status.as_str(),
        checksum: &image.checksum,
        protected: image.protected,
        min_ram: image.min_ram,
        min_disk: image.min_disk,
        owner: &image.owner,
        os_hidden: image.os_hidden,
        os_hash_algo: &image.os_hash_algo,
        os_hash_value: &image.os_hash_value,
        self_link: format!("/v2/images/{id}"),
        file: format!("/v2/images/{id}/file"),
        id,
        created_at: format_time(&image.created_at),
        updated_at: format_time(&image.updated_at),
        tags: image.tags.iter().map(String::as_str).collect(),
        schema: "/v2/schemas/image",
        stores,
    }
}
