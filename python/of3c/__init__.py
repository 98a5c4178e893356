"""of3c from Python: compile ONNX models and run .of3 artifacts with numpy.

    import of3c
    of3c.compile("model.onnx", "model.of3", buckets=[256, 512])
    s = of3c.Session("model.of3", device="cpu")
    s.inputs            # [TensorInfo(name='z', dtype=float32, shape=(1, "N", "N", 128)), ...]
    out = s.run({"z": z, "pair_mask": mask})   # {"z_update": ndarray}

A session loads the weights and compiles once; each run reuses them (the
first run at a new padded size traces, later ones do not). Sessions are
thread-safe (runs of one session are serialized). See docs/python.md.
"""
import ctypes
import json
import threading
from typing import NamedTuple, Tuple, Union

import numpy as np

from . import _lib

__all__ = ["Of3cError", "Session", "TensorInfo", "compile", "version", "__version__"]

_L = _lib.load()


class Of3cError(RuntimeError):
    """An error reported by of3c (the message says what and where)."""


def _err(what):
    msg = (_L.of3c_last_error() or b"").decode("utf-8", "replace")
    return Of3cError(f"{what}: {msg}" if msg else what)


def version() -> str:
    return _L.of3c_version().decode()


__version__ = version()

# ONNX TensorProto.DataType codes.
_NP_OF_CODE = {
    1: np.dtype(np.float32), 2: np.dtype(np.uint8), 3: np.dtype(np.int8), 4: np.dtype(np.uint16),
    5: np.dtype(np.int16), 6: np.dtype(np.int32), 7: np.dtype(np.int64), 9: np.dtype(np.bool_),
    10: np.dtype(np.float16), 11: np.dtype(np.float64), 12: np.dtype(np.uint32), 13: np.dtype(np.uint64),
}


def _bf16():
    try:
        import ml_dtypes
    except ImportError as e:
        raise Of3cError("bfloat16 tensors need the ml_dtypes package (pip install ml_dtypes)") from e
    return np.dtype(ml_dtypes.bfloat16)


def _np_dtype(code):
    if code == 16:
        return _bf16()
    if code not in _NP_OF_CODE:
        raise Of3cError(f"unsupported element type (ONNX code {code})")
    return _NP_OF_CODE[code]


def _code_of(dt):
    dt = np.dtype(dt)
    if dt.name == "bfloat16":
        return 16
    for code, d in _NP_OF_CODE.items():
        if d == dt:
            return code
    raise Of3cError(f"unsupported numpy dtype {dt}")


class TensorInfo(NamedTuple):
    """An input or output: its name, numpy dtype and shape (ints for static
    dims, strings such as 'N' for symbolic ones)."""
    name: str
    dtype: np.dtype
    shape: Tuple[Union[int, str], ...]


def _info(d):
    shape = tuple(int(s) if s.isdigit() else s for s in d["shape"])
    try:
        dt = _np_dtype(d["onnx_dtype"])
    except Of3cError:
        dt = None
    return TensorInfo(d["name"], dt, shape)


def _options(d):
    d = {k: v for k, v in d.items() if v is not None}
    return json.dumps(d).encode() if d else None


def compile(onnx_path, out_path, *, device="cpu", precision="fp32", buckets=None, memory_budget=None,
            chunk_threshold=None, chunk_size=None, lma_kv_chunk=None, passes=None):
    """Compiles an ONNX model into an .of3 artifact (like `of3c compile`).
    memory_budget is in bytes."""
    opts = _options(dict(device=device, precision=precision, buckets=list(buckets) if buckets else None,
                         memory_budget=memory_budget, chunk_threshold=chunk_threshold, chunk_size=chunk_size,
                         lma_kv_chunk=lma_kv_chunk, passes=list(passes) if passes else None))
    if _L.of3c_compile(str(onnx_path).encode(), str(out_path).encode(), opts) != 0:
        raise _err(f"compiling {onnx_path}")
    return str(out_path)


