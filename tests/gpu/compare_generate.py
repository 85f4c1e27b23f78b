#!/usr/bin/env python3
"""Compares two `facet generate --json [--logits]` runs (CPU reference first,
CUDA second): the logits of every step both ran on the same tokens, by
relative L2 error (at most 2e-2: the GPU rounds activations and the KV cache
to bf16), and the tokens (the first 16 must agree). Runs without --logits
(a CUDA worker then samples from row summaries made on the device, and no
logits leave it) are compared by their tokens alone."""
import json
import math
import sys


def rel(a, b):
    num = sum((x - y) ** 2 for x, y in zip(a, b))
    den = sum(y * y for y in b)
    return math.sqrt(num / den) if den else math.sqrt(num)


def main():
    ref, got = (json.load(open(p)) for p in sys.argv[1:3])
    r_ids, g_ids = ref["output_ids"], got["output_ids"]
    same = 0
    while same < min(len(r_ids), len(g_ids)) and r_ids[same] == g_ids[same]:
        same += 1
    worst = 0.0
    rows = min(same + 1, len(ref.get("logits") or []), len(got.get("logits") or []))
    for i in range(rows):
        e = rel(got["logits"][i], ref["logits"][i])
        if not math.isfinite(e):
            e = float("inf")
        worst = max(worst, e)
    print(f"tokens: {same}/{len(r_ids)} equal; " +
          (f"logits rel err (worst step) {worst:.2e}" if rows else "no logits (tokens only)"))
    print(f"  cpu : {r_ids}\n  cuda: {g_ids}")
    ok = same >= min(16, len(r_ids)) and worst <= 2e-2
    print("ok" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
