#!/usr/bin/env python3
"""Makes the Gemma 2 and Gemma 3 HF-transformers reference fixtures (issue 16),
in the same layout as tests/reference/make_fixtures.py (Gemma 1), whose
helpers it shares, so tests/unit/fixture.h reads them unchanged:

  config.json, generation_config.json, model.safetensors   (save_pretrained)
  reference.safetensors:
    prompt.N.ids     I32 [len]        the prompt's token ids (BOS first)
    prompt.N.logits  F32 [len, vocab] logits at every position (fp32 compute)
    prompt.N.greedy  I32 [32]         32 greedy tokens after the prompt

No field is added.  Fixtures (tiny random models; every norm weight random
and nonzero, so the (1 + w) convention is exercised everywhere, q_norm and
k_norm included; 4 query heads of head_dim 16 so q_dim != d):

  gemma2-mqa-f32   Gemma2ForCausalLM, d 32, 1 kv head, 4 layers (sliding,
                   full, sliding, full), FFN 64, fp32
  gemma2-gqa-bf16  Gemma2ForCausalLM, d 48, 2 kv heads, 4 layers, FFN 96, bf16
      both: sliding_window 6, query_pre_attn_scalar 24 (!= head_dim),
      attn_logit_softcapping 2.0, final_logit_softcapping 1.5
  gemma3-mqa-f32   Gemma3ForCausalLM (model_type gemma3_text), d 32, 1 kv
                   head, 4 layers (sliding, sliding, full, sliding: pattern 3
                   with a partial last period), FFN 64, fp32; global layers
                   use linear RoPE scaling, factor 8
  gemma3-gqa-bf16  Gemma3ForCausalLM, d 48, 2 kv heads, 6 layers (s, s, f,
                   s, s, f), FFN 48, bf16, no RoPE scaling
      both: sliding_window 6, query_pre_attn_scalar 24, RoPE base 10 000 on
      sliding layers and 1 000 000 on full layers, no soft-capping, tied
      embeddings.

The shapes are smaller than issue 16's first sketch (d 48, FFN 96, 6 layers
for Gemma 3) because each fixture directory must stay under 300 KB: the fp32
ones use d 32, and the bf16 ones keep d 48 so that the embedding scale's
rounding to bf16 (sqrt(48) = 6.9282 -> 6.9375) shows in the logits.

Prompts: BOS + random ids, lengths 3, 8, 13 and 20, all longer than the
sliding window once the 32 greedy tokens follow, and three of them already
inside the prompt.

References: every fixture is reloaded from what save_pretrained wrote and
run in fp32 with the eager attention (the formulas in modeling_gemma2.py /
modeling_gemma3.py, no SDPA or flash kernel), recomputing the whole
sequence for each greedy step (no KV cache).  As a cross-check the greedy
tokens are also produced by model.generate() with HF's own (sliding) KV
cache, and must agree.  bf16 checkpoints: the bf16 weights upcast exactly,
and the embedding scale sqrt(d) rounded to bf16, as HF computes a bf16
model (embed_scale.to(weight.dtype)) and as facet does.

Near-ties: as make_fixtures.py does, a model whose greedy choices have a
top-2 margin below 1e-4 (relative to max |logit| at that step) anywhere is
refused; here the script then tries the next weight seed itself (the seed
used is printed), so the test can demand identical greedy tokens
everywhere, with no per-step skipping.  (The other approach issue 16 allows,
recording margins for the C test to skip near-ties, would change the
fixture format; not needed.)

config.v4.json (gemma3-mqa-f32 only): the same configuration in the
spelling transformers 4.x wrote before `layer_types` / per-layer-type
`rope_parameters` existed: `sliding_window_pattern` 3, `rope_theta`
1000000 (full layers), `rope_local_base_freq` 10000 (sliding layers),
`rope_scaling` {"rope_type": "linear", "factor": 8.0} (full layers only),
`torch_dtype` for `dtype`, and no `layer_types`.  (config.json, as
transformers 5 writes it, has `layer_types`, per-layer-type
`rope_parameters`, and `sliding_window_pattern` / `_sliding_window_pattern`
3 as well; `layer_types` is what transformers 5 obeys.)
It is written by this script from config.json (not by transformers 4), and
the script checks that transformers loads it to the same layer types and
RoPE parameters and computes the same logits with it.  facet's config
parser must read both spellings.

Softcapping check: for the Gemma 2 fixtures the script also runs the model
with attn_logit_softcapping and final_logit_softcapping switched off and
prints by how much the logits and the greedy tokens change.

Usage (outside the repo's build; needs PyPI torch, transformers, safetensors):
  python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers safetensors
  /tmp/ref/bin/python tests/reference/make_fixtures_gemma23.py tests/fixtures/hf
Made with torch 2.15.0 and transformers 5.24.0.
"""
import copy
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import GREEDY_TOKENS, VOCAB, randomize, reference  # noqa: E402  shared with Gemma 1

