//! `[import]` and `[image_format]`: the interoperable image import (Glance's
//! `enabled_import_methods`, `node_staging_uri`, `[import_filtering_opts]`,
//! `[image_import_opts]`, `[task] task_time_to_live`) and disk-format inspection (Glance's
//! `[image_format]`). Every key is optional; unknown keys are refused.

use std::path::PathBuf;

use serde::Deserialize;

/// The import methods Glass implements, in the order `GET /v2/info/import` lists them.
pub const IMPORT_METHODS: &[&str] = &[
    "glance-direct",
    "web-download",
    "copy-image",
    "glance-download",
];

/// `[import]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImportConfig {
    /// Import methods offered (Glance's `enabled_import_methods`). An empty list turns the
    /// import API off (`/stage` and `/import` answer 404 and 400 as in Glance).
    pub enabled_methods: Vec<String>,
    /// The staging area of glance-direct and web-download (Glance's `node_staging_uri`);
    /// relative paths are under `data_dir`.
    pub staging_directory: PathBuf,
    /// Most bytes the staging area may hold at once, all imports together, in MiB.
    pub staging_quota_mb: u64,
    /// Hours a finished task stays listed (Glance's `task_time_to_live`).
    pub task_time_to_live_h: u64,
    /// Minutes after which the import lock of a task that stopped making progress may be
    /// taken over by a new import (Glance: 60).
    pub lock_expiry_min: u64,
    /// `[import.web_download]`: what web-download may reach.
    pub web_download: WebDownloadConfig,
    /// `[import.plugins]`: decompression, conversion and property injection.
    pub plugins: ImportPluginsConfig,
    /// `[import.glance_download]`: the Images API endpoints glance-download pulls from.
    pub glance_download: GlanceDownloadConfig,
}

/// `[import.glance_download]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GlanceDownloadConfig {
    /// Region name → that region's Images API endpoint (`RegionTwo =
    /// "https://image.two.example:9292"`). The endpoint still passes the
    /// `[import.web_download]` filters.
    pub endpoints: std::collections::BTreeMap<String, String>,
    /// Properties of the remote image copied to the new one (Glance's
    /// `[glance_download_properties] extra_properties`); a trailing `*` matches a prefix.
    pub extra_properties: Vec<String>,
}

impl Default for GlanceDownloadConfig {
    fn default() -> Self {
        GlanceDownloadConfig {
            endpoints: Default::default(),
            extra_properties: ["hw_*", "trait:*", "os_distro", "os_secure_boot", "os_type"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            enabled_methods: ["glance-direct", "web-download", "copy-image"]
                .map(String::from)
                .to_vec(),
            staging_directory: PathBuf::from("staging"),
            staging_quota_mb: 100 * 1024,
            task_time_to_live_h: 48,
            lock_expiry_min: 60,
            web_download: WebDownloadConfig::default(),
            plugins: ImportPluginsConfig::default(),
            glance_download: GlanceDownloadConfig::default(),
        }
    }
}

impl ImportConfig {
    pub fn enabled(&self, method: &str) -> bool {
        self.enabled_methods.iter().any(|m| m == method)
    }

    pub fn validate(&self) -> Result<(), String> {
        for m in &self.enabled_methods {
            if !IMPORT_METHODS.contains(&m.as_str()) {
                return Err(format!(
                    "import: unknown import method {m:?} (known: {})",
                    IMPORT_METHODS.join(", ")
                ));
            }
        }
        for net in &self.web_download.allowed_networks {
            super::network::parse_network(net)
                .map_err(|e| format!("import.web_download: allowed_networks: {e}"))?;
        }
        if let Some(target) = &self.plugins.convert_to
            && !CONVERT_TARGETS.contains(&target.as_str())
        {
            return Err(format!(
                "import.plugins: convert_to {target:?} is not one of {}",
                CONVERT_TARGETS.join(", ")
            ));
        }
        Ok(())
    }
}

/// Formats `[import.plugins] convert_to` may name.
pub const CONVERT_TARGETS: &[&str] = &["raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi"];

/// `[import.web_download]`: Glance's `[import_filtering_opts]` (an allow list, when set, wins
/// over the matching deny list) plus what Glance lacks: every address the host name resolves
/// to (and every redirect's) must be public unless `allowed_networks` contains it, and the
/// transfer is capped in size and time.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebDownloadConfig {
    pub allowed_schemes: Vec<String>,
    pub disallowed_schemes: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub disallowed_hosts: Vec<String>,
    pub allowed_ports: Vec<u16>,
    pub disallowed_ports: Vec<u16>,
    /// Networks (CIDR, or a single address) that may be reached even though they are not
    /// public: loopback, private (RFC 1918, unique local), link-local, shared (CGNAT), cloud
    /// metadata (169.254.169.254). Empty: only public addresses.
    pub allowed_networks: Vec<String>,
    /// Redirects followed (each one checked like the first URL).
    pub max_redirects: usize,
    /// Largest download, in MiB (and never above `image_size_cap`).
    pub max_size_mb: u64,
    /// Whole-transfer time limit, in seconds.
    pub timeout_s: u64,
    /// Connecting, and each wait for bytes, in seconds.
    pub connect_timeout_s: u64,
}

