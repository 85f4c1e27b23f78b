#!/usr/bin/env bash
# The Kubernetes manifests of cluster/k8s (docs/DEPLOYMENT.md), checked
# without a cluster:
#   - yamllint --strict on every YAML file there;
#   - every kustomization renders with `kubectl kustomize` (the kustomize of
#     Debian 12's kubectl 1.20, or any newer);
#   - every rendered object is valid Kubernetes 1.28 and 1.33 (the PyPI
#     package kubernetes-validate, strict: unknown fields fail), a
#     LeaderWorkerSet's pod templates as v1 PodTemplates;
#   - each facet cluster has the properties that matter (check_k8s.py
#     properties): non-root pods without capabilities, T workers + spares,
#     a GPU per worker in the GPU overlays, the coordinator's probes, preStop
#     and a grace period longer than its drain, secrets mounted as files and
#     never in the environment, the Services, the workers' budget, and
#     NetworkPolicies that keep the worker and cluster ports to the cluster;
#     and the check catches each of a list of broken copies (mutants);
#   - the rendered command lines, $(VAR)s expanded as the kubelet would, pass
#     `facet coordinator|worker --dry-run`, and fail without their `args`
#     (the credential: the TLS overlay swaps exactly that);
#   - the workers' probes agree with what an idle worker's grpc.health.v1
#     answers (a live `facet worker`, asked with tests/cli/rpc_call.py);
#   - the LeaderWorkerSet: structure (restartPolicy None, size, leader
#     address), and, when shared/k8s-schemas has the LWS CRD, its schema.
# usage: k8s.sh FACET_BINARY REPO_ROOT WORK_DIR
# shellcheck source-path=SCRIPTDIR source=../cli/lib.sh
. "$(dirname "$0")/../cli/lib.sh" # FACET=$1, FIXTURES=$2 (here: the repository), WORK=$3
REPO=$(cd "$2" && pwd)
K8S=$REPO/cluster/k8s
HERE=$REPO/tests/deploy
VENV_PY=$REPO/.venv/bin/python
CHECK=("$VENV_PY" "$HERE/check_k8s.py")
unset FACET_CLUSTER_TOKEN FACET_API_KEY FACET_DEVICE # the dry runs must see only the manifests' credentials

# need WHAT HOW command...: the tool is there, or the test fails saying how to get it
need() {
    local what=$1 how=$2
    shift 2
    if ! "$@" >/dev/null 2>&1; then
        echo "FAIL: $what is missing: $how" >&2
        exit 1
    fi
}
need kubectl "apt-get install kubernetes-client (Debian 12: kubectl 1.20)" kubectl version --client
need yamllint "apt-get install yamllint" yamllint --version
need "kubernetes-validate in $REPO/.venv" "scripts/install-deps (tests/requirements.txt)" \
    "$VENV_PY" -c "import kubernetes_validate, jsonschema, yaml"
need "Python's grpc and protobuf (tests/cli/rpc_call.py)" "apt-get install python3-grpcio python3-protobuf" \
    /usr/bin/python3 -c "import grpc, google.protobuf"
need protoc "apt-get install protobuf-compiler" protoc --version
echo "tools: kubectl $(kubectl version --client 2>/dev/null | grep -o 'v1\.[0-9]*\.[0-9]*' | head -1)," \
    "$(yamllint --version), kubernetes-validate $("$VENV_PY" -c 'import kubernetes_validate as k; print(k.__version__)')"


verify "yamllint --strict: every YAML file under cluster/k8s" yamllint --strict -c "$K8S/yamllint.yaml" "$K8S"

# what each kustomization must be: T, workers (T + spares), GPUs per worker, credential
declare -A SHAPE=(
    [base]="1 2 0 token"
    [overlays/cpu]="2 3 0 token"
    [overlays/gpu-tp2]="2 3 1 token"
    [overlays/gpu-tp4]="4 5 1 token"
    [overlays/gpu-tp2-tls]="2 3 1 tls"
    [lws]="2 3 1 token"
    [models]="" # the model volume and its copy pod: no facet cluster
)
mapfile -t dirs < <(cd "$K8S" && find . -name kustomization.yaml -printf '%h\n' | sed 's|^\./||' | sort)
same "the kustomizations under cluster/k8s are the ones this test knows" "${dirs[*]}" \
    "$(printf '%s\n' "${!SHAPE[@]}" | sort | tr '\n' ' ' | sed 's/ $//')"

