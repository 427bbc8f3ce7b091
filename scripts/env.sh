# Shared settings for the project's scripts (sourced, not run).
# Build outputs live outside the clone so a warm machine reuses them; a cold one builds there.
export GLASS_CACHE="${GLASS_CACHE:-$HOME/.cache/glass}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$GLASS_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The scripts build clean clones: incremental state would only fill the disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

# Installs the wasm32-wasip2 target (store and validator plugins are built for it) if missing.
ensure_wasm_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2
  fi
}

# Keeps the shared target dir from filling the disk: every clean clone (CI) builds the
# workspace crates under new hashes, so their old test binaries and incremental state pile
# up (tens of GB in a day). Keeps only the newest build of each test executable, deletes
# workspace libraries older than 12 h and incremental state; dependencies stay. Free disk
# matters beyond the build: SeaweedFS sizes its volume count from it, and with ~10 GB free
# it cannot hold two test buckets.
trim_target_dir() {
  local profile deps
  for profile in debug release; do
    deps="$CARGO_TARGET_DIR/$profile/deps"
    [ -d "$deps" ] || continue
    find "$deps" -maxdepth 1 -type f -perm -u+x ! -name '*.*' -printf '%T@ %p\n' \
      | sort -rn | awk '{ name = $2; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print $2 }' \
      | xargs -r rm -f
    find "$deps" -maxdepth 1 -type f -mmin +720 \( -name 'libglass_*' -o -name 'glass_*' \) -delete
    rm -rf "$CARGO_TARGET_DIR/$profile/incremental"
  done
  local free_gb
  mkdir -p "$CARGO_TARGET_DIR"
  free_gb=$(df -Pk "$CARGO_TARGET_DIR" 2>/dev/null | awk 'NR==2 {print int($4 / 1048576)}' || true)
  if [ -n "$free_gb" ] && [ "$free_gb" -lt 20 ]; then
    echo "warning: only ${free_gb} GB free on the disk of $CARGO_TARGET_DIR" >&2
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

# The real storage servers the store-driver tests run against (../shared/backends: SeaweedFS
# for S3, Swift with tempauth, nginx for HTTP; tests/src/backends.rs). start_backends starts
# them in the background, one at a time under the lock the tests take too (their scripts are
# idempotent, so a test waits for them instead of starting them twice), and remembers which
# were not running yet; stop_backends stops those (S3 with its data purged: SeaweedFS
# restarts in ~4 s on a fresh data dir, ~17 s on an old one). GLASS_KEEP_BACKENDS=1 keeps
# them running.
export GLASS_BACKENDS_DIR="${GLASS_BACKENDS_DIR:-$(cd "$ROOT/.." && pwd)/shared/backends}"
GLASS_BACKENDS_STARTED=()

backend_running() {
  local pidfile
  case $1 in
    s3) pidfile=${S3_DIR:-/tmp/glass-s3}/weed.pid ;;
    swift) pidfile=${SWIFT_DIR:-/tmp/glass-swift}/run/proxy.pid ;;
    http) pidfile=${HTTP_DIR:-/tmp/glass-http}/nginx.pid ;;
  esac
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start_backends() {
  if [ ! -d "$GLASS_BACKENDS_DIR" ]; then
    echo "no $GLASS_BACKENDS_DIR: the remote store tests will fail" >&2
    return 0
  fi
  local b log="$GLASS_CACHE/backends.log"
  for b in s3 swift http; do
    backend_running "$b" || GLASS_BACKENDS_STARTED+=("$b")
  done
  # A stopped SeaweedFS starts on a fresh data dir: faster (no raft re-election) and with
  # every volume free (the tests leave nothing there worth keeping).
  if ! backend_running s3; then bash "$GLASS_BACKENDS_DIR/stop-s3.sh" --purge >&2; fi
  mkdir -p "$GLASS_CACHE"
  echo "starting the storage backends in the background (log: $log)" >&2
  (
    for b in s3 swift http; do
      SECONDS=0
      flock -o "${TMPDIR:-/tmp}/glass-backends-start.lock" bash "$GLASS_BACKENDS_DIR/start-$b.sh" \
        || echo "start-$b.sh failed" >&2
      echo "[backends] $b ready after ${SECONDS} s" >&2
    done
  ) > "$log" 2>&1 &
  GLASS_BACKENDS_PID=$!
}

stop_backends() {
  if [ -n "${GLASS_BACKENDS_PID:-}" ]; then wait "$GLASS_BACKENDS_PID" || true; fi
  [ "${GLASS_KEEP_BACKENDS:-0}" = 1 ] && return 0
  local b
  for b in "${GLASS_BACKENDS_STARTED[@]}"; do
    if [ "$b" = s3 ]; then
      bash "$GLASS_BACKENDS_DIR/stop-s3.sh" --purge >&2
    else
      bash "$GLASS_BACKENDS_DIR/stop-$b.sh" >&2
    fi
  done
  return 0
}

# PostgreSQL's server binaries, for the registry's PostgreSQL engine tests and the two-node
# test (each starts a throwaway cluster: registry/testing/src/cluster.rs). Installs Debian's
# postgresql package if initdb is missing; the package's own cluster is not needed.
ensure_postgres() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then return 0; fi
  if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then return 0; fi
  echo "installing PostgreSQL (postgresql package)" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}
