"""The Python package against the CLI, on a committed fixture.

Needs libof3c (bin/libof3c.so from `make lib`, or OF3C_LIBRARY) and the CLI
(bin/of3c from `make build`, OF3C_CLI, or built here with go)."""
import os
import shutil
import subprocess
import threading

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import of3c
import of3c.openfold3 as o3

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "models", "of3", "testdata")
BLOCK = os.path.join(FIXTURES, "pairformer_block_tiny_torchscript")


@pytest.fixture(scope="session")
def cli(tmp_path_factory):
    exe = os.environ.get("OF3C_CLI") or os.path.join(REPO, "bin", "of3c")
    if os.path.exists(exe):
        return exe
    if shutil.which("go") is None:
        pytest.skip("no of3c CLI and no go to build it")
    exe = str(tmp_path_factory.mktemp("bin") / "of3c")
    subprocess.check_call(["go", "build", "-o", exe, "./cmd/of3c"], cwd=REPO)
    return exe


def read_set(folder, prefix):
    out = []
    k = 0
    while os.path.exists(os.path.join(folder, f"{prefix}_{k}.pb")):
        t = onnx.TensorProto()
        with open(os.path.join(folder, f"{prefix}_{k}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        out.append((t.name, numpy_helper.to_array(t)))
        k += 1
    return out


@pytest.fixture(scope="session")
def artifact(cli, tmp_path_factory):
    art = str(tmp_path_factory.mktemp("art") / "block.of3")
    subprocess.run([cli, "compile", os.path.join(BLOCK, "model.onnx"), "-o", art, "--buckets", "16,32"],
                   check=True, capture_output=True)
    return art


def test_session_matches_cli(cli, artifact, tmp_path):
    sd = os.path.join(BLOCK, "test_data_set_0")
    cli_out = str(tmp_path / "cli.npz")
    subprocess.run([cli, "run", artifact, "--inputs", sd, "-o", cli_out, "--device", "cpu"],
                   check=True, capture_output=True)
    s = of3c.Session(artifact, device="cpu")
    assert s.device == "cpu" and s.buckets == [16, 32]
    assert [i.name for i in s.inputs] == ["s", "z", "mask", "pair_mask"]
    assert s.inputs[1].shape == (1, "N", "N", 16) and s.inputs[1].dtype == np.float32
    assert [o.name for o in s.outputs] == ["s_out", "z_out"]
    feeds = {s.inputs[k].name: a for k, (_, a) in enumerate(read_set(sd, "input"))}
    got = s.run(feeds)
    want = np.load(cli_out)
    for o in s.outputs:
        assert got[o.name].shape == want[o.name].shape and got[o.name].dtype == want[o.name].dtype
        # Same program and device; MLX's CPU GEMMs differ from run to run by rounding.
        np.testing.assert_allclose(got[o.name], want[o.name], rtol=1e-5, atol=1e-5)
    # Against the exporter's reference outputs too (unbucketed contract).
    s2 = of3c.Session(artifact, device="cpu", buckets=[])
    got2 = s2.run(feeds)
    for (name, ref), o in zip(read_set(sd, "output"), s2.outputs):
        np.testing.assert_allclose(got2[o.name], ref, atol=1e-4)
    s.close()
    s2.close()
    with pytest.raises(of3c.Of3cError, match="closed"):
        s.run(feeds)


def test_compile_from_python_and_errors(tmp_path):
    onnx_path = os.path.join(FIXTURES, "tri_att_start_tiny_torchscript", "model.onnx")
    art = of3c.compile(onnx_path, str(tmp_path / "t.of3"), buckets=[8])
    with of3c.Session(art, device="ref") as s:
        z = np.random.default_rng(0).standard_normal((1, 5, 5, 16)).astype(np.float32)
        m = np.ones((1, 5, 5), np.float32)
        out = s.run({"z": z, "pair_mask": m})
        assert out["z_update"].shape == (1, 5, 5, 16)
        # float64 is converted; the same numbers come out.
        out64 = s.run({"z": z.astype(np.float64), "pair_mask": m})
        np.testing.assert_array_equal(out["z_update"], out64["z_update"])
        with pytest.raises(of3c.Of3cError, match="missing input \"pair_mask\""):
            s.run({"z": z})
        with pytest.raises(of3c.Of3cError, match="unknown input 'bogus'"):
            s.run({"z": z, "pair_mask": m, "bogus": m})
        with pytest.raises(of3c.Of3cError, match="pair_mask"):
            s.run({"z": z, "pair_mask": np.ones((1, 4, 4), np.float32)})
        with pytest.raises(of3c.Of3cError, match="int64"):
            s.run({"z": z, "pair_mask": np.ones((1, 5, 5), np.int64)})
    with pytest.raises(of3c.Of3cError, match="cpu, gpu, ref"):
        of3c.Session(art, device="cuda")
    with pytest.raises(of3c.Of3cError, match="no such file"):
        of3c.Session(str(tmp_path / "missing.of3"))
    with pytest.raises(of3c.Of3cError):
        of3c.compile(str(tmp_path / "missing.onnx"), str(tmp_path / "x.of3"))
    assert not os.path.exists(tmp_path / "x.of3")


def test_threads_share_a_session(artifact):
    s = of3c.Session(artifact, device="cpu")
    rng = np.random.default_rng(1)
    n = 7
    feeds = {"s": rng.standard_normal((1, n, 32)).astype(np.float32),
             "z": rng.standard_normal((1, n, n, 16)).astype(np.float32),
             "mask": np.ones((1, n), np.float32), "pair_mask": np.ones((1, n, n), np.float32)}
    want = s.run(feeds)
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(s.run(feeds))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and len(results) == 9
    for r in results:
        for k in want:
            np.testing.assert_array_equal(r[k], want[k])


def test_openfold3_adapter_numpy_path(artifact):
    class PairFormerLike:
        def forward(self, s, z, mask, pair_mask, chunk_size=None):
            raise AssertionError("the original forward must not run")

    mod = PairFormerLike()
    adapter = o3.replace_forward(mod, artifact, device="cpu")
    rng = np.random.default_rng(2)
    n = 6
    s_in = rng.standard_normal((1, n, 32)).astype(np.float32)
    z_in = rng.standard_normal((1, n, n, 16)).astype(np.float32)
    mask, pmask = np.ones((1, n), np.float32), np.ones((1, n, n), np.float32)
    # Positional, keyword, renamed and ignored non-tensor arguments.
    s1, z1 = mod.forward(s_in, z_in, mask, pmask, chunk_size=4)
    s2, z2 = mod.forward(z=z_in, s=s_in, mask=mask, pair_mask=pmask)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(z1, z2)
    renamed = o3.Of3cModule(adapter.session, input_names={"single_mask": "mask"})
    s3, _ = renamed(s_in, z_in, single_mask=mask, pair_mask=pmask)
    np.testing.assert_array_equal(s1, s3)
    want = adapter.session.run({"s": s_in, "z": z_in, "mask": mask, "pair_mask": pmask})
    np.testing.assert_array_equal(s1, want["s_out"])
    with pytest.raises(of3c.Of3cError, match="no value for input"):
        mod.forward(s_in, z_in)
    with pytest.raises(of3c.Of3cError, match="matches no model input"):
        mod.forward(s_in, z_in, mask, pmask, extra=mask)


def test_version():
    assert of3c.__version__ == of3c.version() and of3c.__version__
