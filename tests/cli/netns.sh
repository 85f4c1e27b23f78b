#!/usr/bin/env bash
# A cluster spread over "nodes" -- network namespaces on a bridge, each with
# its own address (cluster/local/netns.sh) -- run with the Kubernetes
# manifests' flags, and the network cut apart under it:
#   - a streamed request from the client's node, across nodes: the tokens of
#     facet generate;
#   - a worker's link cut mid-stream (a spare present): every request
#     completes, identical to an undisturbed run; the cut worker, healed,
#     comes back as a spare;
#   - a worker partitioned from the coordinator (it still reaches the other
#     workers): the same;
#   - a slow link (netem delay where the kernel has it, else a token-bucket
#     throttle): every request completes, identical;
#   - without failover (--max-replays 0): a cut gives a clear error within
#     seconds, and service is restored;
#   - facet bench serve from the client's node;
#   - teardown leaves no namespace and no process behind.
# Needs root: without it the test says so and is skipped (exit 77).
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ]; then
    echo "netns.sh: SKIPPED: network namespaces need root; run the suite as root to include it"
    exit 77
fi
if ! ip netns add "facet-probe-$$" 2>/dev/null; then
    echo "netns.sh: SKIPPED: cannot create network namespaces here (a container without CAP_SYS_ADMIN?)"
    exit 77
fi
ip netns del "facet-probe-$$"
. "$(dirname "$0")/../../cluster/local/netns.sh"
NC_DIR=$WORK/netns
LOAD="python3 $(dirname "$0")/failover_load.py"
P=fct$$
cleanup() {
    nc_down "$P"
    kill_background
}
trap cleanup EXIT

M=$WORK/models/model
"$FACET" make-model --preset tiny --layers 2 --out "$M" 2>/dev/null
nc_up "$P" 3
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token"
chmod 600 "$WORK/token"
CO=$(nc_ip "$P" coord)
ready() { nc_ready_code=$(ip netns exec "$P-client" curl -s -o /dev/null -w '%{http_code}' "http://$CO:8000/ready"); [ "$nc_ready_code" = 200 ]; }
in_client() { ip netns exec "$P-client" "$@"; }
start() { # start [coordinator flags]: the coordinator and three workers (tp 2, one spare)
    nc_coordinator "$P" "$FACET" "$M" 2 "$WORK/token" "$COORD_LOG" --replace-timeout 600000 "$@"
    for i in 1 2 3; do nc_worker "$P" "$i" "$FACET" "$WORK/models" "$WORK/token" "$WORK/w$i.log"; done
}
member_ip() { grep -o "rank $1: worker [^ ]* at [0-9.]*" "$COORD_LOG" | tail -1 | awk '{print $NF}'; }
node_of() { # the node name of an address
    for i in 1 2 3; do [ "$(nc_ip "$P" "w$i")" = "$1" ] && echo "w$i"; done
}
live_workers() { ip netns exec "$P-client" curl -s "http://$CO:8000/metrics" | sed -n 's/^facet_workers{state="live"} //p'; }

COORD_LOG=$WORK/coord.log
start
check "the group forms across nodes" wait_for 30 ready
same "the client node reaches the coordinator by its address" "$(in_client curl -s "http://$CO:8000/health")" '{"status":"alive"}'
body='{"model": "model", "prompt": "The history of science", "max_tokens": 12, "temperature": 0, "ignore_eos": true}'
REF=$("$FACET" generate --model "$M" --prompt "The history of science" --max-tokens 12 --ignore-eos --json | json /dev/stdin '["text"]')
in_client curl -sN "http://$CO:8000/v1/completions" -d "${body%\}}, \"stream\": true}" >"$WORK/stream.txt"
same "a streamed request across nodes gives facet generate's text" \
    "$(python3 -c "
import json,sys
t = ''.join(json.loads(l[6:])['choices'][0]['text'] for l in open(sys.argv[1]) if l.startswith('data: {'))
print(t)" "$WORK/stream.txt")" "$REF"
check "an undisturbed run of 16 streams from the client node" in_client $LOAD run "$CO" 8000 model "$WORK/ref.json"

