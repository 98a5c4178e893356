"""Integrity and onnxruntime parity of the committed OpenFold3 fixtures (no torch needed).

fixtures.json (written by models/of3/export.py) is the source of truth; every fixture it lists
must be on disk, match its description, and onnxruntime must reproduce the recorded PyTorch
outputs within 1e-4 (max abs) on every test_data_set.
"""

import json
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OF3 = os.path.dirname(HERE)
INDEX_PATH = os.path.join(OF3, "fixtures.json")
PARITY_ATOL = 1e-4
MAX_COMMITTED_MB = 20

with open(INDEX_PATH) as _f:
    INDEX = json.load(_f)
FIXTURES = INDEX["fixtures"]
IDS = [e["name"] for e in FIXTURES]
MODULES = sorted({e["module"] for e in FIXTURES} | {f["module"] for f in INDEX.get("failures", [])})


def _dir(e):
    return os.path.join(OF3, e["path"])


def _load_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t


def _concrete(shape, dims):
    return [dims[d] if isinstance(d, str) else d for d in shape]


# Every module the real-package exporter has (models/of3/openfold3_zoo.py SPECS), at tiny width.
REAL_MODULES = ("tri_mul_out", "tri_mul_in", "tri_att_start", "tri_att_end", "attention_pair_bias",
                "swiglu_transition", "outer_product_mean", "msa_pair_weighted_avg", "pairformer_block",
                "pairformer_stack", "msa_module_block", "msa_module_stack", "template_pair_block",
                "diffusion_transformer_block", "diffusion_transformer")


def _source(e):
    return e.get("source", "local")


def test_index_coverage():
    assert len(FIXTURES) >= 12
    names = set(IDS)
    assert len(names) == len(FIXTURES), "duplicate fixture names"
    # every real-package module at tiny width, with both exporters (or a recorded failure with its reason)
    failed = {f["name"]: f for f in INDEX.get("failures", [])}
    for m in REAL_MODULES:
        for exp in ("torchscript", "dynamo"):
            n = f"{m}_tiny_{exp}"
            assert n in names or n in failed, f"{n} neither exported nor listed as a failure"
            if n in failed:
                assert failed[n]["reason"]
    for f in failed.values():
        assert f["reason"], f


def test_committed_size():
    total = 0
    for root, _, files in os.walk(os.path.join(OF3, "testdata")):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    assert total < MAX_COMMITTED_MB * 2**20, f"testdata is {total / 2**20:.1f} MiB"


@pytest.mark.parametrize("e", FIXTURES, ids=IDS)
def test_fixture_integrity(e):
    d = _dir(e)
    prefix = "local_" if _source(e) == "local" else ""
    assert e["name"] == os.path.basename(d) == f"{prefix}{e['module']}_{e['preset']}_{e['exporter']}"
    assert e["exporter"] in ("torchscript", "dynamo")
    assert e["opset"] >= (17 if e["exporter"] == "torchscript" else 18)
    model = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer), \
        "committed fixtures are self-contained"
    inits = {t.name for t in model.graph.initializer}
    g_in = [v for v in model.graph.input if v.name not in inits]
    assert [v.name for v in g_in] == [i["name"] for i in e["inputs"]]
    assert [v.name for v in model.graph.output] == [o["name"] for o in e["outputs"]]
    for vi, spec in zip(list(g_in) + list(model.graph.output), e["inputs"] + e["outputs"]):
        dims = [dd.dim_param if dd.HasField("dim_param") else dd.dim_value for dd in vi.type.tensor_type.shape.dim]
        assert dims == spec["shape"], (vi.name, dims, spec["shape"])
        assert spec["dtype"] == "float32"
        assert "N" in spec["shape"], f"{vi.name}: token axis must be dynamic"

    sets = e["test_data_sets"]
    assert len(sets) >= 2
    ns = [s["dims"]["N"] for s in sets]
    assert len(set(ns)) == len(ns), f"test sets need different N, got {ns}"
    for s in sets:
        sd = os.path.join(d, s["dir"])
        assert os.path.isdir(sd)
        for kind, specs in (("input", e["inputs"]), ("output", e["outputs"])):
            for i, spec in enumerate(specs):
                t = _load_pb(os.path.join(sd, f"{kind}_{i}.pb"))
                assert t.name == spec["name"]
                assert t.data_type == onnx.TensorProto.FLOAT
                assert list(t.dims) == _concrete(spec["shape"], s["dims"]), (kind, i, list(t.dims), s["dims"])
            assert not os.path.exists(os.path.join(sd, f"{kind}_{len(specs)}.pb"))

    # masks in the fixture exercise masked and fully masked tokens
    s0 = os.path.join(d, sets[0]["dir"])
    for i, spec in enumerate(e["inputs"]):
        if "mask" in spec["name"]:
            m = numpy_helper.to_array(_load_pb(os.path.join(s0, f"input_{i}.pb")))
            assert set(np.unique(m)) <= {0.0, 1.0}
            assert 0 < m.sum() < m.size
            if spec["shape"][-2:] == ["N", "N"]:
                assert (m.sum(axis=-1) == 0).any(), "pair mask has a fully masked row"


