#!/usr/bin/env python3
"""Run an ONNX model under onnxruntime on an ONNX test_data_set folder: the peer
that `make run` compares of3c with. Prints one line of JSON:

  {"median_ms": ..., "first_ms": ..., "peak_rss_bytes": ..., "max_abs_err": ..., "threads": ...}

max_abs_err is against the folder's output_K.pb (PyTorch's outputs). Usage:
  ort_peer.py MODEL.onnx DATASET_DIR [--repeat N] [--threads T]
"""
import argparse
import glob
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort


def read_pbs(folder, prefix):
    files = sorted(glob.glob(os.path.join(folder, prefix + "_*.pb")),
                   key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
    out = []
    for f in files:
        t = onnx.TensorProto()
        with open(f, "rb") as fh:
            t.ParseFromString(fh.read())
        out.append((t.name, onnx.numpy_helper.to_array(t)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("dataset")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    t0 = time.perf_counter()
    # TorchScript exports of openfold3 carry Transpose perms with negative entries, which onnxruntime
    # refuses; it gets a copy with them normalised (the same function the fixture exporter uses).
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "of3"))
    from export import normalize_negative_perms
    model, n_fixed = normalize_negative_perms(onnx.load(a.model))
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    inputs = read_pbs(a.dataset, "input")
    feed = {names[k]: arr for k, (_, arr) in enumerate(inputs)}
    outs = sess.run(None, feed)
    first_ms = (time.perf_counter() - t0) * 1e3
    times = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    want = read_pbs(a.dataset, "output")
    err = max(float(np.max(np.abs(o.astype(np.float64) - w.astype(np.float64)))) if o.size else 0.0
              for o, (_, w) in zip(outs, want))
    print(json.dumps({
        "median_ms": statistics.median(times),
        "first_ms": first_ms,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "max_abs_err": err,
        "threads": a.threads,
    }))


if __name__ == "__main__":
    sys.exit(main())
