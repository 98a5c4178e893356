"""The OpenFold3 adapter with torch: the real openfold3 PairFormerStack's forward replaced by an of3c session.

Needs torch and the openfold3 package (skipped otherwise: the development machines have neither; the GPU
machine runs it, see docs/python.md). The module is rebuilt with the seeded weights of the committed
fixture `pairformer_stack_tiny_torchscript` (models/of3/export.py), so the fixture's ONNX model holds the
same weights; the test checks that first against the outputs the fixture recorded.

OF3C_TEST_DEVICE picks the of3c device (default: gpu when torch sees CUDA, else cpu); the torch tensors
live on CUDA when available, so the adapter's device round trip is exercised.
"""
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import of3c  # noqa: E402
import of3c.openfold3 as o3  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OF3 = os.path.join(REPO, "models", "of3")
FIXTURE = os.path.join(OF3, "testdata", "pairformer_stack_tiny_torchscript")


def _zoo():
    if OF3 not in sys.path:
        sys.path.insert(0, OF3)
    import export  # models/of3/export.py: seed_of
    try:
        import openfold3_zoo as zoo  # stubs openfold3's unused gemmi/biotite imports, then imports it
    except ImportError as e:
        pytest.skip(f"openfold3 not importable: {e}")
    return export, zoo


def _recorded(name):
    from onnx import numpy_helper
    import onnx
    import glob
    d = os.path.join(FIXTURE, "test_data_set_0")
    out = {}
    for kind in ("input", "output"):
        for p in sorted(glob.glob(os.path.join(d, f"{kind}_*.pb"))):
            t = onnx.TensorProto()
            with open(p, "rb") as f:
                t.ParseFromString(f.read())
            out[t.name] = numpy_helper.to_array(t)
    return out[name] if name else out


@pytest.fixture(scope="module")
def stack():
    export, zoo = _zoo()
    cfg = zoo.PRESETS["tiny"]
    model = zoo.init_weights(zoo.SPECS["pairformer_stack"].build(cfg), export.seed_of("pairformer_stack", "tiny"))
    return model.eval()


def test_adapter_replaces_openfold3_forward(stack, tmp_path):
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    of3c_dev = os.environ.get("OF3C_TEST_DEVICE", "gpu" if cuda else "cpu")
    rec = _recorded(None)
    s, z, mask, pmask = (torch.from_numpy(rec[k]).to(dev) for k in ("s", "z", "mask", "pair_mask"))
    pfs = stack.mod.to(dev)  # openfold3.core.model.latent.pairformer.PairFormerStack itself

    with torch.no_grad():
        want_s, want_z = pfs(s, z, single_mask=mask, pair_mask=pmask, inplace_safe=False, chunk_size=None)
    # The rebuilt module has the fixture's weights (else the comparison below means nothing).
    np.testing.assert_allclose(want_z.cpu().numpy(), rec["z_out"], atol=1e-4, rtol=0)

    art = of3c.compile(os.path.join(FIXTURE, "model.onnx"), tmp_path / "stack.of3", device=of3c_dev)
    adapter = o3.replace_forward(pfs, art, device=of3c_dev, input_names={"single_mask": "mask"})
    assert adapter.session.device == of3c_dev
    # openfold3's own call convention: keyword masks, non-tensor knobs ignored.
    got_s, got_z = pfs.forward(s, z, single_mask=mask, pair_mask=pmask, inplace_safe=False, chunk_size=4)
    for got, want in ((got_s, want_s), (got_z, want_z)):
        assert isinstance(got, torch.Tensor) and got.device == want.device and got.dtype == want.dtype
        np.testing.assert_allclose(got.cpu().numpy(), want.cpu().numpy(), atol=2e-5, rtol=0)
    # Repeated calls reuse the session (weights loaded once, no re-trace): same answer.
    again_s, _ = pfs.forward(s, z, single_mask=mask, pair_mask=pmask)
    assert torch.equal(again_s, got_s)
    del pfs.forward
    with torch.no_grad():
        back_s, _ = pfs(s, z, single_mask=mask, pair_mask=pmask, inplace_safe=False, chunk_size=None)
    assert torch.equal(back_s, want_s)
