//! Fault injection against the real server and real backends (issue 13, item 9): remote
//! stores cut and stalled mid-transfer (`remote`), Glass killed at random points of a
//! workload and a full disk under the file store (`process`), the PostgreSQL registry killed
//! and hung (`registry`), the HTTP source of an import killed and hung (`web`), Keystone cut
//! and hung (`identity`). Every scenario ends with the same checks: no image active with
//! wrong bytes, none stuck, every acknowledged write kept, no orphaned data.
//!
//! Workloads with random choices print their seed; `GLASS_FAULT_SEED=<seed>` replays one.

mod identity;
mod process;
mod registry;
mod remote;
mod web;
