#!/usr/bin/env python3
"""The divergence table of docs/findings.md (claim 2, `stability-deep`): per learning rate,
clipping and variant, the runs that diverged (and at which step), loss spikes per 1,000 steps
trained, and the best validation loss of the runs that finished, read from a sweep's run folders.

    python3 docs/figures/divergence_table.py results/findings/stability-deep
"""
import glob
import json
import os
import statistics
import sys
from collections import defaultdict


def rows(root):
    groups = defaultdict(list)
    for d in sorted(glob.glob(os.path.join(root, "*", ""))):
        if not os.path.exists(d + "status.json"):
            continue
        status = json.load(open(d + "status.json"))
        if status["state"] not in ("done", "diverged"):
            continue
        config = json.load(open(d + "config.json"))
        train = config.get("config", config)["train"]
        metrics = [json.loads(line) for line in open(d + "metrics.jsonl")]
        evals = [json.loads(line)["loss"] for line in open(d + "eval.jsonl")] if os.path.exists(d + "eval.jsonl") else []
        variant = os.path.basename(d.rstrip("/")).rsplit("-", 1)[0]
        groups[(train["lr"], train["grad_clip"], variant)].append(
            {
                "diverged": status["state"] == "diverged",
                "at": status.get("step"),
                "spikes": metrics[-1]["spikes"],
                "steps": metrics[-1]["step"],
                "best": min(evals) if status["state"] == "done" and evals else None,
            }
        )
    return groups


def main():
    groups = rows(sys.argv[1])
    print("| lr | clip | variant | diverged | at step | spikes / 1,000 steps | best val loss (finished runs) |")
    print("|---:|---:|---|---:|---|---:|---|")
    for (lr, clip, variant), runs in sorted(groups.items()):
        diverged = [r["at"] for r in runs if r["diverged"]]
        spikes = 1000 * sum(r["spikes"] for r in runs) / max(1, sum(r["steps"] for r in runs))
        best = [r["best"] for r in runs if r["best"] is not None]
        shown = f"{statistics.mean(best):.3f} (n = {len(best)})" if best else "–"
        at = ", ".join(str(s) for s in sorted(diverged)) or "–"
        print(f"| {lr:g} | {clip:g} | {variant} | {len(diverged)}/{len(runs)} | {at} | {spikes:.1f} | {shown} |")


if __name__ == "__main__":
    main()
