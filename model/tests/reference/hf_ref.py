"""Hugging Face side of gatelab's checkpoint interchange tests (model/tests/model/hf.rs).

  hf_ref.py make qwen3|qwen3_next|separate DIR [--untied] [--shard] [--vocab N]   a tiny random model saved by transformers
  hf_ref.py logits DIR TOKENS_JSON OUT_JSON                   logits of a checkpoint directory

`logits` loads plain Qwen3 and Qwen3-Next with transformers' own classes. A checkpoint with the
paper's gate flags (`headwise_attn_output_gate` / `elementwise_attn_output_gate`, which
transformers' Qwen3 does not know) runs through `official_forward` below: an independent float64
forward written from the released code's description (docs/paper.md §8) — the gate
columns sit in a widened q_proj, grouped per KV head: view(b, s, n_kv, -1), split into G·hd query
and G (headwise) or G·hd (elementwise) gate columns, gate reshaped to (b, s, nh, 1 | hd), applied
as sigmoid after SDPA and before o_proj. A checkpoint with Step-3.5's `use_head_wise_attn_gate`
runs through it too, its gate written from stepfun-ai's `modeling_step3p5.py`: a separate
`g_proj` (hidden → heads) on the normed layer input, `attn_output.view(nh, hd) *
sigmoid(g_proj(x)).unsqueeze(-1)` before o_proj. `make separate` lays such a checkpoint out by
hand: a transformers Qwen3 with a random `g_proj` per layer and the flag in its config.
"""

import json
import sys

import torch


def tiny(kind, untied, vocab):
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=256,
                  tie_word_embeddings=not untied, initializer_range=0.2)
    if kind == "qwen3":
        from transformers import Qwen3Config, Qwen3ForCausalLM
        return Qwen3ForCausalLM(Qwen3Config(**common))
    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM
    cfg = Qwen3NextConfig(**common, layer_types=["full_attention"] * 2, mlp_only_layers=[0, 1], partial_rotary_factor=1.0,
                          num_experts=0)
    model = Qwen3NextForCausalLM(cfg)
    # Zero-centred norms start at 0; move them so the import's +1 is exercised.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.normal_(0.0, 0.3)
    return model


def make(kind, out, untied, shard, vocab):
    torch.manual_seed(0)
    model = tiny("qwen3" if kind == "separate" else kind, untied, vocab).float().eval()
    model.save_pretrained(out, safe_serialization=True, max_shard_size="40KB" if shard else "5GB")
    if kind == "separate":
        from safetensors.torch import load_file, save_file
        cfg = json.load(open(f"{out}/config.json"))
        cfg["use_head_wise_attn_gate"] = True
        json.dump(cfg, open(f"{out}/config.json", "w"), indent=2)
        sd = load_file(f"{out}/model.safetensors")
        for l in range(cfg["num_hidden_layers"]):
            sd[f"model.layers.{l}.self_attn.g_proj.weight"] = 0.3 * torch.randn(cfg["num_attention_heads"], cfg["hidden_size"])
        save_file(sd, f"{out}/model.safetensors", metadata={"format": "pt"})


def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def official_forward(cfg, sd, tokens):
    """Qwen3 with the released output gate, in float64, from the state dict."""
    f = {k: v.double() for k, v in sd.items()}
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps, g = cfg["rms_norm_eps"], nh // nkv
    headwise, elementwise = cfg.get("headwise_attn_output_gate", False), cfg.get("elementwise_attn_output_gate", False)
    separate = cfg.get("use_head_wise_attn_gate", False)
    b, s = tokens.shape
    h = f["model.embed_tokens.weight"][tokens]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.arange(s, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)

    def rope(x):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    mask = torch.full((s, s), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        x = rms(h, f[p + "input_layernorm.weight"], eps)
        q_all = x @ f[p + "self_attn.q_proj.weight"].T
        gate = None
        if headwise or elementwise:
            q_all = q_all.view(b, s, nkv, -1)
            per = 1 if headwise else hd
            q, gate = torch.split(q_all, [hd * g, per * g], dim=-1)
            gate = gate.reshape(b, s, nh, per)
            q = q.reshape(b, s, nh, hd)
        else:
            q = q_all.view(b, s, nh, hd)
        if separate:  # Step-3.5: gate_states = g_proj(hidden_states), one per head
            gate = (x @ f[p + "self_attn.g_proj.weight"].T).unsqueeze(-1)
        k = (x @ f[p + "self_attn.k_proj.weight"].T).view(b, s, nkv, hd)
        v = (x @ f[p + "self_attn.v_proj.weight"].T).view(b, s, nkv, hd)
        q = rope(rms(q, f[p + "self_attn.q_norm.weight"], eps).transpose(1, 2))
        k = rope(rms(k, f[p + "self_attn.k_norm.weight"], eps).transpose(1, 2))
        v = v.transpose(1, 2)
        k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
        att = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5 + mask, -1)
        y = (att @ v).transpose(1, 2)  # b, s, nh, hd
        if gate is not None:
            y = y * torch.sigmoid(gate)
        h = h + y.reshape(b, s, nh * hd) @ f[p + "self_attn.o_proj.weight"].T
        x = rms(h, f[p + "post_attention_layernorm.weight"], eps)
        a = x @ f[p + "mlp.gate_proj.weight"].T
        h = h + (torch.nn.functional.silu(a) * (x @ f[p + "mlp.up_proj.weight"].T)) @ f[p + "mlp.down_proj.weight"].T
    h = rms(h, f["model.norm.weight"], eps)
    head = f.get("lm_head.weight", f["model.embed_tokens.weight"])
    return h @ head.T


def logits(d, tokens_json, out):
    tokens = torch.tensor(json.load(open(tokens_json))["tokens"])
    cfg = json.load(open(f"{d}/config.json"))
    if cfg.get("headwise_attn_output_gate") or cfg.get("elementwise_attn_output_gate") or cfg.get("use_head_wise_attn_gate"):
        from safetensors.torch import load_file
        result = official_forward(cfg, load_file(f"{d}/model.safetensors"), tokens)
    else:
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
        with torch.no_grad():
            result = model(tokens, use_cache=False).logits
    json.dump({"logits": result.float().flatten().tolist(), "shape": list(result.shape)}, open(out, "w"))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        vocab = int(sys.argv[sys.argv.index("--vocab") + 1]) if "--vocab" in sys.argv else 97
        make(sys.argv[2], sys.argv[3], "--untied" in sys.argv, "--shard" in sys.argv, vocab)
    elif cmd == "logits":
        logits(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown command {cmd}")