PROMPT_LENGTHS = [3, 8, 13, 20]
MIN_MARGIN = 1e-4
SEEDS_TO_TRY = 50

COMMON = dict(
    vocab_size=VOCAB,
    num_attention_heads=4,
    head_dim=16,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    hidden_activation="gelu_pytorch_tanh",
    bos_token_id=2,
    eos_token_id=1,
    pad_token_id=0,
    attention_bias=False,
    tie_word_embeddings=True,
    query_pre_attn_scalar=24,
    sliding_window=6,
)

S, F = "sliding_attention", "full_attention"

FIXTURES = {
    "gemma2-mqa-f32": dict(
        family=2, dtype="f32", seed=2000,
        cfg=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_key_value_heads=1,
                 layer_types=[S, F, S, F]),
    ),
    "gemma2-gqa-bf16": dict(
        family=2, dtype="bf16", seed=2100,
        cfg=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=4, num_key_value_heads=2,
                 layer_types=[S, F, S, F]),
    ),
    "gemma3-mqa-f32": dict(
        family=3, dtype="f32", seed=3000, rope_scaling_factor=8.0,
        cfg=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_key_value_heads=1,
                 layer_types=[S, S, F, S]),
    ),
    "gemma3-gqa-bf16": dict(
        family=3, dtype="bf16", seed=3100,
        cfg=dict(hidden_size=48, intermediate_size=48, num_hidden_layers=6, num_key_value_heads=2,
                 layer_types=[S, S, F, S, S, F]),
    ),
}
SLIDING_WINDOW_PATTERN = 3  # what gives the Gemma 3 layer types above: layer i is full iff (i + 1) % 3 == 0


def make_config(spec):
    if spec["family"] == 2:
        cfg = Gemma2Config(
            **COMMON, **spec["cfg"],
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            attn_logit_softcapping=2.0,
            final_logit_softcapping=1.5,
        )
    else:
        full = {"rope_type": "default", "rope_theta": 1000000.0}
        if spec.get("rope_scaling_factor"):
            full = {"rope_type": "linear", "factor": spec["rope_scaling_factor"], "rope_theta": 1000000.0}
        derived = [S if (i + 1) % SLIDING_WINDOW_PATTERN else F for i in range(spec["cfg"]["num_hidden_layers"])]
        assert derived == spec["cfg"]["layer_types"]
        cfg = Gemma3TextConfig(
            **COMMON, **spec["cfg"],
            # written to config.json as sliding_window_pattern and _sliding_window_pattern beside
            # layer_types; without it transformers 5 writes its default, 6, that layer_types overrides
            sliding_window_pattern=SLIDING_WINDOW_PATTERN,
            rope_parameters={F: full, S: {"rope_type": "default", "rope_theta": 10000.0}},
            attn_logit_softcapping=None,
            final_logit_softcapping=None,
        )
    cfg._attn_implementation = "eager"
    return cfg


