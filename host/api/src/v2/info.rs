//! `GET /v2/info/stores` and `GET /v2/info/stores/detail`: the stores a deployment offers,
//! as Glance's discovery API shows them. Glass always runs multi-store, so these always
//! answer (Glance answers 404 when `enabled_backends` is unset).

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Identity;
use glass_images::stores::StoreEntry;

/// Every store: id, description, `"default": "true"` on the default one and
/// `"read-only": "true"` on one that takes no uploads (Glance's strings, not booleans).
pub async fn stores(State(state): State<AppState>) -> Json<Value> {
    let stores: Vec<Value> = state.stores.entries().iter().map(summary).collect();
    Json(json!({ "stores": stores }))
}

/// The same, with each store's type, weight and (non-secret) properties. Admin only.
pub async fn stores_detail(
    State(state): State<AppState>,
    who: Identity,
) -> Result<Json<Value>, ApiError> {
    state.policy.enforce(
        "stores_info_detail",
        &who,
        &glass_images::auth::policy::Target::new(),
    )?;
    let stores: Vec<Value> = state
        .stores
        .entries()
        .iter()
        .map(|entry| {
            let mut store = summary(entry);
            let info = entry.store.info();
            let object = store.as_object_mut().expect("summary is an object");
            object.insert(
                "type".into(),
                store_type(&entry.driver, &info.driver).into(),
            );
            object.insert("weight".into(), entry.weight.into());
            let mut properties = entry.properties.clone();
            properties.insert("driver".into(), info.driver.into());
            properties.insert("driver_version".into(), info.version.into());
            object.insert("properties".into(), Value::Object(properties));
            store
        })
        .collect();
    Ok(Json(json!({ "stores": stores })))
}

fn summary(entry: &StoreEntry) -> Value {
    let mut store = Map::new();
    store.insert("id".into(), entry.id.clone().into());
    if let Some(description) = &entry.description {
        store.insert("description".into(), description.clone().into());
    }
    if entry.default {
        store.insert("default".into(), "true".into());
    }
    if !entry.store.info().can_write {
        store.insert("read-only".into(), "true".into());
    }
    Value::Object(store)
}

/// Glance's store type for a driver: `file`, `s3`, `swift`, `http`, else the driver's name.
fn store_type(configured: &str, driver: &str) -> String {
    let name = if configured.starts_with("store-") {
        configured
    } else {
        driver
    };
    match name.strip_prefix("store-").unwrap_or(name) {
        "fs" => "file".into(),
        other => other.into(),
    }
}
