#!/usr/bin/env bash
# netns.sh — a multi-node facet cluster on one machine: each "node" is a
# network namespace with an address of its own on a private bridge, and the
# coordinator and workers run with the same flags as the Kubernetes
# manifests (cluster/k8s). Tests cut a node's link, slow it down or
# partition it from the coordinator, and watch what clients see.
# Needs root (network namespaces), iproute2 (ip, tc) and curl.
#
# As a command:
#   cluster/local/netns.sh up [--workers N] [--tp T] [--model DIR] [--facet BIN]   prints the prefix
#   cluster/local/netns.sh down PREFIX
#   cluster/local/netns.sh cut|heal|partition|unpartition|slow|unslow PREFIX NODE
#   cluster/local/netns.sh exec PREFIX NODE COMMAND...
#   cluster/local/netns.sh addr PREFIX NODE                  the node's address
# or sourced (tests/cli/netns.sh), for the functions nc_*.
#
# Layout for prefix P and subnet 10.77.S.0/24:
#   P-hub     the bridge br0; one veth per node, named P-<node>
#   P-coord   10.77.S.1    facet coordinator: HTTP 8000, gRPC 50051, cluster 50052
#   P-wI      10.77.S.1I   facet worker I: 7000 (coordinator), 7001 (plaintext health)
#   P-client  10.77.S.100  where clients run
# Every process the functions start is recorded; nc_down kills them and
# deletes the namespaces, whatever state a test left them in.

NC_DIR=${NC_DIR:-/tmp/facet-netns}

# nc_ip PREFIX NODE: the node's address
nc_ip() {
    local s
    s=$(cat "$NC_DIR/$1/subnet")
    case $2 in
    coord) echo "10.77.$s.1" ;;
    client) echo "10.77.$s.100" ;;
    w*) echo "10.77.$s.1${2#w}" ;;
    esac
}

# nc_node PREFIX NODE: adds a namespace wired to the bridge
nc_node() {
    local p=$1 node=$2 ns="$1-$2"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "$p-$node" type veth peer name eth0 netns "$ns"
    ip link set "$p-$node" netns "$p-hub"
    ip -n "$p-hub" link set "$p-$node" master br0 up
    ip -n "$ns" addr add "$(nc_ip "$p" "$node")/24" dev eth0
    ip -n "$ns" link set eth0 up
    echo "$node" >>"$NC_DIR/$p/nodes"
}

# nc_up PREFIX N_WORKERS: the hub, the coordinator's node, N worker nodes, the client's node
nc_up() {
    local p=$1 n=$2
    mkdir -p "$NC_DIR/$p"
    : >"$NC_DIR/$p/nodes"
    : >"$NC_DIR/$p/pids"
    echo $(($$ % 200 + 20)) >"$NC_DIR/$p/subnet"
    ip netns add "$p-hub"
    ip -n "$p-hub" link set lo up
    ip -n "$p-hub" link add br0 type bridge
    ip -n "$p-hub" link set br0 up
    nc_node "$p" coord
    nc_node "$p" client
    for i in $(seq 1 "$n"); do nc_node "$p" "w$i"; done
}

# nc_run PREFIX NODE LOG COMMAND...: runs COMMAND in the node, in the background, logging to LOG
nc_run() {
    local p=$1 node=$2 log=$3
    shift 3
    ip netns exec "$p-$node" "$@" >"$log" 2>&1 &
    echo "$!" >>"$NC_DIR/$p/pids"
    NC_LAST=$!
}

# The same flags as the Kubernetes manifests (cluster/k8s/base).
# nc_coordinator PREFIX FACET MODEL_DIR TP TOKEN_FILE LOG [more flags]
nc_coordinator() {
    local p=$1 facet=$2 model=$3 tp=$4 token=$5 log=$6
    shift 6
    nc_run "$p" coord "$log" "$facet" coordinator --model "$model" --tp "$tp" --host 0.0.0.0 --http-port 8000 \
        --grpc-port 50051 --cluster-port 50052 --cluster-token-file "$token" "$@"
}

# nc_worker PREFIX I FACET MODEL_ROOT TOKEN_FILE LOG [more flags]
nc_worker() {
    local p=$1 i=$2 facet=$3 root=$4 token=$5 log=$6
    shift 6
    nc_run "$p" "w$i" "$log" "$facet" worker --coordinator "$(nc_ip "$p" coord):50052" --listen 0.0.0.0:7000 \
        --advertise "$(nc_ip "$p" "w$i")" --health-listen 0.0.0.0:7001 --model-root "$root" \
        --cluster-token-file "$token" --threads 1 "$@"
}

