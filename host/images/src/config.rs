//! The service configuration: a TOML file (every key optional, unknown keys refused with an
//! error naming them), overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use glass_runtime::PluginCallsConfig;

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// No authentication (the embedded default): a request without identity headers is an
    /// admin of `noauth_project`; identity headers, if sent, are taken as given.
    #[default]
    Noauth,
    /// Identity from X-Project-Id / X-User-Id / X-Roles, as set by a trusted proxy.
    TrustedHeaders,
    /// `X-Auth-Token` validated against Keystone v3 (`[keystone]`), as keystonemiddleware does.
    Keystone,
}

/// `[keystone]`: where tokens are validated and the service user Glass validates them as.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KeystoneConfig {
    /// Keystone's identity endpoint, e.g. `http://127.0.0.1:5000` (`/v3` is added).
    pub auth_url: String,
    /// What 401 answers point clients to (`WWW-Authenticate: Keystone uri=…`); `auth_url`
    /// when unset.
    pub www_authenticate_uri: Option<String>,
    /// The service user (needs the `service` or `admin` role to validate others' tokens).
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    /// How long a validated token is trusted without asking again (never past its expiry).
    pub token_cache_time_s: u64,
    /// Most tokens kept in the cache (and, apart, most invalid tokens remembered).
    pub token_cache_size: usize,
    /// How long a token Keystone called invalid is refused without asking again (0: ask
    /// every time). Short: a token is never valid after being invalid, but a brief window
    /// keeps a flood of one bogus token from reaching Keystone each time.
    pub invalid_token_cache_time_s: u64,
    /// Deadline of each call to Keystone; past it the request gets a 503.
    pub timeout_ms: u64,
}

impl Default for KeystoneConfig {
    fn default() -> Self {
        KeystoneConfig {
            auth_url: String::new(),
            www_authenticate_uri: None,
            username: "glance".into(),
            password: String::new(),
            project_name: "service".into(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            token_cache_time_s: 300,
            token_cache_size: 10_000,
            invalid_token_cache_time_s: 5,
            timeout_ms: 5_000,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port the API listens on.
    pub listen: SocketAddr,
    /// Where the registry (and, with the file store, image data) live.
    pub data_dir: PathBuf,
    pub auth: AuthMode,
    /// The project every noauth request belongs to.
    pub noauth_project: String,
    /// `[keystone]`, for `auth = "keystone"`.
    pub keystone: KeystoneConfig,
    /// An oslo.policy file (JSON or YAML) whose rules replace Glance's defaults, rule by rule.
    pub policy_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Default page size of list calls (Glance's `limit_param_default`).
    pub limit_param_default: usize,
    /// Largest page size a client may ask for (Glance's `api_limit_max`).
    pub api_limit_max: usize,
    /// Largest image accepted, in bytes (Glance's `image_size_cap`).
    pub image_size_cap: u64,
    /// Most tags one image may carry (Glance's `image_tag_quota`).
    pub image_tag_quota: usize,
    /// Most extra properties one image may carry (Glance's `image_property_quota`).
    pub image_property_quota: usize,
    /// Most members one image may have (Glance's `image_member_quota`).
    pub image_member_quota: usize,
    /// Image stores. With none configured, one file store (`store-fs`) keeps images in
    /// `<data_dir>/images`.
    pub stores: Vec<StoreConfig>,
    /// Keep a deleted image's data for `scrub_time_s`, restorable by an admin, before the
    /// reaper removes it (Glance's `delayed_delete`).
    pub delayed_delete: bool,
    /// Seconds a deleted image's data is kept with `delayed_delete` (Glance's `scrub_time`).
    pub scrub_time_s: u64,
    /// How often the reaper looks for data due for removal (Glance's scrubber `wakeup_time`).
    pub reaper_interval_s: u64,
    /// The background data auditor.
    pub auditor: AuditorConfig,
    /// The local cache of images held in remote stores.
    pub image_cache: ImageCacheConfig,
    /// Metadata validators (`[[validators]]`), called in order on image create and PATCH.
    /// None by default.
    pub validators: Vec<ValidatorConfig>,
    /// `[registry]`: where image metadata lives (embedded sled, or PostgreSQL shared by
    /// several nodes).
    pub registry: RegistryConfig,
    /// `[import]`: the interoperable image import (methods, staging, web-download filtering,
    /// import plugins, tasks).
    pub import: crate::import::config::ImportConfig,
    /// `[image_format]`: disk-format inspection of image data.
    pub image_format: crate::import::config::ImageFormatConfig,
    /// `[server]`: HTTP timeouts and connection limits.
    pub server: ServerConfig,
    /// `[plugin_calls]`: how many plugin calls of each kind may run at once.
    pub plugin_calls: PluginCallsConfig,
}

/// `[server]`: what one client may hold of the HTTP server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Seconds a client has to send a request's headers. It also bounds how long an idle
    /// keep-alive connection waits for its next request (hyper's header timer runs from the
    /// moment the connection waits for a request).
    pub header_read_timeout_s: u64,
    /// Keep connections open between requests (Glance's `http_keepalive`).
    pub http_keepalive: bool,
    /// Seconds a request body (upload, stage, JSON) may go without a byte before the request
    /// fails: an upload is cut and its image is `queued` again.
    pub body_idle_timeout_s: u64,
    /// Connections one client address may hold open at once; more are closed on accept.
    pub max_connections_per_client: usize,
    /// Connections open at once, all clients together.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout_s: 30,
            http_keepalive: true,
            body_idle_timeout_s: 60,
            max_connections_per_client: 256,
            max_connections: 4096,
        }
    }
}

/// Which registry engine holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RegistryBackend {
    /// sled in `<data_dir>/registry`: one node.
    #[default]
    Sled,
    /// PostgreSQL at `url`: any number of nodes.
    Postgres,
}

