//! The scale benchmark's catalogue (issue 23): a deterministic, realistic mix of images
//! (`catalogue`), written straight into a registry engine (`populate`), with counts of what
//! was written (`tally`) and the values the benchmark's requests ask for (`probes`).
//! `glass-bench populate-registry` drives it; bench/scale.sh runs the benchmark.

pub mod catalogue;
pub mod populate;
pub mod probes;
pub mod rng;
pub mod tally;

#[cfg(test)]
mod tests;
