"""Model FLOPs utilisation of `gatelab bench` measurements on a GPU (bench/gpu.sh, part 1).

  python bench/mfu.py BENCH_JSON [BENCH_JSON ...] --gpu "NVIDIA H200" --out PREFIX

MFU = training tokens/s x FLOPs per token / the GPU's dense bf16 peak. FLOPs per token are the
bench JSON's `flops_per_token` (6N plus attention's 12·L·(h·hd)·T, PaLM's count; see
`gatelab::bench::flops_per_token`). The peak is the dense (not 2:4-sparse) bf16 tensor-core
figure of the vendor's datasheet, looked up by the GPU's name; f32 runs are measured against it
too, so their MFU says how far f32 leaves the tensor cores idle. Writes PREFIX.json and PREFIX.md.
"""

import argparse
import json

# Dense bf16 tensor-core peaks, TFLOP/s (NVIDIA datasheets; SXM boards unless named).
PEAKS = [
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("RTX 4090", 165.0),
]


def peak_tflops(name):
    for key, tflops in PEAKS:
        if key.lower() in name.lower():
            return tflops
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench", nargs="+")
    ap.add_argument("--gpu", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    peak = peak_tflops(a.gpu)
    rows = []
    for path in a.bench:
        try:
            bench = json.load(open(path))
        except (OSError, ValueError) as e:
            print(f"mfu.py: {path}: {e}")
            continue
        flops = bench.get("flops_per_token", {})
        shape = " ".join(o for o in bench.get("overrides", []) if o.split("=")[0] in
                         ("model.n_layers", "model.d_model", "data.seq_len", "train.batch_size"))
        for m in bench["measurements"]:
            f = flops.get(m["variant"])
            tflops = m["train_tokens_per_s"] * f / 1e12 if f else None
            rows.append({
                "bench": path, "shape": shape, "variant": m["variant"], "implementation": m["implementation"],
                "train_tokens_per_s": m["train_tokens_per_s"], "flops_per_token": f, "tflops": tflops,
                "mfu": tflops / peak if tflops and peak else None,
                "peak_device_mib": m.get("peak_device_mib"),
            })
    summary = {"gpu": a.gpu, "dense_bf16_peak_tflops": peak, "rows": rows}
    json.dump(summary, open(a.out + ".json", "w"), indent=1)
    fmt = lambda x, p: "-" if x is None else f"{x:.{p}f}"
    lines = [f"GPU: {a.gpu}; dense bf16 peak {fmt(peak, 0)} TFLOP/s.", "",
             "| shape | variant | implementation | train tok/s | TFLOP/s | MFU | peak MiB |", "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['variant']} | {r['implementation']} | {r['train_tokens_per_s']:.0f} | "
                     f"{fmt(r['tflops'], 1)} | {fmt(r['mfu'] and 100 * r['mfu'], 1)}% | {fmt(r['peak_device_mib'], 0)} |")
    open(a.out + ".md", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
