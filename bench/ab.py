"""Two builds of gatelab side by side: the training, forward and memory of one resolved config,
measured by each binary's `gatelab bench --one`, alternating over rounds so the machine's drift
cancels in each round's ratio; prints every round and the median ratio (B over A) per backend.

  python bench/ab.py BINARY_A BINARY_B CONFIG_JSON [--backends flex,tch] [--rounds 4]
                     [--steps 6] [--warmup 2] [--threads 2]

CONFIG_JSON is one of the resolved configs `gatelab bench` writes (results/bench/<name>.configs/).
A binary built with tch needs libtorch on LD_LIBRARY_PATH (`source scripts/env.sh`). To compare a
change with the commit before it, build that commit into its own target directory, e.g.
`git worktree add /tmp/before HEAD~1 && (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target
scripts/gatelab --help)`, then pass /tmp/before-target/release/gatelab as BINARY_A.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys


def measure(binary, backend, config, args):
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cmd = [binary, "bench", "--one", backend, "--config", config, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["failed"])[-1]
        sys.exit(f"ab.py: {binary} on {backend}: {last}")
    return json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("config")
    p.add_argument("--backends", default="flex,tch")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    for path in (args.a, args.b, args.config):
        if not os.path.isfile(path):
            sys.exit(f"ab.py: {path}: no such file")
    keys = [("train_tokens_per_s", "train tok/s"), ("forward_tokens_per_s", "forward tok/s"), ("peak_rss_mib", "peak MiB")]
    ratios = {}
    for r in range(1, args.rounds + 1):
        for backend in args.backends.split(","):
            a, b = measure(args.a, backend, args.config, args), measure(args.b, backend, args.config, args)
            cells = []
            for key, name in keys:
                ratios.setdefault((backend, name), []).append(b[key] / a[key])
                cells.append(f"{name} {a[key]:.0f} -> {b[key]:.0f}")
            print(f"round {r} {backend}: " + ", ".join(cells), flush=True)
    print(f"\n| backend | {' | '.join(name + ' B/A' for _, name in keys)} |\n|---|{'---:|' * len(keys)}")
    for backend in args.backends.split(","):
        cells = []
        for _, name in keys:
            xs = ratios[(backend, name)]
            cells.append(f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})")
        print(f"| {backend} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
