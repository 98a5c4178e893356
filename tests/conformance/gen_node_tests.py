"""Write the ONNX backend node tests of the installed onnx package as test data.

The onnx wheels no longer ship onnx/backend/test/data/node, but they still ship
the generators (onnx/backend/test/case/node). This script runs them and writes
the usual layout, test_X/model.onnx + test_data_set_N/{input,output}_K.pb, so
the conformance runner covers ops newer than Debian's ONNX 1.12 data
(Attention-23, RMSNormalization, Gelu, opset-18 reductions, ...).

    .venv/bin/python tests/conformance/gen_node_tests.py [OUT_DIR]

OUT_DIR defaults to .cache/onnx-node-tests/node (git-ignored). Tests whose
inputs or outputs are not plain tensors (sequences, optionals, maps) are left
out: of3c's IR holds tensors only.
"""

from __future__ import annotations

import os
import shutil
import sys

import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node


def tensor_io(model: onnx.ModelProto) -> bool:
    return all(v.type.HasField("tensor_type") for v in list(model.graph.input) + list(model.graph.output))


def write_case(case, out_dir: str) -> None:
    case_dir = os.path.join(out_dir, case.name)
    if os.path.exists(case_dir):
        shutil.rmtree(case_dir)
    os.makedirs(case_dir)
    with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    for i, (inputs, outputs) in enumerate(case.data_sets):
        set_dir = os.path.join(case_dir, f"test_data_set_{i}")
        os.makedirs(set_dir)
        for prefix, values, decls in (("input", inputs, case.model.graph.input),
                                      ("output", outputs, case.model.graph.output)):
            for j, value in enumerate(values):
                proto = value if isinstance(value, onnx.TensorProto) else numpy_helper.from_array(value, decls[j].name)
                with open(os.path.join(set_dir, f"{prefix}_{j}.pb"), "wb") as f:
                    f.write(proto.SerializeToString())


def main() -> int:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(".cache", "onnx-node-tests", "node")
    os.makedirs(out_dir, exist_ok=True)
    written = left_out = 0
    for case in node.collect_testcases():
        if case.kind != "node" or not case.data_sets or not tensor_io(case.model):
            left_out += 1
            continue
        write_case(case, out_dir)
        written += 1
    print(f"onnx {onnx.__version__}: wrote {written} node tests to {out_dir} ({left_out} with non-tensor values left out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
