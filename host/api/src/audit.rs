//! Glass's admin API for the data auditor (`periodic::auditor`), under `/glass/v1`:
//! - `POST /glass/v1/audit` — run a pass now (unlimited rate) and return what it found;
//! - `GET  /glass/v1/audit` — every copy currently marked bad, with the finding.
//!
//! Admin only.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;
use glass_images::Identity;
use glass_images::periodic::auditor::{AUDIT_KEY, audit_all};

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(findings).post(run))
}

fn require_admin(who: &Identity) -> Result<(), glass_images::Error> {
    super::require_admin(who, "The auditor API")
}

async fn run(State(state): State<AppState>, who: Identity) -> Result<Json<Value>, ApiError> {
    require_admin(&who)?;
    let report = audit_all(&state, 0).await?;
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|(image, store, verdict, detail)| {
            json!({"image_id": image, "store": store, "status": verdict.as_str(), "detail": detail})
        })
        .collect();
    Ok(Json(json!({
        "copies_checked": report.copies_checked,
        "bytes_read": report.bytes_read,
        "findings": findings,
    })))
}

async fn findings(State(state): State<AppState>, who: Identity) -> Result<Json<Value>, ApiError> {
    require_admin(&who)?;
    let mut findings = Vec::new();
    for id in state.registry.image_ids().await? {
        let Some(image) = state.registry.get_image(id).await? else {
            continue;
        };
        for location in &image.locations {
            if let Some(finding) = location.metadata.get(AUDIT_KEY) {
                let mut finding = finding.clone();
                finding["image_id"] = json!(id);
                finding["store"] = json!(location.store);
                findings.push(finding);
            }
        }
    }
    Ok(Json(json!({ "findings": findings })))
}
