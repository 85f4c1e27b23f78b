#!/usr/bin/env bash
# Failover without losing a request (docs/FAILOVER.md):
#   - SIGKILL of a worker of the group during 16 concurrent streams of every
#     kind (greedy, seeded, top-k/p, penalties, stop strings, logprobs, n = 3,
#     chat) and a gRPC stream: all complete, identical to an undisturbed run;
#   - SIGSTOP of a worker (a standby present): detected and re-formed within
#     3 s, every request completes, none hangs;
#   - elastic: with no replacement the group shrinks 2 -> 1, and grows back
#     to 2 when a worker returns, every output identical;
#   - a restarted coordinator adopts its workers' epoch (>= 20) and serves
#     within 2 s;
#   - limits: a request that waits longer than --failover-timeout for a group,
#     or is replayed more than --max-replays times, ends with a retriable
#     error saying why;
#   - facet bench failover: injected kills, hangs and freezes, every output
#     compared token by token, exit status 0.
. "$(dirname "$0")/lib.sh"
LOAD="python3 $(dirname "$0")/failover_load.py"
CLIENT="/usr/bin/python3 $(dirname "$0")/grpc_client.py"
PROTO=$(cd "$(dirname "$0")/../../proto" && pwd)
M=$WORK/model
"$FACET" make-model --preset tiny --layers 2 --out "$M" 2>/dev/null
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"; chmod 600 "$1"; }
secret "$WORK/token"
metric() { curl -s "http://127.0.0.1:$1/metrics" | sed -n "s/^$2 //p"; }
# the pid of the worker holding RANK, from the coordinator's log LOG (ids are w<pid>-...)
member_pid() { grep -o "rank $1: worker w[0-9]*" "$2" | tail -1 | sed 's/.*worker w0*//'; }
grpc_gen() { $CLIENT "127.0.0.1:$1" "$PROTO" generate --prompt "The history of science" --max-tokens 80 --ignore-eos \
    --temperature 0.8 --seed 42 | json /dev/stdin '["output_ids"]'; }

# --- serve --tp 2 with a standby: a kill, then a stop -----------------------------------------------
HTTP=$(free_port)
GRPC=$(free_port)
check "serve --tp 2 --standby 1 starts" start_serve serve "$HTTP" --model "$M" --tp 2 --standby 1 --grpc-port "$GRPC"
SERVE=$last
check "an undisturbed run of 16 streams" $LOAD run 127.0.0.1 "$HTTP" model "$WORK/ref.json"
G0=$(grpc_gen "$GRPC")

$LOAD run 127.0.0.1 "$HTTP" model "$WORK/killed.json" >"$WORK/killed.out" 2>&1 &
load=$!
grpc_gen "$GRPC" >"$WORK/killed-grpc.txt" &
gload=$!
sleep 0.7
victim=$(member_pid 1 "$WORK/serve.err")
check "rank 1's process is found ($victim)" kill -0 "$victim"
kill -9 "$victim"
check "SIGKILL of a worker mid-stream: all 16 complete" wait "$load"
check "identical to the undisturbed run" $LOAD compare "$WORK/ref.json" "$WORK/killed.json"
wait "$gload"
same "a gRPC stream through the kill: identical" "$(cat "$WORK/killed-grpc.txt")" "$G0"
check "the coordinator counted the failover and replays" test "$(metric "$HTTP" facet_replays_total)" -ge 1
check "serve replaced the dead worker" wait_log 10 "$WORK/serve.err" "starting a new one"
check "and serves with three workers again" wait_for 10 bash -c "[ \"\$(curl -s http://127.0.0.1:$HTTP/metrics | sed -n 's/^facet_workers{state=\"live\"} //p')\" = 3 ]"

$LOAD run 127.0.0.1 "$HTTP" model "$WORK/stopped.json" >"$WORK/stopped.out" 2>&1 &
load=$!
sleep 0.7
victim=$(member_pid 0 "$WORK/serve.err")
lost_before=$(grep -c "lost" "$WORK/serve.err")
t0=$(date +%s.%N)
kill -STOP "$victim"
check "SIGSTOP of a worker: the group re-forms" wait_for 10 bash -c "[ \$(grep -c 'is serving' '$WORK/serve.err') -ge 3 ]"
t1=$(date +%s.%N)
took=$(python3 -c "print(round($t1 - $t0, 2))")
echo "ok: stopped worker: a new group served $took s after SIGSTOP"
check "within 3 s ($took s)" python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 3 else 1)"
check "all 16 complete, none hangs" wait "$load"
check "identical to the undisturbed run" $LOAD compare "$WORK/ref.json" "$WORK/stopped.json"
kill -CONT "$victim"
check "the stopped worker comes back as a standby" wait_for 10 bash -c "[ \"\$(curl -s http://127.0.0.1:$HTTP/metrics | sed -n 's/^facet_workers{state=\"standby\"} //p')\" = 1 ]"

# --- facet bench failover: injected faults, every output checked -------------------------------------
kill -TERM "$SERVE"
wait "$SERVE"
pids=()
HTTP=$(free_port)
check "serve with fault injection starts" start_serve inject "$HTTP" --model "$M" --tp 2 --standby 1 --grpc-port 0 \
    --allow-fault-injection
