#!/usr/bin/env bash
# Scale benchmark (issue 23): a registry of $COUNT images with a realistic mix (projects,
# visibility, members, statuses, tags, properties: tests/src/bench/catalogue.rs), on sled
# and on PostgreSQL, then wrk on show, the unfiltered list, each filter family, a project's
# default listing, a deep marker page and a sort on name; with the glass process's RSS and
# the registry's bytes on disk. The same show and list figures at $SMALL images come first,
# for the "within 20 % of the 1k figures" comparison.
#   - Images are written straight into the engine by `glass-bench populate-registry`
#     (no HTTP; $CONCURRENCY tasks). PostgreSQL's populate connections use
#     synchronous_commit=off (group commit would otherwise bound the rate); the server
#     reads with PostgreSQL's defaults.
#   - PostgreSQL: a throwaway cluster on loopback with its default settings (as
#     bench/registry.sh); Glass reaches it over TCP on 127.0.0.1, pool_size 16.
#   - Glass in noauth mode: no identity headers = admin; the non-admin requests send
#     X-Project-Id and X-Roles: member.
#   - Per request type: one request alone (`alone`: its time; `hits`: images on the page),
#     then wrk -t2 -c4 -d${WRK_S}s --latency --timeout 60s, then a wait until the server is
#     idle (requests wrk abandoned at the end of its run finish first).
# Env: COUNT (1000000), SMALL (1000; 0 skips the small run), WRK_S (10), CONCURRENCY (16),
#      SEED (23), ENGINES ("sled postgres"), WORK_ROOT (/tmp), KEEP (1: keep the work dir).
# Only 127.0.0.1 is ever contacted.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
COUNT=${COUNT:-1000000}
SMALL=${SMALL:-1000}
WRK_S=${WRK_S:-10}
CONCURRENCY=${CONCURRENCY:-16}
SEED=${SEED:-23}
ENGINES=${ENGINES:-sled postgres}
WORK_ROOT=${WORK_ROOT:-/tmp}

# Disk the registries need: bytes per image as measured with this mix (sled ~4.8 KB, the
# PostgreSQL database ~2.5 KB at 10^5), rounded up, plus PostgreSQL's WAL (max_wal_size 1 GB
# by default) and 30 % margin; the run refuses to start unless that plus 20 GB stays free.
SLED_BYTES_PER_IMAGE=6000
PG_BYTES_PER_IMAGE=3500
need=0
for engine in $ENGINES; do
  case $engine in
    sled) need=$((need + (COUNT + SMALL) * SLED_BYTES_PER_IMAGE)) ;;
    postgres) need=$((need + (COUNT + SMALL) * PG_BYTES_PER_IMAGE + (2 << 30))) ;;
    *) echo "unknown engine $engine (sled, postgres)" >&2; exit 2 ;;
  esac
done
need=$((need * 13 / 10))
mkdir -p "$WORK_ROOT"
free=$(( $(df -Pk "$WORK_ROOT" | awk 'NR==2 {print $4}') * 1024 ))
reserve=$((20 * 1024 * 1024 * 1024))
echo "disk: $COUNT images on [$ENGINES] need ~$((need / 1024 / 1024 / 1024)) GB (+20 GB kept free); $((free / 1024 / 1024 / 1024)) GB free on $WORK_ROOT" >&2
if [ $((need + reserve)) -gt "$free" ]; then
  echo "not enough disk for COUNT=$COUNT: refusing (set WORK_ROOT to a larger disk)" >&2
  exit 1
fi

