//! Test-only support for Glass's registry, kept out of the production library: the behaviour
//! every engine must show ([`test_suite`]) and throwaway PostgreSQL clusters
//! ([`TempCluster`]). A dev-dependency of `glass-registry`, `glass-host` and `glass-tests`.

mod cluster;
pub mod test_suite;

pub use cluster::{Durability, TempCluster, postgres_bin};
