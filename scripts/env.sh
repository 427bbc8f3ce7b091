# Shared settings for the project's scripts (sourced, not run).
# Build outputs live outside the clone so a warm machine reuses them; a cold one builds there.
export GLASS_CACHE="${GLASS_CACHE:-$HOME/.cache/glass}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$GLASS_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

# Installs the wasm32-wasip2 target (store and validator plugins are built for it) if missing.
ensure_wasm_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2
  fi
}

# A Python virtualenv with the real OpenStack clients used by the interop tests.
ensure_python_venv() {
  local venv="$GLASS_CACHE/venv" req="$ROOT/tests/python/requirements.txt"
  local stamp="$venv/.requirements.sha"
  local want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "preparing Python venv with the OpenStack clients in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r "$req"
    echo "$want" > "$stamp"
  fi
  export GLASS_VENV="$venv"
}