ensure_postgres
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p glass-host -p glass-tests --bins -q
BIN=$CARGO_TARGET_DIR/release

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PGBIN=${GLASS_PG_BIN:-$( (pg_config --bindir 2>/dev/null | grep -v '^/usr/bin$') || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
WORK=$(mktemp -d "$WORK_ROOT/glass-bench-scale.XXXXXX")
chmod 755 "$WORK"
SERVER=
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [[ " $ENGINES " == *" postgres "* ]]; then
  mkdir -p "$WORK/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
  as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U glass -A trust -E UTF8 --locale=C >/dev/null
  PGPORT=$(free_port)
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
    -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
fi
psql_value() { "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U glass -d "$1" -Atc "$2"; }

# serve NAME [config lines]: starts glass on $WORK/NAME/data; sets SERVER, URL, STARTUP_S.
serve() {
  local name=$1 port start
  port=$(free_port)
  printf '%s\n' "${@:2}" > "$WORK/$name/glass.toml"
  start=$(date +%s.%N)
  "$BIN/glass" serve --config "$WORK/$name/glass.toml" --listen "127.0.0.1:$port" \
    --data-dir "$WORK/$name/data" > "$WORK/$name/log" 2>&1 &
  SERVER=$!
  URL="http://127.0.0.1:$port"
  # Start-up reads the whole catalogue (sweeps of interrupted uploads): wait up to an hour.
  for _ in $(seq 18000); do
    curl -fs "$URL/healthcheck" >/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { tail -20 "$WORK/$name/log" >&2; exit 1; }
    sleep 0.2
  done
  STARTUP_S=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }

# The requests: label, path, project (empty: admin). Uses the probes' variables.
requests() {
  local l="/v2/images?limit=20"
  printf '%s\t%s\t%s\n' \
    "show" "/v2/images/$SHOW_ID" "" \
    "list (limit=20)" "$l" "" \
    "name= (1 image)" "$l&name=$NAME_ONCE" "" \
    "name= (none)" "$l&name=no-such-image" "" \
    "status=active" "$l&status=active" "" \
    "status=killed" "$l&status=killed" "" \
    "visibility=public" "$l&visibility=public" "" \
    "owner=" "$l&owner=$OWNER" "" \
    "tag= (rare)" "$l&tag=$TAG_RARE" "" \
    "tag= (common)" "$l&tag=$TAG_COMMON" "" \
    "checksum=" "$l&checksum=$CHECKSUM" "" \
    "os_hash_value=" "$l&os_hash_value=$OS_HASH_VALUE" "" \
    "disk_format=iso" "$l&disk_format=iso" "" \
    "protected=true" "$l&protected=true" "" \
    "os_hidden=true" "$l&os_hidden=true" "" \
    "os_distro= (rare)" "$l&os_distro=$DISTRO_RARE" "" \
    "member_status=pending" "$l&visibility=shared&member_status=pending" "$MEMBER_PROJECT" \
    "project default list" "$l" "$PROJECT" \
    "deep marker" "$l&marker=$DEEP_MARKER" "" \
    "sort=name + rare tag" "$l&tag=$TAG_RARE&sort_key=name&sort_dir=asc" ""
}

RESULTS=$WORK/results.tsv
: > "$RESULTS"
# measure SIZE ENGINE LABEL PATH PROJECT: one request (hits), then wrk; appends to RESULTS.
measure() {
  local size=$1 engine=$2 label=$3 path=$4 project=$5 hits out single
  local -a hdr=()
  [ -n "$project" ] && hdr=(-H "X-Project-Id: $project" -H "X-Roles: member")
  # One request alone first: its time, and the number of images on the page.
  curl -fs -o "$WORK/body" -w '%{time_total}' "${hdr[@]}" "$URL$path" > "$WORK/time" || echo ERR > "$WORK/time"
  single=$(awk '$1 == "ERR" { print; next } { t = $1 + 0; if (t >= 1) printf "%.2fs", t; else printf "%.2fms", t * 1000 }' "$WORK/time")
  hits=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["images"]) if "images" in d else 1)' \
    "$WORK/body" 2>/dev/null || echo ERR)
  out=$(wrk -t2 -c4 -d"${WRK_S}"s --latency --timeout 60s "${hdr[@]}" "$URL$path")
  local rps p50 p99 n errs
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  n=$(awk '/requests in/{print $1}' <<<"$out")
  # Requests slower than the run: wrk finished none, so it has no percentiles.
  if [ "${n:-0}" = 0 ]; then p50=—; p99=—; fi
  errs=$(awk '/Non-2xx/{e+=$NF} /Socket errors/{for(i=3;i<=NF;i++){gsub(",","",$i); if($i+0==$i) e+=$i}} END{print e+0}' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$engine" "$label" "$rps" "$p50" "$p99" "$n" "$hits" "$errs" "$single" >> "$RESULTS"
  printf '  %-24s %10s req/s  p50 %9s  p99 %9s  alone %9s  (%s requests, %s hits, %s errors)\n' \
    "$label" "$rps" "$p50" "$p99" "$single" "$n" "$hits" "$errs"
  wait_idle
}

# Waits (up to 5 min) until the server stops using CPU: requests wrk gave up on at the end
# of its run may still be running, and must not weigh on the next measurement.
wait_idle() {
  local before after
  for _ in $(seq 600); do
    before=$(awk '{print $14 + $15}' "/proc/$SERVER/stat")
    sleep 0.5
    after=$(awk '{print $14 + $15}' "/proc/$SERVER/stat")
    [ $((after - before)) -le 2 ] && return 0
  done
}

echo "# glass scale bench $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)"
echo "# COUNT=$COUNT SMALL=$SMALL WRK_S=$WRK_S CONCURRENCY=$CONCURRENCY SEED=$SEED ENGINES=\"$ENGINES\""
SIZES=()
[ "$SMALL" -gt 0 ] && SIZES+=("$SMALL")
SIZES+=("$COUNT")
for size in "${SIZES[@]}"; do
  for engine in $ENGINES; do
    name="$engine-$size"
    mkdir -p "$WORK/$name/data"
    echo "## $engine, $size images"
    if [ "$engine" = sled ]; then
      target=(--sled "$WORK/$name/data/registry")
      config=()
    else
      db="glass_$size"
      "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U glass "$db"
      target=(--postgres "postgres://glass@127.0.0.1:$PGPORT/$db?options=-c%20synchronous_commit%3Doff")
      config=('[registry]' 'backend = "postgres"' "url = \"postgres://glass@127.0.0.1:$PGPORT/$db\"" 'pool_size = 16')
    fi
    "$BIN/glass-bench" populate-registry "${target[@]}" --count "$size" \
      --concurrency "$CONCURRENCY" --seed "$SEED" --probes "$WORK/probes-$size.sh"
    # shellcheck disable=SC1090
    source "$WORK/probes-$size.sh"
    serve "$name" "${config[@]}"
    echo "  server ready ${STARTUP_S} s after start (pid $SERVER)"
    while IFS=$'\t' read -r label path project; do
      if [ "$size" = "$COUNT" ] || [ "$label" = show ] || [ "$label" = "list (limit=20)" ]; then
        measure "$size" "$engine" "$label" "$path" "$project"
      fi
    done < <(requests)
    rss=$(awk '/VmRSS/{print int($2 / 1024)}' "/proc/$SERVER/status")
    hwm=$(awk '/VmHWM/{print int($2 / 1024)}' "/proc/$SERVER/status")
    stop_server
    if [ "$engine" = sled ]; then
      bytes=$(du -sb "$WORK/$name/data/registry" | cut -f1)
      what="du -sb of the sled registry"
    else
      bytes=$(psql_value "$db" "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c \
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")
      what="tables with indexes and TOAST; database $(psql_value "$db" "SELECT pg_database_size('$db')") bytes"
    fi
    echo "  glass RSS ${rss} MiB (peak ${hwm} MiB); registry ${bytes} bytes = $((bytes / size)) bytes/image ($what)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$engine" "#footprint" "$rss" "$hwm" "$bytes" "$STARTUP_S" >> "$RESULTS"
    if [ "$engine" = sled ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK/$name/data"; fi
  done
done

# The summary: one line per request type, engines side by side.
python3 - "$RESULTS" "$ENGINES" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
engines = sys.argv[2].split()
sizes = list(dict.fromkeys(r[0] for r in rows))
for size in sizes:
    print(f"\n### {size} images\n")
    head = "| request | " + " | ".join(f"{e} req/s | p50 | p99 | alone" for e in engines)
    print(head + " | hits |")
    print("|" + "---|" * (2 + 4 * len(engines)))
    labels = list(dict.fromkeys(r[2] for r in rows if r[0] == size and not r[2].startswith("#")))
    for label in labels:
        cells, hits = [], []
        for e in engines:
            r = next((r for r in rows if r[0] == size and r[1] == e and r[2] == label), None)
            if r is None:
                cells += ["—"] * 4
                continue
            err = f" ({r[8]} errors)" if r[8] not in ("0", "") else ""
            cells += [r[3] + err, r[4], r[5], r[9]]
            hits.append(r[7])
        # Engines that disagree on the page size show one figure each.
        hits = hits[0] if len(set(hits)) == 1 else " / ".join(hits)
        print(f"| {label} | " + " | ".join(cells) + f" | {hits} |")
    for e in engines:
        r = next((r for r in rows if r[0] == size and r[1] == e and r[2] == "#footprint"), None)
        if r:
            per = int(r[5]) // int(size)
            print(f"\n{e}: glass RSS {r[3]} MiB (peak {r[4]} MiB), registry {int(r[5]) / 1e6:.1f} MB "
                  f"= {per} bytes/image, server start-up {r[6]} s")
EOF
