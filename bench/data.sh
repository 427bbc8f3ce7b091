#!/usr/bin/env bash
# Image data benchmark of Glass (store-fs component), side by side in one run with:
#   the physical references on the same file (cp, sha512sum, md5sum; page cache warm),
#   and, unless SKIP_GLANCE=1, the reference Glance (../shared/glance/bench.sh, same size).
# Uploads: curl -T FILE (3 runs); downloads: curl -o /dev/null (3 runs); peak RSS of the
# glass process sampled every 50 ms during a FLAT_MB upload and download.
# Env: SIZE_MB (1024), FLAT_MB (2048), SKIP_GLANCE (0). Only 127.0.0.1 is contacted.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
SIZE_MB=${SIZE_MB:-1024}
FLAT_MB=${FLAT_MB:-2048}
PORT=${GLASS_BENCH_PORT:-9798}
URL=http://127.0.0.1:$PORT
WORK=${BENCH_DIR:-/tmp/glass-bench}
mkdir -p "$WORK"
cargo build --release --workspace --bins -q
BIN=$CARGO_TARGET_DIR/release/glass

make_file() { # MB -> path
  local f="$WORK/random-$1M.bin"
  [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" = $(($1 * 1048576)) ] || head -c $(($1 * 1048576)) /dev/urandom > "$f"
  cat "$f" > /dev/null
  echo "$f"
}
F=$(make_file "$SIZE_MB")
BYTES=$(stat -c %s "$F")
rate() { echo "$BYTES / $1 / 1000000" | bc -l | xargs printf '%.0f'; }
timed() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }

echo "# glass data bench $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), file $BYTES bytes"
echo "## physical reference (same file, page cache warm)"
for cmd in sha512sum md5sum; do
  t=$(timed $cmd "$F"); printf '%-22s %6.2f s %6s MB/s\n' "$cmd" "$t" "$(rate "$t")"
done
t=$(timed cp "$F" "$WORK/copy.bin"); printf '%-22s %6.2f s %6s MB/s\n' "cp" "$t" "$(rate "$t")"
t=$(timed sh -c "cp '$F' '$WORK/copy.bin' && sync '$WORK/copy.bin'"); printf '%-22s %6.2f s %6s MB/s\n' "cp + sync" "$t" "$(rate "$t")"
rm -f "$WORK/copy.bin"

DATA=$(mktemp -d "$WORK/data.XXXX")
"$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" > "$DATA.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA" "$DATA.log"' EXIT
for _ in $(seq 100); do curl -fs "$URL/healthcheck" >/dev/null && break; sleep 0.1; done
new_image() {
  curl -fs -X POST "$URL/v2/images" -H 'Content-Type: application/json' \
    -d '{"name":"bench","disk_format":"raw","container_format":"bare"}' |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])'
}
rss() { awk '/VmRSS/{print $2}' /proc/$PID/status; }

echo "## glass upload: curl -T FILE -H 'Content-Type: application/octet-stream' PUT /v2/images/ID/file"
for i in 1 2 3; do
  id=$(new_image)
  out=$(curl -sS -o /dev/null -T "$F" -H 'Content-Type: application/octet-stream' -w '%{http_code} %{time_total}' "$URL/v2/images/$id/file")
  set -- $out
  printf 'upload %d: http %s %6.2f s %6s MB/s\n' $i "$1" "$2" "$(rate "$2")"
done
echo "## glass download: curl -o /dev/null GET /v2/images/ID/file"
for i in 1 2 3; do
  out=$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' "$URL/v2/images/$id/file")
  set -- $out
  printf 'download %d: http %s %6.2f s %6s MB/s\n' $i "$1" "$2" "$(rate "$2")"
done
curl -s "$URL/v2/images/$id" | python3 -c 'import json,sys;d=json.load(sys.stdin);print("image:", d["status"], d["size"], d["checksum"])'
echo "md5sum of the file:     $(md5sum "$F" | cut -c1-32)"

echo "## flat memory: $FLAT_MB MiB upload and download, peak RSS sampled every 50 ms"
G=$(make_file "$FLAT_MB")
sample() { local peak=0 r; while kill -0 "$1" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.05; done; echo $peak; }
base=$(rss)
id=$(new_image)
curl -sS -o /dev/null -T "$G" -H 'Content-Type: application/octet-stream' "$URL/v2/images/$id/file" & C=$!
peak_up=$(sample $C)
curl -sS -o /dev/null "$URL/v2/images/$id/file" & C=$!
peak_down=$(sample $C)
echo "RSS before: $((base / 1024)) MiB; peak during upload: $((peak_up / 1024)) MiB (+$(((peak_up - base) / 1024)) MiB); peak during download: $((peak_down / 1024)) MiB (+$(((peak_down - base) / 1024)) MiB)"

if [ "${SKIP_GLANCE:-0}" != 1 ]; then
  echo "## reference Glance, same run, same size"
  BENCH_SIZE_MB=$SIZE_MB BENCH_CREATES=${GLANCE_CREATES:-100} BENCH_WRK_SECONDS=5 bash ../shared/glance/bench.sh 2>&1 |
    grep -E "^(glance 3|upload [0-9]|download [0-9]|peak RSS)"
fi
