//! Builds the guest workspace (`plugins/`) for `wasm32-wasip2` with a nested `cargo build`,
//! copies the components into OUT_DIR, embeds `store-fs` (`GLASS_STORE_FS_WASM`, used by
//! `runtime::STORE_FS`) and tells tests where the fixtures are (`GLASS_FIXTURE_*`).
//!
//! The nested build has its own target directory (`$CARGO_TARGET_DIR/wasm-plugins`, or
//! `<workspace>/target/wasm-plugins`) and none of the host build's flags: a host build's
//! RUSTFLAGS, target or clippy wrapper would be wrong for, or leak into, the guests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

/// (crate file stem, env var naming its copy in OUT_DIR)
const COMPONENTS: &[(&str, &str)] = &[
    ("store_fs", "GLASS_STORE_FS_WASM"),
    ("store_http", "GLASS_STORE_HTTP_WASM"),
    ("store_s3", "GLASS_STORE_S3_WASM"),
    ("store_swift", "GLASS_STORE_SWIFT_WASM"),
    ("store_trap", "GLASS_FIXTURE_STORE_TRAP"),
    ("store_spin", "GLASS_FIXTURE_STORE_SPIN"),
    ("store_hog", "GLASS_FIXTURE_STORE_HOG"),
    ("validator_metadef", "GLASS_VALIDATOR_METADEF_WASM"),
    ("validator_trap", "GLASS_FIXTURE_VALIDATOR_TRAP"),
    ("validator_spin", "GLASS_FIXTURE_VALIDATOR_SPIN"),
    ("inspect_format", "GLASS_INSPECT_FORMAT_WASM"),
];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("host/runtime/ is two levels below the workspace")
        .to_path_buf();
    let plugins = workspace.join("plugins");
    let out_dir = PathBuf::from(env("OUT_DIR"));

    watch(&plugins, &workspace.join("wit"));
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => absolute(&workspace, PathBuf::from(dir)),
        _ => workspace.join("target"),
    }
    .join("wasm-plugins");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    check_target_installed();

    let mut command = Command::new(&cargo);
    command
        .current_dir(&plugins)
        .args(["build", "--release", "--workspace", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if leaks_into_nested_build(key) {
            command.env_remove(key);
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running `cargo build` for plugins/: {e}"));
    if !output.status.success() {
        panic!(
            "building the plugin components (plugins/, target {TARGET}) failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let built = target_dir.join(TARGET).join("release");
    for (stem, var) in COMPONENTS {
        let from = built.join(format!("{stem}.wasm"));
        let to = out_dir.join(format!("{stem}.wasm"));
        std::fs::copy(&from, &to)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
        println!("cargo:rustc-env={var}={}", to.display());
    }
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("cargo sets {key}"))
}

fn absolute(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// Reruns when a guest crate or the WIT changes: every entry of plugins/ except build output.
fn watch(plugins: &Path, wit: &Path) {
    println!("cargo:rerun-if-changed={}", wit.display());
    let entries =
        std::fs::read_dir(plugins).unwrap_or_else(|e| panic!("reading {}: {e}", plugins.display()));
    for entry in entries.flatten() {
        if entry.file_name() != "target" {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
}

/// Variables a host build sets (or a user sets for the host) that must not reach the nested
/// guest build: flags, target selection, wrappers (clippy), and what cargo tells build
/// scripts about the host package.
fn leaks_into_nested_build(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_CRATE_NAME",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "RUSTC_LINKER",
        "RUSTDOC",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CARGO_PKG_",
        "CARGO_PROFILE_",
        "CARGO_TARGET_",
        "DEP_",
        "__CARGO",
    ];
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Fails early with the fix when the guest target's standard library is missing.
fn check_target_installed() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot
        && !sysroot.join("lib/rustlib").join(TARGET).exists()
    {
        panic!(
            "\n\nThe {TARGET} Rust target is not installed; Glass's plugins are built for it.\n\
             Run: rustup target add {TARGET}\n\
             (scripts/serve and scripts/test install it themselves.)\n\n"
        );
    }
}
