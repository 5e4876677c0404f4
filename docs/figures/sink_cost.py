#!/usr/bin/env python3
"""Claim 5 where the baseline has a sink (docs/findings.md): per seed, the baseline's first-token
attention at T and what extrapolation costs each model (held-out perplexity at kT minus at T, per
RoPE scaling method), the paired difference gated - baseline of that cost with its 95% t interval,
and the correlation over seeds between the baseline's sink and its cost. Reads the `length.json`
that `gatelab eval-length` writes beside each run.

    python3 docs/figures/sink_cost.py results/findings/core-10seeds
"""
import glob
import json
import math
import os
import statistics
import sys

from tinterval import interval

def main(root):
    runs = {}
    for f in sorted(glob.glob(os.path.join(root, "*", "length.json"))):
        a = json.load(open(f))
        points = {(p["method"], p["factor"]): p for p in a["points"]}
        at_t = points[("none", 1)]
        cost = {k: p["perplexity"] - at_t["perplexity"] for k, p in points.items() if k[1] != 1}
        runs[(a["variant"], a["seed"])] = (at_t["first_token_attention"][0], cost)
    if not runs:
        sys.exit(f"no length.json under {root}: run gatelab eval-length first")
    variants = sorted({v for v, _ in runs})
    base = "baseline"
    seeds = sorted(s for v, s in runs if v == base)
    keys = sorted({k for _, c in runs.values() for k in c})
    print(f"Extrapolation cost: perplexity at kT minus at T, per seed ({root})\n")
    print("| seed | baseline F-Attn at T | " + " | ".join(f"{v} {m} {f}T" for v in variants for m, f in keys) + " |")
    print("|" + "---|" * (2 + len(variants) * len(keys)))
    for s in seeds:
        cells = [str(s), f"{runs[(base, s)][0]:.3f}"]
        cells += [f"{runs[(v, s)][1][k]:+.3f}" if (v, s) in runs else "–" for v in variants for k in keys]
        print("| " + " | ".join(cells) + " |")
    print("\nPaired difference of the cost, gated - baseline, mean [95% t interval]:\n")
    for v in variants:
        if v == base:
            continue
        pairs = [s for s in seeds if (v, s) in runs]
        for k in keys:
            d = [runs[(v, s)][1][k] - runs[(base, s)][1][k] for s in pairs]
            print(f"- {v}, {k[0]} at {k[1]}T (n = {len(d)}): {interval(d)}")
    print("\nDoes a larger sink cost the baseline more? Pearson r over seeds, F-Attn at T against cost:\n")
    for k in keys:
        xs = [runs[(base, s)][0] for s in seeds]
        ys = [runs[(base, s)][1][k] for s in seeds]
        mx, my = statistics.mean(xs), statistics.mean(ys)
        sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
        sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
        r = sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")
        print(f"- {k[0]} at {k[1]}T: r = {r:+.2f} (n = {len(xs)})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/findings/core-10seeds")
