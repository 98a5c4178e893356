#!/usr/bin/env python3
"""GPU peer for of3c: the real openfold3 module (models/of3/openfold3_zoo.py; --module pairformer_block
or pairformer_stack, preset of3, seed crc32("<module>:of3") as export.py uses, so the weights are those
of models/of3/generated/testdata/<module>_of3_*) in PyTorch eager, torch.compile and OpenFold3's own
chunked + LMA path (chunk_size 64, use_lma) on CUDA, and the exported ONNX file in onnxruntime (CUDA EP
if present). --source local runs the project's own modules.py instead.

Writes, per N: WORK/inputs_N.npz (s, z, mask, pair_mask; what `of3c run --inputs` reads) and
WORK/torch_fp32_N.npz (eager fp32 outputs, TF32 off: the reference for of3c's GPU outputs), and prints
one timing line per (runner, precision, N): median ms of --repeat timed calls after warm-up (CUDA events).

    python3 scripts/gpu/torch_peer.py --n 256,384 --work /tmp/gpu [--repeat 20] [--no-compile]
    python3 scripts/gpu/torch_peer.py --compare WORK/torch_fp32_256.npz OUT.npz   # max abs diff
"""
import argparse
import os
import statistics
import sys
import time
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "models", "of3"))


def compare(ref_path, got_path):
    ref, got = np.load(ref_path), np.load(got_path)
    for k in ref.files:
        if k not in got.files:
            print(f"compare {os.path.basename(got_path)} {k}: missing (have {got.files})")
            continue
        r, g = ref[k].astype(np.float64), got[k].astype(np.float64)
        d = np.abs(r - g)
        rel = float(np.linalg.norm((r - g).ravel()) / max(np.linalg.norm(r.ravel()), 1e-30))
        print(f"compare {os.path.basename(got_path)} {k}: shape {g.shape} max_abs {d.max():.3e} "
              f"mean_abs {d.mean():.3e} rel_l2 {rel:.3e} max|ref| {np.abs(r).max():.3f} nan {int(np.isnan(g).sum())}")


def time_cuda(fn, repeat, warmup=3):
    import torch
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = (time.perf_counter() - t0) * 1e3
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return first, statistics.median(ts)


