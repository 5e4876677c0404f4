"""Independent PyTorch reference of gatelab's model, for the parity tests.

Reads the JSON `ModelConfig` and the safetensors weights that gatelab writes (names and layout in
`model/src/weights.rs`), runs the same architecture with every gate option written out here
again, and writes logits and the parameter gradients of the same loss.

    python gatelab_ref.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR holds `config.json`, `weights.safetensors`, `batch.json` ({"tokens": [[..]],
"targets": [[..]]}) and, optionally, `mode` ("qwen3next": run every attention with
`transformers`' `Qwen3NextAttention` instead of the code below; G1 elementwise only).
It writes `torch.safetensors`: `logits` and `grad.<param name>` for every parameter.
"""

import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

# The reference computes in float64: the comparison then measures gatelab's f32 error against
# the exact answer, not the sum of two f32 implementations' rounding.
DTYPE = torch.float64
torch.set_default_dtype(DTYPE)


def rms_norm(x, weight, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(var + eps) * weight


def rope_cos_sin(head_dim, base, seq_len):
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos().to(DTYPE), emb.sin().to(DTYPE)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):  # x: [b, heads, t, hd]
    return x * cos + rotate_half(x) * sin


ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "ns_sigmoid": lambda z: 0.5 + 0.5 * torch.sigmoid(z),
    "identity": lambda z: z,
    "scaled_sigmoid": lambda z: 2.0 * torch.sigmoid(z),
    "tanh": torch.tanh,
}


def top_k_mask(scores, k):
    """1 at the k largest scores of each row, a tie broken by the lower index (exactly k, as
    torch.topk takes them), else 0; no grad. Written as a rank so that no sort order decides."""
    s = scores.detach()
    e = s.shape[-1]
    other, own = s.unsqueeze(-2), s.unsqueeze(-1)  # [..., i, j]: s_j against s_i
    idx = torch.arange(e, device=s.device)
    before = idx.unsqueeze(0) < idx.unsqueeze(1)  # j < i
    rank = (other > own).sum(-1) + ((other == own) & before).sum(-1)
    return (rank < k).to(scores.dtype)


