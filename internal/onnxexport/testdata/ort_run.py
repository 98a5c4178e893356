"""Checks an ONNX model with onnx.checker and runs it with onnxruntime.

usage: ort_run.py MODEL.onnx INPUTS.npz OUTPUTS.npz

Inputs are fed by name from the .npz; the outputs are saved by name. Used by
the Go tests of package onnxexport and cmd/of3c (inspect --export-onnx).
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    model_path, in_path, out_path = sys.argv[1:4]
    model = onnx.load(model_path)
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    with np.load(in_path) as f:
        feeds = {i.name: f[i.name] for i in sess.get_inputs()}
    outs = sess.run(None, feeds)
    np.savez(out_path, **{o.name: v for o, v in zip(sess.get_outputs(), outs)})


if __name__ == "__main__":
    main()