/// `[registry]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    pub backend: RegistryBackend,
    /// With `backend = "postgres"`: `postgres://user[:password]@host[:port]/db`, or libpq's
    /// `host=… port=… user=… dbname=…` (a `host` starting with `/` is a unix socket
    /// directory). No TLS: loopback, a unix socket or a trusted network.
    pub url: Option<String>,
    /// Most connections this node opens to PostgreSQL.
    pub pool_size: usize,
    /// With sled: memory for its page cache (MiB). The registry's resident memory stays near
    /// this whatever the catalogue's size.
    pub cache_mb: u64,
    /// Work one list request may spend (records read, index seeks) before it answers with
    /// what it found and a `next` link: a filter no index serves cannot hold a core.
    pub list_budget: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            backend: RegistryBackend::Sled,
            url: None,
            pool_size: 16,
            cache_mb: 128,
            list_budget: glass_registry::DEFAULT_LIST_BUDGET,
        }
    }
}

/// What a validator's verdict does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ValidatorMode {
    /// Violations refuse the request (400 naming the property and the rule).
    #[default]
    Enforce,
    /// Violations are logged and counted; the request goes through.
    Warn,
}

/// What happens when a validator fails (traps, runs past its deadline or memory cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ValidatorFailure {
    /// The request is refused with 503.
    #[default]
    Closed,
    /// The request goes through as if the validator had accepted (logged and counted).
    Open,
}

/// `[[validators]]`: one metadata validator component (`glass:metadef@0.1.0`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ValidatorConfig {
    /// The validator's id (the plugin name in `/glass/v1/plugins`, logs and metrics).
    pub id: String,
    /// A built-in validator (`validator-metadef`) or the path of a component file.
    pub component: String,
    #[serde(default)]
    pub mode: ValidatorMode,
    #[serde(default)]
    pub on_failure: ValidatorFailure,
    /// Memory cap of one call, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_limit_mb: usize,
    /// How long one call may run, in milliseconds.
    #[serde(default = "default_validator_deadline_ms")]
    pub cpu_deadline_ms: u64,
}

fn default_validator_deadline_ms() -> u64 {
    1000
}

/// `[image_cache]`: a local copy of images whose data lives in a remote store.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImageCacheConfig {
    pub enabled: bool,
    /// Relative paths are under `data_dir`.
    pub directory: PathBuf,
    /// The pruner keeps the cache under this size (least recently used go first).
    pub max_size_mb: u64,
    /// A fill unfinished for this long is removed by the cleaner.
    pub stall_time_s: u64,
    /// How often the prefetcher, pruner and cleaner run.
    pub interval_s: u64,
}

impl Default for ImageCacheConfig {
    fn default() -> Self {
        ImageCacheConfig {
            enabled: true,
            directory: PathBuf::from("image-cache"),
            max_size_mb: 10 * 1024,
            stall_time_s: 24 * 3600,
            interval_s: 60,
        }
    }
}

/// `[auditor]`: re-reads every stored copy and checks it against its recorded digest.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditorConfig {
    pub enabled: bool,
    /// Seconds from the start of one pass to the start of the next.
    pub interval_s: u64,
    /// Read rate cap, MiB/s, so audits never crowd out downloads (0: no cap).
    pub rate_mb_s: u64,
}

