#!/usr/bin/env python3
"""Makes the HF-transformers reference fixtures that tests/unit/test_hf_logits.c
checks facet's CPU engine against.

For each shape -- MQA (1 KV head, like Gemma 2B) and MHA (KV heads = heads,
like Gemma 7B) -- it builds a small random GemmaForCausalLM, saves it with
save_pretrained (fp32, and again as bf16), and writes reference.safetensors:

  prompt.N.ids     I32 [len]        the prompt's token ids
  prompt.N.logits  F32 [len, vocab] logits at every position (fp32 compute)
  prompt.N.greedy  I32 [32]         32 greedy tokens after the prompt

For the bf16 checkpoints the reference is the bf16-rounded weights run in
fp32, which is what facet does (bf16 weights, fp32 compute).

Usage (outside the repo's build; needs PyPI torch, transformers, safetensors):
  python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers safetensors
  /tmp/ref/bin/python tests/reference/make_fixtures.py tests/fixtures/hf
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import GemmaConfig, GemmaForCausalLM

VOCAB = 256
GREEDY_TOKENS = 32
PROMPT_LENGTHS = [1, 5, 17, 33]

SHAPES = {
    # hidden 48 but heads*head_dim = 64: q_dim != d, as in Gemma 7B (16*256 != 3072)
    "mqa": dict(num_attention_heads=4, num_key_value_heads=1),
    "mha": dict(num_attention_heads=4, num_key_value_heads=4),
}


def make_config(shape):
    return GemmaConfig(
        vocab_size=VOCAB,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        head_dim=16,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        hidden_act="gelu_pytorch_tanh",
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
        attention_bias=False,
        tie_word_embeddings=True,
        **SHAPES[shape],
    )


def randomize(model, gen):
    """Weights large enough that logits are well separated (a clear greedy
    choice), and non-zero norm weights so that (1 + w) is exercised."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = 0.2 if "norm" in name else 0.15
            p.copy_(torch.randn(p.shape, generator=gen) * std)


def greedy(model, ids):
    ids = list(ids)
    out, margins = [], []
    for _ in range(GREEDY_TOKENS):
        logits = model(torch.tensor([ids])).logits[0, -1]
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]) / float(logits.abs().max()))
        nxt = int(torch.argmax(logits))  # first maximum on ties, as facet
        out.append(nxt)
        ids.append(nxt)
    return out, min(margins)


def reference(model, prompts):
    tensors, worst = {}, 1.0
    with torch.no_grad():
        for i, ids in enumerate(prompts):
            logits = model(torch.tensor([ids])).logits[0].float()
            toks, margin = greedy(model, ids)
            worst = min(worst, margin)
            tensors[f"prompt.{i}.ids"] = torch.tensor(ids, dtype=torch.int32)
            tensors[f"prompt.{i}.logits"] = logits.contiguous()
            tensors[f"prompt.{i}.greedy"] = torch.tensor(toks, dtype=torch.int32)
    return tensors, worst


def bf16_reference(path):
    """The bf16 checkpoint computed in fp32: weights upcast exactly, buffers
    (RoPE frequencies) fresh in fp32. Gemma multiplies embeddings by sqrt(d)
    cast to the model dtype (docs/GEMMA.md; HF and gemma_pytorch both do), so the
    scale of a bf16 model is sqrt(d) rounded to bf16."""
    model = GemmaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    emb = model.model.embed_tokens
    emb.embed_scale = emb.embed_scale.to(torch.bfloat16).float()
    return model


def main(out_root):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    prompts = [[2] + torch.randint(4, VOCAB, (n - 1,), generator=gen).tolist() for n in PROMPT_LENGTHS]
    for shape in SHAPES:
        model = GemmaForCausalLM(make_config(shape)).eval()
        randomize(model, gen)
        for dtype_name in ("f32", "bf16"):
            out = os.path.join(out_root, f"{shape}-{dtype_name}")
            os.makedirs(out, exist_ok=True)
            if dtype_name == "bf16":
                model = model.to(torch.bfloat16)
            # The MHA f32 model is saved sharded, to cover the index + shards layout.
            shard = "40KB" if (shape, dtype_name) == ("mha", "f32") else "100MB"
            model.save_pretrained(out, max_shard_size=shard, safe_serialization=True)
            ref_model = model if dtype_name == "f32" else bf16_reference(out)
            tensors, margin = reference(ref_model, prompts)
            # A well-posed greedy test needs no near-ties.
            assert margin > 1e-4, f"{shape}-{dtype_name}: greedy margin {margin:.2e} too small; pick another seed"
            save_file(tensors, os.path.join(out, "reference.safetensors"))
            with open(os.path.join(out, "config.json")) as f:
                cfg = json.load(f)
            print(f"{out}: {cfg['num_attention_heads']} heads, {cfg['num_key_value_heads']} kv heads, "
                  f"dtype {dtype_name}, min greedy margin {margin:.2e} (relative to max |logit|)")
    print(f"torch {torch.__version__}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/hf")
