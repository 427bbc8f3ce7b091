//! Import steps (Glance's import plugins, `image_import_plugins`): what glance-direct, web-download and
//! glance-download imports do to the staged data before it goes to the stores (never
//! copy-image), in this order:
//! 1. **inject** (`[import.plugins] inject`): properties set on the image (names starting
//!    with `os_glance` dropped), unless an admin imports and `inject_for_admins` is off.
//! 2. **decompress** (`decompress = true`, not for `container_format = compressed`): gzip
//!    or zstd data, recognised by its magic number, is decompressed *inside the sandbox*
//!    (the inspector component's `decompress`), capped at the image size cap and the room
//!    left in the staging area.
//! 3. **convert** (`convert_to = "raw"|"qcow2"|…`): the staged file is inspected first and
//!    must match its `disk_format` and pass the safety checks (whatever
//!    `require_image_format_match` says), then `qemu-img convert -f <disk_format> -O
//!    <target>` runs with an address-space limit (`ulimit -v`) and a time limit, the output
//!    is inspected again, and the image's `disk_format` becomes the target when its data is
//!    recorded.
//!
//! Also glance-download's metadata step: the remote image's formats and allowed properties.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::inspect::{Policy, judge};
use super::lock::as_task;
use super::{Failure, ImportRequest, RemoteImage};
use crate::Error;
use crate::Service;

/// Runs the configured plugins on the staged data of `image`; the disk format the data has
/// afterwards when a conversion changed it.
pub async fn run_plugins(
    state: &Service,
    task: Uuid,
    image: Uuid,
    request: &ImportRequest,
) -> Result<Option<String>, Failure> {
    let cfg = &state.config.import.plugins;
    if request.inject && !cfg.inject.is_empty() {
        inject(state, task, image).await?;
    }
    let current = super::copies::current_image(state, image).await?;
    let staged = state
        .imports
        .staging
        .path(&image.to_string())
        .map_err(|e| e.to_string())?;
    if cfg.decompress && current.container_format.as_deref() != Some("compressed") {
        decompress(state, task, image, &staged).await?;
    }
    let Some(target) = cfg.convert_to.clone() else {
        return Ok(None);
    };
    let source = current.disk_format.clone().unwrap_or_default();
    if source == target {
        return Ok(None);
    }
    let (Some(from), Some(to)) = (qemu_format(&source), qemu_format(&target)) else {
        tracing::info!(task = %task, image = %image, %source, %target,
            "conversion skipped: qemu-img does not convert this disk format");
        return Ok(None);
    };
    let staged_size = tokio::fs::metadata(&staged)
        .await
        .map(|m| m.len())
        .map_err(|e| format!("reading the staged data: {e}"))?;
    let virtual_size = inspect_file(state, &staged, &source)
        .await
        .map_err(|e| format!("the staged data cannot be converted: {e}"))?
        .unwrap_or(staged_size);
    // A conversion bomb (a small image with a huge virtual size) is refused before
    // qemu-img writes anything: the output is bounded by the virtual size.
    let cap = state.config.image_size_cap;
    if virtual_size > cap {
        return Err(format!(
            "the image's virtual size ({virtual_size} bytes) is larger than the image size \
             cap ({cap} bytes): not converted to {target}"
        ));
    }
    let staging = state.imports.staging.clone();
    let _room = staging
        .reserve(Some(virtual_size), cap, Vec::new())
        .map_err(|room| {
            format!(
                "converting needs room for the image's virtual size ({virtual_size} bytes); \
                 the staging area has {room} bytes left"
            )
        })?;
    let free = free_space(staging.dir());
    if virtual_size > free {
        return Err(format!(
            "converting needs room for the image's virtual size ({virtual_size} bytes); \
             the staging file system has {free} bytes free"
        ));
    }
    let work = staging
        .work_dir(image, "convert")
        .map_err(|e| format!("preparing the conversion: {e}"))?;
    let limits = ConvertLimits::of(state);
    let output = convert_alone(&limits, &staged, &work, from, to).await?;
    inspect_file(state, &output, &target)
        .await
        .map_err(|e| format!("the converted data failed inspection: {e}"))?;
    tokio::fs::rename(&output, &staged)
        .await
        .map_err(|e| format!("replacing the staged data: {e}"))?;
    let _ = tokio::fs::remove_dir_all(&work).await;
    tracing::info!(task = %task, image = %image, %source, %target, "image data converted");
    Ok(Some(target))
}

