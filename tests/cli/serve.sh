#!/usr/bin/env bash
# facet serve: one command starts a coordinator and N workers, prints where
# it listens, serves, and stops everything cleanly on SIGTERM: new requests
# are refused, those in flight may finish for --drain-timeout, the rest are
# told the server is shutting down; exit 0, no worker left behind.
. "$(dirname "$0")/lib.sh"
CLIENT="/usr/bin/python3 $(dirname "$0")/grpc_client.py"
PROTO=$(cd "$(dirname "$0")/../../proto" && pwd)
GRPC=$(free_port)
HTTP=$(free_port)

"$FACET" make-model --preset tiny --layers 2 --out "$WORK/model" 2>/dev/null
FACET_HOME=$WORK/home "$FACET" serve --model "$WORK/model" --tp 2 --grpc-port "$GRPC" --http-port "$HTTP" \
    --drain-timeout 1500 >"$WORK/serve.out" 2>"$WORK/serve.err" &
serve=$!
wait_log 30 "$WORK/serve.out" "Ctrl-C stops"
check "serve says where it listens" grep -q "gRPC  127.0.0.1:$GRPC" "$WORK/serve.out"
check "and its HTTP port" grep -q "HTTP  http://127.0.0.1:$HTTP" "$WORK/serve.out"
workers=$(pgrep -P "$serve" -c)
check "it runs 2 worker processes (found $workers)" [ "$workers" -eq 2 ]
check "GET /ready answers 200" python3 -c "import urllib.request; assert urllib.request.urlopen('http://127.0.0.1:$HTTP/ready').status == 200"
$CLIENT "127.0.0.1:$GRPC" "$PROTO" generate --prompt "Hello there" --max-tokens 5 >"$WORK/one.json"
check "it generates" python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['output_ids']) == 5, d" "$WORK/one.json"

# requests in flight when SIGTERM arrives: a short one finishes during the
# drain, a long one (ignore_eos, near the whole context) is cut at the
# drain timeout and told why
$CLIENT "127.0.0.1:$GRPC" "$PROTO" generate --prompt "Hello" --max-tokens 40 --ignore-eos >"$WORK/short.json" &
short=$!
$CLIENT "127.0.0.1:$GRPC" "$PROTO" generate --prompt "Hello" --max-tokens 2040 --ignore-eos >"$WORK/long.json" &
long=$!
sleep 0.5
kill -TERM "$serve"
start=$(date +%s)
sleep 0.3
$CLIENT "127.0.0.1:$GRPC" "$PROTO" generate --prompt "Hello" --max-tokens 3 >"$WORK/late.json"
wait "$serve"
status=$?
wait "$short" "$long"
check "serve exits 0 on SIGTERM (got $status)" [ "$status" -eq 0 ]
check "within 10 s" [ $(($(date +%s) - start)) -le 10 ]
check "no worker is left behind" bash -c "! pgrep -f '[w]orker --coordinator 127.0.0.1:$GRPC' >/dev/null"
check "a request arriving during the drain is refused" grep -q "shutting down" "$WORK/late.json"
check "the short request in flight finished" python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['finish_reason'] == 'length', d" "$WORK/short.json"
check "the long one was told why it stopped" grep -q "shutting down" "$WORK/long.json"

# a dead worker is replaced by serve, and the group re-forms
FACET_HOME=$WORK/home "$FACET" serve --model "$WORK/model" --tp 2 --grpc-port "$GRPC" --http-port "$HTTP" \
    >"$WORK/serve2.out" 2>"$WORK/serve2.err" &
serve=$!
wait_log 30 "$WORK/serve2.out" "Ctrl-C stops"
kill -9 "$(pgrep -P "$serve" | head -1)"
check "serve replaces a dead worker" wait_log 10 "$WORK/serve2.err" "starting a new one"
check "and serves again" wait_for 20 $CLIENT "127.0.0.1:$GRPC" "$PROTO" generate --prompt "Hello there" --max-tokens 5
kill -TERM "$serve"
wait "$serve"
finish
