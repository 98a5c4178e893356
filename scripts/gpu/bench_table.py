"""The table of scripts/gpu/bench_block.sh: reads WORK/peers.log (torch_peer.py's RESULT lines),
WORK/of3c_{fp32,bf16}_N.json and of3c_budget_*.json (`of3c run --report`) and WORK/accuracy.log, and prints
one markdown table (compute time with inputs resident, ms / peak GiB) plus the speed and memory ratios of
of3c against each peer measured in the same lease. Usage: python3 scripts/gpu/bench_table.py WORK
"""
import glob
import json
import os
import re
import sys

PEERS = (("torch-eager", "PyTorch eager"), ("torch.compile", "torch.compile"),
         ("openfold3-chunk64-lma", "OpenFold3 chunk 64 + LMA"))
RESULT = re.compile(r"RESULT (\S+) (fp32|bf16) N=(\d+) .*?median ([\d.]+) ms(?: \(.*?\))? peak (\d+) MiB")
FAILED = re.compile(r"RESULT (\S+) (fp32|bf16) N=(\d+) FAILED: (\S+)")


def load(work):
    peers, failed = {}, {}
    log = os.path.join(work, "peers.log")
    if os.path.exists(log):
        for line in open(log):
            m = RESULT.search(line)
            if m:
                peers[(m[1], m[2], int(m[3]))] = (float(m[4]), int(m[5]) / 1024)
                continue
            m = FAILED.search(line)
            if m:
                failed[(m[1], m[2], int(m[3]))] = m[4]
    of3c = {}
    for p in glob.glob(os.path.join(work, "of3c_*_*.json")):
        m = re.match(r"of3c_(fp32|bf16)_(\d+)\.json$", os.path.basename(p))
        if m:
            r = json.load(open(p))
            of3c[(m[1], int(m[2]))] = (r["compute"]["median_ms"], r["peak_mlx_bytes"] / 2**30,
                                       r["latency"]["median_ms"])
    acc = {}
    alog = os.path.join(work, "accuracy.log")
    if os.path.exists(alog):
        for line in open(alog):
            m = re.match(r"ACCURACY (fp32|bf16) N=(\d+) (.*)", line.strip())
            if m:
                acc.setdefault((m[1], int(m[2])), []).append(m[3])
    return peers, failed, of3c, acc


def cell(v):
    return "—" if v is None else f"{v[0]:.1f} / {v[1]:.2f}"


def main(work):
    peers, failed, of3c, acc = load(work)
    keys = sorted({(p, n) for (_, p, n) in peers} | {(p, n) for (_, p, n) in failed} | set(of3c), key=lambda k: (k[1], k[0] != "fp32"))
    print("| N | prec | " + " | ".join(h for _, h in PEERS) + " | of3c | of3c speed-up vs each | of3c peak / each |")
    print("|---|---|" + "---|" * len(PEERS) + "---|---|---|")
    for prec, n in keys:
        cells, speed, mem = [], [], []
        o = of3c.get((prec, n))
        for tag, _ in PEERS:
            v = peers.get((tag, prec, n))
            if v is None and (tag, prec, n) in failed:
                cells.append(failed[(tag, prec, n)])
            else:
                cells.append(cell(v))
            if v and o:
                speed.append(f"{v[0] / o[0]:.2f}×")
                mem.append(f"{o[1] / v[1]:.2f}")
            else:
                speed.append("—")
                mem.append("—")
        print(f"| {n} | {prec} | " + " | ".join(cells) + f" | **{cell(o)}** | " + " / ".join(speed) +
              " | " + " / ".join(mem) + " |")
    print()
    for (prec, n), o in sorted(of3c.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"- of3c {prec} N={n}: compute {o[0]:.1f} ms, whole call (inputs in, outputs out) {o[2]:.1f} ms, "
              f"MLX peak {o[1]:.2f} GiB; accuracy vs PyTorch fp32: {'; '.join(acc.get((prec, n), ['—']))}")
    for p in sorted(glob.glob(os.path.join(work, "of3c_*_*_mma.json"))):
        r = json.load(open(p))
        print(f"- {os.path.basename(p)[5:-5]} (OF3C_GPU_ATTENTION=flash-mma: the tensor-core flash kernel instead of "
              f"SDPA): compute {r['compute']['median_ms']:.1f} ms, MLX peak {r['peak_mlx_bytes'] / 2**30:.2f} GiB")
    for p in sorted(glob.glob(os.path.join(work, "of3c_*_*_whole.json"))):
        r = json.load(open(p))
        print(f"- {os.path.basename(p)[5:-5]} (compiled without --buckets, nothing planned): compute "
              f"{r['compute']['median_ms']:.1f} ms, MLX peak {r['peak_mlx_bytes'] / 2**30:.2f} GiB")
    for p in sorted(glob.glob(os.path.join(work, "of3c_budget_*.json"))):
        r = json.load(open(p))
        print(f"- {os.path.basename(p)[len('of3c_budget_'):-5]}: compute {r['compute']['median_ms']:.1f} ms, "
              f"MLX peak {r['peak_mlx_bytes'] / 2**30:.2f} GiB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gpu")