/// qemu-img's name for a disk format it converts.
fn qemu_format(disk_format: &str) -> Option<&'static str> {
    Some(match disk_format {
        "raw" => "raw",
        "qcow2" => "qcow2",
        "vmdk" => "vmdk",
        "vhd" => "vpc",
        "vhdx" => "vhdx",
        "vdi" => "vdi",
        _ => return None,
    })
}

/// Glance's `inject_image_metadata`.
async fn inject(state: &Service, task: Uuid, image: Uuid) -> Result<(), Failure> {
    let properties = state.config.import.plugins.inject.clone();
    as_task(state, task, image, |img| {
        for (key, value) in &properties {
            if key.starts_with("os_glance") {
                tracing::warn!(image = %image, %key, "dropping a reserved property from injection");
                continue;
            }
            img.properties.insert(key.clone(), value.clone());
        }
        Ok(())
    })
    .await
    .map(|_| ())
}

/// Decompresses the staged file in place if it is gzip or zstd.
async fn decompress(
    state: &Service,
    task: Uuid,
    image: Uuid,
    staged: &Path,
) -> Result<(), Failure> {
    let mut head = [0u8; 4];
    let mut file = tokio::fs::File::open(staged)
        .await
        .map_err(|e| format!("reading the staged data: {e}"))?;
    let n = file.read(&mut head).await.unwrap_or(0);
    let compressed = head[..n].starts_with(&[0x1f, 0x8b, 0x08])
        || head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if !compressed {
        return Ok(());
    }
    let Some(inspector) = state.imports.inspector().await.map_err(|e| e.to_string())? else {
        return Err("decompression needs the inspector component ([image_format] inspect)".into());
    };
    let input = tokio::fs::File::open(staged)
        .await
        .map_err(|e| format!("reading the staged data: {e}"))?;
    // Room reserved (not just looked at) for the whole decompression, so concurrent ones
    // cannot each count on the same free space.
    let room = state
        .imports
        .staging
        .reserve(
            None,
            state.config.image_size_cap,
            vec![format!("{image}.uc")],
        )
        .map_err(|room| {
            format!("decompression needs staging room: at most {room} bytes may be staged now")
        })?;
    let out_path = state
        .imports
        .staging
        .path(&format!("{image}.uc"))
        .map_err(|e| e.to_string())?;
    let out = tokio::fs::File::create(&out_path)
        .await
        .map_err(|e| format!("staging the decompressed data: {e}"))?;
    let result = inspector.decompress(input, out, room.bytes()).await;
    let done = match result {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            let _ = tokio::fs::remove_file(&out_path).await;
            return Err(format!("decompression failed: {e:?}"));
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&out_path).await;
            return Err(format!("decompression failed: {e}"));
        }
    };
    let written = tokio::fs::metadata(&out_path)
        .await
        .map(|m| m.len())
        .unwrap_or(u64::MAX);
    if written != done.bytes_out {
        let _ = tokio::fs::remove_file(&out_path).await;
        return Err(format!(
            "decompression reported {} bytes, {written} were written",
            done.bytes_out
        ));
    }
    if let Ok(f) = std::fs::File::open(&out_path) {
        let _ = f.sync_all();
    }
    tokio::fs::rename(&out_path, staged)
        .await
        .map_err(|e| format!("replacing the staged data: {e}"))?;
    as_task(state, task, image, |img| {
        img.size = Some(done.bytes_out);
        Ok(())
    })
    .await?;
    tracing::info!(task = %task, image = %image, format = %done.format,
        bytes_in = done.bytes_in, bytes_out = done.bytes_out, "staged data decompressed");
    Ok(())
}

/// Reads a file through the inspector; it must match `disk_format` and be safe (strict,
/// whatever `require_image_format_match` says: this gates qemu-img).
pub async fn inspect_file(
    state: &Service,
    path: &Path,
    disk_format: &str,
) -> Result<Option<u64>, String> {
    let Some(inspector) = state.imports.inspector().await.map_err(|e| e.to_string())? else {
        return Err("no inspector is loaded ([image_format] inspect is off)".into());
    };
    let (mut feed, task) = inspector.start(disk_format);
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if !feed.send(Bytes::copy_from_slice(&buf[..n])).await {
            break;
        }
    }
    feed.close();
    let answer = task
        .await
        .unwrap_or_else(|e| Err(crate::stores::StoreError::Other(e.to_string())));
    let policy = Policy {
        require_match: true,
        ..Policy::of(&state.config)
    };
    judge(&answer, disk_format, Some(total), &policy).map_err(|e| e.to_string())
}

