#!/usr/bin/env bash
# facet generate end to end on models made by make-model: --json carries
# every documented key, seeded sampling is reproducible, streamed text equals
# the JSON text, a sharded checkpoint gives the single file's tokens, f32 and
# f16 checkpoints of the same weights give logits within bf16 rounding, and
# with no --model the built-in tiny model is made.
. "$(dirname "$0")/lib.sh"

m=$WORK/tiny
"$FACET" make-model --preset tiny --out "$m" 2>/dev/null
"$FACET" generate --model "$m" --prompt "The quick brown fox" --max-tokens 12 --json >"$WORK/a.json"
check "--json is one valid JSON object" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/a.json"
for key in prompt_ids output_ids text finish_reason timings; do
    check "--json has \"$key\"" python3 -c 'import json,sys; assert sys.argv[2] in json.load(open(sys.argv[1]))' "$WORK/a.json" "$key"
done
for key in prefill_ms prefill_tokens_per_s decode_ms decode_tokens_per_s; do
    check "timings has \"$key\"" python3 -c 'import json,sys; assert sys.argv[2] in json.load(open(sys.argv[1]))["timings"]' "$WORK/a.json" "$key"
done
same "prompt starts with <bos>" "$(json "$WORK/a.json" '["prompt_ids"][0]')" 2
check "12 tokens or a stop" python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
assert (len(d["output_ids"]) == 12 and d["finish_reason"] == "length") or d["finish_reason"] == "stop", d' "$WORK/a.json"

# the prompt ids are facet tokenize's, with <bos> in front
ids=$(echo "The quick brown fox" | "$FACET" tokenize --model "$m")
same "prompt_ids = <bos> + tokenize" "$(json "$WORK/a.json" '["prompt_ids"][1:]' | tr -d '[],')" "$ids"

# streamed text equals the JSON text
"$FACET" generate --model "$m" --prompt "The quick brown fox" --max-tokens 12 >"$WORK/stream.txt" 2>/dev/null
json "$WORK/a.json" '["text"]' >"$WORK/json.txt"
check "streamed text equals the JSON text" cmp -s "$WORK/stream.txt" "$WORK/json.txt"

# seeded sampling: same seed same tokens, another seed other tokens
s() { "$FACET" generate --model "$m" --prompt "Once upon a time" --max-tokens 24 --temperature 1.5 --top-k 50 --top-p 0.95 --seed "$1" --json | json /dev/stdin '["output_ids"]'; }
same "same seed, same tokens" "$(s 7)" "$(s 7)"
differ "another seed, other tokens" "$(s 7)" "$(s 8)"

# the chat template
"$FACET" generate --model "$m" --prompt "Hi" --chat --max-tokens 4 --json >"$WORK/chat.json"
check "chat prompt is <bos><start_of_turn>user..." python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); p=d["prompt_ids"]
last_sot = len(p) - 1 - p[::-1].index(106)
assert p[:2] == [2, 106] and p.count(106) == 2 and p.count(107) == 1 and p.index(107) < last_sot, p' "$WORK/chat.json"

# the sharded layout of the same bf16 weights gives the same greedy tokens
g() { "$FACET" generate --model "$1" --prompt "The quick brown fox" --max-tokens 8 --ignore-eos --json | json /dev/stdin '["output_ids"]'; }
"$FACET" make-model --preset tiny --shard-mb 1 --out "$WORK/sharded" 2>/dev/null
check "sharded checkpoint has an index" [ -f "$WORK/sharded/model.safetensors.index.json" ]
same "sharded = single file" "$(g "$m")" "$(g "$WORK/sharded")"
# f32 and f16 checkpoints of the same random weights (same seed) are the bf16
# model without its rounding: the first token's logits agree within bf16's
# precision (2^-8 of the largest logit), and 8 tokens are generated
"$FACET" make-model --preset tiny --dtype f32 --out "$WORK/f32" 2>/dev/null
"$FACET" make-model --preset tiny --dtype f16 --out "$WORK/f16" 2>/dev/null
first_logits() { "$FACET" generate --model "$1" --prompt "The quick brown fox" --max-tokens 1 --ignore-eos --json --logits >"$2"; }
first_logits "$m" "$WORK/bf16-logits.json"
for dt in f32 f16; do
    first_logits "$WORK/$dt" "$WORK/$dt-logits.json"
    check "$dt checkpoint: logits within bf16 rounding of the bf16 one" python3 - "$WORK/bf16-logits.json" "$WORK/$dt-logits.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["logits"][0] for p in sys.argv[1:3])
