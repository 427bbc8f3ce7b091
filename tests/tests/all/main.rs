//! Every black-box test of Glass in one test binary (one link instead of one per file, like
//! wasmtime's `tests/all`): one module per area, the shared helpers in the `glass_tests`
//! library (`tests/src/`). Run one area with `cargo test -p glass-tests --test all -- images_api::`.
//!
//! The modules share one process: state that is process-wide (the RSS the large-image tests
//! of `store_conformance` measure) is guarded where it is used.

mod audit;
mod delayed_delete;
mod dos;
mod faults;
mod image_cache;
mod image_data;
mod images_api;
mod import_api;
mod import_crash;
mod import_inspect;
mod import_plugins;
mod import_safety;
mod import_web;
mod keystone_auth;
mod limits;
mod locations_and_tasks;
mod metadefs_api;
mod multi_store;
mod process;
mod remote_stores_api;
mod replicate;
mod store_conformance;
mod two_nodes;
mod validators;
mod wit_released;