/// Bytes free for an unprivileged writer on the file system holding `dir` (`u64::MAX`
/// when it cannot be told).
fn free_space(dir: &Path) -> u64 {
    match rustix::fs::statvfs(dir) {
        Ok(s) => s.f_bavail.saturating_mul(s.f_frsize),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the free space");
            u64::MAX
        }
    }
}

/// How `qemu-img convert` runs: the binary, its address-space and time limits.
pub struct ConvertLimits {
    pub qemu_img: std::path::PathBuf,
    pub memory_mb: u64,
    pub timeout: Duration,
}

impl ConvertLimits {
    fn of(state: &Service) -> Self {
        let cfg = &state.config.import.plugins;
        ConvertLimits {
            qemu_img: cfg.qemu_img.clone(),
            memory_mb: cfg.convert_memory_mb,
            timeout: Duration::from_secs(cfg.convert_timeout_s.max(1)),
        }
    }
}

/// `qemu-img convert` of `staged` with nothing else in reach: the file is moved into the
/// fresh private directory `work` (as `source`), qemu-img runs there (cwd, output
/// `converted` beside it), so a relative name inside the image (a VMDK extent, a backing
/// or data file) can only resolve inside `work`, where no other upload's data is. The
/// input format is always given (never probed); raw output stays sparse (`-S 4k`); under
/// `ulimit -v` and a time limit. The converted file's path.
pub async fn convert_alone(
    limits: &ConvertLimits,
    staged: &Path,
    work: &Path,
    from: &str,
    to: &str,
) -> Result<std::path::PathBuf, Failure> {
    let source = work.join("source");
    let output = work.join("converted");
    tokio::fs::rename(staged, &source)
        .await
        .map_err(|e| format!("moving the staged data aside: {e}"))?;
    let kib = limits.memory_mb.saturating_mul(1024).to_string();
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -v \"$1\" || exit 125; shift; exec \"$@\"")
        .arg("glass-convert")
        .arg(&kib)
        .arg(&limits.qemu_img)
        .args(["convert", "-q", "-S", "4k", "-f", from, "-O", to])
        .args(["source", "converted"])
        .current_dir(work)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| format!("running {}: {e}", limits.qemu_img.display()))?;
    let outcome = tokio::time::timeout(limits.timeout, child.wait_with_output()).await;
    let failed = |why: String| {
        let _ = std::fs::remove_file(&output);
        Err(why)
    };
    match outcome {
        Err(_) => failed(format!(
            "qemu-img convert took longer than {} s",
            limits.timeout.as_secs()
        )),
        Ok(Err(e)) => failed(format!("qemu-img convert: {e}")),
        Ok(Ok(out)) if !out.status.success() => failed(format!(
            "qemu-img convert failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Ok(_)) => Ok(output),
    }
}

/// glance-download's metadata step: the remote image (`GET {endpoint}/v2/images/{id}` with
/// the caller's token) must be active; its disk and container formats and the properties
/// `extra_properties` allows are set on the image being imported.
pub async fn fetch_remote_metadata(
    state: &Service,
    task: Uuid,
    image: Uuid,
    remote: &RemoteImage,
) -> Result<(), Failure> {
    let cfg = &state.config.import;
    let url = format!(
        "{}/v2/images/{}",
        remote.endpoint.trim_end_matches('/'),
        remote.image_id
    );
    super::web::check_uri_now(&cfg.web_download, &url)
        .await
        .map_err(|why| format!("glance-download: {url} does not pass filtering ({why})"))?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(
            cfg.web_download.connect_timeout_s.max(1),
        ))
        .timeout(Duration::from_secs(cfg.web_download.timeout_s.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("glance-download: {e}"))?;
    let mut request = http.get(&url).header("Accept", "application/json");
    if let Some(token) = &remote.token {
        request = request.header("X-Auth-Token", token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("glance-download: {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "glance-download: the remote image {} answered {}",
            remote.image_id,
            response.status()
        ));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("glance-download: {url}: {e}"))?;
    if body.len() > 1 << 20 {
        return Err("glance-download: the remote image record is too large".into());
    }
    let remote_image: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("glance-download: {url}: not an image record ({e})"))?;
    if remote_image["status"] != "active" {
        return Err(format!(
            "glance-download: the remote image {} is {}, not active",
            remote.image_id, remote_image["status"]
        ));
    }
    let allowed = |name: &str| {
        cfg.glance_download
            .extra_properties
            .iter()
            .any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == p,
            })
    };
    let text = |key: &str| remote_image[key].as_str().map(str::to_owned);
    let (disk_format, container_format) = (text("disk_format"), text("container_format"));
    let copied: Vec<(String, String)> = remote_image
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| allowed(k) && !k.starts_with("os_glance"))
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
        .collect();
    super::lock::as_task(state, task, image, |img| {
        if disk_format.is_some() {
            img.disk_format = disk_format.clone();
        }
        if container_format.is_some() {
            img.container_format = container_format.clone();
        }
        for (k, v) in &copied {
            img.properties.insert(k.clone(), v.clone());
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// The remote image a glance-download names: the region's Images API endpoint
/// (`[import.glance_download] endpoints`) and the caller's token.
pub fn remote_image(
    state: &Service,
    token: Option<String>,
    region: &str,
    image_id: &str,
) -> Result<RemoteImage, Error> {
    let endpoint = state
        .config
        .import
        .glance_download
        .endpoints
        .get(region)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "glance-download: no Images API endpoint is known for region '{region}'"
            ))
        })?;
    Ok(RemoteImage {
        endpoint: endpoint.clone(),
        image_id: image_id.to_owned(),
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have_qemu_img() -> bool {
        std::process::Command::new("qemu-img")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn limits() -> ConvertLimits {
        ConvertLimits {
            qemu_img: "qemu-img".into(),
            memory_mb: 2048,
            timeout: Duration::from_secs(120),
        }
    }

    /// A VMDK text descriptor whose extent is a sibling file: converted where it is staged,
    /// qemu-img reads the sibling (another upload's data); converted alone, it cannot.
    #[tokio::test]
    async fn conversion_cannot_reach_a_sibling_staged_file() {
        if !have_qemu_img() {
            eprintln!("qemu-img missing: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let secret: Vec<u8> = b"another upload's staged data! ".repeat(200)[..4096].to_vec();
        std::fs::write(dir.path().join("victim"), &secret).unwrap();
        let descriptor = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
            createType=\"monolithicFlat\"\n\nRW 8 FLAT \"victim\" 0\n\n\
            ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"1\"\n\
            ddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\n\
            ddb.adapterType = \"ide\"\n";
        let staged = dir.path().join("attacker");
        std::fs::write(&staged, descriptor).unwrap();

        // The attack is real: converted in place, the output is the victim's data.
        let leaked = dir.path().join("leaked.raw");
        let out = std::process::Command::new("qemu-img")
            .args(["convert", "-q", "-f", "vmdk", "-O", "raw"])
            .arg(&staged)
            .arg(&leaked)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let leaked = std::fs::read(&leaked).unwrap();
        assert!(
            leaked.windows(64).any(|w| w == &secret[..64]),
            "the control conversion did not read the sibling ({} bytes)",
            leaked.len()
        );

        // Alone in its private directory, the extent names nothing.
        let work = dir.path().join("attacker.convert");
        std::fs::create_dir(&work).unwrap();
        let result = convert_alone(&limits(), &staged, &work, "vmdk", "raw").await;
        let err = result.expect_err("the conversion must not find the sibling");
        assert!(err.contains("qemu-img convert failed"), "{err}");
        assert!(!work.join("converted").exists());
        assert!(std::fs::read(dir.path().join("victim")).unwrap() == secret);
    }

    /// Raw output of a mostly empty image stays sparse.
    #[tokio::test]
    async fn raw_output_stays_sparse() {
        use std::os::unix::fs::MetadataExt;
        if !have_qemu_img() {
            eprintln!("qemu-img missing: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("img");
        let out = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&staged)
            .arg("256M")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let work = dir.path().join("img.convert");
        std::fs::create_dir(&work).unwrap();
        let output = convert_alone(&limits(), &staged, &work, "qcow2", "raw")
            .await
            .unwrap();
        let meta = std::fs::metadata(&output).unwrap();
        assert_eq!(meta.len(), 256 << 20);
        let allocated = meta.blocks() * 512;
        assert!(
            allocated < 4 << 20,
            "{allocated} bytes allocated for 256 MiB of zeros"
        );
    }
}
