#!/usr/bin/env bash
# Nobody gets into the cluster (docs/SECURITY.md). Each attack an outsider
# on the same network can make with a plain gRPC client (tests/cli/rpc_call.py)
# is refused with the right status, and the honest client's requests give
# the same tokens before and after:
#   - no credentials: Register, KvSet/KvGet, every Worker method, a forged
#     Step reading another request's KV blocks -> UNAUTHENTICATED;
#   - a peer holding the token (a confused or compromised one): a Load of
#     epoch 2^64-1, an Abort of epoch 0, an InitComm with a foreign prefix,
#     Loads of paths outside the model root or through links out of it, of
#     files that are not JSON or not safetensors -> refused, messages that
#     never show a file's bytes, the worker keeps its shard;
#   - the public surface: every facet.v1.Facet method needs the API key,
#     ModelInfo names no path, /ready and 503 bodies name no worker or address;
#   - mutual TLS: no certificate, another CA's, the wrong role -> refused;
#   - coordinator and worker refuse to start without credentials, a worker
#     with the wrong token says what to fix; facet serve is closed by default.
. "$(dirname "$0")/lib.sh"
PROTO=$(cd "$(dirname "$0")/../../proto" && pwd)
CALL="/usr/bin/python3 $(dirname "$0")/rpc_call.py $PROTO"
CLIENT="/usr/bin/python3 $(dirname "$0")/grpc_client.py"

ROOT=$WORK/models
M=$ROOT/model
"$FACET" make-model --preset tiny --layers 2 --out "$M" 2>/dev/null
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"; chmod 600 "$1"; }
secret "$WORK/token"
secret "$WORK/wrong-token"
secret "$WORK/api-key"
KEY=$(cat "$WORK/api-key")
export FACET_API_KEY=$KEY # the servers' API key, from the environment (never argv)
# call ADDR METHOD JSON [options]: the status code; the whole reply in $WORK/reply.json
call() { $CALL "$@" >"$WORK/reply.json"; json "$WORK/reply.json" '["code"]'; }
message() { json "$WORK/reply.json" '["message"]'; }
honest() { # honest GRPC_ADDR: greedy tokens of a fixed prompt, through the public API with the key
    $CLIENT "$1" "$PROTO" generate --prompt "The history of science" --max-tokens 10 --ignore-eos --api-key "$KEY" |
        json /dev/stdin '["output_ids"]'
}
T0=$("$FACET" generate --model "$M" --prompt "The history of science" --max-tokens 10 --ignore-eos --json |
    json /dev/stdin '["output_ids"]')

# --- nothing starts open by accident --------------------------------------------------------------
expect_error "a coordinator without credentials refuses to start" "--cluster-token-file" \
    "$FACET" coordinator --model "$M" --grpc-port 0 --cluster-port 0 --http-port 0
expect_error "a worker without credentials refuses to start" "no cluster credentials" \
    "$FACET" worker --coordinator 127.0.0.1:1 --model-root "$ROOT"
expect_error "a worker without a model root refuses to start" "--model-root" \
    "$FACET" worker --coordinator 127.0.0.1:1 --cluster-token-file "$WORK/token"

# --- a coordinator and two workers, cluster token mode --------------------------------------------
GRPC=$(free_port)
HTTP=$(free_port)
CL=$(free_port)
"$FACET" coordinator --model "$M" --tp 2 --grpc-port "$GRPC" --cluster-port "$CL" --http-port "$HTTP" \
    --cluster-token-file "$WORK/token" --failover-timeout 1000 --replace-timeout 600000 >"$WORK/coordinator.log" 2>&1 &
