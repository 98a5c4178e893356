"""Finds and loads libof3c and declares its C functions (cmd/libof3c/of3c.h)."""
import ctypes
import importlib.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))


def _candidates():
    env = os.environ.get("OF3C_LIBRARY")
    if env:
        yield env
        return
    yield os.path.join(_HERE, "libof3c.so")  # bundled by pip install ./python
    yield os.path.join(_REPO, "bin", "libof3c.so")  # the repository (make lib / editable install)


def _preload_mlx():
    """Loads libmlx from the installed mlx wheel (mlx-cpu or mlx-cuda), so
    that libof3c finds it wherever the package lives."""
    try:
        spec = importlib.util.find_spec("mlx")
    except (ImportError, ValueError):
        spec = None
    dirs = list(spec.submodule_search_locations or []) if spec else []
    dirs.append(os.path.join(_REPO, ".mlx"))
    for d in dirs:
        lib = os.path.join(d, "lib", "libmlx.so")
        if os.path.exists(lib):
            try:
                ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                continue
    return False


def load():
    tried = []
    for path in _candidates():
        if not os.path.exists(path):
            tried.append(path)
            continue
        try:
            lib = ctypes.CDLL(path)  # libmlx through the library's RUNPATH (the repository's .mlx)
        except OSError as e:
            if "libmlx" not in str(e):
                raise
            # A bundled copy away from the repository: the installed MLX wheel's.
            if not _preload_mlx():
                raise ImportError(
                    "of3c: %s needs libmlx.so (MLX 0.32.4): install it with "
                    "pip install 'of3c[cpu]' (or [cuda]), or use the repository's "
                    "set-up (make setup)" % path) from e
            lib = ctypes.CDLL(path)
        _declare(lib)
        return lib
    raise ImportError(
        "of3c: libof3c.so not found (looked at %s); build it with `make lib` "
        "or set OF3C_LIBRARY to its path" % ", ".join(tried))


def _declare(lib):
    c = ctypes
    i64p, i32p = c.POINTER(c.c_int64), c.POINTER(c.c_int32)
    sig = {
        "of3c_version": (c.c_char_p, []),
        "of3c_last_error": (c.c_char_p, []),
        "of3c_compile": (c.c_int, [c.c_char_p, c.c_char_p, c.c_char_p]),
        "of3c_open": (c.c_int, [c.c_char_p, c.c_char_p, c.c_char_p, i64p]),
        "of3c_close": (None, [c.c_int64]),
        "of3c_signature": (c.c_char_p, [c.c_int64]),
        "of3c_run": (c.c_int, [c.c_int64, c.c_int32, c.POINTER(c.c_char_p), i32p, i32p, i64p,
                               c.POINTER(c.c_void_p), i64p, i64p]),
        "of3c_result_count": (c.c_int32, [c.c_int64]),
        "of3c_result_info": (c.c_int, [c.c_int64, c.c_int32, c.POINTER(c.c_char_p), i32p, i32p, i64p,
                                       c.c_int32, i64p]),
        "of3c_result_copy": (c.c_int, [c.c_int64, c.c_int32, c.c_void_p, c.c_int64]),
        "of3c_result_free": (None, [c.c_int64]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