# faults on the network
nc_cut() { ip -n "$1-hub" link set "$1-$2" down; }      # the node loses its link to every other
nc_heal() { ip -n "$1-hub" link set "$1-$2" up; }
nc_partition() {                                        # the node and the coordinator cannot reach each other
    ip -n "$1-$2" route add blackhole "$(nc_ip "$1" coord)/32"
    ip -n "$1-coord" route add blackhole "$(nc_ip "$1" "$2")/32"
}
nc_unpartition() {
    ip -n "$1-$2" route del blackhole "$(nc_ip "$1" coord)/32"
    ip -n "$1-coord" route del blackhole "$(nc_ip "$1" "$2")/32"
}
# a slow link: delay with netem where the kernel has it, else a token-bucket
# throttle (tbf), which delays everything past a trickle of bandwidth
nc_slow() {
    if ip netns exec "$1-$2" tc qdisc add dev eth0 root netem delay "${3:-150ms}" 2>/dev/null; then
        echo netem
    else
        ip netns exec "$1-$2" tc qdisc add dev eth0 root tbf rate "${4:-256kbit}" burst 4kb latency 2s
        echo tbf
    fi
}
nc_unslow() { ip netns exec "$1-$2" tc qdisc del dev eth0 root; }
nc_has_netem() { # nc_has_netem PREFIX: whether the kernel has the netem queueing discipline
    ip netns exec "$1-client" tc qdisc add dev lo root netem delay 1ms 2>/dev/null &&
        ip netns exec "$1-client" tc qdisc del dev lo root
}

# nc_down PREFIX: every process started, every namespace, gone
nc_down() {
    local p=$1
    [ -d "$NC_DIR/$p" ] || return 0
    if [ -f "$NC_DIR/$p/pids" ]; then
        xargs -r kill -9 <"$NC_DIR/$p/pids" 2>/dev/null
    fi
    for ns in $(ip netns list | awk '{print $1}' | grep "^$p-"); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    done
    sleep 0.2
    for ns in $(ip netns list | awk '{print $1}' | grep "^$p-"); do ip netns del "$ns"; done
    rm -rf "${NC_DIR:?}/$p"
}

# nc_left PREFIX: what is left of the cluster (empty when torn down)
nc_left() { ip netns list | awk '{print $1}' | grep "^$1-"; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    root=$(cd "$(dirname "$0")/../.." && pwd)
    cmd=${1:-help}
    shift || true
    case $cmd in
    up)
        n=3 tp=2 model="" facet="$root/build/facet"
        while [ $# -gt 0 ]; do
            case $1 in
            --workers) n=$2 ;; --tp) tp=$2 ;; --model) model=$2 ;; --facet) facet=$2 ;;
            *) echo "netns.sh up: unknown option $1" >&2; exit 2 ;;
            esac
            shift 2
        done
        [ "$(id -u)" -eq 0 ] || { echo "netns.sh: network namespaces need root" >&2; exit 1; }
        p=fct$$
        model=${model:-$HOME/.cache/facet/models/tiny}
        nc_up "$p" "$n"
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$NC_DIR/$p/token"
        chmod 600 "$NC_DIR/$p/token"
        nc_coordinator "$p" "$facet" "$model" "$tp" "$NC_DIR/$p/token" "$NC_DIR/$p/coord.log"
        for i in $(seq 1 "$n"); do nc_worker "$p" "$i" "$facet" "$(dirname "$model")" "$NC_DIR/$p/token" "$NC_DIR/$p/w$i.log"; done
        echo "$p"
        echo "netns.sh: coordinator at http://$(nc_ip "$p" coord):8000 (from the client node: netns.sh exec $p client curl ...); logs in $NC_DIR/$p" >&2
        ;;
    down) nc_down "$1" ;;
    addr) nc_ip "$1" "$2" ;;
    cut | heal | partition | unpartition | slow | unslow) "nc_$cmd" "$1" "$2" ;;
    exec)
        p=$1 node=$2
        shift 2
        exec ip netns exec "$p-$node" "$@"
        ;;
    *) sed -n '2,20p' "$0" ;;
    esac
fi