class Reference:
    def __init__(self, cfg, params):
        self.c = cfg
        self.p = params
        self.aux = torch.zeros((), dtype=DTYPE)
        spec = lambda g: {
            "position": g.get("position", "none"),
            "granularity": g.get("granularity", "elementwise"),
            "sharing": g.get("sharing", "head_specific"),
            "combination": g.get("combination", "multiplicative"),
            "activation": g.get("activation", "sigmoid"),
            "input": g.get("input", "dependent"),
            "input_dims": g.get("input_dims", "full"),
            "sdpa_nonlinearity": g.get("sdpa_nonlinearity", "none"),
        }
        self.g = spec(cfg["gate"])
        # Every gate with the module path of its weights: `gate`, then `extra_gates.i`.
        self.gates = [("gate.", self.g)] + [(f"extra_gates.{i}.", spec(e)) for i, e in enumerate(cfg.get("extra_gates", []))]

    def gate_at(self, position, prefix, y, x):
        """The gate at `position` (at most one), or `y` unchanged."""
        for module, g in self.gates:
            if g["position"] == position:
                return self.gate(prefix + module, g, y, x)
        return y

    def gate(self, prefix, g, y, x):
        """y: [b, t, heads, width]; x: [b, t, d] (pre-normed input), of which the gate reads the
        first `input_dims`: all, k, or "d/n" for d/n."""
        b, t, heads, width = y.shape
        per_head = width if g["granularity"] == "elementwise" else 1
        if g["input"] == "dependent":
            dims = g["input_dims"]
            d = x.shape[-1]
            k = d if dims == "full" else d // int(dims[2:]) if isinstance(dims, str) else dims
            logits = x[..., :k] @ self.p[prefix + "gate_proj.weight"].T
            logits = logits.view(b, t, heads, per_head)
        else:
            logits = self.p[prefix + "gate_theta"].view(1, 1, heads, per_head)
        scores = ACTIVATIONS[g["activation"]](logits)
        if g["sharing"] == "head_shared":
            scores = scores.mean(dim=2, keepdim=True)
        return y * scores if g["combination"] == "multiplicative" else y + scores

    def cure(self, pre, q, scores, future, v):
        """Attention output [b, h, t, hd] from scaled scores [b, h, t, t] under the config's sink
        cure, each written from its definition (not gatelab's stable or slot forms)."""
        c, p = self.c, self.p
        cure = c.get("cure", "softmax")
        zeta, gamma = 1.0, -4.0 / 128  # Bondarenko et al.: gamma = -alpha / T, alpha 4, their T 128
        params = {}
        if isinstance(cure, dict):
            (name, params), = cure.items()
        else:
            name = cure
        if name == "clipped_softmax" and params:
            zeta, gamma = params["zeta"], params["gamma"]  # a config records the gamma it ran with
        b, h, t, _ = scores.shape
        hd = v.shape[-1]
        if name == "softmax":
            return scores.masked_fill(future, float("-inf")).softmax(-1) @ v
        if name == "clipped_softmax":
            w = scores.masked_fill(future, float("-inf")).softmax(-1)
            return torch.clamp((zeta - gamma) * w + gamma, 0.0, 1.0) @ v
        if name == "sigmoid":
            if params.get("bias") == "sequence":  # Ramapuram et al.: one constant, b = -ln n
                bias = -math.log(t)
            else:  # gatelab's default: n = i + 1, the keys query i sees
                bias = -torch.log(torch.arange(1, t + 1, dtype=DTYPE)).view(1, 1, t, 1)
            return torch.sigmoid(scores + bias).masked_fill(future, 0.0) @ v
        if name == "softpick":
            e = (scores.exp() - 1.0).masked_fill(future, 0.0)
            return (F.relu(e) / (e.abs().sum(-1, keepdim=True) + 1e-6)) @ v
        # The slot cures: exp(s_i) / (exp(c) + sum_j exp(s_j)), plus the slot's value.
        kv = c["n_kv_heads"]
        if name == "softmax_plus_one":
            slot, value = torch.zeros(b, h, t, 1), torch.zeros(1, h, 1, hd)
        elif name == "sink_logit":
            slot, value = p[pre + "sink_logit"].view(1, h, 1, 1).expand(b, h, t, 1), torch.zeros(1, h, 1, hd)
        elif name == "kv_bias":
            key = p[pre + "kv_bias_key"].repeat_interleave(h // kv, dim=0)  # [h, hd]
            slot = (q @ key.view(1, h, hd, 1)) / math.sqrt(hd)
            value = p[pre + "kv_bias_value"].repeat_interleave(h // kv, dim=0).view(1, h, 1, hd)
        else:
            raise ValueError(f"unknown cure {name}")
        exp = scores.masked_fill(future, float("-inf")).exp()
        denominator = slot.exp() + exp.sum(-1, keepdim=True)
        return (exp / denominator) @ v + (slot.exp() / denominator) * value

    def switch_weights(self, pre, name, x, heads):
        """Switch-Head routing for one projection: sigmoid scores of the top-k experts per head,
        [b, t, heads, E]; None when the projection has no experts."""
        sh = self.c.get("switch_head") or {}
        if name == "k" and sh.get("shared_kv_router") and sh["keys"]:
            # The authors' default: one source-side selection shared by keys and values.
            return self.switch_weights(pre, "v", x, heads)
        key = pre + f"{name}_experts.router.weight"
        if key not in self.p:
            return None
        b, t, _ = x.shape
        s = torch.sigmoid(x @ self.p[key].T).view(b, t, heads, sh["experts"])
        return s * top_k_mask(s, sh["top_k"])

    def switch_all(self, pre, name, dense):
        """Every expert of a projection, [E, d_in, d_out]: the dense projection (PyTorch layout
        [out, in]) first, then the extra experts."""
        first = dense.T[None]
        extra = self.p.get(pre + f"{name}_experts.extra")
        return first if extra is None else torch.cat([first, extra], dim=0)

    def project(self, pre, name, x, heads, hd):
        dense = self.p[pre + f"{name}_proj.weight"]
        b, t, _ = x.shape
        w = self.switch_weights(pre, name, x, heads)
        if w is None:
            return (x @ dense.T).view(b, t, heads, hd)
        experts = self.switch_all(pre, name, dense)
        return sum((x @ experts[e]).view(b, t, heads, hd) * w[..., e : e + 1] for e in range(experts.shape[0]))

    def attention(self, i, x, cos, sin):
        c, g, p = self.c, self.g, self.p
        pre = f"layers.{i}.attn."
        b, t, _ = x.shape
        h, kv, hd = c["n_heads"], c["n_kv_heads"], c["head_dim"]
        q = (x @ p[pre + "q_proj.weight"].T).view(b, t, h, hd)
        k = self.project(pre, "k", x, kv, hd)
        v = self.project(pre, "v", x, kv, hd)
        q = self.gate_at("g4", pre, q, x)
        k = self.gate_at("g3", pre, k, x)
        v = self.gate_at("g2", pre, v, x)
        if c["qk_norm"]:
            q = rms_norm(q, p[pre + "q_norm.weight"], c["norm_eps"])
            k = rms_norm(k, p[pre + "k_norm.weight"], c["norm_eps"])
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # Grouped-query attention the plain way: repeat each KV head for its query heads.
        k = k.repeat_interleave(h // kv, dim=1)
        v = v.repeat_interleave(h // kv, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        future = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        y = self.cure(pre, q, scores, future, v).transpose(1, 2)  # [b, t, h, hd]
        if g["sdpa_nonlinearity"] == "rms_norm":
            y = rms_norm(y, p[pre + "sdpa_norm.weight"], c["norm_eps"])
        elif g["sdpa_nonlinearity"] == "silu":
            y = F.silu(y)
        y = self.gate_at("g1", pre, y, x)
        w = self.switch_weights(pre, "o", x, h)
        if w is None:
            out = y.reshape(b, t, h * hd) @ p[pre + "o_proj.weight"].T
        else:
            experts = self.switch_all(pre, "o", p[pre + "o_proj.weight"])
            out = sum((y * w[..., e : e + 1]).reshape(b, t, h * hd) @ experts[e] for e in range(experts.shape[0]))
        out = self.gate_at("g5", pre, out.view(b, t, 1, -1), x).view(b, t, -1)
        return out

    def forward(self, tokens, attention=None):
        c, p = self.c, self.p
        attention = attention or self.attention
        eps = c["norm_eps"]
        t = tokens.shape[1]
        cos, sin = rope_cos_sin(c["head_dim"], c["rope_theta"], t)
        h = p["embed_tokens.weight"][tokens]
        for i in range(c["n_layers"]):
            pre = f"layers.{i}."
            a = attention(i, rms_norm(h, p[pre + "attn_norm.weight"], eps), cos, sin)
            if c["sandwich_norm"]:
                a = rms_norm(a, p[pre + "attn_out_norm.weight"], eps)
            h = h + a
            if pre + "ffn_norm.weight" in p:
                z = rms_norm(h, p[pre + "ffn_norm.weight"], eps)
                if pre + "moe.router.weight" in p:
                    f = self.moe(pre + "moe.", z)
                else:
                    f = (F.silu(z @ p[pre + "ffn.gate_proj.weight"].T) * (z @ p[pre + "ffn.up_proj.weight"].T)) @ p[
                        pre + "ffn.down_proj.weight"
                    ].T
                if c["sandwich_norm"]:
                    f = rms_norm(f, p[pre + "ffn_out_norm.weight"], eps)
                h = h + f
        h = rms_norm(h, p["norm.weight"], eps)
        head = p["embed_tokens.weight"] if c["tie_embeddings"] else p["lm_head.weight"]
        return h @ head.T


    def moe(self, pre, z):
        """The mixture-of-experts FFN, written from its definition: softmax router, top-k
        (renormalised when asked), each expert a SwiGLU, shared experts always on; the weighted
        load-balancing loss E·Σ f_e·P_e and z-loss mean(logsumexp²) join `self.aux`."""
        m, p = self.c["moe"], self.p
        n_experts, k = m["experts"], m["top_k"]
        logits = z @ p[pre + "router.weight"].T
        probs = torch.softmax(logits, dim=-1)
        chosen = top_k_mask(probs, k)
        w = probs * chosen
        if m["normalize_top_k"]:
            w = w / w.sum(-1, keepdim=True)
        f = 0
        for e in range(n_experts):
            hidden = F.silu(z @ p[pre + "gate_proj"][e]) * (z @ p[pre + "up_proj"][e])
            f = f + (hidden @ p[pre + "down_proj"][e]) * w[..., e : e + 1]
        if pre + "shared.gate_proj.weight" in p:
            s = pre + "shared."
            shared = (F.silu(z @ p[s + "gate_proj.weight"].T) * (z @ p[s + "up_proj.weight"].T)) @ p[s + "down_proj.weight"].T
            if m.get("shared_gate", "none") == "sigmoid":  # Qwen2-MoE's shared_expert_gate
                shared = torch.sigmoid(z @ p[pre + "shared_gate.weight"].T) * shared
            f = f + shared
        n = z.shape[0] * z.shape[1]
        share = chosen.reshape(n, n_experts).sum(0) / (n * k)
        mean_prob = probs.reshape(n, n_experts).mean(0)
        balance = n_experts * (share * mean_prob).sum()
        z_loss = torch.logsumexp(logits, dim=-1).pow(2).mean()
        self.aux = self.aux + m["balance_coef"] * balance + m["z_coef"] * z_loss
        return f


def qwen3next_attention(cfg, params):
    """Each layer's attention as `transformers`' Qwen3NextAttention (G1 elementwise sigmoid gate),
    loaded from gatelab's weights: q_proj rows become per-head [q_h | gate_h] blocks, and the
    zero-centred Qwen3-Next RMSNorm stores weight - 1."""
    from transformers import Qwen3NextConfig
    from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextAttention

    h, kv, hd, d = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"], cfg["d_model"]
    assert cfg["qk_norm"], "Qwen3NextAttention always normalises Q and K"
    hf_cfg = Qwen3NextConfig(
        hidden_size=d,
        num_attention_heads=h,
        num_key_value_heads=kv,
        head_dim=hd,
        rms_norm_eps=cfg["norm_eps"],
        attention_bias=False,
        attention_dropout=0.0,
        partial_rotary_factor=1.0,
    )
    hf_cfg._attn_implementation = "eager"
    layers = []
    for i in range(cfg["n_layers"]):
        pre = f"layers.{i}.attn."
        m = Qwen3NextAttention(hf_cfg, layer_idx=i).to(DTYPE)
        q = params[pre + "q_proj.weight"].view(h, hd, d)
        gate = params[pre + "gate.gate_proj.weight"].view(h, hd, d)
        with torch.no_grad():
            m.q_proj.weight.copy_(torch.cat([q, gate], dim=1).reshape(2 * h * hd, d))
            m.k_proj.weight.copy_(params[pre + "k_proj.weight"])
            m.v_proj.weight.copy_(params[pre + "v_proj.weight"])
            m.o_proj.weight.copy_(params[pre + "o_proj.weight"])
            m.q_norm.weight.copy_(params[pre + "q_norm.weight"] - 1.0)
            m.k_norm.weight.copy_(params[pre + "k_norm.weight"] - 1.0)
        layers.append(m)

    def attention(i, x, cos, sin):
        t = x.shape[1]
        mask = torch.full((t, t), float("-inf"), dtype=DTYPE).triu(1)[None, None]
        out, _ = layers[i](x, position_embeddings=(cos[None], sin[None]), attention_mask=mask)
        return out

    return attention


def gradients(case: Path, cfg, dtype, attention_of=None, rounding=None):
    """Logits, loss and parameter gradients of the case's batch, computed in `dtype`; with
    `rounding` (a relative size), every weight first moved by that much, up or down at random."""
    global DTYPE
    DTYPE = dtype
    torch.set_default_dtype(dtype)
    batch = json.loads((case / "batch.json").read_text())
    weights = {k: v.to(dtype) for k, v in load_file(str(case / "weights.safetensors")).items()}
    if rounding:
        g = torch.Generator().manual_seed(0)
        signs = lambda v: torch.randint(0, 2, v.shape, generator=g).to(dtype) * 2 - 1
        weights = {k: v * (1 + rounding * signs(v)) for k, v in sorted(weights.items())}
    params = {k: v.requires_grad_(True) for k, v in weights.items()}
    tokens = torch.tensor(batch["tokens"], dtype=torch.long)
    targets = torch.tensor(batch["targets"], dtype=torch.long)
    attention = attention_of(cfg, params) if attention_of else None
    reference = Reference(cfg, params)
    logits = reference.forward(tokens, attention)
    # The training objective: cross-entropy plus a mixture-of-experts model's auxiliary losses.
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)) + reference.aux
    grads = {}
    if attention_of is None:
        loss.backward()
        grads = {name: (p.grad if p.grad is not None else torch.zeros_like(p)).double() for name, p in params.items()}
    return logits.detach(), loss.detach(), grads


def run_case(case: Path):
    cfg = json.loads((case / "config.json").read_text())
    mode = (case / "mode").read_text().strip() if (case / "mode").exists() else ""
    attention_of = qwen3next_attention if mode == "qwen3next" else None
    logits, loss, grads = gradients(case, cfg, torch.float64, attention_of)
    out = {"logits": logits.float().contiguous(), "loss": loss.float().reshape(1)}
    for name, grad in grads.items():
        out["grad." + name] = grad.float().contiguous()
    if grads:
        # How well-conditioned the case is: the same formulas in float32 against float64, in the
        # measure the parity test uses. Some cases lose precision in f32 whoever computes them
        # (softpick's small denominators; an input-independent head-shared gate, whose θ
        # gradient is a sum over every position that nearly cancels); gatelab must do as well as
        # PyTorch does.
        _, _, grads32 = gradients(case, cfg, torch.float32)
        worst = max(((grads[k] - grads32[k]).abs().max() / grads[k].abs().max().clamp_min(1e-12)).item() for k in grads)
        out["f32_grad_error"] = torch.tensor([worst], dtype=torch.float32)
        # How sensitive the case is to bf16: the change in f64 when every weight moves by bf16's
        # unit roundoff 2^-8 (what rounding the weights alone does), in the parity test's measures.
        logits_u, _, grads_u = gradients(case, cfg, torch.float64, rounding=2.0**-8)
        scale = logits.abs().max().clamp_min(1e-12)
        out["bf16_logit_response"] = ((logits_u - logits).abs().max() / scale).float().reshape(1)
        worst = max(((grads[k] - grads_u[k]).abs().max() / grads[k].abs().max().clamp_min(1e-12)).item() for k in grads)
        out["bf16_grad_response"] = torch.tensor([worst], dtype=torch.float32)
    save_file(out, str(case / "torch.safetensors"))


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        run_case(Path(arg))
    print(f"gatelab_ref: {len(sys.argv) - 1} cases", file=sys.stderr)
