//! `glass plugins list|load|rollback`: the command-line side of the plugin admin API
//! (`api::plugins`), talking to a running server over HTTP. Identity: the server's noauth
//! default (admin), or an `X-Auth-Token` from `OS_AUTH_TOKEN` when set.

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

pub async fn run(url: &str, action: Action) -> anyhow::Result<()> {
    let base = format!("{}/glass/v1/plugins", url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let with_token = |r: reqwest::RequestBuilder| match std::env::var("OS_AUTH_TOKEN") {
        Ok(token) => r.header("x-auth-token", token),
        Err(_) => r,
    };
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
    let response = with_token(request.header("accept", "application/json"))
        .send()
        .await
        .with_context(|| format!("contacting {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("(no message)");
        anyhow::bail!("{status}: {message}");
    }
    match action {
        Action::List => {
            for plugin in body["plugins"].as_array().into_iter().flatten() {
                print_status(plugin);
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
        status["store"].as_str().unwrap_or("?"),
        current["driver"].as_str().unwrap_or("?"),
        current["version"].as_str().unwrap_or("?"),
        current["wit"].as_str().unwrap_or("?"),
        current["capabilities"]
            .as_array()
            .map(|c| c
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","))
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
