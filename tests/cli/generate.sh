#!/usr/bin/env bash
# facet generate end to end on models made by make-model: --json carries
# every documented key, seeded sampling is reproducible, streamed text equals
# the JSON text, sharded / f32 / f16 checkpoints give the same tokens as the
# bf16 single file, and with no --model the built-in tiny model is made.
. "$(dirname "$0")/lib.sh"

json_get() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$@"; }

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
check "prompt starts with <bos>" [ "$(json_get "$WORK/a.json" '["prompt_ids"][0]')" = 2 ]
check "12 tokens or a stop" python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
assert (len(d["output_ids"]) == 12 and d["finish_reason"] == "length") or d["finish_reason"] == "stop", d' "$WORK/a.json"

# the prompt ids are facet tokenize's, with <bos> in front
ids=$(echo "The quick brown fox" | "$FACET" tokenize --model "$m")
check "prompt_ids = <bos> + tokenize" [ "$(json_get "$WORK/a.json" '["prompt_ids"][1:]' | tr -d '[],')" = "$ids" ]

# streamed text equals the JSON text
"$FACET" generate --model "$m" --prompt "The quick brown fox" --max-tokens 12 >"$WORK/stream.txt" 2>/dev/null
json_get "$WORK/a.json" '["text"]' >"$WORK/json.txt"
check "streamed text equals the JSON text" cmp -s "$WORK/stream.txt" "$WORK/json.txt"

# seeded sampling: same seed same tokens, another seed other tokens
s() { "$FACET" generate --model "$m" --prompt "Once upon a time" --max-tokens 24 --temperature 1.5 --top-k 50 --top-p 0.95 --seed "$1" --json | json_get /dev/stdin '["output_ids"]'; }
check "same seed, same tokens" [ "$(s 7)" = "$(s 7)" ]
check "another seed, other tokens" [ "$(s 7)" != "$(s 8)" ]

# the chat template
"$FACET" generate --model "$m" --prompt "Hi" --chat --max-tokens 4 --json >"$WORK/chat.json"
check "chat prompt is <bos><start_of_turn>user..." python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); p=d["prompt_ids"]
last_sot = len(p) - 1 - p[::-1].index(106)
assert p[:2] == [2, 106] and p.count(106) == 2 and p.count(107) == 1 and p.index(107) < last_sot, p' "$WORK/chat.json"

# other checkpoint layouts of the same weights give the same greedy tokens
g() { "$FACET" generate --model "$1" --prompt "The quick brown fox" --max-tokens 8 --ignore-eos --json | json_get /dev/stdin '["output_ids"]'; }
"$FACET" make-model --preset tiny --shard-mb 1 --out "$WORK/sharded" 2>/dev/null
check "sharded checkpoint has an index" [ -f "$WORK/sharded/model.safetensors.index.json" ]
check "sharded = single file" [ "$(g "$m")" = "$(g "$WORK/sharded")" ]
"$FACET" make-model --preset tiny --dtype f32 --out "$WORK/f32" 2>/dev/null
"$FACET" make-model --preset tiny --dtype f16 --out "$WORK/f16" 2>/dev/null
check "f32 checkpoint generates" [ -n "$(g "$WORK/f32")" ]
check "f16 checkpoint generates" [ -n "$(g "$WORK/f16")" ]

# --threads changes nothing but speed
t1=$("$FACET" generate --model "$m" --prompt "abc" --max-tokens 8 --threads 1 --json | json_get /dev/stdin '["output_ids"]')
t3=$("$FACET" generate --model "$m" --prompt "abc" --max-tokens 8 --threads 3 --json | json_get /dev/stdin '["output_ids"]')
check "1 thread = 3 threads" [ "$t1" = "$t3" ]

# no --model: the built-in tiny model, made on first use under FACET_HOME
FACET_HOME=$WORK/home "$FACET" generate --prompt "Hello" --max-tokens 4 >"$WORK/default.txt" 2>"$WORK/default.err"
check "default model is made" [ -f "$WORK/home/models/tiny/model.safetensors" ]
check "default model says where it is" grep -q "built-in tiny model" "$WORK/default.err"
FACET_HOME=$WORK/home "$FACET" generate --prompt "Hello" --max-tokens 4 >/dev/null 2>"$WORK/default2.err"
check "and reused the second time" bash -c "! grep -q 'making' '$WORK/default2.err'"

check "facet info runs" "$FACET" info
finish
