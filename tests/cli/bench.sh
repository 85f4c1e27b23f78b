#!/usr/bin/env bash
# The facet bench family against a local `facet serve` (small N):
#   - bench serve writes a JSON with every documented key (docs/BENCH.md),
#     consistent with what was asked (exact prompt lengths, ignore_eos
#     output lengths, one ITL per token after the first), for completions
#     and chat, a rate sweep with a concurrency cap, the sharegpt and prefix
#     datasets, and an SVG that parses;
#   - bench plot overlays two results;
#   - a dead URL and a server that refuses the requests: a clear message,
#     every failure counted in the JSON, exit status 1, no crash;
#   - bench throughput and bench latency print their JSON; bench matmul times every
#     shape of the tiny preset at three batch sizes.
. "$(dirname "$0")/lib.sh"

"$FACET" make-model --preset tiny --layers 2 --out "$WORK/model" 2>/dev/null
PORT=$(free_port)
check "a server starts" start_serve serve "$PORT" --model "$WORK/model" --tp 1 --grpc-port "$(free_port)"
URL=http://127.0.0.1:$PORT
bench() { "$FACET" bench serve --url "$URL" --model "$WORK/model" --no-progress "$@"; }

# the keys docs/BENCH.md documents
KEYS="date backend label url endpoint model_id dataset num_prompts request_rate burstiness max_concurrency goodput_slo_ms
duration completed failed total_input_tokens total_output_tokens request_throughput request_goodput output_throughput
total_token_throughput mean_ttft_ms median_ttft_ms std_ttft_ms p90_ttft_ms p99_ttft_ms mean_tpot_ms median_tpot_ms
std_tpot_ms p90_tpot_ms p99_tpot_ms mean_itl_ms median_itl_ms std_itl_ms p90_itl_ms p99_itl_ms mean_e2el_ms
median_e2el_ms std_e2el_ms p90_e2el_ms p99_e2el_ms input_lens output_lens start_times ttfts e2els itls errors"
validate() { # validate FILE N IN OUT [EXPECT_GOODPUT]
    python3 - "$@" "$KEYS" <<'PY'
import json, sys
path, n, inp, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
keys = sys.argv[-1].split()
r = json.load(open(path))
missing = [k for k in keys if k not in r]
assert not missing, f"missing keys: {missing}"
assert r["completed"] == n and r["failed"] == 0, (r["completed"], r["failed"], r["errors"][:3])
assert r["input_lens"] == [inp] * n, r["input_lens"]
assert r["output_lens"] == [out] * n, r["output_lens"]
assert r["total_output_tokens"] == n * out and r["total_input_tokens"] == n * inp
assert all(len(g) == out - 1 for g in r["itls"]), [len(g) for g in r["itls"]]
assert all(0 < t <= e for t, e in zip(r["ttfts"], r["e2els"])), "ttft within e2el"
assert r["p99_ttft_ms"] >= r["median_ttft_ms"] > 0 and r["mean_tpot_ms"] > 0 and r["output_throughput"] > 0
assert abs(r["output_throughput"] - r["total_output_tokens"] / r["duration"]) < 1e-6 * r["output_throughput"]
if len(sys.argv) > 6:
    assert r["request_goodput"] is not None and r["goodput_slo_ms"] == {"ttft": 60000, "tpot": 60000}
    assert abs(r["request_goodput"] - r["request_throughput"]) < 1e-9, "every request meets a one-minute SLO"
print(f"ok: {path}: {n} requests, {r['output_throughput']:.0f} output tok/s, p99 TTFT {r['p99_ttft_ms']:.1f} ms")
PY
}
svg_ok() { python3 -c "import sys, xml.etree.ElementTree as E; t = E.parse(sys.argv[1]); n = sum(1 for e in t.iter() if e.tag.endswith(sys.argv[2])); assert n >= int(sys.argv[3]), n" "$@"; }

check "bench serve runs" bench --num-prompts 12 --input-len 24 --output-len 8 --goodput "ttft:60000 tpot:60000" \
    --result-json "$WORK/r.json" --plot "$WORK/r.svg" --label facet
check "its JSON has every documented key and adds up" validate "$WORK/r.json" 12 24 8 goodput
check "its plot is SVG with bars" svg_ok "$WORK/r.svg" rect 20
check "the table is printed" grep -q "Output token throughput (tok/s):" <(bench --num-prompts 2 --input-len 8 --output-len 2)
check "chat completions" bench --endpoint /v1/chat/completions --num-prompts 4 --input-len 16 --output-len 4 --result-json "$WORK/chat.json"
check "chat: output lengths" python3 -c "import json; r = json.load(open('$WORK/chat.json')); assert r['completed'] == 4 and r['output_lens'] == [4] * 4, r['output_lens']"
check "a sweep of rates with a concurrency cap" bench --num-prompts 6 --input-len 16 --output-len 4 --request-rate 30,inf \
    --max-concurrency 2 --result-json "$WORK/sweep.json" --plot "$WORK/sweep.svg"
check "the sweep's JSON is one run per rate" python3 -c "
import json; r = json.load(open('$WORK/sweep.json'))
assert [x['request_rate'] for x in r] == [30, 'inf'] and all(x['completed'] == 6 and x['max_concurrency'] == 2 for x in r)"
check "the sweep's plot has lines" svg_ok "$WORK/sweep.svg" polyline 4
check "bench plot overlays two results" "$FACET" bench plot --out "$WORK/both.svg" "$WORK/r.json" "$WORK/sweep.json"
check "the overlay names both series" bash -c "grep -c '<rect x=\"[0-9]*\" y=\"36\"' '$WORK/both.svg' | grep -qx 2"

