"""Sequential metadata-only creates, one HTTP connection per request: the same load that
../shared/glance/bench.sh puts on Glance, so the two figures compare. Usage: creates.py PORT N"""
import http.client
import json
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
lat = []
t0 = time.perf_counter()
for i in range(n):
    s = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = {"name": f"bench-meta-{i:05d}", "disk_format": "raw", "container_format": "bare",
            "tags": ["bench"], "bench_prop": str(i)}
    c.request("POST", "/v2/images", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    assert r.status == 201, r.status
    lat.append(time.perf_counter() - s)
el = time.perf_counter() - t0
lat.sort()
print(f"created {n} images in {el:.2f} s = {n / el:.1f} images/s; "
      f"latency p50 {lat[n // 2] * 1000:.2f} ms p99 {lat[int(n * 0.99)] * 1000:.2f} ms")
