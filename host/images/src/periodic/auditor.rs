//! The data auditor: re-reads every stored copy of every active (or deactivated) image
//! through its store, at a bounded rate, and checks it against what the host computed when
//! the bytes came in — the copy's blake3 (or, for a copy without one, the image's sha512
//! `os_hash_value`) and the image's size.
//!
//! A finding is recorded on the copy itself, in its location metadata under `glass_audit`
//! (`{"status": "corrupt" | "missing" | "unreadable", "detail", "checked_at"}`), which only
//! admins see (locations are not part of the image JSON). A copy that passes again loses its
//! mark. Downloads never serve a marked copy (`image_download`), so a corrupt copy is not
//! served while a good one exists. Findings are counted in metrics and logged; the image is
//! written only when a copy's verdict changes.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use glass_registry::{Image, ImageStatus, Location};
use serde_json::json;
use sha2::{Digest, Sha512};
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use crate::Error;
use crate::Service;
use crate::access::modify_image;
use crate::auth::identity::Identity;
use crate::metrics::AuditVerdict;
use crate::stores::StoreError;

/// The location metadata key of an audit finding.
pub const AUDIT_KEY: &str = "glass_audit";

/// What one pass found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub copies_checked: u64,
    pub bytes_read: u64,
    /// (image, store, verdict, detail) for every copy that failed.
    pub findings: Vec<(Uuid, String, AuditVerdict, String)>,
}

/// True when the auditor marked this copy bad: downloads skip it.
pub fn marked_bad(location: &Location) -> bool {
    location.metadata.contains_key(AUDIT_KEY)
}

/// One pass over every image, reading at most `rate_bytes_per_s` (0: unlimited).
pub async fn audit_all(state: &Service, rate_bytes_per_s: u64) -> Result<AuditReport, Error> {
    let mut report = AuditReport::default();
    let mut limiter = RateLimiter::new(rate_bytes_per_s);
    for id in state.registry.image_ids().await? {
        let Some(image) = state.registry.get_image(id).await? else {
            continue;
        };
        if !matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated) {
            continue;
        }
        audit_image(state, &image, &mut limiter, &mut report).await?;
    }
    tracing::info!(
        copies = report.copies_checked,
        bytes = report.bytes_read,
        findings = report.findings.len(),
        "audit pass finished"
    );
    Ok(report)
}

async fn audit_image(
    state: &Service,
    image: &Image,
    limiter: &mut RateLimiter,
    report: &mut AuditReport,
) -> Result<(), Error> {
    for location in &image.locations {
        let verdict = check_copy(state, image, location, limiter, report).await;
        report.copies_checked += 1;
        state.metrics.audit_verdict(&location.store, verdict.0);
        if verdict.0 != AuditVerdict::Ok {
            tracing::error!(image = %image.id, store = %location.store, verdict = ?verdict.0,
                detail = %verdict.1, "audit: stored copy failed its check");
            report.findings.push((
                image.id,
                location.store.clone(),
                verdict.0,
                verdict.1.clone(),
            ));
        }
        record(state, image.id, location, verdict).await?;
    }
    Ok(())
}

/// Reads one copy to its end and compares it.
async fn check_copy(
    state: &Service,
    image: &Image,
    location: &Location,
    limiter: &mut RateLimiter,
    report: &mut AuditReport,
) -> (AuditVerdict, String) {
    let Some(store) = state.stores.get(&location.store) else {
        return (
            AuditVerdict::Unreadable,
            format!("store {} is not configured", location.store),
        );
    };
    let reader = match store.get(&location.url, 0, None).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => {
            return (AuditVerdict::Missing, "no data at the location".into());
        }
        Err(e) => return (AuditVerdict::Unreadable, e.to_string()),
    };
    let use_blake3 = location.blake3.is_some();
    let mut blake3 = blake3::Hasher::new();
    let mut sha512 = Sha512::new();
    let mut size = 0u64;
    let mut chunks = ReaderStream::with_capacity(reader, 256 * 1024);
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let verdict = if size == 0 && e.to_string().contains("not found") {
                    AuditVerdict::Missing
                } else {
                    AuditVerdict::Unreadable
                };
                return (verdict, format!("read failed after {size} bytes: {e}"));
            }
        };
        if use_blake3 {
            blake3.update(&chunk);
        } else {
            sha512.update(&chunk);
        }
        size += chunk.len() as u64;
        report.bytes_read += chunk.len() as u64;
        state.metrics.audit_bytes(chunk.len() as u64);
        limiter.consume(chunk.len() as u64).await;
    }
    if Some(size) != image.size {
        return (
            AuditVerdict::Corrupt,
            format!("{size} bytes stored, the image has {:?}", image.size),
        );
    }
    let (expected, actual) = if let Some(expected) = &location.blake3 {
        (
            Some(expected.clone()),
            blake3.finalize().to_hex().to_string(),
        )
    } else {
        let expected = (image.os_hash_algo.as_deref() == Some("sha512"))
            .then(|| image.os_hash_value.clone())
            .flatten();
        (expected, hex::encode(sha512.finalize()))
    };
    match expected {
        Some(expected) if expected != actual => (
            AuditVerdict::Corrupt,
            format!("digest {actual} differs from the recorded {expected}"),
        ),
        _ => (AuditVerdict::Ok, String::new()),
    }
}

/// Marks or unmarks the copy (a location is its store and URL: two stores may use the same
/// URL); writes only when the verdict changed.
async fn record(
    state: &Service,
    id: Uuid,
    copy: &Location,
    (verdict, detail): (AuditVerdict, String),
) -> Result<(), Error> {
    let result = modify_image(state, &Identity::system(), id, |image| {
        let Some(location) = image
            .locations
            .iter_mut()
            .find(|l| l.url == copy.url && l.store == copy.store)
        else {
            return Ok(()); // removed meanwhile
        };
        let current = location
            .metadata
            .get(AUDIT_KEY)
            .and_then(|v| v["status"].as_str())
            .map(str::to_owned);
        match (verdict, current) {
            (AuditVerdict::Ok, None) => {}
            (AuditVerdict::Ok, Some(_)) => {
                location.metadata.remove(AUDIT_KEY);
            }
            (bad, Some(status)) if status == bad.as_str() => {}
            (bad, _) => {
                location.metadata.insert(
                    AUDIT_KEY.into(),
                    json!({
                        "status": bad.as_str(),
                        "detail": detail,
                        "checked_at": chrono::Utc::now().to_rfc3339(),
                    }),
                );
            }
        }
        Ok(())
    })
    .await;
    match result {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Keeps the average read rate under a limit by sleeping.
struct RateLimiter {
    rate: u64,
    started: Instant,
    bytes: u64,
}

impl RateLimiter {
    fn new(rate: u64) -> Self {
        RateLimiter {
            rate,
            started: Instant::now(),
            bytes: 0,
        }
    }

    async fn consume(&mut self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}