pids+=("$!")
start_worker() { # start_worker NAME [options]: pid in $last
    local name=$1
    shift
    "$FACET" worker --coordinator "127.0.0.1:$CL" --model-root "$ROOT" --threads 1 "$@" >"$WORK/$name.log" 2>&1 &
    last=$!
    pids+=("$last")
}
start_worker w1 --cluster-token-file "$WORK/token"
start_worker w2 --cluster-token-file "$WORK/token"
W2=$last
check "the group forms with the token" wait_for 30 http_ready "$HTTP"
W=127.0.0.1:$(sed -n 's/.*serving on 127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/w1.log")
same "the honest client gets the tokens of facet generate" "$(honest "127.0.0.1:$GRPC")" "$T0"

REG='{"protocolVersion": 3, "workerId": "rogue", "address": "127.0.0.1:1", "requestedRank": 0}'
same "Register without the token" "$(call "127.0.0.1:$CL" /facet.v1.Coordinator/Register "$REG")" UNAUTHENTICATED
check "  and the refusal says what is missing" grep -q "needs the cluster token" <<<"$(message)"
same "Register with a wrong token" "$(call "127.0.0.1:$CL" /facet.v1.Coordinator/Register "$REG" --token-file "$WORK/wrong-token")" \
    UNAUTHENTICATED
check "  and the refusal says it does not match" grep -q "does not match" <<<"$(message)"
same "KvSet without the token" "$(call "127.0.0.1:$CL" /facet.v1.Coordinator/KvSet '{"key": "epoch-1/rank_0", "value": "AAAA"}')" \
    UNAUTHENTICATED
same "KvGet without the token" "$(call "127.0.0.1:$CL" /facet.v1.Coordinator/KvGet '{"key": "epoch-1/rank_0"}')" UNAUTHENTICATED
for m in Load InitComm Abort Health; do
    same "Worker/$m without the token" "$(call "$W" "/facet.v1.Worker/$m" '{}')" UNAUTHENTICATED
done
# another user's request lives in blocks 0..: a forged step over them would read its KV cache
STEP='{"epoch": "1", "seqIds": ["1"], "startPos": [8], "numTokens": [1], "blockTableLen": [1], "sample": [true],
       "temperature": [0], "topK": [0], "topP": [1], "seed": ["0"], "tokenIds": [5], "blockIds": [0], "minP": [0],
       "presencePenalty": [0], "frequencyPenalty": [0], "repetitionPenalty": [0], "topLogprobs": [0], "penaltyLen": [0]}'
same "a forged Step over another request's blocks" "$(call "$W" /facet.v1.Worker/Step "$STEP")" UNAUTHENTICATED
same "the same over the step stream" "$(call "$W" /facet.v1.Worker/StepStream "$STEP")" UNAUTHENTICATED
same "the honest client after all that" "$(honest "127.0.0.1:$GRPC")" "$T0"

# --- a peer with the token still cannot push the worker around -------------------------------------
T=(--token-file "$WORK/token")
call "$W" /facet.v1.Worker/Health '{}' "${T[@]}" >/dev/null
EPOCH=$(json "$WORK/reply.json" '["response"]["epoch"]')
RANK=$(json "$WORK/reply.json" '["response"]["rank"]')
same "Health with the token names the epoch and rank" "$([ -n "$EPOCH" ] && [ -n "$RANK" ] && echo yes)" yes
same "Load of epoch 2^64-1" "$(call "$W" /facet.v1.Worker/Load '{"epoch": "18446744073709551615", "modelDir": "'"$M"'",
    "rank": 0, "tpSize": 2, "blockSize": 16, "maxBatchTokens": 512, "protocolVersion": 3}' "${T[@]}")" ABORTED
check "  refused as beyond what the coordinator announced" grep -q "beyond what the coordinator has announced" <<<"$(message)"
same "Abort of epoch 0" "$(call "$W" /facet.v1.Worker/Abort '{"epoch": "0", "reason": "x"}' "${T[@]}")" FAILED_PRECONDITION
call "$W" /facet.v1.Worker/StepStream "${STEP/\"epoch\": \"1\"/\"epoch\": \"0\"}" "${T[@]}" >/dev/null
same "a StepStream step of epoch 0: answered in the stream, FAILED_PRECONDITION (9)" \
    "$(json "$WORK/reply.json" '["response"]["code"]')" 9
same "InitComm with a foreign rendezvous prefix" "$(call "$W" /facet.v1.Worker/InitComm \
    '{"epoch": "'"$EPOCH"'", "rank": '"$RANK"', "size": 2, "backend": "gloo", "prefix": "evil/", "timeoutMs": 15000}' "${T[@]}")" \
    INVALID_ARGUMENT
