"""Run an OpenFold3 module (or any module exported to ONNX) through of3c.

    import of3c.openfold3 as o3
    o3.replace_forward(model.pairformer_stack, "pairformer_stack.of3", device="gpu")
    s, z = model.pairformer_stack(s, z, single_mask=mask, pair_mask=pair_mask)

The module's forward is replaced by an of3c session: tensors in, tensors out
(on the device and with the dtype of the first tensor argument). Weights are
those compiled into the artifact, loaded once; the module's own parameters
are not used, so export and compile after loading the checkpoint you want.

Arguments are matched to the model's inputs by name (keyword arguments, or
the `input_names` mapping from the forward's parameter names) and otherwise
by position in the model's input order. Keyword arguments that are not
tensors (chunk_size, use_deepspeed_evo_attention, inplace_safe, ...) are
accepted and ignored: they steer PyTorch's evaluation, not the result.

torch is imported only when a torch tensor is seen, so the adapter also
works on numpy arrays (returning numpy), which is how it is tested where
torch is absent.
"""
import numpy as np

from . import Of3cError, Session

__all__ = ["Of3cModule", "replace_forward"]


def _is_torch(x):
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _to_numpy(x, want_dtype):
    if _is_torch(x):
        t = x.detach()
        if want_dtype is not None and want_dtype.name == "bfloat16":
            # numpy has no bfloat16: go through the bits.
            import torch
            import ml_dtypes
            bits = t.to(torch.bfloat16).cpu().contiguous().view(torch.int16).numpy()
            return bits.view(ml_dtypes.bfloat16)
        if want_dtype is not None:
            import torch
            t = t.to(getattr(torch, want_dtype.name))  # float32, int64, bool, ...
        return t.cpu().contiguous().numpy()
    return np.asarray(x)


def _from_numpy(a, like):
    import torch
    if a.dtype.name == "bfloat16":
        t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(a)
    return t.to(like.device)


class Of3cModule:
    """A callable wrapping a Session like a torch module's forward."""

    def __init__(self, session, input_names=None, device=None, **session_kwargs):
        self.session = session if isinstance(session, Session) else Session(session, device=device, **session_kwargs)
        self.input_names = dict(input_names or {})
        self._inputs = [i.name for i in self.session.inputs]
        self._dtypes = {i.name: i.dtype for i in self.session.inputs}

    def feeds(self, args, kwargs):
        """Maps forward arguments to the session's inputs (by name, then by
        position)."""
        feeds = {}
        for k, v in kwargs.items():
            name = self.input_names.get(k, k)
            if name in self._dtypes:
                feeds[name] = v
            elif _is_torch(v) or isinstance(v, np.ndarray):
                raise Of3cError(f"argument {k!r} matches no model input ({', '.join(self._inputs)}); "
                                f"map it with input_names={{'{k}': 'INPUT'}}")
        free = [n for n in self._inputs if n not in feeds]
        if len(args) > len(free):
            raise Of3cError(f"{len(args)} positional arguments for the free inputs {free}")
        for name, v in zip(free, args):
            feeds[name] = v
        missing = [n for n in self._inputs if n not in feeds]
        if missing:
            raise Of3cError(f"no value for input(s) {', '.join(missing)}")
        return feeds

    def __call__(self, *args, **kwargs):
        feeds = self.feeds(args, kwargs)
        like = next((v for v in feeds.values() if _is_torch(v)), None)
        arrays = {k: _to_numpy(v, self._dtypes[k]) for k, v in feeds.items()}
        out = self.session.run(arrays)
        vals = [out[o.name] for o in self.session.outputs]
        if like is not None:
            vals = [_from_numpy(a, like) for a in vals]
        return vals[0] if len(vals) == 1 else tuple(vals)


def replace_forward(module, session, input_names=None, device=None, **session_kwargs):
    """Replaces module.forward by an of3c session (a Session or a path to an
    .of3/.onnx file) and returns the Of3cModule; `del module.forward`
    restores the original."""
    adapter = Of3cModule(session, input_names=input_names, device=device, **session_kwargs)
    module.forward = adapter
    return adapter