def time_openfold3_lma(M, runs, n, repeat, ref_path=None, out_names=None):
    """Time OpenFold3's own memory path (chunk_size 64 + LMA) for each (model, inputs) pair, fp32 first then
    bf16; with ref_path, the fp32 outputs are saved there as the reference (for sizes eager cannot run)."""
    import torch
    for (m, x), prec in zip(runs, ("fp32", "bf16")):
        M.set_memory_mode(m, chunk_size=64, use_lma=True)
        try:
            torch.cuda.reset_peak_memory_stats()
            if ref_path and prec == "fp32":
                np.savez(ref_path, **{k: o.float().cpu().numpy() for k, o in zip(out_names, m(*x))})
            first, med = time_cuda(lambda: m(*x), repeat)
            peak = torch.cuda.max_memory_allocated() / 2**20
            print(f"RESULT openfold3-chunk64-lma {prec} N={n} first {first:.1f} ms median {med:.2f} ms "
                  f"peak {peak:.0f} MiB", flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on with the next run
            print(f"RESULT openfold3-chunk64-lma {prec} N={n} FAILED: {type(e).__name__}: {str(e)[:300]}")
        finally:
            M.set_memory_mode(m)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="256,384")
    ap.add_argument("--work", default="/tmp/gpu")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--onnx", default=None, help="ONNX file for onnxruntime (default: the generated torchscript export)")
    ap.add_argument("--module", default="pairformer_block")
    ap.add_argument("--source", default="openfold3", choices=("openfold3", "local"))
    ap.add_argument("--no-lma", action="store_true", help="skip OpenFold3's chunk 64 + LMA path")
    ap.add_argument("--compare", nargs=2)
    ap.add_argument("--lma-only", action="store_true",
                    help="only OpenFold3's chunk 64 + LMA path (lengths where eager does not fit); its fp32 output "
                         "is written as torch_fp32_N.npz")
    a = ap.parse_args()
    if a.compare:
        compare(*a.compare)
        return

    import importlib
    import torch
    M = importlib.import_module("openfold3_zoo" if a.source == "openfold3" else "modules")
    if a.onnx is None:
        a.onnx = os.path.join(REPO, f"models/of3/generated/testdata/{a.module}_of3_torchscript/model.onnx")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(a.work, exist_ok=True)
    print(f"torch {torch.__version__} device {torch.cuda.get_device_name()} tf32 off", flush=True)
    spec, cfg = M.SPECS[a.module], M.PRESETS["of3"]
    seed = zlib.crc32(f"{a.module}:of3".encode()) & 0x7FFFFFFF
    spec_in, spec_out = M.resolve_io(spec, cfg)
    model32 = M.init_weights(spec.build(cfg), seed).cuda()
    model16 = M.init_weights(spec.build(cfg), seed).to(torch.bfloat16).cuda()
    out_names = [o[0] for o in spec_out]
    in_names = [i[0] for i in spec_in]
    rows = []

    ort = None
    try:
        import onnxruntime as ort
        print("onnxruntime", ort.__version__, ort.get_available_providers(), flush=True)
    except Exception as e:  # noqa
        print("onnxruntime unavailable:", e)

    for n in [int(x) for x in a.n.split(",")]:
        ins = M.make_inputs(spec_in, {"N": n}, seed + 1000 + n)
        np.savez(os.path.join(a.work, f"inputs_{n}.npz"), **{k: t.numpy() for k, t in zip(in_names, ins)})
        x32 = [t.cuda() for t in ins]
        x16 = [t.to(torch.bfloat16).cuda() for t in ins]
        if a.lma_only:
            with torch.inference_mode():
                time_openfold3_lma(M, ((model32, x32), (model16, x16)), n, a.repeat,
                                   ref_path=os.path.join(a.work, f"torch_fp32_{n}.npz"), out_names=out_names)
            del x32, x16
            torch.cuda.empty_cache()
            continue
        with torch.inference_mode():
            outs = model32(*x32)
            np.savez(os.path.join(a.work, f"torch_fp32_{n}.npz"),
                     **{k: o.float().cpu().numpy() for k, o in zip(out_names, outs)})
            outs16 = model16(*x16)
            np.savez(os.path.join(a.work, f"torch_bf16_{n}.npz"),
                     **{k: o.float().cpu().numpy() for k, o in zip(out_names, outs16)})
            for name, m, x in (("eager", model32, x32), ("eager", model16, x16)):
                prec = "fp32" if x is x32 else "bf16"
                torch.cuda.reset_peak_memory_stats()
                first, med = time_cuda(lambda: m(*x), a.repeat)
                peak = torch.cuda.max_memory_allocated() / 2**20
                rows.append((f"torch {name}", prec, n, first, med, peak))
                print(f"RESULT torch-{name} {prec} N={n} first {first:.1f} ms median {med:.2f} ms peak {peak:.0f} MiB", flush=True)
            if not a.no_lma and hasattr(M, "set_memory_mode"):
                time_openfold3_lma(M, ((model32, x32), (model16, x16)), n, a.repeat)
            if not a.no_compile:
                for prec, m, x in (("fp32", model32, x32), ("bf16", model16, x16)):
                    try:
                        # A static-shape compile per length: after one length has compiled in this
                        # process, Dynamo would otherwise recompile the next one with dynamic shapes
                        # (session 7: N = 1024 after N = 512 ran at 193.6 / 125.4 ms, against
                        # 146.3 / 72.3 ms compiled alone in session 6).
                        torch._dynamo.reset()
                        cm = torch.compile(m, dynamic=False)
                        torch.cuda.reset_peak_memory_stats()
                        first, med = time_cuda(lambda: cm(*x), a.repeat)
                        peak = torch.cuda.max_memory_allocated() / 2**20
                        rows.append(("torch.compile", prec, n, first, med, peak))
                        print(f"RESULT torch.compile {prec} N={n} first(incl. compile) {first:.0f} ms median {med:.2f} ms peak {peak:.0f} MiB", flush=True)
                        if prec == "fp32":
                            co = cm(*x)
                            d = max(float((c - o).abs().max()) for c, o in zip(co, outs))
                            print(f"  torch.compile fp32 vs eager fp32 max_abs {d:.3e}")
                    except Exception as e:  # noqa
                        print(f"RESULT torch.compile {prec} N={n} FAILED: {type(e).__name__}: {str(e)[:400]}", flush=True)
        if ort is not None and "CUDAExecutionProvider" in ort.get_available_providers():
            try:
                so = ort.SessionOptions()
                sess = ort.InferenceSession(a.onnx, so, providers=["CUDAExecutionProvider"])
                feed = {k: t.numpy() for k, t in zip(in_names, ins)}
                t0 = time.perf_counter()
                sess.run(None, feed)
                first = (time.perf_counter() - t0) * 1e3
                for _ in range(3):
                    sess.run(None, feed)
                ts = []
                for _ in range(a.repeat):
                    t0 = time.perf_counter()
                    o = sess.run(None, feed)
                    ts.append((time.perf_counter() - t0) * 1e3)
                med = statistics.median(ts)
                d = max(float(np.abs(oo - r.float().cpu().numpy()).max()) for oo, r in zip(o, outs))
                print(f"RESULT ort-cuda fp32 N={n} first {first:.0f} ms median {med:.2f} ms (host->device->host incl.) max_abs_vs_torch {d:.3e}", flush=True)
            except Exception as e:  # noqa
                print(f"RESULT ort-cuda fp32 N={n} FAILED: {type(e).__name__}: {str(e)[:400]}", flush=True)
        elif ort is not None:
            print(f"RESULT ort-cuda N={n} SKIPPED: CUDAExecutionProvider not available ({ort.get_available_providers()})")
        del x32, x16
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
