#!/usr/bin/env bash
# Metadata API benchmark of Glass, side by side with the reference Glance in the same run.
#   glass: release build on 127.0.0.1:${GLASS_BENCH_PORT:-9797}, fresh data dir
#   (a) 1000 sequential creates, one connection per request (same client as Glance's bench)
#   (b) wrk -t2 -c4 -d${WRK_S}s --latency on GET /v2/images/{id} and GET /v2/images?limit=20
#       with 1,000 and with 100,000 images; keep-alive and with "Connection: close"
#   (c) ../shared/glance/bench.sh (BENCH_SIZE_MB small: only its metadata figures are used)
# Env: WRK_S (15), BIG (100000), SKIP_GLANCE (0). Only 127.0.0.1 is ever contacted.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
WRK_S=${WRK_S:-15}
BIG=${BIG:-100000}
PORT=${GLASS_BENCH_PORT:-9797}
URL=http://127.0.0.1:$PORT
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --workspace --bins -q
BIN=$CARGO_TARGET_DIR/release
DATA=$(mktemp -d)
"$BIN/glass" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" > "$DATA/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 50); do curl -fs "$URL/healthcheck" >/dev/null && break; sleep 0.1; done

echo "# glass metadata bench $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## (a) 1000 sequential creates, one connection per request"
python3 bench/creates.py $PORT 1000

wrk_pair() { # label
  local id
  id=$(curl -s "$URL/v2/images?limit=1" | python3 -c 'import json,sys;print(json.load(sys.stdin)["images"][0]["id"])')
  for conn in keep-alive close; do
    for path in "/v2/images/$id" "/v2/images?limit=20"; do
      local hdr=()
      [ $conn = close ] && hdr=(-H "Connection: close")
      local out
      out=$(wrk -t2 -c4 -d${WRK_S}s --latency "${hdr[@]}" "$URL$path")
      printf '%-9s %-10s %-32s %10s req/s  p50 %8s  p99 %8s\n' "$1" "$conn" "${path/$id/ID}" \
        "$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
        "$(awk '$1=="50%"{print $2}' <<<"$out")" "$(awk '$1=="99%"{print $2}' <<<"$out")"
    done
  done
}
echo "## (b) wrk -t2 -c4 -d${WRK_S}s"
wrk_pair "$(curl -s "$URL/v2/images?limit=1000" | python3 -c 'import json,sys;print(len(json.load(sys.stdin)["images"]))')imgs"
"$BIN/glass-bench" populate --url "$URL" --count $((BIG - 1000)) --concurrency 16
wrk_pair "${BIG}imgs"
echo "glass RSS with $BIG images: $(awk '/VmRSS/{print $2, $3}' /proc/$PID/status)"

if [ "${SKIP_GLANCE:-0}" != 1 ]; then
  echo "## (c) reference Glance, same machine, same run"
  BENCH_SIZE_MB=${BENCH_SIZE_MB:-64} BENCH_WRK_SECONDS=$WRK_S bash ../shared/glance/bench.sh 2>&1 \
    | grep -E "^(glance|host|created|### GET|Requests/sec|  50%|  99%)"
fi
