#!/usr/bin/env bash
# Tensor parallelism through real worker processes on loopback: for an MQA
# and an MHA model (fp32 weights), `facet generate` in process and with
# --tp 1, 2 and 4 gives identical tokens -- greedy, and sampled with a seed
# (temperature only; top-k; top-p; min-p; presence, frequency and repetition
# penalties) -- and logits that agree within 1e-4 relative. --comm (the
# workers' all-reduce, comm/select.h): host and auto give the same tokens on
# CPU workers; a device mode on CPU workers is refused at once, naming why.
. "$(dirname "$0")/lib.sh"

"$FACET" make-model --preset tiny --layers 2 --dtype f32 --out "$WORK/mqa" 2>/dev/null
"$FACET" make-model --preset tiny --layers 2 --dtype f32 --kv-heads 4 --seed 1 --out "$WORK/mha" 2>/dev/null

compare() { # compare REF OTHER WHAT
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
what = sys.argv[3]
assert a["output_ids"] == b["output_ids"], f"{what}: tokens differ:\n  {a['output_ids']}\n  {b['output_ids']}"
worst = 0.0
for ra, rb in zip(a["logits"], b["logits"]):
    scale = max(abs(x) for x in ra)
    worst = max(worst, max(abs(x - y) for x, y in zip(ra, rb)) / scale)
assert len(a["logits"]) == len(b["logits"]) == len(a["output_ids"]), "logit rows"
assert worst <= 1e-4, f"{what}: logits differ by {worst:.2e} (relative)"
print(f"ok: {what}: {len(a['output_ids'])} tokens identical, logits within {worst:.1e}")
PY
}

for model in mqa mha; do
    for sampling in "greedy:--temperature 0" "temperature:--temperature 0.9 --seed 7" \
        "top-k:--temperature 1.2 --top-k 20 --seed 3" "top-p:--temperature 1 --top-p 0.8 --seed 11" \
        "min-p:--temperature 1 --min-p 0.05 --seed 9" \
        "penalties:--temperature 0.8 --seed 5 --presence-penalty 0.5 --frequency-penalty 0.3 --repetition-penalty 1.2"; do
        name=${sampling%%:*}
        flags=${sampling#*:}
        # shellcheck disable=SC2086
        "$FACET" generate --model "$WORK/$model" --prompt "Tensor parallel inference is" --max-tokens 12 \
            --ignore-eos --json --logits $flags >"$WORK/$model-$name-ref.json"
        for tp in 1 2 4; do
            # shellcheck disable=SC2086
            "$FACET" generate --model "$WORK/$model" --prompt "Tensor parallel inference is" --max-tokens 12 \
                --ignore-eos --json --logits --tp $tp $flags >"$WORK/$model-$name-tp$tp.json" 2>"$WORK/$model-$name-tp$tp.err"
            check "$model $name --tp $tp = in process" compare "$WORK/$model-$name-ref.json" "$WORK/$model-$name-tp$tp.json" \
                "$model $name tp=$tp"
        done
    done
done
# --comm on CPU workers: auto chooses the host all-reduce
for comm in host auto; do
    "$FACET" generate --model "$WORK/mqa" --prompt "Tensor parallel inference is" --max-tokens 12 \
        --ignore-eos --json --logits --tp 2 --comm $comm >"$WORK/comm-$comm.json" 2>"$WORK/comm-$comm.err"
    check "--tp 2 --comm $comm = in process" compare "$WORK/mqa-greedy-ref.json" "$WORK/comm-$comm.json" "comm $comm"
done
for comm in nccl ipc; do
    rc=0
    timeout 60 "$FACET" generate --model "$WORK/mqa" --prompt hi --tp 2 --comm $comm >/dev/null 2>"$WORK/err" || rc=$?
    check "--comm $comm on CPU workers fails at once (exit $rc)" test "$rc" -eq 1
    check "--comm $comm: the error says no group can form" grep -q "^facet generate: no group can form: rank . cannot use --comm $comm" "$WORK/err"
    check "--comm $comm: the workers say why" grep -q "reduces GPU buffers, but rank 0 runs on the CPU; use --comm auto or host" "$WORK/err"
done
expect_error "--comm with an unknown name" "choose auto, nccl, ipc or host" \
    "$FACET" generate --model "$WORK/mqa" --prompt hi --tp 2 --comm mpi

expect_error "a TP size that does not divide the heads" "not divisible" \
    "$FACET" generate --model "$WORK/mqa" --prompt hi --tp 3
finish
