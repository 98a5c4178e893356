#!/usr/bin/env python3
"""Export the OpenFold3 reference modules (modules.py) to ONNX with both torch exporters.

Each fixture is written in ONNX's node-test layout::

    <out>/<module>_<preset>_<exporter>/model.onnx
    <out>/<module>_<preset>_<exporter>/test_data_set_{0,1}/{input,output}_K.pb

(two different token counts N, and MSA depths S where used; TensorProtos named after the
graph's inputs/outputs, in graph order, holding PyTorch fp32 CPU results). Before writing,
onnxruntime (CPUExecutionProvider) must reproduce PyTorch (``--tol``, default 1e-5 on
max-abs error scaled by max(1, max|ref|)); a fixture that fails is not written and is listed
under ``failures`` in the index with the reason.

The index (fixtures.json) is the single source of truth for the tests and the compiler
team: per fixture its I/O with symbolic dims, concrete dims of each test set, the fused ops a
correct compiler must produce (counted by running the module with instrumentation on),
softmax statistics, parity numbers and the exported graph's op histogram.

Needs torch for exporting; ``--reindex`` (rebuild the disk-derived parts of the index) and
``--ops`` (op-type histograms) need only onnx.

    python3 models/of3/export.py                      # the committed set (tiny x all, of3 x 2)
    python3 models/of3/export.py --modules pairformer_stack --presets of3 \\
        --exporters torchscript --external-data --out /tmp/of3_full      # full size, 48 blocks
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
import zlib
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_OUT = os.path.join(HERE, "testdata")
DEFAULT_INDEX = os.path.join(HERE, "fixtures.json")
EXPORTERS = ("torchscript", "dynamo")
TORCHSCRIPT_OPSET = 17
DYNAMO_OPSET = 18

# Concrete sizes of test_data_set_0 / test_data_set_1 per preset (non-multiples, small).
DIMS = {
    "tiny": [{"N": 12, "S": 5}, {"N": 19, "S": 7}],
    "of3": [{"N": 10, "S": 4}, {"N": 13, "S": 6}],
}
# The committed set: every module at tiny width, plus these at real OF3 width.
COMMITTED_OF3 = ("tri_att_start",)


SOURCES = {"openfold3": "openfold3_zoo", "local": "modules"}


def fixture_name(module, preset, exporter, source="openfold3"):
    """Real-package fixtures carry the plain name; the project's own modules are prefixed local_."""
    return f"{'local_' if source == 'local' else ''}{module}_{preset}_{exporter}"


def provider(source):
    """The module zoo of a source: openfold3_zoo (the real package) or modules (our own)."""
    import importlib
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    return importlib.import_module(SOURCES[source])


def seed_of(module, preset):
    return zlib.crc32(f"{module}:{preset}".encode()) & 0x7FFFFFFF


# ---------------------------------------------------------------------------
# Disk-derived metadata (onnx only, no torch)
# ---------------------------------------------------------------------------


def _dtype_name(elem_type):
    import onnx
    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name


def _sym_shape(vi):
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_param"):
            dims.append(d.dim_param)
        elif d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(None)
    return dims


def op_histogram(model) -> dict:
    c = Counter()

    def walk(graph):
        for n in graph.node:
            c[(n.domain + "." if n.domain not in ("", "ai.onnx") else "") + n.op_type] += 1
            for a in n.attribute:
                if a.g is not None and a.HasField("g"):
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(model.graph)
    for f in model.functions:  # local functions (dynamo may keep some)
        for n in f.node:
            c[f"fn:{n.op_type}"] += 1
    return dict(sorted(c.items()))