load() { # load DIR: a Load of the next epoch naming DIR
    call "$W" /facet.v1.Worker/Load '{"epoch": "'$((EPOCH + 1))'", "modelDir": "'"$1"'", "rank": '"$RANK"', "tpSize": 2,
        "blockSize": 16, "maxBatchTokens": 512, "protocolVersion": 3}' "${T[@]}"
}
same "Load of a path outside the model root" "$(load /etc)" FAILED_PRECONDITION
check "  refused as outside the root" grep -q "outside the model root" <<<"$(message)"
mkdir -p "$ROOT/linked"
ln -sf /etc/passwd "$ROOT/linked/config.json"
same "Load of a checkpoint whose config.json links to /etc/passwd" "$(load "$ROOT/linked")" FAILED_PRECONDITION
check "  refused as outside the root, after following the link" grep -q "outside the model root" <<<"$(message)"
mkdir -p "$ROOT/notjson"
printf 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n' >"$ROOT/notjson/config.json"
same "Load of a config.json that is not JSON" "$(load "$ROOT/notjson")" FAILED_PRECONDITION
check "  the message says where, not what" grep -q "not valid JSON (line 1, column" <<<"$(message)"
check "  and shows none of the file's bytes" not grep -q "root:x" <<<"$(message)"
mkdir -p "$ROOT/notst"
cp "$M/config.json" "$ROOT/notst/"
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$ROOT/notst/model.safetensors"
same "Load of a model.safetensors that is not one" "$(load "$ROOT/notst")" FAILED_PRECONDITION
LEN=$(python3 -c 'import sys; print(int.from_bytes(open(sys.argv[1], "rb").read(8), "little"))' "$ROOT/notst/model.safetensors")
check "  the message names the problem, not the header length the bytes spell ($LEN)" \
    bash -c "grep -q 'header length field' <<<\"\$1\" && ! grep -q '$LEN' <<<\"\$1\"" _ "$(message)"
same "the worker kept its shard: the honest client gets the same tokens" "$(honest "127.0.0.1:$GRPC")" "$T0"

# --- the public surface: the API key everywhere, no paths, no internal names ------------------------
same "Tokenize without the API key" "$(call "127.0.0.1:$GRPC" /facet.v1.Facet/Tokenize '{"text": "hi"}')" UNAUTHENTICATED
same "ModelInfo without the API key" "$(call "127.0.0.1:$GRPC" /facet.v1.Facet/ModelInfo '{}')" UNAUTHENTICATED
same "ModelInfo with the key names the model, not its path" \
    "$(call "127.0.0.1:$GRPC" /facet.v1.Facet/ModelInfo '{}' --api-key "$KEY" >/dev/null; json "$WORK/reply.json" '["response"]["model"]')" model
same "the health check stays open" "$(call "127.0.0.1:$GRPC" /grpc.health.v1.Health/Check '{}')" OK
W1_ID=$(sed -n 's/.*worker \(w[0-9a-f-]*\): serving on.*/\1/p' "$WORK/w1.log")
kill -9 "$W2"
check "a lost worker: /ready says not ready" wait_for 10 not http_ready "$HTTP"
curl -s "http://127.0.0.1:$HTTP/ready" >"$WORK/ready.json"
curl -s "http://127.0.0.1:$HTTP/v1/completions" -H "Authorization: Bearer $KEY" \
    -d '{"model": "model", "prompt": "hi", "max_tokens": 2}' >"$WORK/503.json"
for f in ready.json 503.json; do
    check "$f says why ($(head -c 120 "$WORK/$f"))" test -s "$WORK/$f"
    check "$f names no worker and no address" not grep -qE "$W1_ID|w[0-9]{5}-|127\.0\.0\.1|:[0-9]{4,5}" "$WORK/$f"
done
check "the operator's log keeps the details" grep -q "was lost" "$WORK/coordinator.log"
start_worker bad --cluster-token-file "$WORK/wrong-token"
check "a worker with the wrong token says what to fix" wait_log 10 "$WORK/bad.log" "cluster token does not match"
start_worker w3 --cluster-token-file "$WORK/token"
check "a worker with the right token re-forms the group" wait_for 30 http_ready "$HTTP"
same "and the honest client gets the same tokens" "$(honest "127.0.0.1:$GRPC")" "$T0"
kill_background
pids=()

