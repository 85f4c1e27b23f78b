#!/usr/bin/env bash
# The OpenAI-compatible HTTP API of `facet serve` (tp=2, real worker processes):
#   - the `openai` Python package: completions and chat, streamed and not,
#     n, logprobs, stop strings, errors, API key (tests/cli/openai_check.py);
#   - 32 concurrent streaming requests = each alone (greedy and seeded), also
#     with --max-prefill-tokens 1 (prompts chunked a token a step);
#   - requests sharing a long prefix: the same tokens with prefix caching on
#     (cold and warm) and off, and the cache used;
#   - a KV cache too small for all requests at once: preemption, same tokens;
#   - 100 streaming clients hanging up: KV usage back to zero, still serving;
#   - malformed requests: 4xx JSON errors naming the problem, never 5xx;
#   - /metrics exposes the documented families.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV_PY=$ROOT/.venv/bin/python
if [ ! -x "$VENV_PY" ] || ! "$VENV_PY" -c "import openai" 2>/dev/null; then
    echo "FAIL: $ROOT/.venv with the openai package is missing: run scripts/install-deps" >&2
    exit 1
fi
LOAD="python3 $(dirname "$0")/http_load.py"

serve() { # serve NAME HTTP_PORT [options]: a tp=2 server of the test model
    local name=$1 http=$2
    shift 2
    start_serve "$name" "$http" --model "$WORK/model" --tp 2 --grpc-port "$(free_port)" "$@"
}

"$FACET" make-model --preset tiny --layers 2 --out "$WORK/model" 2>/dev/null
A=$(free_port)
B=$(free_port)
check "a server starts" serve plain "$A"
printf 'sk-test\n' >"$WORK/api-key"
chmod 600 "$WORK/api-key"
check "a server with an API key and a small KV cache starts" serve keyed "$B" --api-key-file "$WORK/api-key" --kv-blocks 24

check "the openai package works against it" "$VENV_PY" "$(dirname "$0")/openai_check.py" "http://127.0.0.1:$B/v1" sk-test model
check "32 concurrent streaming requests are batch-invariant" $LOAD invariance 127.0.0.1 "$A" model 32
C=$(free_port)
check "a server without prefix caching, whose prompts advance a token a step while others decode, starts" \
    serve plain-trickle "$C" --max-prefill-tokens 1 --no-prefix-caching
check "with that prefill budget, 32 concurrent streams are still batch-invariant" $LOAD invariance 127.0.0.1 "$C" model 32
check "prefix caching changes no token" $LOAD prefix 127.0.0.1 "$A" model 16 "$C"
check "its /metrics shows the budget" python3 -c "
import urllib.request, sys
m = urllib.request.urlopen('http://127.0.0.1:$C/metrics').read().decode()
sys.exit(0 if 'facet_prefill_budget_tokens 1' in m else 1)"
check "preemption under a small KV cache loses nothing" env FACET_API_KEY=sk-test $LOAD preempt 127.0.0.1 "$B" model 8
check "100 clients hanging up free their KV blocks" $LOAD cancel 127.0.0.1 "$A" model 100
check "bad input gets 4xx JSON errors" $LOAD badinput 127.0.0.1 "$A" model

python3 - "$A" >"$WORK/metrics.txt" <<'PY'
import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode())
PY
for family in facet_requests_total facet_queue_length facet_running_sequences facet_kv_blocks_used facet_kv_usage_ratio \
    facet_time_to_first_token_seconds_bucket facet_inter_token_latency_seconds_count facet_e2e_request_latency_seconds_sum \
    facet_prompt_tokens_total facet_generation_tokens_total facet_step_seconds_count facet_step_tokens_bucket facet_step_overhead_seconds_count \
    facet_workers facet_preemptions_total facet_ready; do
    check "/metrics has $family" grep -q "^$family" "$WORK/metrics.txt"
done
check "every step's overhead was measured" python3 -c "
import re, sys
t = open('$WORK/metrics.txt').read()
steps = int(float(re.search(r'^facet_step_seconds_count (\\S+)', t, re.M).group(1)))
over = int(float(re.search(r'^facet_step_overhead_seconds_count (\\S+)', t, re.M).group(1)))
sys.exit(0 if steps > 0 and over == steps else 1)"
check "requests were counted by outcome" grep -qE '^facet_requests_total\{outcome="invalid"\} [1-9]' "$WORK/metrics.txt"
check "cancelled ones too" grep -qE '^facet_requests_total\{outcome="cancelled"\} [1-9]' "$WORK/metrics.txt"
check "the keyed server refuses /v1 without the key" python3 -c "
import urllib.request, urllib.error, sys
try:
    urllib.request.urlopen('http://127.0.0.1:$B/v1/models'); sys.exit(1)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 401 else 1)"
GRPC_B=$(sed -n 's/.*gRPC  127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/keyed.out")
/usr/bin/python3 "$(dirname "$0")/grpc_client.py" "127.0.0.1:$GRPC_B" "$ROOT/proto" generate --prompt hi --max-tokens 2 >"$WORK/grpc-nokey.json"
check "gRPC Generate without the key is UNAUTHENTICATED" grep -q UNAUTHENTICATED "$WORK/grpc-nokey.json"
/usr/bin/python3 "$(dirname "$0")/grpc_client.py" "127.0.0.1:$GRPC_B" "$ROOT/proto" generate --prompt hi --max-tokens 2 \
    --api-key sk-test >"$WORK/grpc-key.json"
check "and works with it" grep -q '"finish_reason"' "$WORK/grpc-key.json"
check "but /health stays open" python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$B/health')"
finish