def model_class(spec):
    return Gemma2ForCausalLM if spec["family"] == 2 else Gemma3ForCausalLM


def load_reference(spec, path, config_file=None):
    """What save_pretrained wrote, in fp32 with eager attention.  For a bf16
    checkpoint the scale sqrt(d) is rounded to bf16, as HF's bf16 model
    computes it (embed_scale.to(weight.dtype)) and as facet does."""
    kw = {}
    if config_file:
        kw["config"] = type(make_config(spec)).from_json_file(config_file)
        kw["config"]._attn_implementation = "eager"
    model = model_class(spec).from_pretrained(path, dtype=torch.float32, attn_implementation="eager", **kw).eval()
    if spec["dtype"] == "bf16":
        emb = model.model.embed_tokens
        emb.embed_scale = emb.embed_scale.to(torch.bfloat16).float()
    return model


def generate_cached(model, ids):
    """Greedy tokens through HF's generate() and its (sliding-window) KV cache."""
    out = model.generate(torch.tensor([ids]), max_new_tokens=GREEDY_TOKENS, do_sample=False,
                         min_new_tokens=GREEDY_TOKENS, pad_token_id=0, eos_token_id=None)
    return out[0, len(ids):].tolist()


def logits_all(model, prompts):
    with torch.no_grad():
        return [model(torch.tensor([ids])).logits[0].float() for ids in prompts]


def uncapped_effect(model, spec, prompts, tensors):
    """How much attn_logit_softcapping and final_logit_softcapping change the
    logits and the greedy tokens: the same weights with each switched off."""
    report = {}
    for what in ("attn", "final", "both"):
        cfg = copy.deepcopy(model.config)
        if what in ("attn", "both"):
            cfg.attn_logit_softcapping = None
        if what in ("final", "both"):
            cfg.final_logit_softcapping = None
        m = model_class(spec)(cfg).eval()
        m.load_state_dict(model.state_dict())
        m.model.embed_tokens.embed_scale = model.model.embed_tokens.embed_scale.clone()
        worst, changed = 0.0, 0
        with torch.no_grad():
            for i, ids in enumerate(prompts):
                ref = tensors[f"prompt.{i}.logits"]
                lg = m(torch.tensor([ids])).logits[0].float()
                worst = max(worst, float((lg - ref).abs().max() / ref.abs().max()))
                # greedy over the reference's own continuation: where does argmax differ?
                seq = ids + tensors[f"prompt.{i}.greedy"].tolist()
                lg_seq = m(torch.tensor([seq])).logits[0, len(ids) - 1:-1]
                changed += int((lg_seq.argmax(-1) != tensors[f"prompt.{i}.greedy"].long()).sum())
        report[what] = (worst, changed)
    return report


def write_v4_config(out):
    """config.json in transformers 4.x's spelling, by hand (see the docstring)."""
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    rp = cfg.pop("rope_parameters")
    layer_types = cfg.pop("layer_types")
    derived = [S if (i + 1) % SLIDING_WINDOW_PATTERN else F for i in range(cfg["num_hidden_layers"])]
    assert derived == layer_types, (derived, layer_types)
    full, local = rp[F], rp[S]
    v4 = {k: v for k, v in cfg.items() if k not in ("_sliding_window_pattern", "dtype")}
    v4["torch_dtype"] = cfg["dtype"]
    v4["rope_theta"] = full["rope_theta"]
    v4["rope_local_base_freq"] = local["rope_theta"]
    assert local["rope_type"] == "default"
    v4["rope_scaling"] = None if full["rope_type"] == "default" else {
        "rope_type": full["rope_type"], "factor": full["factor"]}
    v4["sliding_window_pattern"] = SLIDING_WINDOW_PATTERN
    v4["transformers_version"] = "4.x spelling, written by tests/reference/make_fixtures_gemma23.py"
    v4 = dict(sorted(v4.items()))
    with open(os.path.join(out, "config.v4.json"), "w") as f:
        json.dump(v4, f, indent=2)
        f.write("\n")
    return v4


