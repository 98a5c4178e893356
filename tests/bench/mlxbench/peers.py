"""fp32 GEMM GFLOP/s for numpy and onnxruntime, the peers of mlxbench.

Prints one line per measurement: <name> <n> <gflops>.
"""
import argparse
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper


def timed(fn, mindur):
    fn()
    ds = []
    total = 0.0
    while total < mindur or len(ds) < 3:
        t0 = time.perf_counter()
        fn()
        d = time.perf_counter() - t0
        ds.append(d)
        total += d
    # best run, as mlxbench: the dev box is shared
    return min(ds)


def matmul_session(n):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm", [a, b], [c])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="512,1024,2048")
    p.add_argument("--mindur", type=float, default=1.0)
    args = p.parse_args()
    rng = np.random.default_rng(1)
    for n in [int(s) for s in args.sizes.split(",")]:
        a = rng.uniform(-1, 1, (n, n)).astype(np.float32)
        b = rng.uniform(-1, 1, (n, n)).astype(np.float32)
        flops = 2.0 * n ** 3
        t = timed(lambda: a @ b, args.mindur)
        print("numpy", n, flops / t / 1e9, flush=True)
        sess = matmul_session(n)
        t = timed(lambda: sess.run(None, {"a": a, "b": b}), args.mindur)
        print("onnxruntime", n, flops / t / 1e9, flush=True)


if __name__ == "__main__":
    main()
