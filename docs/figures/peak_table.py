#!/usr/bin/env python3
"""The massive-activation search table of docs/findings.md (claim 4): for each analysed run under
a folder: its settings that differ between the runs; over its layers the largest first-token
attention, Sun et al.'s channel peak (top-1 |h| over the median |h|: the layer and token it sits
on) and Guo et al.'s token-norm peak (||h_0|| over the median token norm); and the loss when the
first token's peak channel is zeroed. Read from each run's `analysis.json`. Where a folder holds
gated and baseline runs of the same seeds, the paired differences of the peaks follow.

    python3 docs/figures/peak_table.py results/search/activations-*
"""
import glob
import json
import os
import statistics
import sys

from tinterval import interval


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def runs(roots):
    for root in roots:
        for d in sorted(glob.glob(os.path.join(root, "*", "analysis.json"))) + sorted(
            glob.glob(os.path.join(root, "analysis.json"))
        ):
            folder = os.path.dirname(d)
            file = json.load(open(os.path.join(folder, "config.json")))
            config = flat(file.get("config", file))
            config["backend"] = file.get("meta", {}).get("backend")
            yield folder, config, json.load(open(d))


def main(roots):
    found = list(runs(roots))
    if not found:
        sys.exit(f"no analysed run (analysis.json) under {' '.join(roots)}")
    keys = sorted({k for _, c, _ in found for k in c})
    varying = [k for k in keys if len({json.dumps(c.get(k)) for _, c, _ in found}) > 1 and not k.endswith("seed")]
    head = ["run", *varying, "seed", "F-Attn (max layer)", "top-1/median (max layer: layer, token)",
            "‖h₀‖/median (max layer: layer)", "loss, peak → 0"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for folder, config, analysis in found:
        layers = analysis["stats"]["layers"]
        fattn = max(layer["first_token_attention"][0] for layer in layers)
        top, top_layer = max((layer["top1_median_ratio"], i) for i, layer in enumerate(layers))
        norm, norm_layer = max((layer["first_token_norm_ratio"], i) for i, layer in enumerate(layers))
        done = analysis.get("interventions") or []
        loss = (done if isinstance(done, list) else [done])[0]["loss"] if done else None
        delta = f"{loss['zeroed'] - loss['as_trained']:+.4f}" if loss else "–"
        cells = [os.path.basename(folder), *(str(config.get(k)) for k in varying), str(config.get("train.seed", ""))]
        cells += [f"{fattn:.3f}", f"{top:.1f} ({top_layer}, {layers[top_layer]['max_at'][0]})",
                  f"{norm:.1f} ({norm_layer})", delta]
        print("| " + " | ".join(cells) + " |")
    paired(found)


def paired(found):
    """Gated - baseline per seed, where a folder holds both: the peak layer's channel and
    token-norm peaks and the largest |h| (absolute), mean [95% t interval]."""
    def peaks(analysis):
        layers = analysis["stats"]["layers"]
        return {
            "top-1/median, peak layer": max(l["top1_median_ratio"] for l in layers),
            "‖h₀‖/median, peak layer": max(l["first_token_norm_ratio"] for l in layers),
            "max |h|, largest layer": max(l["max_activation"] for l in layers),
        }
    by = {}
    for folder, config, analysis in found:
        variant = os.path.basename(folder).rsplit("-", 1)[0]
        by[(variant, config.get("train.seed"))] = peaks(analysis)
    gated = sorted({v for v, _ in by if v != "baseline"})
    for v in gated:
        seeds = sorted(s for g, s in by if g == v and ("baseline", s) in by)
        if len(seeds) < 2:
            continue
        print(f"\n{v} - baseline, paired by seed (n = {len(seeds)}):\n")
        for metric in by[(v, seeds[0])]:
            d = [by[(v, s)][metric] - by[("baseline", s)][metric] for s in seeds]
            base = statistics.mean(by[("baseline", s)][metric] for s in seeds)
            print(f"- {metric}: baseline {base:.1f}, Δ {interval(d, digits=1)}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["results/search"])