def make_one(name, spec, out_root, prompts):
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    for seed in range(spec["seed"], spec["seed"] + SEEDS_TO_TRY):
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = model_class(spec)(make_config(spec)).eval()
        randomize(model, gen)
        if spec["dtype"] == "bf16":
            model = model.to(torch.bfloat16)
        model.save_pretrained(out, safe_serialization=True)
        ref_model = load_reference(spec, out)
        tensors, margin = reference(ref_model, prompts)
        if margin > MIN_MARGIN:
            break
        print(f"{name}: seed {seed}: greedy margin {margin:.2e} too small, trying the next seed")
    else:
        raise SystemExit(f"{name}: no seed in {SEEDS_TO_TRY} gives greedy margins > {MIN_MARGIN}")

    # the same greedy tokens through HF's KV cache (sliding layers keep a window)
    with torch.no_grad():
        for i, ids in enumerate(prompts):
            cached = generate_cached(ref_model, ids)
            assert cached == tensors[f"prompt.{i}.greedy"].tolist(), f"{name} prompt {i}: generate() differs"
    # the default attention (SDPA where supported) agrees with eager
    sdpa = model_class(spec).from_pretrained(out, dtype=torch.float32).eval()
    sdpa.model.embed_tokens.embed_scale = ref_model.model.embed_tokens.embed_scale.clone()
    d_sdpa = max(float((lg - tensors[f"prompt.{i}.logits"]).abs().max() / tensors[f"prompt.{i}.logits"].abs().max())
                 for i, lg in enumerate(logits_all(sdpa, prompts)))

    save_file(tensors, os.path.join(out, "reference.safetensors"))
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{out}: seed {seed}, {cfg['model_type']}, d {cfg['hidden_size']}, {cfg['num_attention_heads']} heads, "
          f"{cfg['num_key_value_heads']} kv heads, layers {cfg['layer_types']}, dtype {spec['dtype']}, "
          f"min greedy margin {margin:.2e}, default attention ({sdpa.config._attn_implementation}) vs eager "
          f"{d_sdpa:.1e}, {size} bytes")
    if spec["family"] == 2:
        for what, (worst, changed) in uncapped_effect(ref_model, spec, prompts, tensors).items():
            print(f"  without {what} softcapping: max|Δlogit|/max|logit| = {worst:.3f}, "
                  f"{changed} of {len(prompts) * GREEDY_TOKENS} greedy steps choose another token")
    if name == "gemma3-mqa-f32":
        v4 = write_v4_config(out)
        m4 = load_reference(spec, out, config_file=os.path.join(out, "config.v4.json"))
        assert m4.config.layer_types == ref_model.config.layer_types
        assert m4.config.rope_parameters == ref_model.config.rope_parameters, (
            m4.config.rope_parameters, ref_model.config.rope_parameters)
        d4 = max(float((a - b).abs().max()) for a, b in zip(logits_all(m4, prompts), logits_all(ref_model, prompts)))
        print(f"  config.v4.json (sliding_window_pattern {v4['sliding_window_pattern']}, rope_theta {v4['rope_theta']}, "
              f"rope_local_base_freq {v4['rope_local_base_freq']}, rope_scaling {v4['rope_scaling']}): "
              f"same layer types and RoPE parameters, logits max|Δ| {d4:.1e}")
    assert size < 300_000, f"{out} is {size} bytes"


def main(out_root, only=None):
    gen = torch.Generator().manual_seed(1234)
    prompts = [[2] + torch.randint(4, VOCAB, (n - 1,), generator=gen).tolist() for n in PROMPT_LENGTHS]
    for name, spec in FIXTURES.items():
        if only and name not in only:
            continue
        make_one(name, spec, out_root, prompts)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/hf", sys.argv[2:] or None)
