#!/usr/bin/env python3
"""Summarise an Nsight Compute CSV of one `of3c run` (bench_block.sh kernels).

The CSV is `ncu --csv --page raw --metrics gpu__time_duration.sum`: one row per kernel launch. Kernels are grouped
by a short family name (cuBLAS GEMMs, MLX's copies and fused elementwise kernels, of3c's own kernels) and printed
with their count, total time and share, slowest family first; --launches K also prints the K slowest launches in
launch order, so that each can be placed in the graph.

    kernel_summary.py WORK/kernels_bf16_1024.csv [--launches 40]
"""
import argparse
import csv
import re
import sys
from collections import defaultdict


def family(name):
    n = name.strip()
    low = n.lower()
    if "of3c_" in n:  # of3c's own kernels (internal/mlx/gpu_kernels.cc names them of3c_*)
        return re.sub(r"[<(].*", "", n[n.index("of3c_"):])
    if re.search(r"gemm|nvjet|xmma|cutlass|sm90_|sm80_|gemv", low):
        return "GEMM (" + ("gemv" if "gemv" in low else "cuBLAS/CUTLASS") + ")"
    for key, fam in (("copy", "copy"), ("concat", "concatenate"), ("layer_norm", "MLX layer_norm"),
                     ("rms_norm", "MLX rms_norm"), ("softmax", "MLX softmax"), ("sdpa", "MLX sdpa"),
                     ("reduce", "reduce"), ("arg_", "arg reduce"), ("scan", "scan"), ("gather", "gather"),
                     ("scatter", "scatter"), ("slice_update", "slice update")):
        if key in low:
            return fam
    if re.search(r"binary|unary|ternary|compiled|fused", low):
        return "elementwise (" + re.sub(r"[<(].*", "", n)[:40] + ")"
    return re.sub(r"[<(].*", "", n)[:60]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--launches", type=int, default=0)
    args = ap.parse_args()
    with open(args.csv, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu prints its own log lines before the table
    rows = list(csv.reader(lines))
    if not rows:
        sys.exit(f"{args.csv}: no CSV rows (did ncu profile anything?)")
    head = rows[0]
    try:
        ki, ti = head.index("Kernel Name"), head.index("gpu__time_duration.sum")
    except ValueError:
        sys.exit(f"{args.csv}: want columns 'Kernel Name' and 'gpu__time_duration.sum', have {head}")
    unit = rows[1][ti] if len(rows) > 1 else ""
    scale = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3}.get(unit.strip(), None)
    body = rows[2:] if scale is not None else rows[1:]
    if scale is None:
        scale = 1e-6  # ncu's raw page reports ns when it prints no unit row
    launches = []
    for r in body:
        try:
            launches.append((r[ki], float(r[ti].replace(",", "")) * scale))
        except (ValueError, IndexError):
            continue
    total = sum(t for _, t in launches)
    fam = defaultdict(lambda: [0, 0.0])
    for name, t in launches:
        e = fam[family(name)]
        e[0] += 1
        e[1] += t
    print(f"{args.csv}: {len(launches)} kernel launches, {total:.2f} ms of kernel time")
    print(f"{'ms':>9} {'share':>6} {'count':>6}  family")
    for k, (c, t) in sorted(fam.items(), key=lambda kv: -kv[1][1]):
        print(f"{t:9.3f} {100 * t / total if total else 0:5.1f}% {c:6d}  {k}")
    if args.launches:
        slow = sorted(range(len(launches)), key=lambda i: -launches[i][1])[: args.launches]
        print(f"\nthe {len(slow)} slowest launches, in launch order:")
        for i in sorted(slow):
            print(f"{i:6d} {launches[i][1]:9.3f} ms  {launches[i][0][:150]}")


if __name__ == "__main__":
    main()
