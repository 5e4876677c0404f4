"""transformers' RoPE initialisation functions, for gatelab's RoPE-scaling tests.

    python rope_ref.py CASES.json  ->  prints JSON: [{"inv_freq": [...], "attention_factor": f}, ...]

Each case: {"rope_type": "linear"|"dynamic"|"yarn", "head_dim", "base", "rope_scaling": {...},
"max_position_embeddings", "seq_len" (dynamic only)}.
"""
import json
import sys
from types import SimpleNamespace

import torch
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

out = []
for case in json.load(open(sys.argv[1])):
    config = SimpleNamespace(
        rope_theta=case["base"],
        head_dim=case["head_dim"],
        hidden_size=case["head_dim"],
        num_attention_heads=1,
        partial_rotary_factor=1.0,
        max_position_embeddings=case["max_position_embeddings"],
        rope_scaling=dict(case["rope_scaling"], rope_type=case["rope_type"]),
    )
    inv_freq, factor = ROPE_INIT_FUNCTIONS[case["rope_type"]](config, torch.device("cpu"), case.get("seq_len"))
    out.append({"inv_freq": inv_freq.double().tolist(), "attention_factor": float(factor)})
print(json.dumps(out))
