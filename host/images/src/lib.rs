//! Image operations: everything Glass does to an image, below HTTP. Visibility and policy
//! checks, compare-and-swap changes, upload/download/transfer between clients and stores,
//! JSON patch, the validator chain, disk-format inspection, import tasks, the image cache
//! and the periodic processes (reaper, auditor, prefetcher). Functions take a [`Service`]
//! (the registry, the policy, the stores…), never HTTP types; failures are [`Error`]s, which
//! the API crate maps to HTTP in one place.

pub mod access;
pub mod auth;
pub mod cache;
pub mod config;
pub mod download;
pub mod error;
pub mod hashing;
pub mod import;
pub mod metrics;
pub mod patch;
pub mod periodic;
pub mod properties;
pub mod scrub;
pub mod service;
pub mod stores;
pub mod undo;
pub mod upload;
pub mod validators;
pub mod view;

pub use auth::identity::Identity;
pub use config::Config;
pub use error::Error;
pub use service::Service;