scale = max(abs(x) for x in a)
worst = max(abs(x - y) for x, y in zip(a, b)) / scale
print(f"ok: {sys.argv[2]}: {len(b)} logits within {worst:.1e} of the bf16 model's (relative to the largest)")
assert len(a) == len(b) > 0 and worst < 2 ** -8, worst
PY
    check "$dt checkpoint generates 8 tokens" python3 -c 'import sys; assert len(eval(sys.argv[1])) == 8' "$(g "$WORK/$dt")"
done

# --threads changes nothing but speed
t1=$("$FACET" generate --model "$m" --prompt "abc" --max-tokens 8 --threads 1 --json | json /dev/stdin '["output_ids"]')
t3=$("$FACET" generate --model "$m" --prompt "abc" --max-tokens 8 --threads 3 --json | json /dev/stdin '["output_ids"]')
same "1 thread = 3 threads" "$t1" "$t3"

# no --model: the built-in tiny model, made on first use under FACET_HOME
FACET_HOME=$WORK/home "$FACET" generate --prompt "Hello" --max-tokens 4 >"$WORK/default.txt" 2>"$WORK/default.err"
check "default model is made" [ -f "$WORK/home/models/tiny/model.safetensors" ]
check "default model says where it is" grep -q "built-in tiny model" "$WORK/default.err"
FACET_HOME=$WORK/home "$FACET" generate --prompt "Hello" --max-tokens 4 >/dev/null 2>"$WORK/default2.err"
check "and reused the second time" bash -c "! grep -q 'making' '$WORK/default2.err'"

check "facet info runs" "$FACET" info

# $FACET_CPU_KERNELS: the AVX512_BF16 matmul, emulated (SIMDe) on any CPU,
# gives the avx2 kernels' first logits within its 16-bit split of the
# activations (1e-4 of the largest: tests/unit/test_hf_logits.c sees 3e-5
# against HF); a name this CPU cannot run is refused and the default used
FACET_CPU_KERNELS=avx512bf16-emulated first_logits "$m" "$WORK/emu-logits.json"
check "avx512bf16-emulated kernels: logits within 1e-4 of the avx2 ones" python3 - "$WORK/bf16-logits.json" "$WORK/emu-logits.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["logits"][0] for p in sys.argv[1:3])
worst = max(abs(x - y) for x, y in zip(a, b)) / max(abs(x) for x in a)
print(f"ok: {len(b)} logits within {worst:.1e} (relative to the largest)")
assert len(a) == len(b) > 0 and worst < 1e-4, worst
PY
same "facet info names the chosen kernels" "$(FACET_CPU_KERNELS=avx512bf16-emulated "$FACET" info | sed -n 's/^cpu kernels: \([^ ]*\).*/\1/p')" avx512bf16-emulated
FACET_CPU_KERNELS=bogus "$FACET" info >"$WORK/info.out" 2>"$WORK/info.err"
check "an unknown FACET_CPU_KERNELS is refused, naming the choices" grep -q "FACET_CPU_KERNELS=bogus: choose reference, avx2, avx512bf16, avx512bf16-emulated, int8, int8-avx2, int8-avxvnni, int8-avx512vnni or int8-vnni-emulated" "$WORK/info.err"
check "and the default used" grep -q "^cpu kernels: avx2" "$WORK/info.out"
same "FACET_CPU_KERNELS=int8 chooses the int8 table of the best set here" \
    "$(FACET_CPU_KERNELS=int8 "$FACET" info | sed -n 's/^cpu kernels: \([^ ]*\).*/\1/p')" \
    "int8-$("$FACET" info | sed -n 's/.*int8 dot products \([a-z0-9]*\).*/\1/p')"
if ! "$FACET" info | grep -q "avx512bf16 yes"; then
    FACET_CPU_KERNELS=avx512bf16 "$FACET" info >"$WORK/info.out" 2>"$WORK/info.err"
    check "avx512bf16 on a CPU without it is refused" grep -q "FACET_CPU_KERNELS=avx512bf16: this CPU cannot run them; using avx2" "$WORK/info.err"
fi
finish
