#!/usr/bin/env bash
# A coordinator and worker processes on loopback, driven by an independent
# gRPC client (Python grpcio):
#   - Generate and grpc.health.v1 Check answer; tokens equal `facet generate`'s;
#     concurrent requests (batched together) each get their own tokens;
#   - a worker killed with SIGKILL mid-generation: the request waits (the
#     coordinator keeps running and reports not ready; a request arriving
#     meanwhile waits too), and once a new worker registers both finish with
#     exactly the tokens of an undisturbed run;
#   - refused: a worker of another protocol version, a worker asking for a
#     taken rank, a worker that cannot load its shard -- each with a message,
#     while the rest keeps serving.
. "$(dirname "$0")/lib.sh"
CLIENT="/usr/bin/python3 $(dirname "$0")/grpc_client.py"
PROTO=$(cd "$(dirname "$0")/../../proto" && pwd)
if ! /usr/bin/python3 -c "import grpc" 2>/dev/null; then
    echo "FAIL: Debian's python3-grpcio is not installed: the independent client is missing" >&2
    exit 1
fi

GRPC=$(free_port)
HTTP=$(free_port)
CLUSTER=$(free_port)
ADDR=127.0.0.1:$GRPC
TOKEN=$WORK/cluster-token
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TOKEN"
chmod 600 "$TOKEN"

wait_ready() { wait_for 30 http_ready "$HTTP"; }
start_worker() { # start_worker NAME [args]: its pid in $last
    local name=$1
    shift
    "$FACET" worker --coordinator "127.0.0.1:$CLUSTER" --cluster-token-file "$TOKEN" --model-root "$WORK" --threads 1 "$@" \
        >"$WORK/$name.log" 2>&1 &
    last=$!
    pids+=("$last")
}

M=$WORK/model
"$FACET" make-model --preset tiny --layers 2 --out "$M" 2>/dev/null
"$FACET" coordinator --model "$M" --tp 2 --grpc-port "$GRPC" --cluster-port "$CLUSTER" --cluster-token-file "$TOKEN" \
    --http-port "$HTTP" --replace-timeout 600000 >"$WORK/coordinator.log" 2>&1 &
CO=$!
pids+=("$CO")
start_worker w1
W1=$last
start_worker w2
W2=$last
check "the group forms" wait_ready

# --- the independent client --------------------------------------------------------
$CLIENT "$ADDR" "$PROTO" health >"$WORK/health.json"
same "grpc.health.v1 Check says SERVING" "$(json "$WORK/health.json" '["status"]')" SERVING
for s in "greedy:--temperature 0" "sampled:--temperature 0.8 --top-k 40 --seed 9"; do
    name=${s%%:*}
    flags=${s#*:}
    # shellcheck disable=SC2086
    $CLIENT "$ADDR" "$PROTO" generate --prompt "The history of science" --max-tokens 12 --ignore-eos $flags >"$WORK/$name-grpc.json"
    # shellcheck disable=SC2086
    "$FACET" generate --model "$M" --prompt "The history of science" --max-tokens 12 --ignore-eos --json $flags >"$WORK/$name-cli.json"
    same "Python gRPC client ($name) gets facet generate's tokens" \
        "$(json "$WORK/$name-grpc.json" '["output_ids"]')" "$(json "$WORK/$name-cli.json" '["output_ids"]')"
    same "and its text ($name)" "$(json "$WORK/$name-grpc.json" '["text"]')" "$(json "$WORK/$name-cli.json" '["text"]')"
done

# concurrent requests share steps; each must get its own tokens
for i in 1 2 3 4; do
    $CLIENT "$ADDR" "$PROTO" generate --prompt "Prompt number $i says" --max-tokens $((6 + 3 * i)) --ignore-eos \
        --temperature 0.7 --seed "$i" >"$WORK/conc-$i.json" &
done
wait_clients() { for j in $(jobs -p); do [[ " ${pids[*]} " == *" $j "* ]] || wait "$j"; done; }
wait_clients
for i in 1 2 3 4; do
    "$FACET" generate --model "$M" --prompt "Prompt number $i says" --max-tokens $((6 + 3 * i)) --ignore-eos \
        --temperature 0.7 --seed "$i" --json >"$WORK/alone-$i.json"
    same "concurrent request $i = alone" "$(json "$WORK/conc-$i.json" '["output_ids"]')" "$(json "$WORK/alone-$i.json" '["output_ids"]')"
done

# --- a worker dies mid-generation: the request waits for a new group and finishes unchanged ---------
"$FACET" generate --model "$M" --prompt "Hello" --max-tokens 1500 --ignore-eos --json >"$WORK/killed-ref.json"
$CLIENT "$ADDR" "$PROTO" generate --prompt "Hello" --max-tokens 1500 --ignore-eos >"$WORK/killed.json" &
client=$!
sleep 0.5
kill -9 "$W2"
check "the request in flight is still waiting, not failed" kill -0 "$client"
check "the coordinator is still running" kill -0 "$CO"
check "/health still answers" python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$HTTP/health')"
check "/ready says not ready" wait_for 5 not http_ready "$HTTP"
$CLIENT "$ADDR" "$PROTO" generate --prompt "The history of science" --max-tokens 12 --ignore-eos >"$WORK/waited.json" &
waiter=$!
sleep 0.5
check "a request arriving meanwhile waits for the group" kill -0 "$waiter"
start_worker w3
W3=$last
check "a new worker re-forms the group" wait_ready
wait "$client"
wait "$waiter"
same "the request in flight completes with the tokens of an undisturbed run" \
    "$(json "$WORK/killed.json" '["output_ids"]')" "$(json "$WORK/killed-ref.json" '["output_ids"]')"
same "the request that waited gets facet generate's tokens" \
    "$(json "$WORK/waited.json" '["output_ids"]')" "$(json "$WORK/greedy-cli.json" '["output_ids"]')"
$CLIENT "$ADDR" "$PROTO" generate --prompt "The history of science" --max-tokens 12 --ignore-eos >"$WORK/after.json"
same "and new requests succeed, with the same tokens" \
    "$(json "$WORK/after.json" '["output_ids"]')" "$(json "$WORK/greedy-cli.json" '["output_ids"]')"

# --- refusals ------------------------------------------------------------------------
start_worker old --protocol-version 99
old=$last
wait "$old"
status=$?
check "a worker of another protocol version exits non-zero" [ "$status" -ne 0 ]
check "saying why" grep -q "protocol version 99" "$WORK/old.log"
check "and the coordinator says so too" grep -q "refused a worker: .*protocol version 99" "$WORK/coordinator.log"

start_worker taker --rank 0
check "a worker asking for a taken rank is refused" wait_log 10 "$WORK/taker.log" "rank 0 is taken"
kill "$last" 2>/dev/null

start_worker badpath --model /nonexistent/model
check "the bad worker registers as a standby" wait_log 5 "$WORK/coordinator.log" "registered"
kill -9 "$W1" # the group must re-form with the standby, which cannot load
check "the standby's failure to load is reported" wait_log 15 "$WORK/coordinator.log" "did not load"
check "with the reason" grep -q "/nonexistent/model" "$WORK/badpath.log"
start_worker w4
check "with a good worker the group forms again" wait_ready
$CLIENT "$ADDR" "$PROTO" generate --prompt "The history of science" --max-tokens 12 --ignore-eos >"$WORK/final.json"
same "and serves" "$(json "$WORK/final.json" '["output_ids"]')" "$(json "$WORK/greedy-cli.json" '["output_ids"]')"
check "the coordinator never crashed" kill -0 "$CO"
finish