check "facet bench failover: 4 faults, nothing lost or changed" "$FACET" bench failover --url "http://127.0.0.1:$HTTP" \
    --model "$M" --num-faults 4 --num-prompts 8 --output-len 48 --no-progress --result-json "$WORK/bench.json"
check "its JSON counts every request" python3 -c "
import json; r = json.load(open('$WORK/bench.json'))
assert r['faults_injected'] == 4 and r['lost'] == 0 and r['mismatched'] == 0 and r['failed'] == 0, r
assert r['completed'] == r['requests'] == r['compared'] > 0 and r['first_token_s']['n'] >= 1, r"
kill_background
pids=()

# --- elastic: 2 -> 1 -> 2, coordinator and workers as separate processes ------------------------------
HTTP=$(free_port)
CL=$(free_port)
GRPC=$(free_port)
coordinator() { # coordinator NAME [options]
    local name=$1
    shift
    "$FACET" coordinator --model "$M" --tp 2 --grpc-port "$GRPC" --cluster-port "$CL" --http-port "$HTTP" \
        --cluster-token-file "$WORK/token" "$@" >"$WORK/$name.log" 2>&1 &
    CO=$!
    pids+=("$CO")
}
worker() { # worker NAME: pid in $last
    "$FACET" worker --coordinator "127.0.0.1:$CL" --cluster-token-file "$WORK/token" --model-root "$WORK" --threads 1 \
        >"$WORK/$1.log" 2>&1 &
    last=$!
    pids+=("$last")
}
coordinator elastic --replace-timeout 800 --grow-delay 500
worker e1
E1=$last
worker e2
E2=$last
check "the group forms at tp=2" wait_for 30 http_ready "$HTTP"
$LOAD run 127.0.0.1 "$HTTP" model "$WORK/shrink.json" >"$WORK/shrink.out" 2>&1 &
load=$!
sleep 0.7
kill -9 "$E2"
check "no replacement: the group shrinks to tp=1" wait_for 10 bash -c "[ \"\$(curl -s http://127.0.0.1:$HTTP/metrics | sed -n 's/^facet_group_size //p')\" = 1 ]"
check "every request completes on the smaller group" wait "$load"
check "identical to tp=2 undisturbed" $LOAD compare "$WORK/ref.json" "$WORK/shrink.json"
$LOAD run 127.0.0.1 "$HTTP" model "$WORK/grow.json" >"$WORK/grow.out" 2>&1 &
load=$!
sleep 0.3
worker e3
check "a worker returns: the group grows back to tp=2" wait_for 15 bash -c "grep -q 'growing back' '$WORK/elastic.log' && [ \"\$(curl -s http://127.0.0.1:$HTTP/metrics | sed -n 's/^facet_group_size //p')\" = 2 ]"
check "every request completes through the growth" wait "$load"
check "identical again" $LOAD compare "$WORK/ref.json" "$WORK/grow.json"

# --- a restarted coordinator adopts its workers' epoch --------------------------------------------------
kill -9 "$CO"
wait "$CO" 2>/dev/null
coordinator restart1 --initial-epoch 25
check "a coordinator starting at epoch 25 forms a group" wait_for 30 http_ready "$HTTP"
EPOCH=$(metric "$HTTP" facet_group_epoch)
kill -9 "$CO"
wait "$CO" 2>/dev/null
t0=$(date +%s.%N)
coordinator restart2
check "the restarted coordinator serves" wait_for 10 http_ready "$HTTP"
t1=$(date +%s.%N)
took=$(python3 -c "print(round($t1 - $t0, 2))")
echo "ok: restarted coordinator: ready $took s after it started (the workers were at epoch $EPOCH)"
check "within 2 s ($took s)" python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 2 else 1)"
check "past the workers' epoch ($EPOCH)" test "$(metric "$HTTP" facet_group_epoch)" -gt "$EPOCH"
check "without reloading shards" grep -q "adopting epoch $EPOCH" "$WORK/restart2.log"
same "and serves the same tokens" "$(grpc_gen "$GRPC")" "$G0"
kill_background
pids=()

# --- limits: --failover-timeout and --max-replays -------------------------------------------------------
HTTP=$(free_port)
CL=$(free_port)
GRPC=$(free_port)
coordinator limits --failover-timeout 1500 --max-replays 0 --replace-timeout 600000
worker l1
L1=$last
worker l2
check "the group forms" wait_for 30 http_ready "$HTTP"
body='{"model": "model", "prompt": "hi", "max_tokens": 400, "ignore_eos": true}'
curl -s "http://127.0.0.1:$HTTP/v1/completions" -d "$body" >"$WORK/replay0.json" &
req=$!
sleep 0.5
kill -9 "$L1"
wait "$req"
check "--max-replays 0: the request in flight ends, saying why" grep -q "max-replays" "$WORK/replay0.json"
t0=$(date +%s.%N)
curl -s "http://127.0.0.1:$HTTP/v1/completions" -d "$body" >"$WORK/timeout.json"
t1=$(date +%s.%N)
check "a request with no group waits, then ends naming --failover-timeout" grep -q "failover-timeout" "$WORK/timeout.json"
check "after about 1.5 s" python3 -c "import sys; d = $t1 - $t0; sys.exit(0 if 1.2 < d < 4 else 1)"
check "with 503, retriable" python3 -c "
import json,sys; e = json.load(open('$WORK/timeout.json'))['error']; assert 'retry' in e['message'], e"
finish
