//! Image-data helpers shared by the black-box tests: deterministic bytes, images ready for
//! upload, uploads and downloads through the API.

use std::path::PathBuf;

use glass_host::config::StoreConfig;
use glass_registry::Location;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Client, TestServer};

/// `len` deterministic pseudo-random bytes (xorshift), different for each `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A new raw/bare image, queued; its id.
pub async fn new_image(client: &Client) -> String {
    let image = client
        .create_image(json!({"name": "data", "disk_format": "raw", "container_format": "bare"}))
        .await;
    image["id"].as_str().unwrap().to_string()
}

/// `PUT /v2/images/{id}/file`, optionally to a named store (`X-Image-Meta-Store`).
pub async fn put_file_to(
    client: &Client,
    id: &str,
    store: Option<&str>,
    data: Vec<u8>,
) -> (u16, Value) {
    let mut request = client
        .request(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .header("Accept", "application/json");
    if let Some(store) = store {
        request = request.header("X-Image-Meta-Store", store);
    }
    let r = request.body(data).send().await.unwrap();
    crate::into_json(r).await
}

/// `PUT /v2/images/{id}/file` to the default store.
pub async fn put_file(client: &Client, id: &str, data: Vec<u8>) -> (u16, Value) {
    put_file_to(client, id, None, data).await
}

/// `GET /v2/images/{id}/file`: status and the whole body; an error if the connection breaks
/// off (status 0 if it broke before the status line).
pub async fn get_file(client: &Client, id: &str) -> (u16, Result<Vec<u8>, String>) {
    let r = match client
        .request(Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (0, Err(e.to_string())),
    };
    let status = r.status().as_u16();
    let body = r.bytes().await.map(|b| b.to_vec());
    (status, body.map_err(|e| e.to_string()))
}

/// A file store `id` in `<data_dir>/<id>`, with a weight and the default flag.
pub fn fs_store(id: &str, weight: i64, default: bool) -> StoreConfig {
    StoreConfig {
        id: id.into(),
        default,
        weight,
        description: Some(format!("file store {id}")),
        directory: Some(PathBuf::from(id)),
        ..StoreConfig::default_fs()
    }
}

/// Copies an image's data into `store` behind the API's back and records the location (as
/// copy-image will): the image then has one more copy. `blake3` is left unset, so an audit
/// checks that copy against the image's sha512.
pub async fn add_copy(server: &TestServer, id: &str, store: &str, data: &[u8]) {
    let uuid: Uuid = id.parse().unwrap();
    let target = server.state.stores.get(store).unwrap().clone();
    let stored = target
        .add(uuid, Box::pin(std::io::Cursor::new(data.to_vec())), None)
        .await
        .unwrap();
    let mut image = server
        .state
        .registry
        .get_image(uuid)
        .await
        .unwrap()
        .unwrap();
    image.locations.push(Location {
        url: stored.location,
        metadata: Default::default(),
        store: store.into(),
        blake3: None,
    });
    server.state.registry.update_image(image).await.unwrap();
}