# --- a link cut mid-stream ---------------------------------------------------------------------------
in_client $LOAD run "$CO" 8000 model "$WORK/cut.json" >"$WORK/cut.out" 2>&1 &
load=$!
sleep 0.7
victim=$(node_of "$(member_ip 1)")
check "rank 1's node is found ($victim)" test -n "$victim"
nc_cut "$P" "$victim"
check "a worker's link cut mid-stream: every request completes" wait "$load"
check "identical to the undisturbed run" $LOAD compare "$WORK/ref.json" "$WORK/cut.json"
nc_heal "$P" "$victim"
check "healed, the worker registers again (3 live)" wait_for 15 bash -c "[ \"\$(ip netns exec $P-client curl -s http://$CO:8000/metrics | sed -n 's/^facet_workers{state=\"live\"} //p')\" = 3 ]"

# --- a partition between the coordinator and a worker --------------------------------------------------
in_client $LOAD run "$CO" 8000 model "$WORK/part.json" >"$WORK/part.out" 2>&1 &
load=$!
sleep 0.7
victim=$(node_of "$(member_ip 0)")
nc_partition "$P" "$victim"
check "a worker partitioned from the coordinator: every request completes" wait "$load"
check "identical to the undisturbed run" $LOAD compare "$WORK/ref.json" "$WORK/part.json"
nc_unpartition "$P" "$victim"
check "the partition healed, 3 live workers again" wait_for 15 bash -c "[ \"\$(ip netns exec $P-client curl -s http://$CO:8000/metrics | sed -n 's/^facet_workers{state=\"live\"} //p')\" = 3 ]"

# --- a slow link ---------------------------------------------------------------------------------------------
victim=$(node_of "$(member_ip 1)")
how=$(nc_slow "$P" "$victim")
[ "$how" = tbf ] && echo "note: this kernel has no netem qdisc: the slow link is a token-bucket throttle (tbf), not a delay"
check "a slow link ($how) on a worker: every request completes" in_client $LOAD run "$CO" 8000 model "$WORK/slow.json"
check "identical to the undisturbed run" $LOAD compare "$WORK/ref.json" "$WORK/slow.json"
nc_unslow "$P" "$victim"
check "serving after the link recovers" wait_for 15 ready

# --- facet bench serve from the client node ---------------------------------------------------------------------
check "facet bench serve against the cluster" in_client "$FACET" bench serve --url "http://$CO:8000" --model "$M" \
    --num-prompts 16 --input-len 32 --output-len 32 --max-concurrency 4 --no-progress --result-json "$WORK/bench.json"
check "  every request completed" python3 -c "
import json; r = json.load(open('$WORK/bench.json')); assert r['completed'] == 16 and r['failed'] == 0, r"

# --- without failover: a clear error within seconds, then service -------------------------------------------------
xargs -r kill -9 <"$NC_DIR/$P/pids" 2>/dev/null
sleep 0.5
: >"$NC_DIR/$P/pids"
COORD_LOG=$WORK/coord-noreplay.log
start --max-replays 0 --failover-timeout 3000
check "a cluster without replays forms" wait_for 30 ready
long='{"model": "model", "prompt": "hi", "max_tokens": 1500, "ignore_eos": true}'
in_client curl -s "http://$CO:8000/v1/completions" -d "$long" >"$WORK/noreplay.json" &
req=$!
sleep 0.5
victim=$(node_of "$(member_ip 1)")
t0=$(date +%s.%N)
nc_cut "$P" "$victim"
wait "$req"
t1=$(date +%s.%N)
check "without replays a cut ends the request with a clear error" grep -q "max-replays" "$WORK/noreplay.json"
check "within seconds ($(python3 -c "print(round($t1 - $t0, 2))") s)" python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 5 else 1)"
check "service is restored (the spare joins)" wait_for 15 ready
check "and serves" bash -c "ip netns exec $P-client curl -s http://$CO:8000/v1/completions -d '$body' | grep -q '\"finish_reason\"'"
nc_heal "$P" "$victim"

# --- teardown ----------------------------------------------------------------------------------------------------------
pidfile=$NC_DIR/$P/pids
started=$(tr '\n' ' ' <"$pidfile")
nc_down "$P"
check "teardown: no namespace left" bash -c "[ -z \"\$(ip netns list | grep '^$P-')\" ]"
check "teardown: no process left" bash -c "for p in $started; do kill -0 \$p 2>/dev/null && exit 1; done; exit 0"
finish
