//! Guest side of the `glass:store@0.1.0` contract, shared by every store driver: the
//! generated bindings (with `export_driver!` to export a driver's [`Driver`] impl), strict
//! image-id checking, and [`splice`], which moves bytes between two `wasi:io` streams without
//! bringing them into the guest's memory.
//!
//! A driver crate is a `cdylib` that implements [`Driver`] and calls
//! `glass_store_guest::export_driver!(MyDriver);`.

/// Bindings generated from `wit/glass-store@0.1.0` plus the WASI interfaces drivers use
/// (`wasi:io`, `wasi:clocks`, `wasi:filesystem`, `wasi:cli/environment` for a driver's
/// settings, `wasi:http/outgoing-handler` for remote backends). Importing them costs nothing: a component
/// only imports what it calls, and the host grants nothing unless configured.
pub mod bindings {
    wit_bindgen::generate!({
        inline: "
            package glass:store-guest;

            world driver {
                include glass:store/store@0.1.0;
                import wasi:filesystem/preopens@0.2.12;
                import wasi:cli/environment@0.2.12;
                import wasi:http/outgoing-handler@0.2.12;
            }
        ",
        path: [
            "../../wit/deps/io.wit",
            "../../wit/deps/clocks.wit",
            "../../wit/deps/random.wit",
            "../../wit/deps/filesystem.wit",
            "../../wit/deps/sockets.wit",
            "../../wit/deps/cli.wit",
            "../../wit/deps/http.wit",
            "../../wit/glass-store@0.1.0",
        ],
        world: "glass:store-guest/driver",
        pub_export_macro: true,
        export_macro_name: "export_driver",
        default_bindings_module: "glass_store_guest::bindings",
        generate_all,
    });
}

pub mod http;

pub use bindings::export_driver;

/// A driver setting: the value of `name` in the store's `settings` table, which the host
/// gives the driver as its environment.
pub fn setting(name: &str) -> Option<String> {
    bindings::wasi::cli::environment::get_environment()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A setting the driver cannot work without.
pub fn required_setting(name: &str) -> Result<String, StoreError> {
    setting(name).ok_or_else(|| StoreError::Other(format!("setting {name} is missing")))
}

/// A numeric setting, or `default` when absent; a value that is not a number is an error.
pub fn number_setting(name: &str, default: u64) -> Result<u64, StoreError> {
    match setting(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| StoreError::Other(format!("setting {name} is not a number: {v:?}"))),
    }
}

/// A boolean setting (`true`/`false`), or `default` when absent.
pub fn bool_setting(name: &str, default: bool) -> bool {
    match setting(name).as_deref().map(str::trim) {
        Some("true" | "1" | "yes") => true,
        Some("false" | "0" | "no") => false,
        _ => default,
    }
}
pub use bindings::exports::glass::store::driver::{
    Capabilities, DriverInfo, Guest as Driver, StoreError, Stored,
};
pub use bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};

/// The most a single `blocking-splice` step asks for. The host moves at most 64 KiB per step
/// whatever is asked; asking for more only saves nothing.
pub const SPLICE_STEP: u64 = 64 * 1024;

/// Checks that `id` is an image id as the host sends it: a UUID in canonical form (lowercase
/// hex, hyphens at 8-4-4-4-12). Anything else is refused, so an id can be used as a file or
/// object name without further escaping.
pub fn check_image_id(id: &str) -> Result<(), StoreError> {
    if is_canonical_uuid(id) {
        Ok(())
    } else {
        Err(StoreError::InvalidLocation(format!(
            "image id is not a canonical lowercase UUID: {:?}",
            truncate(id)
        )))
    }
}

/// True when `s` is exactly `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex.
pub fn is_canonical_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// At most 80 characters of untrusted input, for error messages.
pub fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Why [`splice`] stopped early.
#[derive(Debug)]
pub enum SpliceError {
    /// One of the streams failed; the message is the host's description.
    Failed(String),
}

impl From<SpliceError> for StoreError {
    fn from(e: SpliceError) -> Self {
        match e {
            SpliceError::Failed(m) => StoreError::Unavailable(format!("stream failed: {m}")),
        }
    }
}

/// Moves bytes from `src` into `dst` until `src` is closed or `limit` bytes have moved, then
/// flushes `dst`. Returns the number of bytes moved. The bytes go host to host
/// (`blocking-splice`); they never enter this guest's memory.
pub fn splice(
    dst: &OutputStream,
    src: &InputStream,
    limit: Option<u64>,
) -> Result<u64, SpliceError> {
    let mut moved = 0u64;
    loop {
        let want = match limit {
            Some(l) if moved >= l => break,
            Some(l) => (l - moved).min(SPLICE_STEP),
            None => SPLICE_STEP,
        };
        match dst.blocking_splice(src, want) {
            Ok(n) => moved += n,
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(SpliceError::Failed(e.to_debug_string()));
            }
        }
    }
    match dst.blocking_flush() {
        Ok(()) => Ok(moved),
        Err(StreamError::Closed) => Err(SpliceError::Failed("output stream closed".into())),
        Err(StreamError::LastOperationFailed(e)) => Err(SpliceError::Failed(e.to_debug_string())),
    }
}

/// Reads up to `limit` bytes (fewer only at the end of the input).
pub fn read_up_to(data: &InputStream, limit: u64) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    while (out.len() as u64) < limit {
        let want = (limit - out.len() as u64).min(SPLICE_STEP);
        match data.blocking_read(want) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "reading the image data: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    Ok(out)
}

/// After `sent` bytes the input must be at its end: the host checks that an add read its
/// input to the end, and an input longer than announced is an error.
pub fn expect_end(data: &InputStream, sent: u64) -> Result<(), StoreError> {
    loop {
        match data.blocking_read(1) {
            Err(StreamError::Closed) => return Ok(()),
            Ok(b) if b.is_empty() => continue,
            Ok(_) => {
                return Err(StoreError::Other(format!(
                    "the image data is longer than the {sent} bytes announced"
                )));
            }
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(StoreError::Unavailable(e.to_debug_string()));
            }
        }
    }
}
