//! The fuzz targets, one module each, and the checks they share.

#[cfg(feature = "host")]
mod json_patch;
#[cfg(feature = "host")]
mod list_query;
#[cfg(feature = "host")]
mod policy;
mod s3_wire;
mod swift_wire;

#[cfg(feature = "host")]
use glass_images::Error;

#[cfg(feature = "host")]
use crate::driver::Rng;
use crate::driver::Target;

/// Every target, in the order `all` runs them.
pub fn all() -> Vec<Box<dyn Target>> {
    #[cfg(feature = "host")]
    let host: Vec<Box<dyn Target>> = vec![
        Box::new(json_patch::JsonPatch),
        Box::new(list_query::ListQuery),
        Box::new(policy::PolicyRules),
    ];
    #[cfg(not(feature = "host"))]
    let host: Vec<Box<dyn Target>> = Vec::new();
    let wire: [Box<dyn Target>; 2] = [Box::new(s3_wire::S3Wire), Box::new(swift_wire::SwiftWire)];
    host.into_iter().chain(wire).collect()
}

/// Bad input must be the client's error (4xx), never a 5xx.
#[cfg(feature = "host")]
fn client_error(e: &Error) -> Result<u64, String> {
    let status = glass_api::error::status(e).as_u16();
    if (400..500).contains(&status) {
        let message = e.to_string();
        let prefix: String = message.chars().take(24).collect();
        Ok(crate::driver::signature((status, prefix)))
    } else {
        Err(format!("{status} for bad input: {e}"))
    }
}

#[cfg(feature = "host")]
/// A string of a length that matters to the limits (0, 255, 256, 65 535, 65 536 bytes or
/// characters) or a short random one.
fn edge_string(rng: &mut Rng) -> String {
    let unit = *rng.pick(&["a", "é", "~", "/", "\u{0}", "\"", "%"]);
    let n = *rng.pick(&[
        0usize, 1, 2, 7, 254, 255, 256, 32_767, 32_768, 65_535, 65_536,
    ]);
    if rng.chance(85) {
        (0..1 + rng.below(12))
            .map(|_| *rng.pick(&["a", "b", "é", "~0", "~1", "/", " ", "os_glance", "-", "0"]))
            .collect()
    } else {
        unit.repeat(n)
    }
}

/// Bytes `i..i+8` as a number (zeros past the end).
fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut n = [0u8; 8];
    for (k, slot) in n.iter_mut().enumerate() {
        *slot = b.get(i + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(n)
}