def disk_info(fixture_dir) -> dict:
    """Everything the index says about a fixture that can be read back from its files."""
    import onnx
    from onnx import numpy_helper
    model_path = os.path.join(fixture_dir, "model.onnx")
    model = onnx.load(model_path, load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    init_names = {t.name for t in model.graph.initializer}
    inputs = [{"name": v.name, "dtype": _dtype_name(v.type.tensor_type.elem_type), "shape": _sym_shape(v)}
              for v in model.graph.input if v.name not in init_names]
    outputs = [{"name": v.name, "dtype": _dtype_name(v.type.tensor_type.elem_type), "shape": _sym_shape(v)}
               for v in model.graph.output]
    sets = []
    for k in range(100):
        d = os.path.join(fixture_dir, f"test_data_set_{k}")
        if not os.path.isdir(d):
            break
        dims = {}
        for i, spec in enumerate(inputs):
            t = onnx.TensorProto()
            with open(os.path.join(d, f"input_{i}.pb"), "rb") as f:
                t.ParseFromString(f.read())
            for sym, val in zip(spec["shape"], t.dims):
                if isinstance(sym, str):
                    dims[sym] = int(val)
        sets.append({"dir": f"test_data_set_{k}", "dims": dict(sorted(dims.items())),
                     "n_inputs": len(inputs), "n_outputs": len(outputs)})
    ext = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(fixture_dir) for f in fs)
    return {
        "opset": opset,
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": inputs,
        "outputs": outputs,
        "test_data_sets": sets,
        "external_data": bool(ext),
        "model_bytes": os.path.getsize(model_path),
        "fixture_bytes": size,
        "op_histogram": op_histogram(model),
    }


# ---------------------------------------------------------------------------
# Export of one fixture (runs in a worker process; needs torch)
# ---------------------------------------------------------------------------


def _softmax_stats(probe):
    """Per attention kind: normalised entropy of softmax rows over their unmasked keys."""
    import torch
    out = {}
    for kind, a in probe:
        rows = a.reshape(-1, a.shape[-1]).double()
        nz = (rows > 0).sum(-1)
        keep = nz >= 2
        rows, nz = rows[keep], nz[keep]
        ent = -(torch.where(rows > 0, rows * rows.clamp_min(1e-300).log(), torch.zeros_like(rows))).sum(-1)
        hn = ent / nz.double().log()
        mx = rows.max(-1).values
        st = out.setdefault(kind, {"rows": 0, "hn_sum": 0.0, "hn_min": 1.0, "uniform": 0, "onehot": 0,
                                   "maxp_sum": 0.0})
        st["rows"] += int(rows.shape[0])
        st["hn_sum"] += float(hn.sum())
        st["hn_min"] = min(st["hn_min"], float(hn.min())) if rows.shape[0] else st["hn_min"]
        st["uniform"] += int((hn > 0.999).sum())
        st["onehot"] += int((mx > 0.99).sum())
        st["maxp_sum"] += float(mx.sum())
    res, ok = {}, True
    for kind, st in out.items():
        n = max(st["rows"], 1)
        r = {"rows": st["rows"], "mean_norm_entropy": round(st["hn_sum"] / n, 4),
             "min_norm_entropy": round(st["hn_min"], 4), "frac_uniform": round(st["uniform"] / n, 4),
             "frac_onehot": round(st["onehot"] / n, 4), "mean_max_prob": round(st["maxp_sum"] / n, 4)}
        r["ok"] = bool(0.2 < r["mean_norm_entropy"] < 0.99 and r["frac_uniform"] < 0.5 and r["frac_onehot"] < 0.2)
        ok = ok and r["ok"]
        res[kind] = r
    return res, ok


def _expected_fused(counter):
    counts = counter.get("counts", {})
    atts = counter.get("attentions", [])
    kinds = Counter(a["kind"] for a in atts)
    return {
        "of3c.Attention": counts.get("of3c.Attention", 0),
        "attention_kinds": dict(sorted(kinds.items())),
        "of3c.SwiGLU": counts.get("of3c.SwiGLU", 0),
        "of3c.TriangleMultiplication": counts.get("of3c.TriangleMultiplication", 0),
        "of3c.OuterProductMean": counts.get("of3c.OuterProductMean", 0),
        "LayerNormalization": counts.get("LayerNormalization", 0),
        "softmax_remaining": 0,
        "attentions": atts,
    }


def _fix_io_dims(model, spec_in, spec_out):
    """Name the graph's input/output dims after our symbols (N, S) and check static dims."""
    want = {n: s for n, s, *_ in spec_in}
    want.update({n: s for n, s in spec_out})
    problems = []
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.name not in want:
            continue
        shape = want[vi.name]
        dims = vi.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            problems.append(f"{vi.name}: rank {len(dims)} != {len(shape)}")
            continue
        for d, s in zip(dims, shape):
            if isinstance(s, str):
                d.Clear()
                d.dim_param = s
            elif d.HasField("dim_value") and d.dim_value != s:
                problems.append(f"{vi.name}: dim {d.dim_value} != {s}")
            else:
                d.Clear()
                d.dim_value = s
    return problems


