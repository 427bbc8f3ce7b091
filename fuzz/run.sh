#!/usr/bin/env bash
# Fuzzes the host's parsers and the plugins' wire crates with glass-fuzz (stable Rust).
#   fuzz/run.sh                 every target for 8 s (the bounded run of the test suite)
#   fuzz/run.sh --seconds 3600  the long run; add target names to pick some (--list)
# Other arguments go to glass-fuzz (--seed, --execs, --out, --corpus, --replay FILE TARGET).
# Exits non-zero when a target has a finding (written to --out, by default $TMPDIR/glass-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
# fuzz/corpus/<target>/ holds the inputs of past findings: they seed every run.
exec cargo run --quiet -p glass-fuzz -- --corpus fuzz/corpus "$@"
