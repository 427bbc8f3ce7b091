//! The operator's commands beside `serve`: registry migration between engines, replication
//! between deployments, metadefs files, and the admin CLI.

pub mod admin;
pub mod metadefs_files;
pub mod migrate;
pub mod replicate;
