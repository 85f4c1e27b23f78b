#!/usr/bin/env bash
# facet against llama.cpp's llama-server on the same weights, one server at a
# time, 2 threads each (the docs/PERFORMANCE.md comparison). llama.cpp is
# built outside this repository (docs/BENCH.md, "Comparing with another
# server"); set where things are:
#   FACET=build/facet  LLAMA_SERVER=.../llama-server  MODELS=dir with MODEL/ (HF) and MODEL-bf16.gguf  OUT=results dir
# usage: bench/peers/llamacpp.sh MODEL NUM_PROMPTS INPUT_LEN OUTPUT_LEN CONCURRENCY
# MODEL may instead be a path to a .gguf file (MODELS unset): then both
# servers load that one file, quantized weights and all.
set -u
M=$1 N=$2 IN=$3 OUT_LEN=$4 C=$5
FACET=${FACET:-build/facet}
LLAMA_SERVER=${LLAMA_SERVER:?set LLAMA_SERVER to the llama-server binary of llama.cpp}
if [[ $M == *.gguf ]]; then
    facet_model=$M llama_model=$M name=$(basename "$M" .gguf) llama_label="llama.cpp (same GGUF, 2 threads, 4 slots)"
else
    MODELS=${MODELS:?set MODELS to the directory holding $M/ and $M-bf16.gguf}
    facet_model=$MODELS/$M llama_model=$MODELS/$M-bf16.gguf name=$M llama_label="llama.cpp (bf16, 2 threads, 4 slots)"
fi
R=${OUT:-bench-results}
mkdir -p "$R"
tag=$name-n$N-i$IN-o$OUT_LEN-c$C
wait_http() { for _ in $(seq 1 600); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }
common=(--model "$facet_model" --num-prompts "$N" --input-len "$IN" --output-len "$OUT_LEN" --max-concurrency "$C"
        --no-progress --seed 1)

"$FACET" serve --model "$facet_model" --tp 1 --threads 2 --http-port 8000 --grpc-port 0 --device cpu >"$R/facet-$tag.log" 2>&1 &
fp=$!
wait_http http://127.0.0.1:8000/ready || { echo "facet did not start"; kill $fp; exit 1; }
"$FACET" bench serve --url http://127.0.0.1:8000 "${common[@]}" --label "facet (tp=1, 2 threads)" \
    --result-json "$R/facet-$tag.json" >"$R/facet-$tag.txt" 2>&1
kill -INT $fp
wait $fp 2>/dev/null

# 4 slots of 4096 positions; no prompt cache: random prompts share no prefix, and
# facet's prefix cache is on, so neither server reuses work (the prefix
# dataset is the place to compare caches)
"$LLAMA_SERVER" -m "$llama_model" --host 127.0.0.1 --port 8090 -t 2 -c $((4 * 4096)) --parallel 4 \
    >"$R/llama-$tag.log" 2>&1 &
lp=$!
wait_http http://127.0.0.1:8090/health || { echo "llama-server did not start"; kill $lp; exit 1; }
"$FACET" bench serve --url http://127.0.0.1:8090 "${common[@]}" --label "$llama_label" \
    --extra-body '{"cache_prompt": false}' --result-json "$R/llama-$tag.json" >"$R/llama-$tag.txt" 2>&1
kill $lp
wait $lp 2>/dev/null

"$FACET" bench plot --title "facet vs llama.cpp: $name, $N prompts, in $IN, out $OUT_LEN, concurrency $C" \
    --out "$R/compare-$tag.svg" "$R/facet-$tag.json" "$R/llama-$tag.json"
for f in facet llama; do
    echo "== $f"
    grep -E "Successful|Failed|duration|Output token|Total Token|TTFT|TPOT|Median E2EL" "$R/$f-$tag.txt"
done