impl Default for AuditorConfig {
    fn default() -> Self {
        AuditorConfig {
            enabled: false,
            interval_s: 24 * 3600,
            rate_mb_s: 50,
        }
    }
}

/// One image store: a driver component and what it is granted.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The store's id, as it appears in the `stores` image attribute.
    pub id: String,
    /// A built-in driver (`store-fs`) or the path of a component file.
    pub driver: String,
    /// New image data goes to the default store (the first one if none says so).
    #[serde(default)]
    pub default: bool,
    /// Shown in `GET /v2/info/stores`.
    #[serde(default)]
    pub description: Option<String>,
    /// Downloads read from the location in the store of highest weight first, and fall back
    /// to the next one if it fails (Glance's `weight`).
    #[serde(default)]
    pub weight: i64,
    /// The only directory the driver may touch (relative paths are under `data_dir`).
    pub directory: Option<PathBuf>,
    /// `host:port` authorities the driver may reach over HTTP (a bare host: ports 80 and
    /// 443). Empty: no network.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The driver's own settings (endpoint, bucket, credentials, …), handed to it as its
    /// environment. Values may be strings, numbers or booleans.
    #[serde(default)]
    pub settings: toml::Table,
    /// Memory cap of one driver call, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_limit_mb: usize,
    /// How long one driver call may run without moving a byte, in milliseconds.
    #[serde(default = "default_deadline_ms")]
    pub cpu_deadline_ms: u64,
    /// Bound on each phase of the driver's outgoing requests (connect, first byte, between
    /// bytes), in milliseconds.
    #[serde(default = "default_network_timeout_ms")]
    pub network_timeout_ms: u64,
    /// Keep a local copy of downloaded images (`[image_cache]`). Default: on for every driver
    /// but the local `store-fs`.
    #[serde(default)]
    pub cache: Option<bool>,
}

fn default_network_timeout_ms() -> u64 {
    30_000
}

fn default_memory_mb() -> usize {
    64
}

fn default_deadline_ms() -> u64 {
    5000
}

impl StoreConfig {
    /// The embedded default: store-fs in `<data_dir>/images`.
    pub fn default_fs() -> StoreConfig {
        StoreConfig {
            id: "fs".into(),
            driver: "store-fs".into(),
            default: true,
            description: Some("Local file store".into()),
            weight: 0,
            directory: Some(PathBuf::from("images")),
            hosts: Vec::new(),
            settings: toml::Table::new(),
            memory_limit_mb: default_memory_mb(),
            cpu_deadline_ms: default_deadline_ms(),
            network_timeout_ms: default_network_timeout_ms(),
            cache: None,
        }
    }

    /// Whether downloads from this store are cached.
    pub fn cacheable(&self) -> bool {
        self.cache.unwrap_or(self.driver != "store-fs")
    }

