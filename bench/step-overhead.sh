#!/usr/bin/env bash
# The cost of a step between processes: `facet serve --tp 1` on the built-in
# tiny model (CPU), 40 sequential completions of 64 tokens (one stream, so
# every step is a decode step of one sequence), then the mean of
# facet_step_overhead_seconds (a step's round trip less rank 0's own time in
# it) and of facet_step_seconds from /metrics. docs/PERFORMANCE.md uses it.
# usage: bench/step-overhead.sh [FACET]   (default build/facet)
set -euo pipefail
FACET=${1:-build/facet}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
FACET_DEVICE=cpu "$FACET" serve --tp 1 --http-port "$port" --grpc-port 0 >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.2; done
python3 - "$port" <<'PY'
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
model = json.loads(urllib.request.urlopen(f"{base}/v1/models").read())["data"][0]["id"]
for _ in range(40):
    body = json.dumps({"model": model, "prompt": "The quick brown fox", "max_tokens": 64, "ignore_eos": True,
                       "temperature": 0}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{base}/v1/completions", body, {"Content-Type": "application/json"})).read()
vals = {}
for line in urllib.request.urlopen(f"{base}/metrics").read().decode().splitlines():
    name, _, value = line.partition(" ")
    if name in ("facet_step_overhead_seconds_sum", "facet_step_overhead_seconds_count", "facet_step_seconds_sum",
                "facet_step_seconds_count"):
        vals[name] = float(value)
n = vals["facet_step_seconds_count"]
print("step overhead %.1f us, step %.1f us (mean of %d steps)" % (
    1e6 * vals["facet_step_overhead_seconds_sum"] / vals["facet_step_overhead_seconds_count"],
    1e6 * vals["facet_step_seconds_sum"] / n, n))
PY