python3 - "$WORK/sharegpt.json" <<'PY'
import json, sys
words = "the of and to in is that it was for on are as with his they at be this from".split()
conv = [{"conversations": [{"from": "human", "value": " ".join(words[(i + k) % len(words)] for k in range(8 + i))},
                           {"from": "gpt", "value": " ".join(words[(i * 3 + k) % len(words)] for k in range(5 + i))}]}
        for i in range(10)]
conv.append({"conversations": [{"from": "human", "value": "hi"}]})  # one turn: left out
json.dump(conv, open(sys.argv[1], "w"))
PY
check "the sharegpt dataset" bench --dataset sharegpt --dataset-path "$WORK/sharegpt.json" --num-prompts 6 --result-json "$WORK/sg.json"
check "sharegpt: replies set the output lengths" python3 -c "
import json; r = json.load(open('$WORK/sg.json'))
assert r['completed'] == 6 and len(set(r['output_lens'])) > 1 and min(r['output_lens']) >= 4, r['output_lens']"
expect_error "sharegpt without a file" "needs --dataset-path" bench --dataset sharegpt --num-prompts 2
check "the prefix dataset" bench --dataset prefix --prefix-len 16 --num-prompts 4 --input-len 8 --output-len 2 --result-json "$WORK/px.json"
check "prefix: the prompts carry the prefix" python3 -c "
import json; r = json.load(open('$WORK/px.json')); assert r['completed'] == 4 and min(r['input_lens']) >= 22, r['input_lens']"

# failures are counted, never a crash
DEAD=$(free_port)
"$FACET" bench serve --url "http://127.0.0.1:$DEAD" --model "$WORK/model" --no-progress --num-prompts 4 --input-len 8 \
    --output-len 2 --result-json "$WORK/dead.json" >"$WORK/dead.out" 2>"$WORK/dead.err"
check "a dead URL: exit status 1" test $? -eq 1
check "a dead URL: says so" grep -q "4 of 4 requests to http://127.0.0.1:$DEAD/v1/completions failed; the first: Couldn't connect" "$WORK/dead.err"
check "a dead URL: the JSON counts the failures" python3 -c "
import json; r = json.load(open('$WORK/dead.json')); assert r['failed'] == 4 and r['completed'] == 0 and all(r['errors'])"
bench --num-prompts 3 --input-len 3000 --output-len 2 --result-json "$WORK/refused.json" >/dev/null 2>"$WORK/refused.err"
check "requests the server refuses: exit status 1" test $? -eq 1
check "requests the server refuses: its message" grep -q "HTTP 400: This model's maximum context length is" "$WORK/refused.err"
check "a server still serving after all that" bench --num-prompts 2 --input-len 8 --output-len 2

# offline benchmarks
check "bench throughput" bash -c "'$FACET' bench throughput --model '$WORK/model' --device cpu --num-prompts 8 --input-len 16 --output-len 8 --json > '$WORK/tput.json'"
check "bench throughput: every prompt done" python3 -c "
import json; r = json.load(open('$WORK/tput.json')); assert r['completed'] == 8 and r['failed'] == 0 and r['output_tokens_per_second'] > 0, r"
check "bench latency" bash -c "'$FACET' bench latency --model '$WORK/model' --device cpu --batch-size 2 --input-len 16 --output-len 4 --num-iters 2 --json > '$WORK/lat.json'"
check "bench latency: figures with rooflines" python3 -c "
import json; r = json.load(open('$WORK/lat.json'))
assert r['prefill']['median_ms'] > 0 and r['prefill']['roofline_ms'] > 0 and r['decode_step']['p99_ms'] >= r['decode_step']['median_ms'] > 0, r"
check "bench matmul" bash -c "'$FACET' bench matmul --preset tiny --batch 1,5,70 --reps 3 > '$WORK/matmul.txt'"
check "bench matmul: every shape at every batch, and a layer line each" python3 -c "
rows = [l.split() for l in open('$WORK/matmul.txt') if l.split() and l.split()[0].isdigit()]
for b in ('1', '5', '70'):
    names = [r[1] for r in rows if r[0] == b]
    want = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] + (['lm_head'] if b != '70' else []) + ['layer']
    assert names == want, (b, names)
for r in rows:  # ms > 0, and GFLOP/s = 2 x batch x rows x cols / time, within the printed rounding
    if r[1] == 'layer':
        assert float(r[2]) > 0, r
        continue
    ms, gf, flops = float(r[5]), float(r[6]), 2.0 * int(r[0]) * int(r[2]) * int(r[4])
    assert ms > 0, r
    lo, hi = flops / ((ms + 0.0005) * 1e6), flops / (max(ms - 0.0005, 1e-9) * 1e6)
    assert lo - 0.05 <= gf <= hi + 0.05, (r, lo, hi)"
check "bench matmul refuses a bad batch list" bash -c "! '$FACET' bench matmul --batch 4,x 2>'$WORK/mm.err' && grep -q 'comma-separated' '$WORK/mm.err'"
finish
