//! Disk-format inspection on the upload path: an [`InspectSession`] receives every chunk an
//! upload, stage or import writes (teed beside the hashing) and hands it to the inspector
//! component (`runtime::WasmInspector`, `glass:inspect@0.1.0`), which parses the untrusted
//! bytes inside the sandbox, streaming, and usually answers after a few KiB. The host then
//! applies Glance's policy ([`judge`]): the content must match `disk_format` (unless
//! `require_image_format_match` is off; formats the inspector does not know, such as `ami`,
//! pass as long as the content is not a known format; unlike Glance, data claimed `raw` that
//! is another format — a qcow2, a VMDK, LUKS — is a mismatch too, only a partitioned disk
//! passes as raw) and pass the detected format's
//! safety checks (always: unlike Glance, also when a mismatch is tolerated, and when the
//! inspector itself fails). The verdict's virtual size goes on the image. A refusal is a 400
//! naming what is wrong, known as soon as the inspector has answered: the caller stops the
//! transfer and leaves the image without data.

use bytes::Bytes;
use glass_registry::Image;

use crate::Error;
use crate::Service;
use crate::config::Config;
use glass_runtime::{InspectDetected as Detected, InspectFeed, InspectReport, InspectResult};

/// The formats the inspector recognises: a `disk_format` outside this list (ami, aki, ari,
/// ploop, …) is not inspectable, and raw-looking content is fine for it.
const INSPECTABLE: &[&str] = &[
    "raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi", "qed", "iso", "gpt", "luks",
];

/// A running inspection of one stream.
pub struct InspectSession {
    feed: InspectFeed,
    task: Option<tokio::task::JoinHandle<InspectResult>>,
    /// The inspector's answer, once it came (early: before the end of the data).
    answer: Option<InspectResult>,
    disk_format: String,
    image: uuid::Uuid,
    policy: Policy,
}

/// What the deployment's `[image_format]` says.
#[derive(Debug, Clone)]
pub struct Policy {
    pub require_match: bool,
    pub gpt_nonfatal: Vec<String>,
    pub vmdk_allowed: Vec<String>,
}

impl Policy {
    pub fn of(config: &Config) -> Self {
        Policy {
            require_match: config.image_format.require_image_format_match,
            gpt_nonfatal: config.image_format.gpt_safety_checks_nonfatal.clone(),
            vmdk_allowed: config.image_format.vmdk_allowed_types.clone(),
        }
    }
}

/// Starts an inspection of the data about to be written for `image`: when inspection is
/// on, the image is `bare` (as Glance: other containers are not inspected) and has a
/// `disk_format`.
pub async fn session(state: &Service, image: &Image) -> Result<Option<InspectSession>, Error> {
    if !state.config.image_format.inspect || image.container_format.as_deref() != Some("bare") {
        return Ok(None);
    }
    let Some(disk_format) = image.disk_format.clone() else {
        return Ok(None);
    };
    let Some(inspector) = state.imports.inspector().await? else {
        return Ok(None);
    };
    let (feed, task) = inspector.start(&disk_format);
    Ok(Some(InspectSession {
        feed,
        task: Some(task),
        answer: None,
        disk_format,
        image: image.id,
        policy: Policy::of(&state.config),
    }))
}

impl InspectSession {
    /// Hands one chunk to the inspector. An error is the inspector's refusal, known before
    /// the end of the data: the caller stops the transfer.
    pub async fn feed(&mut self, chunk: &Bytes) -> Result<(), Error> {
        if self.answer.is_some() {
            return Ok(());
        }
        let finished = self.task.as_ref().is_some_and(|t| t.is_finished());
        if finished || !self.feed.send(chunk.clone()).await {
            self.feed.close();
            let answer = self.wait().await;
            let verdict = judge(&answer, &self.disk_format, None, &self.policy);
            self.answer = Some(answer);
            verdict?;
        }
        Ok(())
    }

    async fn wait(&mut self) -> InspectResult {
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| {
                Err(crate::stores::StoreError::Other(format!(
                    "inspector task failed: {e}"
                )))
            }),
            None => Err(crate::stores::StoreError::Other(
                "inspection already finished".into(),
            )),
        }
    }

    /// After the last chunk (`total` bytes): the virtual size to record, or the refusal.
    pub async fn finish(mut self, total: u64) -> Result<Option<u64>, Error> {
        self.feed.close();
        let answer = match self.answer.take() {
            Some(a) => a,
            None => self.wait().await,
        };
        let verdict = judge(&answer, &self.disk_format, Some(total), &self.policy);
        match &verdict {
            Ok(size) => tracing::debug!(image = %self.image, disk_format = %self.disk_format,
                virtual_size = ?size, "image data passed inspection"),
            Err(e) => tracing::info!(image = %self.image, disk_format = %self.disk_format,
                reason = %e, "image data refused by inspection"),
        }
        verdict
    }
}

