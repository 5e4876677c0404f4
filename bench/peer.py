"""The PyTorch peer of `gatelab bench`: the same architecture, sizes, optimiser and thread count,
trained on random tokens, timed the same way (warmup steps, then timed steps, each ending when the
loss is on the host).

  python bench/peer.py CONFIG_JSON [CONFIG_JSON ...] --steps N --warmup W [--passes P] --threads T [--compile]

The device is the CPU unless GATELAB_PEER_DEVICE names another (`cuda`), so that `gatelab bench` on
a GPU machine times PyTorch on the same GPU. A config with `train.precision` = `bf16` trains under
`torch.autocast(dtype=torch.bfloat16)` (f32 weights and optimiser, bf16 matmuls and SDPA: the usual
PyTorch mixed precision) and names itself `pytorch-eager-bf16` / `pytorch-compile-bf16`. On CUDA it
reports the allocator's peak (`torch.cuda.max_memory_allocated`) in MiB.

CONFIG_JSON is a gatelab resolved run config (`gatelab grid show core baseline --json`): the model
(Qwen3-style: RMSNorm pre-norm, GQA with optional QK-norm, rotate-half RoPE, SwiGLU or none, tied
or untied head; gate: none or G1 — the only variants the peer implements) and
`train.batch_size`, `data.seq_len`, `train.lr`, AdamW's settings and gradient clipping. Prints one
JSON line per config: tokens/s of training steps, each step's seconds, and tokens/s of forward-only
passes. Several configs are trained in one process, step by step in turn (as `gatelab bench
--interleave` does), so their step times can be compared pair by pair.
"""

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F


class Rms(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_tables(hd, theta, t):
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
    emb = torch.cat([ang, ang], -1)
    return emb.cos().float(), emb.sin().float()


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, h, kv, hd = c["d_model"], c["n_heads"], c["n_kv_heads"], c["head_dim"]
        self.h, self.kv, self.hd = h, kv, hd
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)
        self.attn_norm = Rms(d, c["norm_eps"])
        self.q, self.k, self.v, self.o = lin(d, h * hd), lin(d, kv * hd), lin(d, kv * hd), lin(h * hd, d)
        self.qk_norm = c["qk_norm"]
        if self.qk_norm:
            self.q_norm, self.k_norm = Rms(hd, c["norm_eps"]), Rms(hd, c["norm_eps"])
        gate = c["gate"].get("position", "none")
        if gate not in ("none", "g1", "sdpa"):
            raise SystemExit(f"peer.py implements the baseline and G1 only, not {gate}")
        self.gate = None
        if gate != "none":
            per = 1 if c["gate"].get("granularity", "elementwise") == "headwise" else hd
            self.gate, self.per = lin(d, h * per), per
        ff = c["d_ff"]
        self.ffn = None
        if ff > 0:
            self.ffn_norm = Rms(d, c["norm_eps"])
            self.ffn = torch.nn.ModuleList([lin(d, ff), lin(d, ff), lin(ff, d)])

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        n = self.attn_norm(x)
        q = self.q(n).view(b, t, self.h, self.hd)
        k = self.k(n).view(b, t, self.kv, self.hd)
        v = self.v(n).view(b, t, self.kv, self.hd).transpose(1, 2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = rope(q.transpose(1, 2), cos, sin), rope(k.transpose(1, 2), cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv != self.h).transpose(1, 2)
        if self.gate is not None:
            y = y * torch.sigmoid(self.gate(n)).view(b, t, self.h, self.per)
        x = x + self.o(y.reshape(b, t, self.h * self.hd))
        if self.ffn is not None:
            g, u, dn = self.ffn
            m = self.ffn_norm(x)
            x = x + dn(F.silu(g(m)) * u(m))
        return x


class Model(torch.nn.Module):
    def __init__(self, c, t):
        super().__init__()
        self.embed = torch.nn.Embedding(c["vocab_size"], c["d_model"])
        self.blocks = torch.nn.ModuleList([Block(c) for _ in range(c["n_layers"])])
        self.norm = Rms(c["d_model"], c["norm_eps"])
        self.head = None if c["tie_embeddings"] else torch.nn.Linear(c["d_model"], c["vocab_size"], bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, 0.0, c["init_std"])
        cos, sin = rope_tables(c["head_dim"], c["rope_theta"], t)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)

    def forward(self, tokens):
        x = self.embed(tokens)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        x = self.norm(x)
        return x @ self.embed.weight.T if self.head is None else self.head(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="+", help="several: trained in one process, step by step in turn")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--passes", type=int, default=None, help="timed forward passes (default: --steps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cases = [Case(json.load(open(path)), a.compile) for path in a.config]
    # Step i of every case before step i + 1 of any, the order rotated by one each step.
    n = len(cases)
    for i in range(a.warmup + a.steps):
        for j in range(n):
            case = cases[(j + i) % n]
            seconds = case.step(i)
            if i >= a.warmup:
                case.step_seconds.append(seconds)
    for path, case in zip(a.config, cases):
        passes = a.passes or a.steps
        forward_s = case.forward_seconds(passes)
        tokens = case.bsz * case.t
        impl = ("pytorch-compile" if a.compile else "pytorch-eager") + ("-bf16" if case.bf16 else "")
        peak = torch.cuda.max_memory_allocated() / 2**20 if DEVICE.startswith("cuda") else None
        print(json.dumps({"impl": impl, "torch": torch.__version__, "threads": a.threads, "device": DEVICE,
                          "config": path, "train_tokens_per_s": tokens * a.steps / sum(case.step_seconds), "forward_tokens_per_s": tokens * passes / forward_s,
                          "steps": a.steps, "step_seconds": case.step_seconds, "peak_device_mib": peak}))


DEVICE = os.environ.get("GATELAB_PEER_DEVICE", "cpu")


class Case:
    """One config's model, optimiser and random batches."""

    def __init__(self, cfg, compile):
        torch.manual_seed(0)
        c, self.tr, self.t = cfg["model"], cfg["train"], cfg["data"]["seq_len"]
        self.bsz = self.tr["batch_size"]
        tr = self.tr
        self.model = Model(c, self.t).to(DEVICE)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=tr["lr"], betas=(tr["beta1"], tr["beta2"]), eps=tr["epsilon"], weight_decay=tr["weight_decay"])
        self.fwd = torch.compile(self.model) if compile else self.model
        self.data = [torch.randint(0, c["vocab_size"], (self.bsz, self.t + 1), device=DEVICE) for _ in range(4)]
        self.step_seconds = []
        self.bf16 = tr.get("precision", "f32") == "bf16"

    def autocast(self):
        return torch.autocast(device_type=DEVICE.split(":")[0], dtype=torch.bfloat16, enabled=self.bf16)

    def step(self, i):
        """One training step on batch i (mod 4), ending when the loss is on the host; its seconds."""
        start = time.perf_counter()
        batch = self.data[i % len(self.data)]
        with self.autocast():
            logits = self.fwd(batch[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.tr["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tr["grad_clip"])
        self.opt.step()
        loss.item()
        return time.perf_counter() - start

    def forward_seconds(self, steps):
        with torch.no_grad(), self.autocast():
            self.fwd(self.data[0][:, :-1]).sum().item()
            start = time.perf_counter()
            for i in range(steps):
                self.fwd(self.data[i % len(self.data)][:, :-1]).sum().item()
            return time.perf_counter() - start


if __name__ == "__main__":
    main()
