#!/usr/bin/env bash
# Bad input gives a one-line error naming the problem and a non-zero exit,
# never a crash: corrupt checkpoints (safetensors and GGUF), lying headers,
# missing or misshapen tensors, bad config.json, a garbage tokenizer.model,
# empty and over-long prompts, bad options.
. "$(dirname "$0")/lib.sh"

good=$WORK/good
"$FACET" make-model --preset tiny --layers 1 --out "$good" 2>/dev/null
check "a good model generates" "$FACET" generate --model "$good" --prompt "hi" --max-tokens 2 --json >/dev/null

variant() { # variant NAME: a fresh copy of the good model
    rm -rf "${WORK:?}/$1"
    cp -r "$good" "$WORK/$1"
    echo "$WORK/$1"
}
gen() { "$FACET" generate --model "$1" --prompt "hello" --max-tokens 2; }

# --- safetensors ---
m=$(variant truncated)
size=$(stat -c %s "$m/model.safetensors")
truncate -s $((size / 2)) "$m/model.safetensors"
expect_error "truncated safetensors" "truncated" gen "$m"

m=$(variant short)
truncate -s 5 "$m/model.safetensors"
expect_error "a 5-byte safetensors file" "too short" gen "$m"

m=$(variant headerlen)
printf '\xff\xff\xff\x00\x00\x00\x00\x00' | dd of="$m/model.safetensors" bs=1 conv=notrunc status=none
expect_error "header length past the end" "header length" gen "$m"

# rewrite one entry of the JSON header in place (same length), so offsets lie
lie() { # lie FILE OLD NEW
    python3 - "$@" <<'PY'
import sys
path, old, new = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
data = bytearray(open(path, "rb").read())
n = int.from_bytes(data[:8], "little")
header = bytes(data[8:8 + n])
assert old in header and len(old) == len(new), (old, new)
data[8:8 + n] = header.replace(old, new, 1)
open(path, "wb").write(bytes(data))
PY
}
m=$(variant offsets)
first=$(python3 -c 'import json,sys; h=open(sys.argv[1],"rb").read(); n=int.from_bytes(h[:8],"little"); d=json.loads(h[8:8+n]); t=[v for k,v in d.items() if k!="__metadata__"][0]; print(t["data_offsets"][1])' "$m/model.safetensors")
lie "$m/model.safetensors" "\"data_offsets\":[0,$first]" "\"data_offsets\":[1,$first]"
expect_error "offsets that disagree with the shape" "need" gen "$m"

m=$(variant dtype)
lie "$m/model.safetensors" '"dtype":"BF16"' '"dtype":"XF16"'
expect_error "an unknown dtype" "unsupported dtype" gen "$m"

m=$(variant json)
lie "$m/model.safetensors" '{"__metadata__"' '["__metadata__"'
expect_error "a header that is not JSON" "not valid JSON" gen "$m"

m=$(variant missing)
lie "$m/model.safetensors" 'model.norm.weight' 'model.norm.weighX'
expect_error "a missing tensor" "model.norm.weight" gen "$m"

m=$(variant misshapen)
sed -i 's/"intermediate_size":[[:space:]]*1024/"intermediate_size": 1000/' "$m/config.json"
expect_error "a tensor of the wrong shape" "has shape" gen "$m"

m=$(variant nofile)
rm "$m/model.safetensors"
expect_error "no weights at all" "model.safetensors" gen "$m"