render() { # render DIR OUT: kubectl kustomize's objects in OUT (its warnings, e.g. deprecations, aside)
    kubectl kustomize "$K8S/$1" >"$2" 2>"$2.err" && [ -s "$2" ] || { cat "$2.err"; return 1; }
}
# dry_run FILE: facet with the NUL-separated arguments in FILE, and --dry-run
dry_run() {
    local argv
    mapfile -d '' argv <"$1"
    "$FACET" "${argv[@]}" --dry-run
}
dry_run_ok() { dry_run "$1" | grep -q "the options are valid"; }

for d in "${dirs[@]}"; do
    name=${d//\//-}
    out=$WORK/$name.yaml
    verify "$d renders with kubectl kustomize" render "$d" "$out" || continue
    verify "$d: every object is valid Kubernetes 1.28 and 1.33 (kubernetes-validate --strict)" \
        "${CHECK[@]}" validate "$out" 1.28.0 1.33.0
    if [ -z "${SHAPE[$d]:-}" ]; then
        verify "$d: its pods run as non-root, without capabilities" "${CHECK[@]}" security "$out"
        continue
    fi
    read -r tp workers gpus credential <<<"${SHAPE[$d]}"
    opts=(--tp "$tp" --workers "$workers" --gpus "$gpus" --credential "$credential")
    verify "$d: T = $tp, $workers workers, $gpus GPU per worker, $credential: the properties" \
        "${CHECK[@]}" properties "$out" "${opts[@]}"
    verify "$d: the properties check catches each mutant" "${CHECK[@]}" mutants "$out" "${opts[@]}"
    verify "$d: the facet command lines, with each \$(VAR) expanded" "${CHECK[@]}" commands "$out" "$WORK/$name"
    for role in coordinator worker; do
        verify "$d: the $role's command line passes facet $role --dry-run" dry_run_ok "$WORK/$name/$role.args"
        expect_error "$d: the $role's command line without its args (the credential) is refused" \
            "no cluster credentials" dry_run "$WORK/$name/$role.noargs"
    done
done

# --- the workers' probes against a live worker ------------------------------------------------------
# A worker that is in no group (a spare, or one whose coordinator is away)
# is asked what grpc.health.v1 on --health-listen answers; the manifests'
# probes must suit that answer (base/worker.yaml says why).
mkdir -p "$WORK/models"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token"
chmod 600 "$WORK/token"
HP=$(free_port)
FACET_DEVICE=cpu "$FACET" worker --coordinator 127.0.0.1:1 --model-root "$WORK/models" --threads 1 \
    --cluster-token-file "$WORK/token" --health-listen "127.0.0.1:$HP" >"$WORK/worker.log" 2>&1 &
pids+=("$!")
health() { /usr/bin/python3 "$REPO/tests/cli/rpc_call.py" "$REPO/proto" "127.0.0.1:$HP" /grpc.health.v1.Health/Check '{}' \
    >"$WORK/health.json" && [ "$(json "$WORK/health.json" '["code"]')" = OK ]; }
check "an idle worker answers grpc.health.v1 on --health-listen" wait_for 20 health
STATUS=$(json "$WORK/health.json" '["response"]["status"]')
echo "   an idle worker's grpc.health.v1 status: ${STATUS:-none}"
member=$(/usr/bin/python3 "$REPO/tests/cli/rpc_call.py" "$REPO/proto" "127.0.0.1:$HP" /grpc.health.v1.Health/Check \
    '{"service": "facet.v1.Worker"}' | json /dev/stdin '["response"]["status"]')
same "  for service facet.v1.Worker (group membership) it answers NOT_SERVING" "$member" NOT_SERVING
for d in overlays/cpu overlays/gpu-tp2 lws; do
    verify "$d: the workers' probes suit an idle worker's answer ($STATUS)" "${CHECK[@]}" worker-probes "$WORK/${d//\//-}.yaml" "$STATUS"
done
other=$([ "$STATUS" = SERVING ] && echo NOT_SERVING || echo SERVING)
quietly() { "$@" >/dev/null 2>&1; }
verify "  and that check fails for the other answer ($other)" \
    not quietly "${CHECK[@]}" worker-probes "$WORK/overlays-gpu-tp2.yaml" "$other"

# --- the LeaderWorkerSet against its CRD, when this checkout has it -----------------------------------
# shared/k8s-schemas lies beside the repository on the project's machines,
# not in every CI: the structural checks above never depend on it.
CRD=${FACET_LWS_CRD:-$REPO/../shared/k8s-schemas/leaderworkerset.x-k8s.io_leaderworkersets.yaml}
if [ -f "$CRD" ]; then
    verify "lws: the LeaderWorkerSet is valid against the LWS CRD's schema" "${CHECK[@]}" lws-schema "$WORK/lws.yaml" "$CRD"
else
    echo "note: $CRD is not here: the LeaderWorkerSet was checked for structure only (set FACET_LWS_CRD to add the schema check)"
fi

finish
