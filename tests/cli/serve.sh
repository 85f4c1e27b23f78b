#!/usr/bin/env bash
# facet serve: one command starts a coordinator and N workers, prints where
# it listens, serves, and stops everything cleanly on SIGTERM (exit 0, no
# worker left behind, a request in flight told the server is shutting down).
. "$(dirname "$0")/lib.sh"
CLIENT="/usr/bin/python3 $(dirname "$0")/grpc_client.py"
PROTO=$(cd "$(dirname "$0")/../../proto" && pwd)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GRPC=$(free_port)
HTTP=$(free_port)

"$FACET" make-model --preset tiny --layers 2 --out "$WORK/model" 2>/dev/null
FACET_HOME=$WORK/home "$FACET" serve --model "$WORK/model" --tp 2 --grpc-port "$GRPC" --http-port "$HTTP" \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
serve=$!
for _ in $(seq 1 300); do grep -q "Ctrl-C stops" "$WORK/serve.out" && break; sleep 0.1; done
check "serve says where it listens" grep -q "gRPC  127.0.0.1:$GRPC" "$WORK/serve.out"
check "and its HTTP port" grep -q "HTTP  http://127.0.0.1:$HTTP" "$WORK/serve.out"
workers=$(pgrep -P "$serve" -c)
check "it runs 2 worker processes (found $workers)" [ "$workers" -eq 2 ]
check "GET /ready answers 200" python3 -c "import urllib.request; assert urllib.request.urlopen('http://127.0.0.1:$HTTP/ready').status == 200"
$CLIENT "127.0.0.1:$GRPC" "$PROTO" generate --prompt "Hello there" --max-tokens 5 >"$WORK/one.json"
check "it generates" python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['output_ids']) == 5, d" "$WORK/one.json"

# a request in flight when SIGTERM arrives
$CLIENT "127.0.0.1:$GRPC" "$PROTO" generate --prompt "Hello" --max-tokens 1900 --ignore-eos >"$WORK/inflight.json" &
client=$!
sleep 1
kill -TERM "$serve"
start=$(date +%s)
wait "$serve"
status=$?
wait "$client"
check "serve exits 0 on SIGTERM (got $status)" [ "$status" -eq 0 ]
check "within 10 s" [ $(($(date +%s) - start)) -le 10 ]
check "no worker is left behind" bash -c "! pgrep -f '[w]orker --coordinator 127.0.0.1:$GRPC' >/dev/null"
check "the request in flight was told why" grep -q "shutting down" "$WORK/inflight.json"

# a dead worker is replaced by serve, and the group re-forms
FACET_HOME=$WORK/home "$FACET" serve --model "$WORK/model" --tp 2 --grpc-port "$GRPC" --http-port "$HTTP" \
    >"$WORK/serve2.out" 2>"$WORK/serve2.err" &
serve=$!
for _ in $(seq 1 300); do grep -q "Ctrl-C stops" "$WORK/serve2.out" && break; sleep 0.1; done
kill -9 "$(pgrep -P "$serve" | head -1)"
for _ in $(seq 1 100); do grep -q "starting a new one" "$WORK/serve2.err" && break; sleep 0.1; done
check "serve replaces a dead worker" grep -q "starting a new one" "$WORK/serve2.err"
ok=1
for _ in $(seq 1 100); do
    $CLIENT "127.0.0.1:$GRPC" "$PROTO" generate --prompt "Hello there" --max-tokens 5 >"$WORK/two.json" && { ok=0; break; }
    sleep 0.2
done
check "and serves again" [ "$ok" -eq 0 ]
kill -TERM "$serve"
wait "$serve"
finish
