//! The `glass` command: parses flags, loads the configuration, binds and serves.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use glass_host::Config;
use glass_host::config::LogFormat;

/// mimalloc: the API allocates many small objects per request; glibc's malloc cost ~25 % of
/// list time in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "glass",
    version,
    about = "Glass: a Glance-compatible OpenStack image service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Images API v2.
    Serve {
        /// Configuration file (TOML); see examples/glass.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address and port to listen on (overrides the file).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory for the registry and image data (overrides the file).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Copy images (metadata and data) between Images API v2 services (Glass or Glance).
    Replicate {
        /// X-Auth-Token for the source, if it needs one.
        #[arg(long, env = "GLASS_SOURCE_TOKEN", global = true)]
        source_token: Option<String>,
        /// X-Auth-Token for the target, if it needs one.
        #[arg(long, env = "GLASS_TARGET_TOKEN", global = true)]
        target_token: Option<String>,
        #[command(subcommand)]
        action: glass_host::manage::replicate::Action,
    },
    /// Maintenance: offline work on the data directory (the server must not be running), and
    /// `restore-image` through a running server.
    Manage {
        /// Configuration file (TOML); see examples/glass.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the file).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: ManageAction,
    },
    /// List, hot-swap and roll back store driver components of a running server (admin).
    Plugins {
        /// The server's base URL.
        #[arg(long, env = "GLASS_URL", default_value = "http://127.0.0.1:9292")]
        url: String,
        #[command(subcommand)]
        action: glass_host::manage::admin::Action,
    },
    /// The image cache of a running server (admin): list, queue, delete, clear, prune, clean.
    Cache {
        /// The server's base URL.
        #[arg(long, env = "GLASS_URL", default_value = "http://127.0.0.1:9292")]
        url: String,
        #[command(subcommand)]
        action: glass_host::manage::admin::CacheAction,
    },
}

#[derive(Subcommand)]
enum ManageAction {
    /// Load metadata definition files (Glance's etc/metadefs format, one namespace per
    /// *.json file): all are checked first; each namespace is created or replaced whole.
    LoadMetadefs { dir: PathBuf },
    /// Write every metadata definition namespace to DIR, one file each.
    ExportMetadefs { dir: PathBuf },
    /// Copy a registry to another engine (sled <-> PostgreSQL): images with their revisions,
    /// members, tasks, metadata definitions; then compare record counts and a SHA-256 of
    /// both sides. Idempotent. Stop the servers of both first.
    MigrateRegistry {
        /// sled:DIR (a registry directory, e.g. <data_dir>/registry) or postgres:URL.
        #[arg(long)]
        from: glass_host::manage::migrate::Endpoint,
        /// sled:DIR or postgres:URL.
        #[arg(long)]
        to: glass_host::manage::migrate::Endpoint,
        /// Also remove from the destination the images and namespaces the source lacks.
        #[arg(long)]
        prune: bool,
    },
    /// Bring back a deleted image whose data has not been removed yet (`delayed_delete`).
    /// Unlike the others, this goes through a running server's admin API.
    RestoreImage {
        image_id: String,
        /// The server's base URL.
        #[arg(long, env = "GLASS_URL", default_value = "http://127.0.0.1:9292")]
        url: String,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal, and not with NO_COLOR: piped to a file or a collector,
    // lines stay plain text.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(
        std::io::IsTerminal::is_terminal(&std::io::stdout())
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    );
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => serve(config, listen, data_dir).await,
        Command::Manage {
            action: ManageAction::RestoreImage { image_id, url },
            ..
        } => glass_host::manage::admin::restore_image(&url, &image_id).await,
        Command::Manage {
            action: ManageAction::MigrateRegistry { from, to, prune },
            ..
        } => glass_host::manage::migrate::run(&from, &to, prune).await,
        Command::Manage {
            config,
            data_dir,
            action,
        } => manage(config, data_dir, action).await,
        Command::Plugins { url, action } => glass_host::manage::admin::plugins(&url, action).await,
        Command::Cache { url, action } => glass_host::manage::admin::cache(&url, action).await,
        Command::Replicate {
            source_token,
            target_token,
            action,
        } => {
            let tokens = glass_host::manage::replicate::Tokens {
                source: source_token,
                target: target_token,
            };
            glass_host::manage::replicate::run(action, tokens).await
        }
    }
}

async fn manage(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    action: ManageAction,
) -> anyhow::Result<()> {
    let mut cfg = match &config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = data_dir {
        cfg.data_dir = dir;
    }
    init_logging(cfg.log_format);
    std::fs::create_dir_all(&cfg.data_dir)?;
    // The configured engine ([registry]); a sled registry cannot be opened while a server
    // holds it.
    let registry = glass_host::open_registry(&cfg).await.map_err(|e| {
        anyhow::anyhow!("cannot open the registry (is glass serve running?): {e:#}")
    })?;
    let registry = registry.as_ref();
    match action {
        ManageAction::LoadMetadefs { dir } => {
            let loaded = glass_host::manage::metadefs_files::load(registry, &dir).await?;
            println!(
                "loaded {} metadata definition namespaces from {}",
                loaded.len(),
                dir.display()
            );
        }
        ManageAction::ExportMetadefs { dir } => {
            let written = glass_host::manage::metadefs_files::export(registry, &dir).await?;
            println!(
                "exported {} metadata definition namespaces to {}",
                written.len(),
                dir.display()
            );
        }
        ManageAction::RestoreImage { .. } | ManageAction::MigrateRegistry { .. } => {
            unreachable!("handled before opening the registry")
        }
    }
    Ok(())
}

async fn serve(
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut cfg = match &config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = listen {
        cfg.listen = listen;
    }
    if let Some(dir) = data_dir {
        cfg.data_dir = dir;
    }
    init_logging(cfg.log_format);
    if let Some(warning) = cfg.exposure_warning() {
        tracing::warn!(listen = %cfg.listen, "{warning}");
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let bound = listener.local_addr()?;
    let state = glass_host::open_state(cfg).await?;
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("glass listening on http://{bound}");
    tracing::info!(%bound, "serving Images API v2");
    glass_host::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}
