#!/usr/bin/env bash
# Runs the Python interoperability tests (real python-glanceclient, openstacksdk, requests)
# against a freshly started glass binary on a loopback ephemeral port with its own data
# directory. Expects GLASS_VENV (scripts/env.sh: ensure_python_venv) and a built binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${GLASS_BIN:-$CARGO_TARGET_DIR/debug/glass}"
data="$(mktemp -d)"
log="$data/glass.log"
# Two file stores, so the clients' multi-store calls have something to choose from
# (test_stores.py); the default one is the embedded default's `fs`.
cat > "$data/glass.toml" <<'TOML'
[[stores]]
id = "fs"
driver = "store-fs"
default = true
directory = "images"

[[stores]]
id = "fs2"
driver = "store-fs"
description = "Second file store"
directory = "images2"

# test_import.py's web-download source is a loopback HTTP server on an ephemeral port.
[import.web_download]
allowed_networks = ["127.0.0.1"]
allowed_ports = []
TOML
"$bin" serve --config "$data/glass.toml" --listen 127.0.0.1:0 --data-dir "$data/data" > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"' EXIT
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^glass listening on //p' "$log" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "glass did not start:"; cat "$log"; exit 1; }
echo "glass under test at $url"
GLASS_URL="$url" "$GLASS_VENV/bin/pytest" "$here" -q -p no:cacheprovider "$@"