impl Default for WebDownloadConfig {
    fn default() -> Self {
        WebDownloadConfig {
            allowed_schemes: vec!["http".into(), "https".into()],
            disallowed_schemes: Vec::new(),
            allowed_hosts: Vec::new(),
            disallowed_hosts: Vec::new(),
            allowed_ports: vec![80, 443],
            disallowed_ports: Vec::new(),
            allowed_networks: Vec::new(),
            max_redirects: 5,
            max_size_mb: 1 << 20,
            timeout_s: 3600,
            connect_timeout_s: 30,
        }
    }
}

/// `[import.plugins]`: what glance-direct and web-download imports do to the data between
/// the staging area and the stores (Glance's `image_import_plugins`; never on copy-image).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImportPluginsConfig {
    /// Decompress gzip and zstd data (detected by content) before anything else.
    pub decompress: bool,
    /// Convert to this disk format with `qemu-img convert` (Glance's
    /// `[image_conversion] output_format`), after the data passed inspection.
    pub convert_to: Option<String>,
    /// `qemu-img` to run.
    pub qemu_img: PathBuf,
    /// Time limit of one conversion, in seconds.
    pub convert_timeout_s: u64,
    /// Address-space limit of the conversion process, in MiB.
    pub convert_memory_mb: u64,
    /// Properties set on every imported image (Glance's `inject_image_metadata`); names
    /// starting with `os_glance` are dropped.
    pub inject: std::collections::BTreeMap<String, String>,
    /// Inject also when an admin imports (Glance's `ignore_user_roles`: roles whose imports
    /// are left alone; here: `admin` unless this is true).
    pub inject_for_admins: bool,
}

impl Default for ImportPluginsConfig {
    fn default() -> Self {
        ImportPluginsConfig {
            decompress: false,
            convert_to: None,
            qemu_img: PathBuf::from("qemu-img"),
            convert_timeout_s: 600,
            convert_memory_mb: 1024,
            inject: Default::default(),
            inject_for_admins: false,
        }
    }
}

/// `[image_format]`: disk-format inspection of uploaded and imported data (Glance's
/// `[image_format]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImageFormatConfig {
    /// Inspect image data at all (container_format `bare` only, as Glance).
    pub inspect: bool,
    /// Refuse data whose content does not match its `disk_format` (Glance's
    /// `require_image_format_match`). Unsafe data is refused either way.
    pub require_image_format_match: bool,
    /// GPT/MBR safety checks that only warn (Glance's `gpt_safety_checks_nonfatal`: `mbr`,
    /// `gptmbr`).
    pub gpt_safety_checks_nonfatal: Vec<String>,
    /// The VMDK createTypes accepted (Glance's `vmdk_allowed_types`; empty: no VMDK at all).
    /// The inspector refuses every type but the two single-file ones anyway.
    pub vmdk_allowed_types: Vec<String>,
    /// Memory cap of the inspector component, in MiB.
    pub inspector_memory_mb: usize,
    /// How long the inspector may compute without reading a byte, in milliseconds.
    pub inspector_deadline_ms: u64,
}

impl Default for ImageFormatConfig {
    fn default() -> Self {
        ImageFormatConfig {
            inspect: true,
            require_image_format_match: true,
            gpt_safety_checks_nonfatal: Vec::new(),
            vmdk_allowed_types: vec!["streamOptimized".into(), "monolithicSparse".into()],
            inspector_memory_mb: 32,
            inspector_deadline_ms: 2000,
        }
    }
}