class Session:
    """A loaded model: an .of3 artifact, or an .onnx model compiled on open.

    device: "cpu", "gpu" or "ref" (None: the artifact's own). buckets: a
    list of sizes to pad token dims to, [] to turn bucketing off, None for
    the artifact's. precision applies to ONNX models compiled on open.
    """

    def __init__(self, path, device=None, *, buckets=None, precision=None):
        self._h = ctypes.c_int64(0)
        self._lock = threading.Lock()
        self.path = str(path)
        opts = _options(dict(buckets=list(buckets) if buckets is not None else None, precision=precision))
        if _L.of3c_open(self.path.encode(), (device or "").encode(), opts, ctypes.byref(self._h)) != 0:
            self._h = None
            raise _err(f"opening {path}")
        sig = _L.of3c_signature(self._h)
        if sig is None:
            raise _err("reading the signature")
        d = json.loads(sig.decode())
        self.device = d["device"]
        self.buckets = list(d.get("buckets") or [])
        self.inputs = [_info(x) for x in d["inputs"]]
        self.outputs = [_info(x) for x in d["outputs"]]

    def __repr__(self):
        return f"of3c.Session({self.path!r}, device={self.device!r})"

    def close(self):
        if getattr(self, "_h", None) is not None:
            _L.of3c_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _prepare(self, feeds):
        known = {i.name: i for i in self.inputs}
        unknown = sorted(set(feeds) - set(known))
        if unknown:
            raise Of3cError(f"unknown input {unknown[0]!r} (the model's inputs are {', '.join(known)})")
        arrays = []
        for name, x in feeds.items():
            a = np.asarray(x)
            want = known[name].dtype
            if want is not None and a.dtype != want:
                if a.dtype.kind != want.kind and not (a.dtype.kind in "iu" and want.kind in "iu"):
                    raise Of3cError(f"input {name!r} is {a.dtype}, the model wants {want}")
                a = a.astype(want)
            arrays.append((name, np.ascontiguousarray(a)))
        return arrays

    def run(self, feeds):
        """Runs the model on {input name: array} and returns {output name:
        ndarray}. Arrays of the declared dtype and C order are passed
        without a copy; others of the same kind are converted."""
        if self._h is None:
            raise Of3cError("the session is closed")
        arrays = self._prepare(feeds)
        n = len(arrays)
        names = (ctypes.c_char_p * n)(*[k.encode() for k, _ in arrays])
        dtypes = (ctypes.c_int32 * n)(*[_code_of(a.dtype) for _, a in arrays])
        ranks = (ctypes.c_int32 * n)(*[a.ndim for _, a in arrays])
        dims = [d for _, a in arrays for d in a.shape]
        shapes = (ctypes.c_int64 * max(1, len(dims)))(*dims)
        data = (ctypes.c_void_p * n)(*[a.ctypes.data for _, a in arrays])
        nbytes = (ctypes.c_int64 * n)(*[a.nbytes for _, a in arrays])
        res = ctypes.c_int64(0)
        if _L.of3c_run(self._h, n, names, dtypes, ranks, shapes, data, nbytes, ctypes.byref(res)) != 0:
            raise _err("run")
        try:
            return self._collect(res)
        finally:
            _L.of3c_result_free(res)

    def _collect(self, res):
        count = _L.of3c_result_count(res)
        if count < 0:
            raise _err("reading the result")
        out = {}
        for i in range(count):
            name, code, rank, nb = ctypes.c_char_p(), ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int64()
            cap = 16
            while True:
                shape = (ctypes.c_int64 * cap)()
                if _L.of3c_result_info(res, i, ctypes.byref(name), ctypes.byref(code), ctypes.byref(rank),
                                       shape, cap, ctypes.byref(nb)) != 0:
                    raise _err("reading the result")
                if rank.value <= cap:
                    break
                cap = rank.value
            arr = np.empty(tuple(shape[:rank.value]), dtype=_np_dtype(code.value))
            if arr.nbytes != nb.value:
                raise Of3cError(f"output {name.value!r}: {nb.value} bytes for {arr.shape} {arr.dtype}")
            if _L.of3c_result_copy(res, i, arr.ctypes.data, nb.value) != 0:
                raise _err("copying an output")
            out[name.value.decode()] = arr
        return out
