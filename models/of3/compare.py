#!/usr/bin/env python3
"""Compare two fixture trees (e.g. a fresh regeneration against the committed testdata/).

For every fixture present in both: test inputs must be bit-identical, weights (initializers
by name) bit-identical, and outputs within --atol. Needs only numpy + onnx.

    python3 models/of3/compare.py models/of3/testdata /tmp/regen
"""

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def _pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def compare(a_dir, b_dir, atol):
    names = sorted(set(os.listdir(a_dir)) & set(os.listdir(b_dir)))
    names = [n for n in names if os.path.isfile(os.path.join(a_dir, n, "model.onnx"))]
    only = sorted(set(os.listdir(a_dir)) ^ set(os.listdir(b_dir)))
    bad = 0
    for n in names:
        fa, fb = os.path.join(a_dir, n), os.path.join(b_dir, n)
        ma = {t.name: numpy_helper.to_array(t) for t in onnx.load(os.path.join(fa, "model.onnx")).graph.initializer}
        mb = {t.name: numpy_helper.to_array(t) for t in onnx.load(os.path.join(fb, "model.onnx")).graph.initializer}
        w_same = ma.keys() == mb.keys() and all(np.array_equal(ma[k], mb[k]) for k in ma)
        in_same, out_err = True, 0.0
        for s in sorted(d for d in os.listdir(fa) if d.startswith("test_data_set_")):
            for f in sorted(os.listdir(os.path.join(fa, s))):
                xa, xb = _pb(os.path.join(fa, s, f)), _pb(os.path.join(fb, s, f))
                if f.startswith("input_"):
                    in_same = in_same and xa.shape == xb.shape and np.array_equal(xa, xb)
                else:
                    out_err = max(out_err, float(np.max(np.abs(xa.astype(np.float64) - xb))) if xa.shape == xb.shape
                                  else float("inf"))
        ok = w_same and in_same and out_err <= atol
        bad += not ok
        print(f"{'ok  ' if ok else 'DIFF'} {n:48s} weights_identical={w_same} inputs_identical={in_same} "
              f"max_abs_output_diff={out_err:.3e}")
    for n in only:
        print(f"only in one tree: {n}")
    print(f"{len(names) - bad} same, {bad} different")
    return bad


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--atol", type=float, default=1e-5)
    a = ap.parse_args()
    sys.exit(1 if compare(a.a, a.b, a.atol) else 0)
