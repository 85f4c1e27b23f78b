"""Writes model.gguf beside an HF fixture (tests/fixtures/hf/<name>/), the
same weights in llama.cpp's GGUF layout, with the llama.cpp project's own
writer (PyPI gguf), so that test_hf_logits can check facet's GGUF path
against the same transformers reference as the safetensors one:

  - tensor names as llama.cpp's converter writes them (token_embd,
    blk.N.attn_q, ..., blk.N.post_ffw_norm, attn_q_norm, ...);
  - every norm weight stored as 1 + w (the converter adds Gemma's 1), in f32;
  - matrices in the checkpoint's dtype (F32 or BF16): unquantized, so the
    logits must match transformers' as closely as the safetensors path does;
  - the metadata llama.cpp writes (gemma2./gemma3. keys), plus those its
    loader would otherwise assume (the sliding pattern, the local RoPE base,
    RoPE scaling), so a fixture with unusual values round-trips;
  - a tokenizer of the fixture's vocabulary size: <pad> <eos> <bos> <unk>,
    then one-character pieces (the fixtures have no tokenizer.model; the
    engine test feeds ids).

usage: make_gguf_from_hf.py FIXTURE_DIR [FIXTURE_DIR...]    (in .venv: gguf, numpy)
"""
import json
import os
import struct
import sys

import numpy as np
import gguf

ARCH = {"gemma2": "gemma2", "gemma3_text": "gemma3", "gemma": "gemma"}

# HF name (per layer, "%d") -> GGUF name, as llama.cpp's converter maps them
LAYER = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def read_safetensors(path):
    """{name: (dtype string, shape, raw bytes)} of one safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], data[b:e])
    return out


def as_f32(dtype, shape, raw):
    if dtype == "F32":
        return np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()
    if dtype == "BF16":
        u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        return u.view(np.float32).reshape(shape).copy()
    raise SystemExit(f"unsupported dtype {dtype}")


def gguf_name(hf, arch):
    if arch == "gemma" and hf.endswith("post_attention_layernorm.weight"):  # Gemma 1's pre-MLP norm
        hf = hf.replace("post_attention_layernorm", "pre_feedforward_layernorm")
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    parts = hf.split(".")  # model.layers.N.<rest>.weight
    layer, rest = parts[2], ".".join(parts[3:-1])
    return f"blk.{layer}.{LAYER[rest]}.weight"


def tensors_of(d):
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    out = {}
    for f in files:
        out.update(read_safetensors(os.path.join(d, f)))
    return out


def write(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    arch = ARCH[cfg["model_type"]]
    w = gguf.GGUFWriter(os.path.join(d, "model.gguf"), arch)
    L, H = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    w.add_context_length(cfg.get("max_position_embeddings", 8192))
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(L)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(cfg.get("num_key_value_heads", H))
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
    if arch != "gemma":
        w.add_sliding_window(cfg["sliding_window"])
        types = cfg["layer_types"]
        w.add_array(f"{arch}.attention.sliding_window_pattern", [t == "sliding_attention" for t in types])
    rp = cfg.get("rope_parameters") or {}
    full = rp.get("full_attention", rp)
    w.add_rope_freq_base(full.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    if arch == "gemma3":
        w.add_float32(f"{arch}.rope.freq_base_swa", rp.get("sliding_attention", {}).get("rope_theta", 10000.0))
        if full.get("rope_type") == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(full["factor"])
    if arch != "gemma":  # what llama.cpp would assume is head_dim; the fixtures use another
        w.add_attention_scale(cfg["query_pre_attn_scalar"] ** -0.5)
    if arch == "gemma2":
        w.add_float32(f"{arch}.attn_logit_softcapping", cfg["attn_logit_softcapping"] or 0.0)
        w.add_float32(f"{arch}.final_logit_softcapping", cfg["final_logit_softcapping"] or 0.0)

    V = cfg["vocab_size"]
    pieces = ["<pad>", "<eos>", "<bos>", "<unk>"] + [chr(0x21 + i) for i in range(V - 4)]
    types = [3, 3, 3, 2] + [1] * (V - 4)
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores([0.0] * 4 + [-float(i) for i in range(V - 4)])
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_space_prefix(False)

    for name, (dtype, shape, raw) in sorted(tensors_of(d).items()):
        x = as_f32(dtype, shape, raw)
        if name.endswith("norm.weight"):
            w.add_tensor(gguf_name(name, arch), (x + 1.0).astype(np.float32))  # 1 + w, as the converter stores it
        elif dtype == "BF16":
            w.add_tensor(gguf_name(name, arch), np.frombuffer(raw, dtype=np.uint16).reshape(shape).copy(),
                         raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            w.add_tensor(gguf_name(name, arch), x)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {os.path.join(d, 'model.gguf')}")


if __name__ == "__main__":
    for d in sys.argv[1:]:
        write(d)