@pytest.mark.parametrize("e", FIXTURES, ids=IDS)
def test_expected_fused(e):
    x = e["expected_fused"]
    assert x["softmax_remaining"] == 0
    assert x["of3c.Attention"] == sum(x["attention_kinds"].values()) == len(x["attentions"])
    assert x["of3c.Attention"] >= 0 and x["of3c.SwiGLU"] >= 0
    # every attention is one Softmax in the exported graph (what the fusion must consume)
    assert e["op_histogram"].get("Softmax", 0) == x["of3c.Attention"], e["op_histogram"]
    assert e["softmax_ok"], e["softmax_stats"]
    assert all(p["scaled"] <= e["parity"]["tol_scaled"] for p in e["parity"]["sets"])
    if _source(e) == "local":
        want = {"pairformer_block": (3, 2), "msa_module_block": (3, 2)}[e["module"]]
        assert (x["of3c.Attention"], x["of3c.SwiGLU"]) == want
        return
    # The real package's structure (counts taken by hooks on its classes must say the same):
    # attentions, SwiGLUs, triangle multiplications, outer product means per module.
    c = e["config"]
    per = {
        "tri_mul_out": (0, 0, 1, 0), "tri_mul_in": (0, 0, 1, 0), "outer_product_mean": (0, 0, 0, 1),
        "tri_att_start": (1, 0, 0, 0), "tri_att_end": (1, 0, 0, 0), "attention_pair_bias": (1, 0, 0, 0),
        "swiglu_transition": (0, 1, 0, 0), "msa_pair_weighted_avg": (1, 0, 0, 0),
        "pairformer_block": (3, 2, 2, 0), "msa_module_block": (3, 2, 2, 1),
        "template_pair_block": (2, 1, 2, 0), "diffusion_transformer_block": (1, 1, 0, 0),
    }
    n = {"pairformer_stack": ("pairformer_block", c["pairformer_blocks"]),
         # the last MSA block skips its MSA update (attention + transition) but keeps the OPM and pair block
         "msa_module_stack": ("msa_module_block", c["msa_blocks"]),
         "diffusion_transformer": ("diffusion_transformer_block", c["dt_blocks"]),
         "template_pair_block": ("template_pair_block", 2)}  # one pass per template (2 templates)
    base, k = n.get(e["module"], (e["module"], 1))
    want = tuple(v * k for v in per[base])
    if e["module"] == "msa_module_stack":
        want = (want[0] - 1, want[1] - 1, want[2], want[3])
    got = (x["of3c.Attention"], x["of3c.SwiGLU"], x["of3c.TriangleMultiplication"], x["of3c.OuterProductMean"])
    assert got == want


def _session(path):
    """onnxruntime session; TorchScript exports of the real package carry negative Transpose perms
    that onnxruntime refuses, so it gets a copy with them normalised (of3c reads the original)."""
    import onnxruntime as ort
    import sys
    sys.path.insert(0, OF3)
    from export import normalize_negative_perms
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    model, _ = normalize_negative_perms(onnx.load(path))
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("e", FIXTURES, ids=IDS)
def test_onnxruntime_parity(e):
    d = _dir(e)
    sess = _session(os.path.join(d, "model.onnx"))
    for s in e["test_data_sets"]:
        sd = os.path.join(d, s["dir"])
        feed = {spec["name"]: numpy_helper.to_array(_load_pb(os.path.join(sd, f"input_{i}.pb")))
                for i, spec in enumerate(e["inputs"])}
        got = sess.run([o["name"] for o in e["outputs"]], feed)
        for i, (o, g) in enumerate(zip(e["outputs"], got)):
            ref = numpy_helper.to_array(_load_pb(os.path.join(sd, f"output_{i}.pb")))
            assert g.shape == ref.shape
            err = float(np.max(np.abs(g.astype(np.float64) - ref)))
            assert err <= PARITY_ATOL, f"{e['name']} {s['dir']} {o['name']}: max abs {err:.3e}"
