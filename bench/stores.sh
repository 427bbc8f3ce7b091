#!/usr/bin/env bash
# Remote-store data benchmark: SIZE_MB (512) uploaded and downloaded through Glass's S3 and
# Swift store components, beside the same transfer done directly, in the same run, with
# boto3 (put_object streaming one PUT, and upload_file: multipart, 10 threads) and
# python-swiftclient (put_object / get_object, one stream; Glass also sends one PUT: the
# SLO threshold is raised). Real servers on loopback from
# ../shared/backends (SeaweedFS S3, Swift SAIO with tempauth). 3 runs each; median reported.
# Env: SIZE_MB (512), PART_MB (16, the S3 part size and Swift segment size Glass uses).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
SIZE_MB=${SIZE_MB:-512}
PART_MB=${PART_MB:-16}
PORT=${GLASS_BENCH_PORT:-9797}
URL=http://127.0.0.1:$PORT
WORK=${BENCH_DIR:-/tmp/glass-bench}
BACKENDS=$GLASS_BACKENDS_DIR
mkdir -p "$WORK"

venv="$GLASS_CACHE/bench-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q boto3==1.40.70 python-swiftclient==4.11.0
fi
bash "$BACKENDS/start-s3.sh" > /dev/null
bash "$BACKENDS/start-swift.sh" > /dev/null
cargo build --release --workspace --bins -q
BIN=$CARGO_TARGET_DIR/release/glass

F="$WORK/random-${SIZE_MB}M.bin"
[ "$(stat -c %s "$F" 2>/dev/null || echo 0)" = $((SIZE_MB * 1048576)) ] || head -c $((SIZE_MB * 1048576)) /dev/urandom > "$F"
cat "$F" > /dev/null
BYTES=$(stat -c %s "$F")
rate() { echo "$BYTES / $1 / 1000000" | bc -l | xargs printf '%.0f'; }
median() { sort -n | sed -n 2p; }

DATA=$(mktemp -d "$WORK/stores.XXXX")
sed -e "s|^listen = .*|listen = \"127.0.0.1:$PORT\"|" -e "s|^data_dir = .*|data_dir = \"$DATA\"|" \
    -e "s|^part_size_mb = .*|part_size_mb = $PART_MB|" -e "s|^segment_size_mb = .*|segment_size_mb = $PART_MB|" \
    -e "s|^bucket = .*|bucket = \"glass-bench\"|" -e "s|^container = .*|container = \"glass-bench\"|" \
    -e "s|^large_object_size_mb = .*|large_object_size_mb = 5120|" \
    examples/multi-store.toml > "$DATA/glass.toml"
# The store's own speed: no image cache (a first download would also fill it).
printf '\n[image_cache]\nenabled = false\n' >> "$DATA/glass.toml"
"$BIN" serve --config "$DATA/glass.toml" > "$DATA/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 200); do curl -fs "$URL/healthcheck" > /dev/null && break; sleep 0.1; done

new_image() {
  curl -fs -X POST "$URL/v2/images" -H 'Content-Type: application/json' \
    -d '{"name":"bench","disk_format":"raw","container_format":"bare"}' |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])'
}

echo "# glass remote-store bench $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $BYTES bytes, part/segment $PART_MB MiB"
for store in s3 swift; do
  ups=() downs=()
  for i in 1 2 3; do
    id=$(new_image)
    set -- $(curl -sS -o /dev/null -T "$F" -H 'Content-Type: application/octet-stream' \
      -H "X-Image-Meta-Store: $store" -w '%{http_code} %{time_total}' "$URL/v2/images/$id/file")
    [ "$1" = 204 ] || { echo "upload to $store failed: http $1"; tail -5 "$DATA/log"; exit 1; }
    ups+=("$2")
    set -- $(curl -sS -o /dev/null -w '%{http_code} %{time_total}' "$URL/v2/images/$id/file")
    [ "$1" = 200 ] || { echo "download from $store failed: http $1"; exit 1; }
    downs+=("$2")
  done
  up=$(printf '%s\n' "${ups[@]}" | median); down=$(printf '%s\n' "${downs[@]}" | median)
  printf 'glass %-6s upload %6.2f s %5s MB/s   download %6.2f s %5s MB/s\n' "$store" "$up" "$(rate "$up")" "$down" "$(rate "$down")"
done

"$venv/bin/python" - "$F" <<'PY'
import statistics, sys, time
import boto3, swiftclient
from botocore.config import Config
from boto3.s3.transfer import TransferConfig
path = sys.argv[1]
size = __import__("os").path.getsize(path)
def mbps(t): return size / t / 1e6
def timed(fn):
    runs = []
    for _ in range(3):
        t = time.perf_counter(); fn(); runs.append(time.perf_counter() - t)
    return statistics.median(runs)
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:8333", aws_access_key_id="GLANCETESTACCESSKEY",
                  aws_secret_access_key="glance-test-secret-key-0123456789", region_name="us-east-1",
                  # No flexible checksums: Glass sends UNSIGNED-PAYLOAD without a checksum, and
                  # SeaweedFS rejects boto3's aws-chunked trailer on a streamed file body.
                  config=Config(s3={"addressing_style": "path"},
                                request_checksum_calculation="when_required",
                                response_checksum_validation="when_required"))
# The bucket Glass used, under a prefix of its own: every SeaweedFS bucket claims up to 7 of
# its few volumes (sized from free disk), and a second one can leave none.
BUCKET = "glass-bench"
def put():
    with open(path, "rb") as f: s3.put_object(Bucket=BUCKET, Key="direct/obj", Body=f)
def get():
    body = s3.get_object(Bucket=BUCKET, Key="direct/obj")["Body"]
    for _ in body.iter_chunks(1 << 20): pass
up, down = timed(put), timed(get)
print(f"boto3 s3 put_object  upload {up:6.2f} s {mbps(up):5.0f} MB/s   get_object download {down:6.2f} s {mbps(down):5.0f} MB/s")
up = timed(lambda: s3.upload_file(path, BUCKET, "direct/obj2", Config=TransferConfig()))
print(f"boto3 s3 upload_file upload {up:6.2f} s {mbps(up):5.0f} MB/s   (multipart, 10 threads)")
url, token = swiftclient.get_auth("http://127.0.0.1:8280/auth/v1.0", "glance:glance", "glancepass")
conn = swiftclient.Connection(preauthurl=url, preauthtoken=token)
conn.put_container("glass-bench-direct")
def sput():
    with open(path, "rb") as f: conn.put_object("glass-bench-direct", "obj", contents=f, content_length=size)
def sget():
    _, body = conn.get_object("glass-bench-direct", "obj", resp_chunk_size=1 << 20)
    for _ in body: pass
up, down = timed(sput), timed(sget)
print(f"swiftclient put_object upload {up:6.2f} s {mbps(up):5.0f} MB/s   get_object download {down:6.2f} s {mbps(down):5.0f} MB/s")

# Leave the servers as found: SeaweedFS has few volumes and every bucket claims some.
for bucket in (BUCKET,):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=o["Key"])
    s3.delete_bucket(Bucket=bucket)
for container in ("glass-bench", "glass-bench_segments", "glass-bench-direct"):
    try:
        for o in conn.get_container(container, full_listing=True)[1]:
            conn.delete_object(container, o["name"])
        conn.delete_container(container)
    except swiftclient.ClientException:
        pass
PY
