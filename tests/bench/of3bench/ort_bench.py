"""onnxruntime side of of3bench: times one ONNX model on the CPU.

usage: ort_bench.py MODEL.onnx INPUTS.npz THREADS REPEAT OUT.npz

Runs with all graph optimizations, THREADS intra-op threads and one inter-op
thread (sequential execution), prints one JSON line on stdout:
{"first_ms", "median_ms", "min_ms", "peak_rss"} (peak_rss in bytes, from
ru_maxrss of this process) and saves the outputs to OUT.npz for the
cross-check against of3c.
"""
import json
import resource
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    model, inputs, threads, repeat, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    feeds = dict(np.load(inputs))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    t0 = time.perf_counter()
    # TorchScript exports of openfold3 carry negative Transpose perms, which onnxruntime refuses: it runs
    # a copy with them normalised (models/of3/export.py), created in the timed first call like a file load.
    import os
    import onnx
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "models", "of3"))
    from export import normalize_negative_perms
    proto, _ = normalize_negative_perms(onnx.load(model))
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    res = sess.run(names, feeds)
    first = (time.perf_counter() - t0) * 1e3
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        res = sess.run(names, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    np.savez(out, **dict(zip(names, res)))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps({"first_ms": first, "median_ms": statistics.median(times) if times else first,
                      "min_ms": min(times) if times else first, "peak_rss": rss}))


if __name__ == "__main__":
    main()