    /// The settings as the driver's environment: strings verbatim, numbers and booleans in
    /// their TOML spelling. Nested tables and arrays are refused.
    pub fn settings_env(&self) -> Result<Vec<(String, String)>, String> {
        self.settings
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(format!(
                            "store {}: settings.{key} must be a string, number or boolean, not {}",
                            self.id,
                            other.type_str()
                        ));
                    }
                };
                Ok((key.clone(), text))
            })
            .collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9292)),
            data_dir: PathBuf::from("data"),
            auth: AuthMode::Noauth,
            noauth_project: "0123456789abcdef0123456789abcdef".into(),
            keystone: KeystoneConfig::default(),
            policy_file: None,
            log_format: LogFormat::Text,
            limit_param_default: 25,
            api_limit_max: 1000,
            image_size_cap: 1 << 40,
            image_tag_quota: 128,
            image_property_quota: 128,
            image_member_quota: 128,
            stores: Vec::new(),
            delayed_delete: false,
            scrub_time_s: 0,
            reaper_interval_s: 300,
            auditor: AuditorConfig::default(),
            image_cache: ImageCacheConfig::default(),
            validators: Vec::new(),
            registry: RegistryConfig::default(),
            import: Default::default(),
            image_format: Default::default(),
            server: ServerConfig::default(),
            plugin_calls: PluginCallsConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Config {
    /// Reads a configuration file; every key not in it keeps its default.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Why listening where this configuration says is dangerous, if it is: `noauth` or
    /// `trusted-headers` on an address other than loopback lets anyone who reaches it claim
    /// any identity (trusted headers are only safe behind a proxy that sets them).
    pub fn exposure_warning(&self) -> Option<&'static str> {
        if self.listen.ip().is_loopback() {
            return None;
        }
        match self.auth {
            AuthMode::Noauth => {
                Some("noauth mode on a non-loopback address: anyone who can reach it is admin")
            }
            AuthMode::TrustedHeaders => Some(
                "trusted-headers mode on a non-loopback address: anyone who can reach it \
                 directly can claim any project and role; only a proxy that sets the identity \
                 headers should be able to connect",
            ),
            AuthMode::Keystone => None,
        }
    }

    /// The configured stores, or the embedded default file store.
    pub fn effective_stores(&self) -> Vec<StoreConfig> {
        if self.stores.is_empty() {
            vec![StoreConfig::default_fs()]
        } else {
            self.stores.clone()
        }
    }

    /// Checks what serde cannot: store ids unique and well-formed, at most one default.
    pub fn validate(&self) -> Result<(), String> {
        let server = &self.server;
        if server.header_read_timeout_s == 0
            || server.body_idle_timeout_s == 0
            || server.max_connections_per_client == 0
            || server.max_connections == 0
        {
            return Err("server: timeouts and connection limits must be positive".into());
        }
        let calls = &self.plugin_calls;
        if [
            calls.uploads_per_store,
            calls.downloads_per_store,
            calls.other_per_store,
            calls.inspector,
            calls.validators,
        ]
        .contains(&0)
        {
            return Err("plugin_calls: every budget must be positive".into());
        }
        let mut seen = std::collections::HashSet::new();
        for store in &self.stores {
            let ok = !store.id.is_empty()
                && store.id.len() <= 255
                && store
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(format!(
                    "stores: id {:?} must be 1-255 letters, digits, '-' or '_'",
                    store.id
                ));
            }
            if !seen.insert(store.id.as_str()) {
                return Err(format!("stores: id {:?} appears twice", store.id));
            }
            store.settings_env()?;
        }
        if self.auth == AuthMode::Keystone {
            let k = &self.keystone;
            if !k.auth_url.starts_with("http://") && !k.auth_url.starts_with("https://") {
                return Err(
                    "keystone: auth_url must be an http(s) URL with auth = \"keystone\"".into(),
                );
            }
            if k.username.is_empty() || k.password.is_empty() {
                return Err(
                    "keystone: username and password are needed with auth = \"keystone\"".into(),
                );
            }
        }
        match (self.registry.backend, &self.registry.url) {
            (RegistryBackend::Postgres, None) => {
                return Err("registry: backend = \"postgres\" needs url".into());
            }
            (RegistryBackend::Sled, Some(_)) => {
                return Err("registry: url is only for backend = \"postgres\"".into());
            }
            _ => {}
        }
        self.import.validate()?;
        if self.registry.pool_size == 0 {
            return Err("registry: pool_size must be at least 1".into());
        }
        if self.registry.list_budget < 100 {
            return Err("registry: list_budget must be at least 100".into());
        }
        if self.stores.iter().filter(|s| s.default).count() > 1 {
            return Err("stores: more than one store has default = true".into());
        }
        let mut seen = std::collections::HashSet::new();
        for v in &self.validators {
            let ok = !v.id.is_empty()
                && v.id.len() <= 255
                && v.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(format!(
                    "validators: id {:?} must be 1-255 letters, digits, '-' or '_'",
                    v.id
                ));
            }
            if !seen.insert(v.id.as_str()) {
                return Err(format!("validators: id {:?} appears twice", v.id));
            }
            if self.effective_stores().iter().any(|s| s.id == v.id) {
                return Err(format!(
                    "validators: id {:?} is also a store's id (plugins are named by id)",
                    v.id
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("listen = \"127.0.0.1:1\"\nbogus_key = 1\n").unwrap_err();
        assert!(err.contains("bogus_key"), "{err}");
    }

    #[test]
    fn multi_store_example_parses() {
        let text = include_str!("../../../examples/multi-store.toml");
        let config = Config::parse(text).expect("examples/multi-store.toml parses");
        let ids: Vec<&str> = config.stores.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["fs", "s3", "swift", "web"]);
        let swift = config.stores[2].settings_env().unwrap();
        assert!(
            swift.contains(&("auth_version".into(), "1".into())),
            "{swift:?}"
        );
        assert!(swift.contains(&("create_container".into(), "true".into())));
    }

    #[test]
    fn store_mistakes_are_named() {
        let twice = "[[stores]]\nid = \"a\"\ndriver = \"store-fs\"\n[[stores]]\nid = \"a\"\ndriver = \"store-fs\"\n";
        assert!(Config::parse(twice).unwrap_err().contains("appears twice"));
        let nested = "[[stores]]\nid = \"a\"\ndriver = \"store-fs\"\n[stores.settings]\nx = [1]\n";
        assert!(Config::parse(nested).unwrap_err().contains("settings.x"));
    }

    #[test]
    fn validators_parse_and_mistakes_are_named() {
        let text = "[[validators]]\nid = \"metadef\"\ncomponent = \"validator-metadef\"\n\
                    [[validators]]\nid = \"vendor\"\ncomponent = \"/v.wasm\"\nmode = \"warn\"\n\
                    on_failure = \"open\"\ncpu_deadline_ms = 200\n";
        let config = Config::parse(text).expect("validators parse");
        assert_eq!(config.validators.len(), 2);
        assert_eq!(config.validators[0].mode, ValidatorMode::Enforce);
        assert_eq!(config.validators[0].on_failure, ValidatorFailure::Closed);
        assert_eq!(config.validators[0].cpu_deadline_ms, 1000);
        assert_eq!(config.validators[1].mode, ValidatorMode::Warn);
        assert_eq!(config.validators[1].on_failure, ValidatorFailure::Open);
        let clash = "[[validators]]\nid = \"fs\"\ncomponent = \"validator-metadef\"\n";
        assert!(Config::parse(clash).unwrap_err().contains("store's id"));
        let bad_mode = "[[validators]]\nid = \"v\"\ncomponent = \"x\"\nmode = \"strict\"\n";
        assert!(Config::parse(bad_mode).unwrap_err().contains("strict"));
    }

    #[test]
    fn keystone_example_parses() {
        let text = include_str!("../../../examples/keystone.toml");
        let config = Config::parse(text).expect("examples/keystone.toml parses");
        assert_eq!(config.auth, AuthMode::Keystone);
        assert_eq!(config.keystone.auth_url, "http://127.0.0.1:5000");
        let no_password = "auth = \"keystone\"\n[keystone]\nauth_url = \"http://k:5000\"\n";
        assert!(Config::parse(no_password).unwrap_err().contains("password"));
        let no_url = "auth = \"keystone\"\n";
        assert!(Config::parse(no_url).unwrap_err().contains("auth_url"));
    }

    #[test]
    fn postgres_example_parses() {
        let text = include_str!("../../../examples/postgres.toml");
        let config = Config::parse(text).expect("examples/postgres.toml parses");
        assert_eq!(config.registry.backend, RegistryBackend::Postgres);
        assert!(config.registry.url.is_some());
        let missing = "[registry]\nbackend = \"postgres\"\n";
        assert!(Config::parse(missing).unwrap_err().contains("needs url"));
        let unknown = "[registry]\nbackend = \"mysql\"\n";
        assert!(Config::parse(unknown).unwrap_err().contains("mysql"));
    }

    #[test]
    fn identity_from_headers_beyond_loopback_is_warned_about() {
        let at = |auth, listen: &str| Config {
            auth,
            listen: listen.parse().unwrap(),
            ..Config::default()
        };
        let exposed = at(AuthMode::TrustedHeaders, "0.0.0.0:9292");
        assert!(
            exposed
                .exposure_warning()
                .unwrap()
                .contains("trusted-headers")
        );
        assert!(
            at(AuthMode::TrustedHeaders, "10.1.2.3:9292")
                .exposure_warning()
                .is_some()
        );
        assert!(
            at(AuthMode::TrustedHeaders, "[::]:9292")
                .exposure_warning()
                .is_some()
        );
        assert!(
            at(AuthMode::Noauth, "0.0.0.0:9292")
                .exposure_warning()
                .is_some()
        );
        assert!(
            at(AuthMode::TrustedHeaders, "127.0.0.1:9292")
                .exposure_warning()
                .is_none()
        );
        assert!(
            at(AuthMode::TrustedHeaders, "[::1]:9292")
                .exposure_warning()
                .is_none()
        );
        assert!(
            at(AuthMode::Keystone, "0.0.0.0:9292")
                .exposure_warning()
                .is_none()
        );
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../../examples/glass.toml");
        let config = Config::parse(text).expect("examples/glass.toml parses");
        assert_eq!(config.auth, AuthMode::Noauth);
        assert_eq!(config.effective_stores(), vec![StoreConfig::default_fs()]);
        // The example spells out the defaults.
        assert_eq!(config.import, Default::default());
        assert_eq!(config.image_format, Default::default());
        assert_eq!(config.server, ServerConfig::default());
        assert_eq!(config.plugin_calls, PluginCallsConfig::default());
    }
}
