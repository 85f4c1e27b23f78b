#!/usr/bin/env python3
"""Writes tests/fixtures/quant/: ggml block-quantized rows and the floats
gguf-py (llama.cpp's own Python library, numpy code independent of facet's
C) dequantizes them to. tests/unit/test_quant.c checks that
quant_dequantize_row gives the same floats, bit for bit.

For each type: a few rows of several blocks. Where gguf-py can quantize the
type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, BF16) most rows are quantized
random floats; every type also gets rows of random bytes (every bit pattern
of the quants), with the f16 scales replaced by finite values — positive,
negative and subnormal — since gguf-py cannot quantize the K-quants and a
random f16 may be inf or NaN. F16/BF16 rows include zeros of both signs,
subnormals and infinities (no NaN: converters disagree on their payloads).

Files, per type T: T.bin (rows × row bytes, the blocks as stored in GGUF),
T.f32 (rows × cols little-endian float32), and index.json naming them with
rows, cols and block sizes, one type per line. Deterministic (seeded).

    .venv/bin/python tests/reference/make_quant_fixtures.py [out_dir]
"""
import json
import os
import sys
from importlib.metadata import version

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

SEED = 20240611
QUANTIZABLE = {T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0}
# (type, rows, cols, offsets of the f16 scales within a block)
TYPES = [
    (T.F16, 3, 64, ()),
    (T.BF16, 3, 64, ()),
    (T.Q4_0, 5, 128, (0,)),
    (T.Q4_1, 5, 128, (0, 2)),
    (T.Q5_0, 5, 128, (0,)),
    (T.Q5_1, 5, 128, (0, 2)),
    (T.Q8_0, 5, 128, (0,)),
    (T.Q4_K, 4, 512, (0, 2)),
    (T.Q5_K, 4, 512, (0, 2)),
    (T.Q6_K, 4, 512, (208,)),
]


def finite_f16(rng, n):
    """n random finite f16 bit patterns: mostly ordinary scales (1e-4 .. 1),
    some negative, some subnormal."""
    mags = np.exp(rng.uniform(np.log(1e-4), np.log(1.0), n)).astype(np.float16).view(np.uint16)
    kind = rng.integers(0, 8, n)
    bits = np.where(kind == 0, rng.integers(1, 0x400, n).astype(np.uint16), mags)  # subnormal
    bits = np.where(kind == 1, bits | 0x8000, bits)  # negative
    return bits.astype(np.uint16)


def random_blocks(rng, qtype, rows, cols, scale_offsets):
    block, size = GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // block
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    for off in scale_offsets:
        raw[:, off:off + 2] = finite_f16(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(rows, cols // block * size)


def special_floats(rng, qtype, rows, cols):
    x = rng.standard_normal((rows, cols)).astype(np.float32) * 3
    row = x[0]
    row[:8] = [0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-40, 6e-8, 65504.0]
    if qtype == T.F16:
        return x.astype(np.float16).view(np.uint8).reshape(rows, cols * 2)
    bits = x.view(np.uint32)
    rounded = ((bits.astype(np.uint64) + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return rounded.view(np.uint8).reshape(rows, cols * 2)


def make_rows(rng, qtype, rows, cols, scale_offsets):
    if qtype in (T.F16, T.BF16):
        return special_floats(rng, qtype, rows, cols)
    if qtype not in QUANTIZABLE:
        return random_blocks(rng, qtype, rows, cols, scale_offsets)
    # quantized floats of varied spread, then two rows of random bytes
    spread = np.exp(rng.uniform(-4, 2, (rows - 2, 1))).astype(np.float32)
    x = rng.standard_normal((rows - 2, cols)).astype(np.float32) * spread
    quantized = gguf.quants.quantize(x, qtype)
    return np.concatenate([quantized, random_blocks(rng, qtype, 2, cols, scale_offsets)])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "quant")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    entries = []
    for qtype, rows, cols, scale_offsets in TYPES:
        raw = np.ascontiguousarray(make_rows(rng, qtype, rows, cols, scale_offsets))
        floats = gguf.quants.dequantize(raw, qtype).astype("<f4", copy=False)
        assert floats.shape == (rows, cols), (qtype.name, floats.shape)
        assert not np.isnan(floats).any(), qtype.name
        block, size = GGML_QUANT_SIZES[qtype]
        raw.tofile(os.path.join(out, qtype.name + ".bin"))
        floats.tofile(os.path.join(out, qtype.name + ".f32"))
        entries.append({"type": qtype.name, "ggml_type": int(qtype), "rows": rows, "cols": cols,
                        "block_elems": block, "block_bytes": size,
                        "data": qtype.name + ".bin", "floats": qtype.name + ".f32"})
    lines = ",\n".join("    " + json.dumps(e) for e in entries)
    with open(os.path.join(out, "index.json"), "w") as f:
        f.write('{\n  "generator": "tests/reference/make_quant_fixtures.py",\n')
        f.write(f'  "gguf": "{version("gguf")}",\n')
        f.write(f'  "numpy": "{np.__version__}",\n  "seed": {SEED},\n')
        f.write('  "types": [\n' + lines + "\n  ]\n}\n")
    print(f"wrote {len(entries)} types to {out}")


if __name__ == "__main__":
    main()