/// Glance's decision on an inspection (`glance.location` `set_data`): the virtual size to
/// record (`None`: leave it unset), or the 400 that refuses the data. `total` is the data's
/// size, when known (unknown while the upload is still going: then only refusals count).
pub fn judge(
    answer: &InspectResult,
    disk_format: &str,
    total: Option<u64>,
    policy: &Policy,
) -> Result<Option<u64>, Error> {
    let report: &InspectReport = match answer {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => {
            return Err(Error::BadRequest(format!(
                "Image format inspection failed: {e:?}"
            )));
        }
        // No place for an inspector call (its budget is full): busy, not bad data.
        Err(e @ crate::stores::StoreError::Unavailable(_)) => {
            return Err(Error::Unavailable(format!(
                "Image format inspection unavailable: {e}"
            )));
        }
        Err(e) => {
            tracing::warn!(error = %e, "the format inspector failed");
            return Err(Error::BadRequest(format!(
                "Image format inspection failed: {e}"
            )));
        }
    };
    let names: Vec<&str> = report.matches.iter().map(|d| d.format.as_str()).collect();
    // An ISO with a GPT in front (bootable as a disk) is an ISO.
    let chosen = match names.as_slice() {
        [] => None,
        [_] => Some(&report.matches[0]),
        _ if names.len() == 2 && names.contains(&"iso") && names.contains(&"gpt") => {
            report.matches.iter().find(|d| d.format == "iso")
        }
        _ => {
            let message = format!("Multiple formats detected: {}", names.join(","));
            if policy.require_match {
                return Err(Error::BadRequest(message));
            }
            tracing::warn!(%message, "inspection: format not determined");
            report.matches.first()
        }
    };
    // Unsafe data is named as such first, whatever it was claimed to be; every format found
    // is checked (but the GPT in front of an ISO).
    let iso_with_gpt = names.len() == 2 && names.contains(&"iso") && names.contains(&"gpt");
    let checked: Vec<&Detected> = if iso_with_gpt {
        chosen.into_iter().collect()
    } else {
        report.matches.iter().collect()
    };
    for d in checked {
        let fatal: Vec<String> = d
            .violations
            .iter()
            .filter(|v| !(d.format == "gpt" && policy.gpt_nonfatal.contains(&v.check)))
            .map(|v| format!("{} ({})", v.check, v.message))
            .collect();
        if !fatal.is_empty() {
            return Err(Error::BadRequest(format!(
                "Image failed safety checks: {} {}",
                d.format,
                fatal.join(", ")
            )));
        }
        for v in &d.violations {
            tracing::warn!(check = %v.check, message = %v.message, "non-fatal gpt safety check");
        }
        if d.format == "vmdk" {
            let kind = d.subformat.as_deref().unwrap_or("unknown");
            if !policy.vmdk_allowed.iter().any(|a| a == kind) {
                return Err(Error::BadRequest(format!(
                    "Image failed safety checks: VMDK createType {kind} is not in \
                     vmdk_allowed_types"
                )));
            }
        }
    }
    let detected = chosen.map_or("raw", |d| d.format.as_str());
    let mut virtual_size = None;
    if detected == disk_format {
        virtual_size = match chosen.and_then(|d| d.virtual_size) {
            Some(v) => Some(v),
            None => total,
        };
    } else if detected == "raw" && !INSPECTABLE.contains(&disk_format) {
        // ami, aki, ari, ploop, …: not inspectable, fine as long as nothing was recognised.
    } else if disk_format == "raw" && detected == "gpt" {
        // A disk with a partition table is raw data (qemu probes it as raw; Glance's
        // conversion takes gpt as raw).
        virtual_size = total;
    } else {
        let mut message =
            format!("Image disk_format {disk_format} does not match stream data {detected}");
        let broken: Vec<String> = report
            .malformed
            .iter()
            .filter(|m| m.check == disk_format)
            .map(|m| m.message.clone())
            .collect();
        if !broken.is_empty() {
            message.push_str(&format!(" ({})", broken.join("; ")));
        }
        if policy.require_match {
            return Err(Error::BadRequest(message));
        }
        tracing::warn!(%message, "inspection: format mismatch tolerated");
        if disk_format == "raw" {
            virtual_size = total;
        }
    }
    Ok(virtual_size)
}
