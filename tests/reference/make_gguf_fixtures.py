#!/usr/bin/env python3
"""Writes the GGUF fixtures that tests/unit/test_gguf.c reads, with the
official writer (PyPI `gguf`, from the llama.cpp project):

  tiny.gguf    metadata of every value type (nested arrays too), a
               SentencePiece vocabulary in tokenizer.ggml.* (specials <pad>
               <eos> <bos> <unk>, <start_of_turn>/<end_of_turn> user-defined,
               <0x00>..<0xFF>, merges), and small tensors of types F32, F16,
               BF16, Q8_0 (quantized by gguf-py), Q4_0, Q4_K, Q6_K (random
               block bytes of the right size)
  vocab.model  the same vocabulary as a tokenizer.model (what spm_train made)
  tiny.json    what the test compares against, so that it hard-codes
               nothing: every key with its type and value in file order,
               every tensor's type, ne, size, file offset and FNV-1a hash,
               and for a few texts the ids `spm_encode` gives on vocab.model

and a small seed for the fuzz target (tests/fuzz/seeds/gguf/small.gguf).

The vocabulary is trained by spm_train with Gemma's settings on a corpus
made here; everything is seeded, so a rerun writes the same bytes.

Usage: .venv/bin/python tests/reference/make_gguf_fixtures.py tests/fixtures/gguf tests/fuzz/seeds/gguf
Needs: gguf (tests/requirements.txt), spm_train and spm_encode (Debian `sentencepiece`).
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType as V, GGUFWriter
from gguf.quants import quantize

from make_tokenizer_fixtures import SPM_GEMMA_FLAGS  # this folder: Python puts a script's own on sys.path

VOCAB_SIZE = 700
SENTENCES = [
    "The weights of a model are stored in blocks, and every block has a scale.",
    "A tokenizer splits text into pieces; the pieces are merged by score.",
    "Reading a file that lies about its length must fail with a clear message.",
    "Every tensor has a name, a type, a shape and an offset into the data section.",
    "def encode(text):\n    return [piece for piece in split(text)]",
    "for (int i = 0; i < n; i++) sum += a[i] * b[i];",
    "The quick brown fox jumps over the lazy dog, again and again.",
    "Numbers like 3.14159, 2718 and 1e-6 are split into digits.",
]
ALPHABETS = ["абвгдежзиклмнопрст", "αβγδεζηθικλμ", "日本語中文字東京大学", "한국어텍스트"]
TEXTS = [  # encoded by spm_encode into tiny.json; one line each, any bytes but '\n'
    b"Hello world", b"The quick brown fox jumps over the lazy dog.", b"  two  spaces  and a tab\tthere",
    b"<start_of_turn>user Hi<end_of_turn>", b"<start_of_turn><end_of_turn>", b"1234567890 3.14",
    "日本語と中文 Ωμέγα".encode(), "emoji \U0001F600 and \u00e9".encode(), b"a\xffb \xc3(", b"",
    b"<bos>Hello<eos>", b"carriage\rreturn", b"def encode(text): return [p for p in text]",
]


def corpus_lines():
    rng = random.Random(16)
    lines = []
    for _ in range(300):
        lines.append(rng.choice(SENTENCES))
        alphabet = rng.choice(ALPHABETS)
        lines.append(" ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5)))
                              for _ in range(rng.randint(2, 8))))
    lines += ["<start_of_turn>user", "Hello!<end_of_turn>", "<start_of_turn>model", "    indented    code  "]
    rng.shuffle(lines)
    return lines


def train_vocab(tmp):
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(corpus_lines()) + "\n")
    # relative paths, run in tmp: the model records them, and must not vary
    subprocess.run([
        "spm_train", "--input=corpus.txt", "--model_prefix=vocab", f"--vocab_size={VOCAB_SIZE}",
        *SPM_GEMMA_FLAGS, "--num_threads=1", "--minloglevel=2",
    ], check=True, cwd=tmp)
    return os.path.join(tmp, "vocab.model")


# ---- the pieces of a tokenizer.model (protobuf, read by hand: ModelProto
# field 1 is a repeated SentencePiece of {1: piece, 2: score, 3: type}) ----

def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def proto_fields(buf):
    i = 0
    while i < len(buf):
        tag, i = varint(buf, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield field, value


def model_pieces(path):
    pieces = []
    for field, value in proto_fields(open(path, "rb").read()):
        if field != 1:
            continue
        piece, score, kind = b"", 0.0, 1
        for f, v in proto_fields(value):
            if f == 1:
                piece = bytes(v)
            elif f == 2:
                score = struct.unpack("<f", v)[0]
            elif f == 3:
                kind = v
        pieces.append((piece, score, kind))
    return pieces


def spm_ids(model, texts):
    out = subprocess.run(["spm_encode", f"--model={model}", "--output_format=id"], input=b"\n".join(texts) + b"\n",
                         stdout=subprocess.PIPE, check=True).stdout
    lines = out.split(b"\n")[:len(texts)]
    return [[int(t) for t in line.split()] for line in lines]


# ---- metadata: (key, type, value[, element type]) in the order written ----

def f32(x):
    return float(np.float32(x))


METADATA = [
    ("test.u8", V.UINT8, 200), ("test.i8", V.INT8, -100), ("test.u16", V.UINT16, 60000),
    ("test.i16", V.INT16, -30000), ("test.u32", V.UINT32, 4000000000), ("test.i32", V.INT32, -2000000000),
    ("test.f32", V.FLOAT32, f32(0.1)), ("test.bool", V.BOOL, True), ("test.string", V.STRING, "héllo, GGUF ✓"),
    ("test.u64", V.UINT64, 2**64 - 5), ("test.i64", V.INT64, -(2**53) - 1), ("test.f64", V.FLOAT64, 2.718281828459045),
    ("test.array.u8", V.ARRAY, [0, 1, 255], V.UINT8), ("test.array.i16", V.ARRAY, [-32768, 0, 32767], V.INT16),
    ("test.array.u64", V.ARRAY, [0, 2**63 + 1], V.UINT64), ("test.array.f64", V.ARRAY, [0.5, -1e300], V.FLOAT64),
    ("test.array.bool", V.ARRAY, [True, False, True], V.BOOL),
    ("test.array.strings", V.ARRAY, ["a", "", "ünï"], V.STRING),
    ("test.array.nested", V.ARRAY, [["x", "yy"], ["zzz"]], V.ARRAY),
    ("test.array.nested_i32", V.ARRAY, [[1, -2, 3], [4]], V.ARRAY),
]


def add_metadata(w, entries):
    for key, vtype, value, *sub in entries:
        w.add_key_value(key, value, vtype, sub_type=sub[0] if sub else None)


def add_tokenizer(w, pieces):
    w.add_tokenizer_model("llama")
    w.add_token_list([p for p, _, _ in pieces])
    w.add_token_scores([s for _, s, _ in pieces])
    w.add_token_types([k for _, _, k in pieces])
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    w.add_chat_template("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}"
                        "<end_of_turn>\n{% endfor %}")


def add_tensors(w, rng):
    """Names of one length, so that the test can rename one to another in place."""
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    raw = lambda rows, nbytes: rng.integers(0, 256, (rows, nbytes), dtype=np.uint8)
    w.add_tensor("tensor.f32_vec", f(64))
    w.add_tensor("tensor.f16_mat", f(4, 64).astype(np.float16))
    w.add_tensor("tensor.bf16mat", (f(4, 64).view(np.uint32) >> 16).astype(np.uint16), raw_dtype=Q.BF16)
    w.add_tensor("tensor.q8_0mat", quantize(f(4, 64), Q.Q8_0), raw_dtype=Q.Q8_0)
    w.add_tensor("tensor.q4_0mat", raw(3, 2 * 18), raw_dtype=Q.Q4_0)
    w.add_tensor("tensor.q4_kmat", raw(2, 144), raw_dtype=Q.Q4_K)
    w.add_tensor("tensor.q6_kmat", raw(2, 210), raw_dtype=Q.Q6_K)
    w.add_tensor("tensor.f32_4d_", f(2, 3, 4, 8))


def write_gguf(path, metadata, pieces, rng, arch="gemma3"):
    w = GGUFWriter(path, arch)
    w.add_custom_alignment(32)  # written, so that the test can corrupt it
    add_metadata(w, metadata)
    if pieces:
        add_tokenizer(w, pieces)
    add_tensors(w, rng)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- the JSON sidecar ----

TYPE_NAMES = {V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32", V.INT32: "i32",
              V.FLOAT32: "f32", V.BOOL: "bool", V.STRING: "string", V.ARRAY: "array", V.UINT64: "u64",
              V.INT64: "i64", V.FLOAT64: "f64"}


def py_type(v):
    return {bool: V.BOOL, int: V.INT32, float: V.FLOAT32, str: V.STRING, bytes: V.STRING, list: V.ARRAY}[type(v)]


def json_value(vtype, value):
    """Strings as hex (exact bytes), 64-bit integers as decimal strings (JSON numbers are doubles)."""
    if vtype == V.STRING:
        return (value.encode() if isinstance(value, str) else value).hex()
    if vtype in (V.UINT64, V.INT64):
        return str(value)
    if vtype == V.FLOAT32:
        return f32(value)
    if vtype == V.ARRAY:
        return json_array(value)
    return value


def json_array(values, elem=None):
    elem = elem if elem is not None else py_type(values[0])
    return {"elem": TYPE_NAMES[elem], "values": [json_value(elem, v) for v in values]}


def kv_json(key, vtype, value, elem=None):
    if vtype == V.ARRAY:
        return {"key": key, "type": "array", **json_array(value, elem)}
    return {"key": key, "type": TYPE_NAMES[vtype], "value": json_value(vtype, value)}


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def sidecar(path, metadata, pieces, cases):
    r = GGUFReader(path)
    kvs = [kv_json("general.architecture", V.STRING, "gemma3"), kv_json("general.alignment", V.UINT32, 32)]
    kvs += [kv_json(*m) for m in metadata]
    kvs += [
        kv_json("tokenizer.ggml.model", V.STRING, "llama"),
        kv_json("tokenizer.ggml.tokens", V.ARRAY, [p for p, _, _ in pieces], V.STRING),
        kv_json("tokenizer.ggml.scores", V.ARRAY, [s for _, s, _ in pieces], V.FLOAT32),
        kv_json("tokenizer.ggml.token_type", V.ARRAY, [k for _, _, k in pieces], V.INT32),
        kv_json("tokenizer.ggml.bos_token_id", V.UINT32, 2), kv_json("tokenizer.ggml.eos_token_id", V.UINT32, 1),
        kv_json("tokenizer.ggml.unknown_token_id", V.UINT32, 3), kv_json("tokenizer.ggml.padding_token_id", V.UINT32, 0),
        kv_json("tokenizer.ggml.add_bos_token", V.BOOL, True), kv_json("tokenizer.ggml.add_eos_token", V.BOOL, False),
        kv_json("tokenizer.ggml.add_space_prefix", V.BOOL, False),
        kv_json("tokenizer.chat_template", V.STRING, r.fields["tokenizer.chat_template"].contents()),
    ]
    # the writer's order is ours: check it against gguf-py's own reader
    written = [k for k in r.fields if not k.startswith("GGUF.")]
    assert written == [kv["key"] for kv in kvs], (written, [kv["key"] for kv in kvs])
    tensors = [{
        "name": t.name, "type": int(t.tensor_type), "ne": [int(d) for d in t.shape],
        "nbytes": int(t.n_bytes), "file_offset": int(t.data_offset), "fnv1a64": fnv1a64(t.data.tobytes()),
    } for t in r.tensors]
    return {
        "file": os.path.basename(path), "alignment": 32, "kv": kvs, "tensors": tensors,
        "tokenizer": {"model_file": "vocab.model", "n": len(pieces), "bos_id": 2, "eos_id": 1, "unk_id": 3,
                      "pad_id": 0, "cases": cases},
    }


def main(out_dir, seed_dir):
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(seed_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = train_vocab(tmp)
        os.replace(model, os.path.join(out_dir, "vocab.model"))
    model = os.path.join(out_dir, "vocab.model")
    pieces = model_pieces(model)
    assert len(pieces) == VOCAB_SIZE
    cases = [{"hex": t.hex(), "ids": ids} for t, ids in zip(TEXTS, spm_ids(model, TEXTS))]

    gguf_path = os.path.join(out_dir, "tiny.gguf")
    write_gguf(gguf_path, METADATA, pieces, np.random.default_rng(16))
    with open(os.path.join(out_dir, "tiny.json"), "w") as f:
        json.dump(sidecar(gguf_path, METADATA, pieces, cases), f, indent=1)
        f.write("\n")
    write_gguf(os.path.join(seed_dir, "small.gguf"), METADATA, None, np.random.default_rng(17))
    for path in [os.path.join(out_dir, n) for n in sorted(os.listdir(out_dir))] + [os.path.join(seed_dir, "small.gguf")]:
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/gguf",
         sys.argv[2] if len(sys.argv) > 2 else "tests/fuzz/seeds/gguf")