def _strip_stack_traces(model):
    """Drop the dynamo exporter's per-node Python stack traces (absolute paths of the machine that
    exported: they make fixtures machine-dependent and bigger); other metadata stays."""
    def walk(nodes):
        for n in nodes:
            keep = [p for p in n.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
            if len(keep) != len(n.metadata_props):
                del n.metadata_props[:]
                n.metadata_props.extend(keep)
            for a in n.attribute:
                if a.HasField("g"):
                    walk(a.g.node)
                for g in a.graphs:
                    walk(g.node)
    walk(model.graph.node)
    for f in model.functions:
        walk(f.node)
    return model


def _export_proto(model, args, exporter, in_names, out_names, spec_in, spec_out, log):
    import io
    import onnx
    import torch
    notes = []
    if exporter == "torchscript":
        dyn = {}
        for n, s, *_ in list(spec_in) + list(spec_out):
            axes = {i: d for i, d in enumerate(s) if isinstance(d, str)}
            if axes:
                dyn[n] = axes
        buf = io.BytesIO()
        torch.onnx.export(model, tuple(args), buf, dynamo=False, opset_version=TORCHSCRIPT_OPSET,
                          input_names=in_names, output_names=out_names, dynamic_axes=dyn,
                          do_constant_folding=True)
        return onnx.load_from_string(buf.getvalue()), notes
    # dynamo
    from torch.export import Dim
    syms = {"N": Dim("N", min=2, max=1 << 16), "S": Dim("S", min=2, max=1 << 16)}

    def shapes(use_auto):
        out = []
        for _, s, *_ in spec_in:
            out.append({i: (Dim.AUTO if use_auto else syms[d]) for i, d in enumerate(s) if isinstance(d, str)})
        return tuple(out)

    last = None
    for use_auto, opset in ((False, DYNAMO_OPSET), (False, None), (True, DYNAMO_OPSET), (True, None)):
        try:
            kw = {} if opset is None else {"opset_version": opset}
            prog = torch.onnx.export(model, tuple(args), dynamo=True, dynamic_shapes=shapes(use_auto),
                                     input_names=in_names, output_names=out_names, optimize=True, **kw)
            if use_auto or opset is None:
                notes.append(f"dynamo export needed fallback (Dim.AUTO={use_auto}, opset={opset}); "
                             f"first error: {str(last)[:300]}")
            return _strip_stack_traces(prog.model_proto), notes
        except Exception as e:  # noqa: BLE001 - try the next variant, report the first error
            log(f"dynamo export variant auto={use_auto} opset={opset} failed: {e!r}"[:2000])
            last = last or e
    raise last


def normalize_negative_perms(model):
    """A copy of model whose Transpose perms are non-negative. The TorchScript exporter writes
    perm=[0,-1,-3,-2] for some of the package's transposes; onnxruntime refuses those files, so the
    parity check runs on this copy (the fixture keeps the exporter's file: of3c must accept it)."""
    import onnx
    m = onnx.ModelProto()
    m.CopyFrom(model)
    fixed = 0

    def walk(nodes):
        nonlocal fixed
        for n in nodes:
            if n.op_type == "Transpose" and n.domain in ("", "ai.onnx"):
                for a in n.attribute:
                    if a.name == "perm" and any(p < 0 for p in a.ints):
                        r = len(a.ints)
                        new = [p + r if p < 0 else p for p in a.ints]
                        del a.ints[:]
                        a.ints.extend(new)
                        fixed += 1
            for a in n.attribute:
                if a.HasField("g"):
                    walk(a.g.node)
                for g in a.graphs:
                    walk(g.node)
    walk(m.graph.node)
    for f in m.functions:
        walk(f.node)
    return m, fixed


def export_one(module, preset, exporter, out_dir, tol, external_data, threads, log_path, source="openfold3",
               checkpoint=None, checkpoint_prefix=None):
    """Export, verify and write one fixture. Returns a dict (entry or failure); never raises."""
    t0 = time.time()
    name = fixture_name(module, preset, exporter, source)
    logf = open(log_path, "w", buffering=1)
    saved = os.dup(1), os.dup(2)
    os.dup2(logf.fileno(), 1)
    os.dup2(logf.fileno(), 2)

    def log(msg):
        print(msg, flush=True)

    try:
        import numpy as np
        import onnx
        import onnxruntime as ort
        import torch
        from onnx import numpy_helper
        M = provider(source)

        torch.set_num_threads(threads)
        cfg = M.PRESETS[preset]
        spec = M.SPECS[module]
        spec_in, spec_out = M.resolve_io(spec, cfg)
        in_names = [n for n, _, _ in spec_in]
        out_names = [n for n, _ in spec_out]
        seed = seed_of(module, preset)
        model = M.init_weights(spec.build(cfg), seed)
        ckpt_info = None
        if checkpoint:
            ckpt_info = M.load_checkpoint(model, checkpoint, checkpoint_prefix)
            log(f"{name}: checkpoint {checkpoint}: {ckpt_info}")
        n_params = sum(p.numel() for p in model.parameters())
        used = {d for _, s, _ in spec_in for d in s if isinstance(d, str)}
        dim_sets = [{k: v for k, v in d.items() if k in used} for d in DIMS[preset]]
        sets = [M.make_inputs(spec_in, d, seed + 1 + k) for k, d in enumerate(dim_sets)]

        # Instrumented run: fused-op counts and softmax statistics.
        if hasattr(M, "Instrument"):
            kind = {"tri_att_start": "triangle_start", "tri_att_end": "triangle_end"}.get(module)
            with M.Instrument(model, kind) as ins, torch.no_grad():
                model(*sets[0])
            counter, probe = ins.counter, ins.probe
        else:
            M.COUNTER, M.SOFTMAX_PROBE = {}, []
            with torch.no_grad():
                model(*sets[0])
            counter, probe = M.COUNTER, M.SOFTMAX_PROBE
            M.COUNTER, M.SOFTMAX_PROBE = None, None
        expected = _expected_fused(counter)
        sm_stats, sm_ok = _softmax_stats(probe)
        log(f"{name}: params={n_params} expected={json.dumps({k: v for k, v in expected.items() if k != 'attentions'})}")
        log(f"{name}: softmax {json.dumps(sm_stats)}")

        # Reference outputs (instrumentation off).
        refs = []
        with torch.no_grad():
            for args in sets:
                o = model(*args)
                o = o if isinstance(o, tuple) else (o,)
                refs.append([t.detach().numpy().astype(np.float32) for t in o])

        proto, notes = _export_proto(model, sets[0], exporter, in_names, out_names, spec_in, spec_out, log)
        problems = _fix_io_dims(proto, spec_in, spec_out)
        if problems:
            raise RuntimeError("graph I/O does not match the spec: " + "; ".join(problems))
        g_in = [v.name for v in proto.graph.input if v.name not in {t.name for t in proto.graph.initializer}]
        g_out = [v.name for v in proto.graph.output]
        missing = [n for n in g_in if n not in in_names]
        if missing:
            raise RuntimeError(f"graph inputs {missing} not among {in_names}")
        if len(g_out) != len(out_names):
            raise RuntimeError(f"graph outputs {g_out} != {out_names}")
        dropped = [n for n in in_names if n not in g_in]
        if dropped:
            notes.append(f"exporter dropped unused inputs {dropped}")
        try:
            onnx.checker.check_model(proto)
        except Exception as e:  # noqa: BLE001
            notes.append(f"onnx.checker: {e}"[:500])

        # Parity: onnxruntime vs PyTorch on both test sets.
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        ort_proto, n_fixed = normalize_negative_perms(proto)
        if n_fixed:
            notes.append(f"{n_fixed} Transpose nodes have negative perm entries (onnxruntime refuses them); "
                         "the onnxruntime parity check ran on a copy with perm normalised, the fixture keeps them")
        sess = ort.InferenceSession(ort_proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        parity = []
        for k, (args, ref) in enumerate(zip(sets, refs)):
            feed = {n: a.numpy() for n, a in zip(in_names, args) if n in g_in}
            got = sess.run(g_out, feed)
            mabs, mref = 0.0, 0.0
            for gv, rv in zip(got, ref):
                if gv.shape != rv.shape:
                    raise RuntimeError(f"set {k}: output shape {gv.shape} != torch {rv.shape}")
                if not np.all(np.isfinite(rv)):
                    raise RuntimeError(f"set {k}: torch output has non-finite values")
                mabs = max(mabs, float(np.max(np.abs(gv.astype(np.float64) - rv))))
                mref = max(mref, float(np.max(np.abs(rv))))
            parity.append({"set": k, "dims": dim_sets[k], "max_abs": mabs, "max_abs_ref": mref,
                           "scaled": mabs / max(1.0, mref)})
            log(f"{name}: set {k} {dim_sets[k]} max_abs={mabs:.3e} max|ref|={mref:.3g}")
        worst = max(p["scaled"] for p in parity)
        if not worst <= tol:
            raise RuntimeError(f"onnxruntime parity failed: max_abs/max(1,|ref|) = {worst:.3e} > {tol:g} "
                               f"({[round(p['max_abs'], 8) for p in parity]})")

        # Write.
        fdir = os.path.join(out_dir, name)
        if os.path.exists(fdir):
            shutil.rmtree(fdir)
        os.makedirs(fdir)
        mpath = os.path.join(fdir, "model.onnx")
        if external_data:
            onnx.save(proto, mpath, save_as_external_data=True, all_tensors_to_one_file=True,
                      location="model.onnx.data", size_threshold=1024)
        else:
            onnx.save(proto, mpath, save_as_external_data=False)
        for k, (args, ref) in enumerate(zip(sets, refs)):
            d = os.path.join(fdir, f"test_data_set_{k}")
            os.makedirs(d)
            by_name = dict(zip(in_names, args))
            for i, n in enumerate(g_in):
                t = numpy_helper.from_array(by_name[n].numpy().astype(np.float32), name=n)
                with open(os.path.join(d, f"input_{i}.pb"), "wb") as f:
                    f.write(t.SerializeToString())
            for i, (n, r) in enumerate(zip(g_out, ref)):
                with open(os.path.join(d, f"output_{i}.pb"), "wb") as f:
                    f.write(numpy_helper.from_array(r, name=n).SerializeToString())

        entry = {
            "name": name, "module": module, "class": spec.cls, "preset": preset, "exporter": exporter,
            "source": source, "seed": seed, "n_params": n_params, "negative_perms": n_fixed,
            "checkpoint": ckpt_info,
            "config": {k: v for k, v in M.config_dict(cfg).items()},
            "expected_fused": expected,
            "softmax_stats": sm_stats, "softmax_ok": sm_ok,
            "parity": {"tol_scaled": tol, "sets": parity},
            "notes": notes,
            "torch": torch.__version__, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
            "export_seconds": round(time.time() - t0, 1),
        }
        entry["_dir"] = fdir
        log(f"{name}: OK in {time.time() - t0:.1f}s")
        return {"ok": True, "entry": entry}
    except Exception as e:  # noqa: BLE001 - one failing fixture must not kill the others
        log(traceback.format_exc())
        return {"ok": False, "name": name, "module": module, "preset": preset, "exporter": exporter,
                "source": source, "reason": f"{type(e).__name__}: {e}"[:1500], "seconds": round(time.time() - t0, 1)}
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        logf.close()


# ---------------------------------------------------------------------------
# Index
# ---------------------------------------------------------------------------


def load_index(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"fixtures": [], "failures": []}


def finish_entry(entry, index_dir):
    fdir = entry.pop("_dir")
    entry.update(disk_info(fdir))
    entry["path"] = os.path.relpath(fdir, index_dir)
    order = ["name", "module", "class", "preset", "exporter", "opset", "path", "inputs", "outputs",
             "test_data_sets", "expected_fused"]
    return {k: entry[k] for k in order + sorted(k for k in entry if k not in order)}


def write_index(index, path):
    fx = sorted(index["fixtures"], key=lambda e: e["name"])
    hist = {}
    for e in fx:
        h = hist.setdefault(e["exporter"], Counter())
        h.update(e.get("op_histogram", {}))
    out = {
        "format": "of3c-fixtures/1",
        "generated_by": "models/of3/export.py",
        "about": ("Paths are relative to this file's folder. Shapes use symbols N (tokens) and S (MSA rows); "
                  "each test_data_set's dims gives their values. expected_fused: fused ops a correct of3c "
                  "compiler must produce (of3c.Attention count and kinds, of3c.SwiGLU count, LayerNormalization "
                  "count, and no Softmax left outside of3c.Attention)."),
        "fixtures": fx,
        "failures": sorted(index.get("failures", []), key=lambda e: e["name"]),
        "op_histogram_by_exporter": {k: dict(sorted(v.items())) for k, v in sorted(hist.items())},
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def reindex(index_path):
    index = load_index(index_path)
    idir = os.path.dirname(os.path.abspath(index_path))
    kept = []
    for e in index["fixtures"]:
        fdir = os.path.join(idir, e["path"])
        if not os.path.exists(os.path.join(fdir, "model.onnx")):
            print(f"reindex: dropping {e['name']} (no model.onnx)")
            continue
        e["_dir"] = fdir
        kept.append(finish_entry(e, idir))
    index["fixtures"] = kept
    write_index(index, index_path)
    print(f"reindex: {len(kept)} fixtures in {index_path}")


def print_ops(index_path):
    index = load_index(index_path)
    hist = {}
    for e in index["fixtures"]:
        hist.setdefault(e["exporter"], Counter()).update(e.get("op_histogram", {}))
    for exp, h in sorted(hist.items()):
        print(f"op types, {exp} ({sum(1 for e in index['fixtures'] if e['exporter'] == exp)} fixtures):")
        for op, n in sorted(h.items()):
            print(f"  {op:28s} {n}")


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=sorted(SOURCES), default="openfold3",
                    help="openfold3: the real package's classes (default); local: the project's own modules.py")
    ap.add_argument("--checkpoint", help="OpenFold3 checkpoint (state dict or Lightning .ckpt) to load instead of "
                                         "random weights")
    ap.add_argument("--checkpoint-prefix", help="key prefix of the module in the checkpoint "
                                                "(default: searched, e.g. 'model.pairformer_stack.')")
    ap.add_argument("--modules", help="comma-separated module names (default: all)")
    ap.add_argument("--presets", help="comma-separated presets (tiny, of3). Default: the committed set")
    ap.add_argument("--exporters", default="torchscript,dynamo")
    ap.add_argument("--out", default=DEFAULT_OUT, help="fixture folder (default models/of3/testdata)")
    ap.add_argument("--index", help="index file (default: models/of3/fixtures.json for the default --out, "
                                    "else <out>/fixtures.json)")
    ap.add_argument("--external-data", action="store_true", help="save weights as model.onnx.data (full size)")
    ap.add_argument("--tol", type=float, default=1e-5, help="max |ort - torch| / max(1, max|torch|)")
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--task-timeout", type=float, default=420)
    ap.add_argument("--log-dir", help="per-fixture logs and export.log (default <out>/../.export_logs)")
    ap.add_argument("--reindex", action="store_true", help="rebuild the index from the files (no torch)")
    ap.add_argument("--ops", action="store_true", help="print op-type histograms from the index (no torch)")
    ap.add_argument("--list", action="store_true", help="list modules and presets")
    a = ap.parse_args(argv)

    out = os.path.abspath(a.out)
    index_path = os.path.abspath(a.index or (DEFAULT_INDEX if out == DEFAULT_OUT else os.path.join(out, "fixtures.json")))
    if a.reindex:
        reindex(index_path)
        return 0
    if a.ops:
        print_ops(index_path)
        return 0

    M = provider(a.source)  # needs torch (and, for openfold3, the package)
    if a.list:
        print("modules:", ", ".join(M.SPECS))
        print("presets:", ", ".join(M.PRESETS))
        return 0

    exporters = [e for e in a.exporters.split(",") if e]
    for e in exporters:
        if e not in EXPORTERS:
            ap.error(f"unknown exporter {e}")
    mods = a.modules.split(",") if a.modules else list(M.SPECS)
    for m in mods:
        if m not in M.SPECS:
            ap.error(f"unknown module {m}; have {', '.join(M.SPECS)}")
    if a.presets:
        combos = [(m, p) for p in a.presets.split(",") for m in mods]
    elif a.modules:
        combos = [(m, "tiny") for m in mods]
    else:
        combos = [(m, "tiny") for m in mods] + [(m, "of3") for m in COMMITTED_OF3 if m in M.SPECS]
    for _, p in combos:
        if p not in M.PRESETS:
            ap.error(f"unknown preset {p}")
    tasks = [(m, p, e) for m, p in combos for e in exporters]
    # Biggest first so the long ones start early.
    weight = lambda t: (t[1] == "of3") * 100 + (t[0] in ("pairformer_stack", "msa_module_block", "pairformer_block")) * 10 + (t[2] == "dynamo")
    tasks.sort(key=weight, reverse=True)

    os.makedirs(out, exist_ok=True)
    log_dir = os.path.abspath(a.log_dir or os.path.join(os.path.dirname(out), ".export_logs"))
    os.makedirs(log_dir, exist_ok=True)
    jobs = max(1, min(a.jobs, len(tasks)))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    print(f"export: {len(tasks)} fixtures, {jobs} workers x {threads} threads -> {out}", flush=True)

    import multiprocessing as mp
    t0 = time.time()
    results = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(jobs, maxtasksperchild=4) as pool:
        pend = []
        for m, p, e in tasks:
            lp = os.path.join(log_dir, fixture_name(m, p, e, a.source) + ".log")
            pend.append(((m, p, e), pool.apply_async(export_one, (m, p, e, out, a.tol, a.external_data, threads, lp,
                                                                  a.source, a.checkpoint, a.checkpoint_prefix))))
        for (m, p, e), r in pend:
            left = max(1.0, a.task_timeout - (time.time() - t0)) if a.task_timeout else None
            try:
                res = r.get(timeout=left)
            except Exception as ex:  # noqa: BLE001 (timeout or worker crash)
                res = {"ok": False, "name": fixture_name(m, p, e, a.source), "module": m, "preset": p, "exporter": e,
                       "reason": f"worker: {type(ex).__name__}: {ex}"[:1500]}
            results.append(res)
            tag = "ok  " if res["ok"] else "FAIL"
            print(f"  [{tag}] {fixture_name(m, p, e, a.source)}  ({time.time() - t0:.0f}s)", flush=True)
        pool.terminate()

    index = load_index(index_path)
    idir = os.path.dirname(index_path)
    by_name = {e["name"]: e for e in index["fixtures"]}
    fails = {f["name"]: f for f in index.get("failures", [])}
    for r in results:
        if r["ok"]:
            e = finish_entry(r["entry"], idir)
            by_name[e["name"]] = e
            fails.pop(e["name"], None)
        else:
            fails[r["name"]] = {k: r[k] for k in ("name", "module", "preset", "exporter", "reason")}
    index["fixtures"] = list(by_name.values())
    index["failures"] = list(fails.values())
    os.makedirs(idir, exist_ok=True)
    write_index(index, index_path)

    # Summary table + combined log.
    lines = [f"{'fixture':48s} {'st':4s} {'opset':>5s} {'MB':>7s} {'att':>3s} {'swi':>3s} {'sm_ok':>5s} "
             f"{'max_abs set0':>12s} {'max_abs set1':>12s}"]
    for r in sorted(results, key=lambda r: r["entry"]["name"] if r["ok"] else r["name"]):
        if r["ok"]:
            e = by_name[r["entry"]["name"]]
            ps = e["parity"]["sets"]
            lines.append(f"{e['name']:48s} {'ok':4s} {e['opset']:>5} {e['fixture_bytes'] / 1e6:7.2f} "
                         f"{e['expected_fused']['of3c.Attention']:>3} {e['expected_fused']['of3c.SwiGLU']:>3} "
                         f"{str(e['softmax_ok']):>5s} {ps[0]['max_abs']:12.3e} {ps[1]['max_abs']:12.3e}")
        else:
            lines.append(f"{r['name']:48s} FAIL  {r['reason'][:300]}")
    summary = "\n".join(lines)
    n_ok = sum(r["ok"] for r in results)
    summary += f"\n{n_ok} ok, {len(results) - n_ok} failed, {time.time() - t0:.0f}s; index {index_path}\n"
    print(summary, flush=True)
    with open(os.path.join(log_dir, "export.log"), "w") as f:
        f.write(summary + "\n")
        for r in results:
            n = r["entry"]["name"] if r["ok"] else r["name"]
            lp = os.path.join(log_dir, n + ".log")
            f.write(f"\n===== {n} =====\n")
            if os.path.exists(lp):
                with open(lp, errors="replace") as g:
                    f.write(g.read()[-20000:])
    print_ops(index_path)
    return 0 if n_ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
