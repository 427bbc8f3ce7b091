//! The admin commands that talk to a running server over HTTP: `glass plugins
//! list|load|rollback` (the plugin admin API, `api::plugins`) and `glass cache
//! list|queue|delete|clear|prune|clean` (Glance's cache API, `api::v2::cache`), `glass manage
//! restore-image` (`api::deleted_images`). Identity:
//! the server's noauth default (admin), or an `X-Auth-Token` from `OS_AUTH_TOKEN` when set.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Every store's component: driver, version, WIT, capabilities, calls, faults.
    List,
    /// Swap a new component in for a store; calls in flight finish on the old one.
    Load {
        /// The store id (as in the configuration's `[[stores]]`).
        store: String,
        /// The component file (`.wasm`, built for wasm32-wasip2).
        component: PathBuf,
    },
    /// Put back the component the last `load` replaced.
    Rollback { store: String },
}

/// Sends an admin request and returns its JSON body; a non-2xx answer is an error carrying
/// the server's message.
async fn call(request: reqwest::RequestBuilder, url: &str) -> anyhow::Result<Value> {
    let request = match std::env::var("OS_AUTH_TOKEN") {
        Ok(token) => request.header("x-auth-token", token),
        Err(_) => request,
    };
    let response = request
        .header("accept", "application/json")
        .send()
        .await
        .with_context(|| format!("contacting {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("(no message)");
        anyhow::bail!("{status}: {message}");
    }
    Ok(body)
}

#[derive(Subcommand, Debug)]
pub enum CacheAction {
    /// Cached images (id, size, hits, last access) and the prefetch queue.
    List,
    /// Queue an active image for the prefetcher.
    Queue { image_id: String },
    /// Remove an image from the cache and the queue.
    Delete { image_id: String },
    /// Empty the cache and the queue.
    Clear,
    /// Remove least recently used entries until the cache fits its maximum size.
    Prune,
    /// Remove stalled fills and entries that no longer match their image.
    Clean,
}

pub async fn cache(url: &str, action: CacheAction) -> anyhow::Result<()> {
    let base = format!("{}/v2/cache", url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let request = match &action {
        CacheAction::List => client.get(&base),
        CacheAction::Queue { image_id } => client.put(format!("{base}/{image_id}")),
        CacheAction::Delete { image_id } => client.delete(format!("{base}/{image_id}")),
        CacheAction::Clear => client.delete(&base),
        CacheAction::Prune => client.post(format!("{base}/prune")),
        CacheAction::Clean => client.post(format!("{base}/clean")),
    };
    eprintln!("{action:?}…");
    let body = call(request, url).await?;
    match action {
        CacheAction::List => {
            let cached = body["cached_images"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total: u64 = cached.iter().filter_map(|e| e["size"].as_u64()).sum();
            for e in &cached {
                println!(
                    "{}  {:>14} bytes  {:>6} hits",
                    e["image_id"].as_str().unwrap_or("?"),
                    e["size"],
                    e["hits"]
                );
            }
            println!("{} cached, {total} bytes", cached.len());
            for id in body["queued_images"].as_array().into_iter().flatten() {
                println!("{}  queued", id.as_str().unwrap_or("?"));
            }
        }
        _ if body.is_null() => println!("done"),
        _ => println!("{body}"),
    }
    Ok(())
}

pub async fn plugins(url: &str, action: Action) -> anyhow::Result<()> {
    let base = format!("{}/glass/v1/plugins", url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let request = match &action {
        Action::List => client.get(&base),
        Action::Load { store, component } => {
            let bytes = std::fs::read(component)
                .with_context(|| format!("reading {}", component.display()))?;
            eprintln!(
                "uploading {} ({} bytes) for store {store}…",
                component.display(),
                bytes.len()
            );
            client
                .put(format!("{base}/{store}"))
                .header("content-type", "application/wasm")
                .body(bytes)
        }
        Action::Rollback { store } => client.post(format!("{base}/{store}/rollback")),
    };
    let body = call(request, url).await?;
    match action {
        Action::List => {
            for plugin in body["plugins"].as_array().into_iter().flatten() {
                print_status(plugin);
            }
            for validator in body["validators"].as_array().into_iter().flatten() {
                print_status(validator);
            }
        }
        _ => print_status(&body["plugin"]),
    }
    Ok(())
}

fn print_status(status: &Value) {
    let current = &status["current"];
    println!(
        "{:<12} {} {} ({}) [{}] sha256:{} calls={} faults={}",
        // A validator: its id, name, and mode in place of capabilities.
        status["store"]
            .as_str()
            .or(status["validator"].as_str())
            .unwrap_or("?"),
        current["driver"]
            .as_str()
            .or(current["name"].as_str())
            .unwrap_or("?"),
        current["version"].as_str().unwrap_or("?"),
        current["wit"].as_str().unwrap_or("?"),
        current["capabilities"]
            .as_array()
            .map(|c| c
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","))
            .or_else(|| status["mode"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        current["sha256"]
            .as_str()
            .map(|s| &s[..s.len().min(12)])
            .unwrap_or("?"),
        current["calls"],
        current["faults"],
    );
    let previous = status["previous"].as_array().map_or(0, Vec::len);
    if previous > 0 {
        println!("{:<12} {previous} earlier version(s) to roll back to", "");
    }
}

/// `glass manage restore-image ID`: restores a deleted image through the admin API.
pub async fn restore_image(url: &str, image_id: &str) -> anyhow::Result<()> {
    let path = format!(
        "{}/glass/v1/deleted-images/{image_id}/restore",
        url.trim_end_matches('/')
    );
    let image = call(reqwest::Client::new().post(path), url).await?;
    println!(
        "restored {} ({}), status {}",
        image["id"].as_str().unwrap_or(image_id),
        image["name"].as_str().unwrap_or(""),
        image["status"].as_str().unwrap_or("?")
    );
    Ok(())
}