# --- mutual TLS: coordinator and workers as separate processes --------------------------------------
# facet certs is facet's own OpenSSL code: checked for leaks without the
# libcrypto suppression of tests/sanitizers/lsan.supp (its log is in $WORK)
env -u LSAN_OPTIONS "$FACET" certs --out "$WORK/pki" >/dev/null 2>"$WORK/certs.log"
env -u LSAN_OPTIONS "$FACET" certs --out "$WORK/other-pki" >/dev/null 2>>"$WORK/certs.log"
P=$WORK/pki
GRPC=$(free_port)
HTTP=$(free_port)
CL=$(free_port)
"$FACET" coordinator --model "$M" --tp 2 --grpc-port "$GRPC" --cluster-port "$CL" --http-port "$HTTP" \
    --tls-ca "$P/ca.pem" --tls-cert "$P/coordinator.pem" --tls-key "$P/coordinator-key.pem" >"$WORK/tls-coordinator.log" 2>&1 &
pids+=("$!")
for i in 1 2; do
    start_worker "tls-w$i" --tls-ca "$P/ca.pem" --tls-cert "$P/worker.pem" --tls-key "$P/worker-key.pem"
done
check "the group forms over mutual TLS" wait_for 30 http_ready "$HTTP"
same "the honest client gets the same tokens (mTLS)" "$(honest "127.0.0.1:$GRPC")" "$T0"
W=127.0.0.1:$(sed -n 's/.*serving on 127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/tls-w1.log")
same "Register in plaintext" "$(call "127.0.0.1:$CL" /facet.v1.Coordinator/Register "$REG")" UNAVAILABLE
same "Register over TLS without a client certificate" \
    "$(call "127.0.0.1:$CL" /facet.v1.Coordinator/Register "$REG" --tls-ca "$P/ca.pem")" UNAVAILABLE
same "Register with another CA's worker certificate" "$(call "127.0.0.1:$CL" /facet.v1.Coordinator/Register "$REG" \
    --tls-ca "$P/ca.pem" --tls-cert "$WORK/other-pki/worker.pem" --tls-key "$WORK/other-pki/worker-key.pem")" UNAVAILABLE
same "Register with the coordinator's certificate (the wrong role)" "$(call "127.0.0.1:$CL" /facet.v1.Coordinator/Register \
    "$REG" --tls-ca "$P/ca.pem" --tls-cert "$P/coordinator.pem" --tls-key "$P/coordinator-key.pem")" PERMISSION_DENIED
same "a worker's certificate commanding another worker" "$(call "$W" /facet.v1.Worker/Load '{}' --tls-ca "$P/ca.pem" \
    --tls-cert "$P/worker.pem" --tls-key "$P/worker-key.pem" --tls-name facet-worker)" PERMISSION_DENIED
check "  saying only the coordinator may" grep -q "only for facet-coordinator" <<<"$(message)"
start_worker tls-bad --tls-ca "$P/ca.pem" --tls-cert "$WORK/other-pki/worker.pem" --tls-key "$WORK/other-pki/worker-key.pem"
check "a worker with another CA's certificate says what to check" wait_log 15 "$WORK/tls-bad.log" "same cluster"
same "the honest client after all that (mTLS)" "$(honest "127.0.0.1:$GRPC")" "$T0"
kill_background
pids=()

# --- facet serve: closed without any setup; and with --tls-dir --------------------------------------
for mode in token tls; do
    extra=()
    [ "$mode" = tls ] && extra=(--tls-dir "$P")
    GRPC=$(free_port)
    HTTP=$(free_port)
    check "facet serve ($mode) starts" start_serve "serve-$mode" "$HTTP" --model "$M" --tp 2 \
        --grpc-port "$GRPC" "${extra[@]}"
    CL=$(sed -n 's/.*workers 127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/serve-$mode.out")
    want=UNAUTHENTICATED
    [ "$mode" = tls ] && want=UNAVAILABLE
    same "serve ($mode): a stranger's Register is refused" "$(call "127.0.0.1:$CL" /facet.v1.Coordinator/Register "$REG")" "$want"
    same "serve ($mode): the honest client gets the same tokens" "$(honest "127.0.0.1:$GRPC")" "$T0"
    worker=$(pgrep -P "$last" | head -1)
    secret=$(tr '\0' '\n' <"/proc/$worker/environ" | sed -n 's/^FACET_CLUSTER_TOKEN=//p')
    check "serve ($mode): the workers inherit a cluster token of 64 hex digits" grep -qE '^[0-9a-f]{64}$' <<<"$secret"
    check "serve ($mode): which no command line shows" not grep -qa "$secret" /proc/[0-9]*/cmdline
    kill_background
    pids=()
done
finish
