//! The Swift and Keystone wire formats of the `swift-wire` crate (free of WASI imports,
//! tested and fuzzed natively), with its errors turned into the store contract's.

use glass_store_guest::StoreError;
pub use swift_wire::*;

fn store_error(e: SwiftError) -> StoreError {
    match e {
        SwiftError::NotFound => StoreError::NotFound,
        SwiftError::AccessDenied(m) => StoreError::AccessDenied(m),
        SwiftError::Unavailable(m) => StoreError::Unavailable(m),
        SwiftError::Other(m) => StoreError::Other(m),
    }
}

/// [`swift_wire::swift_error`] as a store error.
pub fn swift_error(status: u16, what: &str, body: &str) -> StoreError {
    store_error(swift_wire::swift_error(status, what, body))
}

/// [`swift_wire::auth_error`] as a store error.
pub fn auth_error(status: u16, url: &str, user: &str, body: &str) -> StoreError {
    store_error(swift_wire::auth_error(status, url, user, body))
}
