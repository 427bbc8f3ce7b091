#!/usr/bin/env bash
# Registry engines side by side, in one run: show and list req/s with the catalogue in sled
# (one node) and in PostgreSQL (one node, then two nodes on the same database).
#   - PostgreSQL: a throwaway cluster on loopback with its default (durable) settings; Glass
#     talks to it over TCP on 127.0.0.1, pool_size 16 per node.
#   - Each engine is filled with $COUNT images by glass-bench populate (16 clients), then
#     wrk -t2 -c4 -d${WRK_S}s --latency on GET /v2/images/{id} and GET /v2/images?limit=20.
#   - Two nodes: wrk -t1 -c2 on each node at once (the same 4 connections in all), figures
#     summed.
# Env: WRK_S (15), COUNT (10000). Only 127.0.0.1 is ever contacted.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
ensure_postgres
WRK_S=${WRK_S:-15}
COUNT=${COUNT:-10000}
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --workspace --bins -q
BIN=$CARGO_TARGET_DIR/release

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PGBIN=${GLASS_PG_BIN:-$( (pg_config --bindir 2>/dev/null | grep -v '^/usr/bin$') || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
WORK=$(mktemp -d /tmp/glass-bench-registry.XXXXXX)
chmod 755 "$WORK"
PIDS=()
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U glass -A trust -E UTF8 --locale=C >/dev/null
PGPORT=$(free_port)
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
  -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U glass glass

# start NAME [config lines]: a glass node in $WORK/NAME; sets URL_<NAME>.
start() {
  local name=$1 port
  port=$(free_port)
  mkdir -p "$WORK/$name"
  printf '%s\n' "${@:2}" > "$WORK/$name/glass.toml"
  "$BIN/glass" serve --config "$WORK/$name/glass.toml" --listen "127.0.0.1:$port" \
    --data-dir "$WORK/$name/data" > "$WORK/$name/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthcheck" >/dev/null && break; sleep 0.1; done
  printf -v "URL_$name" '%s' "http://127.0.0.1:$port"
}
PG_CONFIG=('[registry]' 'backend = "postgres"' "url = \"postgres://glass@127.0.0.1:$PGPORT/glass\"" 'pool_size = 16'
  '[[stores]]' 'id = "fs"' 'driver = "store-fs"' 'default = true' "directory = \"$WORK/images\"")
start sled
start pga "${PG_CONFIG[@]}"
start pgb "${PG_CONFIG[@]}"

wrk_line() { # label wrk-output
  printf '%-24s %10s req/s  p50 %8s  p99 %8s\n' "$1" \
    "$(awk '/Requests\/sec/{print $2}' <<<"$2")" \
    "$(awk '$1=="50%"{print $2}' <<<"$2")" "$(awk '$1=="99%"{print $2}' <<<"$2")"
}
first_id() { curl -s "$1/v2/images?limit=1" | python3 -c 'import json,sys;print(json.load(sys.stdin)["images"][0]["id"])'; }

echo "# glass registry bench $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $COUNT images, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')"
echo "## populate ($COUNT images, 16 clients)"
echo -n "sled:       "; "$BIN/glass-bench" populate --url "$URL_sled" --count "$COUNT" --concurrency 16 2>/dev/null
echo -n "postgres:   "; "$BIN/glass-bench" populate --url "$URL_pga" --count "$COUNT" --concurrency 16 2>/dev/null

echo "## wrk -t2 -c4 -d${WRK_S}s (two nodes: -t1 -c2 on each at once, summed)"
for what in show list; do
  for engine in sled pga; do
    url_var="URL_$engine"; url=${!url_var}
    id=$(first_id "$url")
    path="/v2/images/$id"; [ $what = list ] && path="/v2/images?limit=20"
    label="$what ${engine/pga/postgres}"
    wrk_line "$label 1 node" "$(wrk -t2 -c4 -d"${WRK_S}"s --latency "$url$path")"
  done
  id=$(first_id "$URL_pga")
  path="/v2/images/$id"; [ $what = list ] && path="/v2/images?limit=20"
  wrk -t1 -c2 -d"${WRK_S}"s --latency "$URL_pga$path" > "$WORK/wrk-a" &
  wa=$!
  wrk -t1 -c2 -d"${WRK_S}"s --latency "$URL_pgb$path" > "$WORK/wrk-b"
  wait $wa
  a=$(awk '/Requests\/sec/{print $2}' "$WORK/wrk-a"); b=$(awk '/Requests\/sec/{print $2}' "$WORK/wrk-b")
  printf '%-24s %10.2f req/s  (node A %s + node B %s; p50 %s / %s)\n' "$what postgres 2 nodes" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN{print a + b}')" "$a" "$b" \
    "$(awk '$1=="50%"{print $2}' "$WORK/wrk-a")" "$(awk '$1=="50%"{print $2}' "$WORK/wrk-b")"
done
echo "RSS: sled node $(awk '/VmRSS/{print $2, $3}' /proc/"${PIDS[0]}"/status), postgres node $(awk '/VmRSS/{print $2, $3}' /proc/"${PIDS[1]}"/status)"
