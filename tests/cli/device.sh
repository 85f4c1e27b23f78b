#!/usr/bin/env bash
# Choosing the compute device: one facet binary runs with or without CUDA
# and says which device it uses and, for the CPU, why not CUDA; asking for
# CUDA where it cannot start is a one-line error naming the reason.
# `facet bench model` runs on full-size shapes without checkpoints
# (--random-weights); here the tiny preset on the CPU.
. "$(dirname "$0")/lib.sh"

if "$FACET" info | grep -q "using CUDA"; then
    echo "note: this machine has a usable GPU: checking that --device cuda runs"
    check "--device cuda generates" "$FACET" generate --device cuda --prompt "hi" --max-tokens 2 --json
else
    expect_error "--device cuda without a usable GPU" "CUDA cannot start" \
        "$FACET" generate --device cuda --prompt "hi" --max-tokens 2
    echo "test-token-0123456789" >"$WORK/token"
    chmod 600 "$WORK/token"
    expect_error "a worker with --device cuda and no usable GPU" "CUDA cannot start" \
        "$FACET" worker --coordinator 127.0.0.1:1 --model-root "$WORK" --cluster-token-file "$WORK/token" --device cuda
    expect_error "serve --device cuda refuses before starting workers" "CUDA cannot start" \
        "$FACET" serve --device cuda --http-port 0 --grpc-port 0
    expect_error "generate --tp 2 --device cuda likewise" "CUDA cannot start" \
        "$FACET" generate --tp 2 --device cuda --prompt hi
    expect_error "bench comm --device cuda likewise" "CUDA cannot start" "$FACET" bench comm --device cuda --backend ipc
    # auto falls back to the CPU and says why, in the log
    check "auto says it uses the CPU and why" bash -c \
        "FACET_DEVICE= '$FACET' generate --prompt hi --max-tokens 2 2>&1 >/dev/null | grep -q 'using the CPU: '"
fi
expect_error "an unknown device" "choose cpu, cuda or auto" "$FACET" generate --device tpu --prompt "hi" --max-tokens 2
expect_error "bench comm: an unknown device" "choose cpu (host buffers, Gloo) or cuda" "$FACET" bench comm --device tpu
expect_error "bench comm --device cuda: an unknown backend" "wants ipc, nccl or host" \
    "$FACET" bench comm --device cuda --backend auto
check "--device cpu asks for nothing to be explained" bash -c "! '$FACET' generate --device cpu --prompt hi --max-tokens 2 2>&1 >/dev/null | grep -q 'using '"

# the engine benchmark on random weights: JSON with every point measured
"$FACET" bench model --device cpu --random-weights --preset tiny --batch 1,3 --prefill 16 --context 8 --steps 2 \
    --json >"$WORK/bench.json" 2>"$WORK/bench.err"
check "bench model --random-weights runs" python3 - "$WORK/bench.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
pts = r["points"]
assert [(p["phase"], p["size"]) for p in pts] == [("decode", 1), ("decode", 3), ("prefill", 16)], pts
assert all(p["tok_s"] > 0 and p["roofline_tok_s"] > 0 and p["ms_per_step"] > 0 for p in pts), pts
assert r["weight_bytes"] > 0 and r["bandwidth_gbs"] > 0 and r["tflops"] > 0, r
print("ok: bench model:", ", ".join(f'{p["phase"]} {p["size"]}: {p["tok_s"]:.0f} tok/s' for p in pts))
PY
expect_error "bench model needs weights" "--model DIR or --random-weights" "$FACET" bench model
expect_error "bench model with an unknown preset" "unknown preset" \
    "$FACET" bench model --device cpu --random-weights --preset 13b
expect_error "bench model with a bad batch list" "comma-separated" \
    "$FACET" bench model --random-weights --batch 1,x
finish