m=$(variant nan)
python3 - "$m/model.safetensors" <<'PY'
import json, sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
n = int.from_bytes(data[:8], "little")
t = json.loads(data[8:8 + n])["model.norm.weight"]
b, e = t["data_offsets"]
data[8 + n + b:8 + n + e] = b"\xc0\x7f" * ((e - b) // 2)  # bf16 NaN
open(path, "wb").write(bytes(data))
PY
expect_error "weights holding NaN" "NaN" gen "$m"

# --- config.json ---
m=$(variant badjson)
echo '{"hidden_size": 256,' >"$m/config.json"
expect_error "config.json that is not JSON" "config.json" gen "$m"

m=$(variant arch)
sed -i 's/GemmaForCausalLM/Gemma2ForCausalLM/' "$m/config.json"
expect_error "an unsupported architecture" "Gemma2ForCausalLM" gen "$m"

m=$(variant heads)
sed -i 's/"num_attention_heads":[[:space:]]*4/"num_attention_heads": 3/' "$m/config.json"
expect_error "heads that do not match the tensors" "has shape" gen "$m"

m=$(variant noconfig)
rm "$m/config.json"
expect_error "no config.json" "config.json" gen "$m"

expect_error "a directory that does not exist" "/nonexistent/model" "$FACET" generate --model /nonexistent/model --prompt hi

# --- tokenizer.model ---
m=$(variant tok)
head -c 3000 /dev/urandom >"$m/tokenizer.model"
expect_error "a garbage tokenizer.model" "tokenizer.model" gen "$m"
m=$(variant tokcut)
truncate -s 1000 "$m/tokenizer.model"
expect_error "a truncated tokenizer.model" "tokenizer.model" gen "$m"
expect_error "facet tokenize with a garbage model" "tokenizer.model" "$FACET" tokenize --tokenizer "$WORK/tok/tokenizer.model"

# --- prompts and options ---
expect_error "an empty prompt" "prompt is empty" "$FACET" generate --model "$good" --prompt ""
expect_error "no prompt" "prompt is empty" "$FACET" generate --model "$good"
m=$(variant shortctx)
sed -i 's/"max_position_embeddings":[[:space:]]*2048/"max_position_embeddings": 16/' "$m/config.json"
expect_error "a prompt longer than the context" "context is 16 tokens" \
    "$FACET" generate --model "$m" --prompt "$(printf 'word %.0s' $(seq 1 40))"
expect_error "a negative --max-tokens" "--max-tokens" "$FACET" generate --model "$good" --prompt hi --max-tokens -3
expect_error "a non-numeric --temperature" "--temperature" "$FACET" generate --model "$good" --prompt hi --temperature warm
expect_error "an unknown option" "--frobnicate" "$FACET" generate --frobnicate
expect_error "an unknown command" "frobnicate" "$FACET" frobnicate
expect_error "an unknown preset" "13b" "$FACET" make-model --preset 13b --out "$WORK/x"
# --- GGUF: broken copies of a good small file (tests/cli/bad_gguf.py, with PyPI gguf from .venv) ---
REPO=$(cd "$(dirname "$0")/../.." && pwd)
G=$FIXTURES/hf/gemma3-mqa-f32/model.gguf
check "a good GGUF file generates" "$FACET" generate --model "$G" --prompt "hi" --max-tokens 2 --json
bad() { "$REPO/.venv/bin/python" "$REPO/tests/cli/bad_gguf.py" "$G" "$WORK/bad-$1.gguf" "$1" && echo "$WORK/bad-$1.gguf"; }
head -c 5000 "$G" >"$WORK/bad-truncated.gguf"
expect_error "a truncated GGUF file" "truncated" gen "$WORK/bad-truncated.gguf"
expect_error "a tensor's offset past the end" "past the end" gen "$(bad offset)"
expect_error "a tensor's offset off the alignment" "alignment" gen "$(bad misaligned)"
expect_error "an unknown tensor type" "unknown ggml type id 99" gen "$(bad type)"
expect_error "a dimension the file cannot hold" "past the end" gen "$(bad dims)"
expect_error "more tensors promised than present" "tensor 54" gen "$(bad count)"
expect_error "a tokenizer array of the wrong length" "tokenizer.ggml.scores has 255 entries" gen "$(bad scores)"
expect_error "another architecture" "\"llama\" is not supported" gen "$(bad arch)"
expect_error "a missing shape key" "gemma3.embedding_length" gen "$(bad noshape)"
printf 'GGUF\3\0\0\0' >"$WORK/bad-header.gguf"
expect_error "a GGUF header and nothing else" "truncated" gen "$WORK/bad-header.gguf"

finish
