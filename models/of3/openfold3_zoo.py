"""Fixture modules built from the real ``openfold3`` package (0.5.0, Apache-2.0).

Every module here is the package's own class, constructed with the package's own configuration
values (``openfold3/projects/of3_all_atom/config/model_config.py``: ``model_config.architecture``)
and called the way an OpenFold3 inference run calls it, with chunking, LMA and every custom kernel
off (chunking and LMA are of3c's job). A thin wrapper per fixture fixes the positional inputs and
outputs the exporters see; it adds no arithmetic except where the package itself does that work
around the module (triangle attention from the ending node: transpose in, ``transpose_bias=True``,
transpose out, as ``PairBlock.tri_att_start_end`` does).

This module offers the same interface as :mod:`modules` (the project's own re-implementation), so
``export.py --source openfold3`` (the default) and ``--source local`` share one exporter:
``PRESETS``, ``SPECS``, ``resolve_io``, ``init_weights``, ``make_inputs``, ``config_dict``, and the
instrumentation ``COUNTER`` / ``SOFTMAX_PROBE`` (counts are taken with forward hooks on the
package's classes, so they cannot drift from the code they count).

Imports the package needs but these modules never call are stubbed before ``openfold3`` is
imported (see :func:`_stub_unused_imports`): ``gemmi`` (``openfold3/__init__.py`` only reads its
version) and ``biotite.structure`` (``core/utils/tensor_utils.py`` imports ``AtomArray`` for a
type annotation). Real packages are used when installed.

Tensors keep the package's leading batch axis (size 1): single ``[1, N, c_s]``, pair
``[1, N, N, c_z]``, MSA ``[1, S, N, c_m]``, template ``[1, T, N, N, c_t]``; masks are float 0/1:
token ``[1, N]``, pair ``[1, N, N]``, MSA ``[1, S, N]``.
"""

from __future__ import annotations

import math
import sys
import types
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn

COUNTER: dict | None = None
SOFTMAX_PROBE: list | None = None
TEMPLATES = 2  # template count of the template-pair fixtures (static)


def _stub_unused_imports():
    """Stand-ins for packages openfold3 imports at module level but these modules never use."""
    try:
        import gemmi  # noqa: F401 (only whether it is installed)
    except ImportError:
        g = types.ModuleType("gemmi")
        g.__version__ = "0.7.3"
        g.set_leak_warnings = lambda *_a, **_k: None
        sys.modules["gemmi"] = g
    try:
        import biotite.structure  # noqa: F401
    except ImportError:
        b = types.ModuleType("biotite")
        bs = types.ModuleType("biotite.structure")

        class AtomArray:  # annotation only
            pass

        bs.AtomArray = AtomArray
        b.structure = bs
        sys.modules["biotite"] = b
        sys.modules["biotite.structure"] = bs


_stub_unused_imports()

import openfold3  # noqa: E402
from openfold3.core.model.latent.msa_module import MSAModuleBlock, MSAModuleStack  # noqa: E402
from openfold3.core.model.latent.pairformer import PairFormerBlock, PairFormerStack  # noqa: E402
from openfold3.core.model.latent.template_module import TemplatePairBlock  # noqa: E402
from openfold3.core.model.layers.attention_pair_bias import AttentionPairBias  # noqa: E402
from openfold3.core.model.layers.diffusion_transformer import (  # noqa: E402
    DiffusionTransformer, DiffusionTransformerBlock)
from openfold3.core.model.layers.msa import MSAPairWeightedAveraging  # noqa: E402
from openfold3.core.model.layers.outer_product_mean import OuterProductMean  # noqa: E402
from openfold3.core.model.layers.transition import SwiGLUTransition  # noqa: E402
from openfold3.core.model.layers.triangular_attention import TriangleAttention  # noqa: E402
from openfold3.core.model.layers.triangular_multiplicative_update import (  # noqa: E402
    TriangleMultiplicationIncoming, TriangleMultiplicationOutgoing)
from openfold3.core.model.primitives.attention import Attention  # noqa: E402
from openfold3.projects.of3_all_atom.config.model_config import model_config as _MC  # noqa: E402

PACKAGE_VERSION = getattr(openfold3, "__version__", None)
if PACKAGE_VERSION is None:
    try:
        from importlib.metadata import version as _v
        PACKAGE_VERSION = _v("openfold3")
    except Exception:  # noqa: BLE001
        PACKAGE_VERSION = "unknown"


# ---------------------------------------------------------------------------
# Presets: the package's configuration, and a narrow one with the same structure
# ---------------------------------------------------------------------------


def _arch():
    a = _MC.architecture
    return {
        "pairformer": a.pairformer.to_dict(),
        "msa_module": a.msa.msa_module.to_dict(),
        "template_pair_stack": a.template.template_pair_stack.to_dict(),
        "diffusion_transformer": a.diffusion_module.diffusion_transformer.to_dict(),
        "linear_init": {
            "pairformer": a.pairformer.linear_init_params,
            "msa_module": a.msa.msa_module.linear_init_params,
            "template_pair_stack": a.template.template_pair_stack.linear_init_params,
            "diffusion_transformer": a.diffusion_module.diffusion_transformer.linear_init_params,
        },
    }


@dataclass(frozen=True)
class Config:
    """The widths that vary between presets; everything else comes from the package's config."""
    c_s: int
    c_z: int
    no_heads_pair_bias: int
    no_heads_pair: int
    c_hidden_mul: int
    pairformer_blocks: int
    c_m: int
    no_heads_msa: int
    c_hidden_opm: int
    msa_c_hidden_mul: int
    msa_no_heads_pair: int
    msa_blocks: int
    c_t: int
    tmpl_no_heads: int
    tmpl_c_hidden_tri_mul: int
    c_a: int
    dt_no_heads: int
    dt_blocks: int


def _of3_config() -> Config:
    a = _arch()
    pf, msa, tp, dt = a["pairformer"], a["msa_module"], a["template_pair_stack"], a["diffusion_transformer"]
    return Config(
        c_s=pf["c_s"], c_z=pf["c_z"], no_heads_pair_bias=pf["no_heads_pair_bias"],
        no_heads_pair=pf["no_heads_pair"], c_hidden_mul=pf["c_hidden_mul"], pairformer_blocks=pf["no_blocks"],
        c_m=msa["c_m"], no_heads_msa=msa["no_heads_msa"], c_hidden_opm=msa["c_hidden_opm"],
        msa_c_hidden_mul=msa["c_hidden_mul"], msa_no_heads_pair=msa["no_heads_pair"], msa_blocks=msa["no_blocks"],
        c_t=tp["c_t"], tmpl_no_heads=tp["no_heads"], tmpl_c_hidden_tri_mul=tp["c_hidden_tri_mul"],
        c_a=dt["c_a"], dt_no_heads=dt["no_heads"], dt_blocks=dt["no_blocks"],
    )


PRESETS: dict[str, Config] = {"of3": _of3_config()}
# Same structure and per-head widths (24, 32, 8, 16, 48) as the package, fewer channels, heads, blocks.
PRESETS["tiny"] = replace(
    PRESETS["of3"], c_s=32, c_z=16, no_heads_pair_bias=2, no_heads_pair=2, c_hidden_mul=16, pairformer_blocks=2,
    c_m=16, no_heads_msa=2, c_hidden_opm=8, msa_c_hidden_mul=16, msa_no_heads_pair=2, msa_blocks=2,
    c_t=16, tmpl_no_heads=2, tmpl_c_hidden_tri_mul=16, c_a=96, dt_no_heads=2, dt_blocks=2,
)


def config_dict(cfg: Config) -> dict:
    a = _arch()
    d = asdict(cfg)
    d["package"] = f"openfold3 {PACKAGE_VERSION}"
    d["per_head"] = {"pair_bias": a["pairformer"]["c_hidden_pair_bias"],
                     "triangle": a["pairformer"]["c_hidden_pair_att"],
                     "msa": a["msa_module"]["c_hidden_msa_att"],
                     "template_triangle": a["template_pair_stack"]["c_hidden_tri_att"],
                     "diffusion": a["diffusion_transformer"]["c_hidden"]}
    return d


def _pairformer_kw(cfg: Config) -> dict:
    a = _arch()
    pf = a["pairformer"]
    return dict(c_s=cfg.c_s, c_z=cfg.c_z, c_hidden_pair_bias=pf["c_hidden_pair_bias"],
                no_heads_pair_bias=cfg.no_heads_pair_bias, c_hidden_mul=cfg.c_hidden_mul,
                c_hidden_pair_att=pf["c_hidden_pair_att"], no_heads_pair=cfg.no_heads_pair,
                transition_type=pf["transition_type"], transition_n=pf["transition_n"],
                pair_dropout=pf["pair_dropout"], fuse_projection_weights=pf["fuse_projection_weights"],
                inf=pf["inf"], linear_init_params=a["linear_init"]["pairformer"])


def _msa_kw(cfg: Config) -> dict:
    a = _arch()
    m = a["msa_module"]
    return dict(c_m=cfg.c_m, c_z=cfg.c_z, c_hidden_msa_att=m["c_hidden_msa_att"], c_hidden_opm=cfg.c_hidden_opm,
                c_hidden_mul=cfg.msa_c_hidden_mul, c_hidden_pair_att=m["c_hidden_pair_att"],
                no_heads_msa=cfg.no_heads_msa, no_heads_pair=cfg.msa_no_heads_pair,
                transition_type=m["transition_type"], transition_n=m["transition_n"],
                msa_dropout=m["msa_dropout"], pair_dropout=m["pair_dropout"], opm_first=m["opm_first"],
                fuse_projection_weights=m["fuse_projection_weights"], inf=m["inf"], eps=m["eps"],
                linear_init_params=a["linear_init"]["msa_module"])


def _template_kw(cfg: Config) -> dict:
    a = _arch()
    t = a["template_pair_stack"]
    return dict(c_t=cfg.c_t, c_hidden_tri_mul=cfg.tmpl_c_hidden_tri_mul, c_hidden_tri_att=t["c_hidden_tri_att"],
                no_heads=cfg.tmpl_no_heads, transition_type=t["transition_type"],
                pair_transition_n=t["pair_transition_n"], dropout_rate=t["dropout_rate"],
                tri_mul_first=t["tri_mul_first"], fuse_projection_weights=t["fuse_projection_weights"],
                ckpt_per_template=t["ckpt_per_template"], inf=t["inf"],
                linear_init_params=a["linear_init"]["template_pair_stack"])


def _dt_kw(cfg: Config) -> dict:
    a = _arch()
    d = a["diffusion_transformer"]
    return dict(c_a=cfg.c_a, c_s=cfg.c_s, c_z=cfg.c_z, c_hidden=d["c_hidden"], no_heads=cfg.dt_no_heads,
                n_transition=d["n_transition"], n_query=d["n_query"], n_key=d["n_key"], inf=d["inf"],
                linear_init_params=a["linear_init"]["diffusion_transformer"])


# Inference-time keyword arguments: plain PyTorch path, no chunking, no LMA, no custom kernels.
_OFF = dict(use_deepspeed_evo_attention=False, use_cueq_triangle_kernels=False,
            use_triton_triangle_kernels=False, use_lma=False)


def set_memory_mode(model: nn.Module, chunk_size: int | None = None, use_lma: bool = False) -> nn.Module:
    """OpenFold3's own memory path for the block and stack wrappers (benchmarks compare against it):
    ``chunk_size`` and ``use_lma`` as an OpenFold3 inference run passes them. Exports use the default
    (off): chunking and LMA are of3c's job."""
    model.memory_kw = {"chunk_size": chunk_size, "use_lma": use_lma}
    return model


def _kw(self) -> dict:
    kw = dict(_OFF, chunk_size=None)
    kw.update(getattr(self, "memory_kw", {}))
    return kw


# ---------------------------------------------------------------------------
# Wrappers: positional tensors in, tensors out, exactly as the package calls each module
# ---------------------------------------------------------------------------


class _TriMul(nn.Module):
    def __init__(self, cfg, outgoing):
        super().__init__()
        cls = TriangleMultiplicationOutgoing if outgoing else TriangleMultiplicationIncoming
        self.mod = cls(cfg.c_z, cfg.c_hidden_mul, linear_init_params=_arch()["linear_init"]["pairformer"].pair_block.tri_mul)

    def forward(self, z, pair_mask):
        return self.mod(z, mask=pair_mask, inplace_safe=False, use_cueq_triangle_kernels=False,
                        use_triton_triangle_kernels=False, _add_with_inplace=False)


class _TriAtt(nn.Module):
    def __init__(self, cfg, starting):
        super().__init__()
        a = _arch()
        self.starting = starting
        self.mod = TriangleAttention(cfg.c_z, a["pairformer"]["c_hidden_pair_att"], cfg.no_heads_pair,
                                     starting=starting, inf=a["pairformer"]["inf"],
                                     linear_init_params=a["linear_init"]["pairformer"].pair_block.tri_att)

    def forward(self, z, pair_mask):
        if self.starting:
            return self.mod(z, mask=pair_mask, chunk_size=None, inplace_safe=False, **_OFF)
        # PairBlock.tri_att_start_end: the ending node runs on the transposed pair.
        zt = z.transpose(-2, -3)
        o = self.mod(zt, mask=pair_mask.transpose(-1, -2), transpose_bias=True, chunk_size=None,
                     inplace_safe=False, **_OFF)
        return o.transpose(-2, -3)


class _AttPairBias(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        a = _arch()
        pf = a["pairformer"]
        self.mod = AttentionPairBias(c_q=cfg.c_s, c_k=cfg.c_s, c_v=cfg.c_s, c_s=cfg.c_s, c_z=cfg.c_z,
                                     c_hidden=pf["c_hidden_pair_bias"], no_heads=cfg.no_heads_pair_bias,
                                     gating=True, inf=pf["inf"],
                                     linear_init_params=a["linear_init"]["pairformer"].att_pair_bias)

    def forward(self, s, z, mask):
        # As PairFormerBlock calls it.
        return self.mod(a=s, z=z, mask=mask, use_high_precision_attention=True, **_OFF)


class _SwiGLUTransition(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        a = _arch()
        self.mod = SwiGLUTransition(cfg.c_s, a["pairformer"]["transition_n"],
                                    linear_init_params=a["linear_init"]["pairformer"].transition)

    def forward(self, s, mask):
        return self.mod(s, mask=mask, chunk_size=None)


class _OPM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mod = OuterProductMean(cfg.c_m, cfg.c_z, cfg.c_hidden_opm,
                                    linear_init_params=_arch()["linear_init"]["msa_module"].opm)

    def forward(self, m, msa_mask):
        return self.mod(m, mask=msa_mask, chunk_size=None, inplace_safe=False)


class _PWA(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        a = _arch()
        m = a["msa_module"]
        self.mod = MSAPairWeightedAveraging(c_in=cfg.c_m, c_hidden=m["c_hidden_msa_att"], c_z=cfg.c_z,
                                            no_heads=cfg.no_heads_msa, inf=m["inf"],
                                            linear_init_params=a["linear_init"]["msa_module"].msa_pair_avg)

    def forward(self, m, z, pair_mask):
        return self.mod(m, z=z, mask=pair_mask, chunk_size=None, use_softmax_kernel=False)


class _PairFormerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mod = PairFormerBlock(**_pairformer_kw(cfg))

    def forward(self, s, z, mask, pair_mask):
        return self.mod(s, z, single_mask=mask, pair_mask=pair_mask, inplace_safe=False, **_kw(self))


class _PairFormerStack(nn.Module):
    def __init__(self, cfg, blocks=None):
        super().__init__()
        kw = _pairformer_kw(cfg)
        pf = _arch()["pairformer"]
        self.mod = PairFormerStack(no_blocks=blocks or cfg.pairformer_blocks, blocks_per_ckpt=None,
                                   tune_chunk_size=False, clear_cache_between_blocks=False,
                                   use_reentrant=pf.get("use_reentrant"), **kw)

    def forward(self, s, z, mask, pair_mask):
        return self.mod(s, z, single_mask=mask, pair_mask=pair_mask, inplace_safe=False, **_kw(self))


class _MSAModuleBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mod = MSAModuleBlock(last_block=False, **_msa_kw(cfg))

    def forward(self, m, z, msa_mask, pair_mask):
        return self.mod(m, z, msa_mask=msa_mask, pair_mask=pair_mask, chunk_size=None, inplace_safe=False, **_OFF)


class _MSAModuleStack(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mod = MSAModuleStack(no_blocks=cfg.msa_blocks, blocks_per_ckpt=None, tune_chunk_size=False,
                                  clear_cache_between_blocks=False, **_msa_kw(cfg))

    def forward(self, m, z, msa_mask, pair_mask):
        return self.mod(m, z, msa_mask=msa_mask, pair_mask=pair_mask, chunk_size=None, inplace_safe=False, **_OFF)


class _TemplatePairBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mod = TemplatePairBlock(**_template_kw(cfg))

    def forward(self, t, template_mask):
        return self.mod(t, template_mask, chunk_size=None, inplace_safe=False, **_OFF)


class _DiffusionTransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mod = DiffusionTransformerBlock(**_dt_kw(cfg))

    def forward(self, a, s, z, mask):
        return self.mod(a, s, z, mask=mask, use_high_precision_attention=False, **_OFF)


class _DiffusionTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.mod = DiffusionTransformer(no_blocks=cfg.dt_blocks, blocks_per_ckpt=None, **_dt_kw(cfg))

    def forward(self, a, s, z, mask):
        return self.mod(a, s, z, mask=mask, use_high_precision_attention=False, **_OFF)


# ---------------------------------------------------------------------------
# Fixture specs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    cls: str
    build: object            # fn(cfg) -> nn.Module
    inputs: object           # fn(cfg) -> [(name, shape, kind), ...]; shape entries are ints, "N" or "S"
    outputs: object          # fn(cfg) -> [(name, shape), ...]


def _specs() -> dict[str, ModuleSpec]:
    S = []

    def add(name, cls, build, inputs, outputs):
        S.append(ModuleSpec(name, cls, build, inputs, outputs))

    z = lambda c: ("z", (1, "N", "N", c.c_z), "x")
    pm = ("pair_mask", (1, "N", "N"), "pair_mask")
    tm = ("mask", (1, "N"), "tok_mask")
    s = lambda c: ("s", (1, "N", c.c_s), "x")
    m = lambda c: ("m", (1, "S", "N", c.c_m), "x")
    mm = ("msa_mask", (1, "S", "N"), "msa_mask")
    zout = lambda c, n="z_update": [(n, (1, "N", "N", c.c_z))]
    add("tri_mul_out", "TriangleMultiplicationOutgoing", lambda c: _TriMul(c, True), lambda c: [z(c), pm], zout)
    add("tri_mul_in", "TriangleMultiplicationIncoming", lambda c: _TriMul(c, False), lambda c: [z(c), pm], zout)
    add("tri_att_start", "TriangleAttention(starting=True)", lambda c: _TriAtt(c, True), lambda c: [z(c), pm], zout)
    add("tri_att_end", "TriangleAttention(starting=False)", lambda c: _TriAtt(c, False), lambda c: [z(c), pm], zout)
    add("attention_pair_bias", "AttentionPairBias", _AttPairBias, lambda c: [s(c), z(c), tm],
        lambda c: [("s_update", (1, "N", c.c_s))])
    add("swiglu_transition", "SwiGLUTransition", _SwiGLUTransition, lambda c: [s(c), tm],
        lambda c: [("s_update", (1, "N", c.c_s))])
    add("outer_product_mean", "OuterProductMean", _OPM, lambda c: [m(c), mm], zout)
    add("msa_pair_weighted_avg", "MSAPairWeightedAveraging", _PWA, lambda c: [m(c), z(c), pm],
        lambda c: [("m_update", (1, "S", "N", c.c_m))])
    add("pairformer_block", "PairFormerBlock", _PairFormerBlock, lambda c: [s(c), z(c), tm, pm],
        lambda c: [("s_out", (1, "N", c.c_s)), ("z_out", (1, "N", "N", c.c_z))])
    add("pairformer_stack", "PairFormerStack", _PairFormerStack, lambda c: [s(c), z(c), tm, pm],
        lambda c: [("s_out", (1, "N", c.c_s)), ("z_out", (1, "N", "N", c.c_z))])
    add("msa_module_block", "MSAModuleBlock", _MSAModuleBlock, lambda c: [m(c), z(c), mm, pm],
        lambda c: [("m_out", (1, "S", "N", c.c_m)), ("z_out", (1, "N", "N", c.c_z))])
    add("msa_module_stack", "MSAModuleStack", _MSAModuleStack, lambda c: [m(c), z(c), mm, pm],
        lambda c: zout(c, "z_out"))
    add("template_pair_block", "TemplatePairBlock", _TemplatePairBlock,
        lambda c: [("t", (1, TEMPLATES, "N", "N", c.c_t), "x"), ("template_mask", (1, TEMPLATES, "N", "N"), "pair_mask")],
        lambda c: [("t_out", (1, TEMPLATES, "N", "N", c.c_t))])
    add("diffusion_transformer_block", "DiffusionTransformerBlock", _DiffusionTransformerBlock,
        lambda c: [("a", (1, "N", c.c_a), "x"), s(c), z(c), tm], lambda c: [("a_out", (1, "N", c.c_a))])
    add("diffusion_transformer", "DiffusionTransformer", _DiffusionTransformer,
        lambda c: [("a", (1, "N", c.c_a), "x"), s(c), z(c), tm], lambda c: [("a_out", (1, "N", c.c_a))])
    return {sp.name: sp for sp in S}


SPECS = _specs()


def resolve_io(spec: ModuleSpec, cfg: Config):
    return list(spec.inputs(cfg)), list(spec.outputs(cfg))


# ---------------------------------------------------------------------------
# Weights: a checkpoint, or seeded random values for every parameter
# ---------------------------------------------------------------------------


def init_weights(module: nn.Module, seed: int) -> nn.Module:
    """Seeded random values for **every** parameter (the package zero-initialises several final
    projections; a zero branch would hide a wrongly fused one).

    2-D weights ``[out, in]``: N(0, 1/in); 1-D ``*.weight`` (LayerNorm scales): 1 + 0.1 N;
    other 1-D parameters (biases, LayerNorm offsets): 0.05 N, except gate biases the package
    initialises to -2 (``init: "gating"`` in AdaLN-zero style layers keep a negative mean: -2 + 0.1 N
    for ``linear_ada_out``/``linear_g`` biases of the diffusion transformer). Every value is then
    rounded to bfloat16-representable fp32 (as a bf16 checkpoint's would be; git also stores them
    smaller)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
            elif name.endswith(".weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("linear_ada_out.bias") or (".transition." in name and name.endswith("linear_g.bias")):
                p.copy_(-2.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
        for p in module.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return module.eval()


def load_checkpoint(module: nn.Module, path: str, prefix: str | None = None) -> dict:
    """Map an OpenFold3 checkpoint's state dict onto a fixture module.

    ``path`` is a ``torch.save``d state dict, or a Lightning checkpoint (``state_dict`` key).
    ``prefix`` is the key prefix of the module inside the full model (for example
    ``model.pairformer_stack.`` or ``model.pairformer_stack.blocks.0.``); without one the longest
    prefix that matches every parameter of the module is searched for. Returns
    ``{"prefix", "missing", "unexpected", "loaded"}``; missing keys are an error."""
    sd = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    own = {k[len("mod."):] if k.startswith("mod.") else k: v for k, v in module.state_dict().items()}
    if prefix is None:
        cands = {}
        for k in sd:
            for ok in own:
                if k.endswith("." + ok) or k == ok:
                    cands.setdefault(k[: len(k) - len(ok)], set()).add(ok)
        full = [p for p, ks in cands.items() if len(ks) == len(own)]
        if not full:
            best = max(cands.items(), key=lambda kv: len(kv[1]), default=("", set()))
            raise KeyError(f"no prefix in {path} covers every parameter of {type(module.mod).__name__} "
                           f"(best {best[0]!r}: {len(best[1])}/{len(own)}); pass --checkpoint-prefix")
        prefix = min(full, key=len)
    sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(sub))
    unexpected = sorted(set(sub) - set(own))
    if missing:
        raise KeyError(f"checkpoint {path} prefix {prefix!r}: missing {len(missing)} keys, e.g. {missing[:5]}")
    target = module.mod if hasattr(module, "mod") else module
    target.load_state_dict({k: sub[k].float() for k in own}, strict=True)
    return {"prefix": prefix, "missing": missing, "unexpected": unexpected, "loaded": len(own)}


def make_inputs(spec_inputs, dims: dict, seed: int) -> list:
    """Random activations ~N(0,1) and 0/1 masks: token 0 present, token 1 masked (a fully masked
    row and column in the pair mask), ~15% of other tokens masked; MSA rows also lose ~10% at
    random (row 0 keeps the token mask)."""
    g = torch.Generator().manual_seed(seed)
    n = dims["N"]
    tok = (torch.rand(n, generator=g) > 0.15).float()
    tok[0], tok[1] = 1.0, 0.0
    out = []
    for name, shape, kind in spec_inputs:
        conc = tuple(dims[d] if isinstance(d, str) else d for d in shape)
        if kind == "x":
            out.append(torch.randn(conc, generator=g))
        elif kind == "tok_mask":
            out.append(tok.reshape(conc).clone())
        elif kind == "pair_mask":
            out.append((tok[:, None] * tok[None, :]).expand(conc).contiguous())
        elif kind == "msa_mask":
            mmask = (torch.rand(conc, generator=g) > 0.1).float() * tok
            mmask[..., 0, :] = tok
            out.append(mmask)
        else:
            raise ValueError(kind)
    return out


# ---------------------------------------------------------------------------
# Instrumentation: forward hooks on the package's classes
# ---------------------------------------------------------------------------


class Instrument:
    """Counts the fused ops a correct compiler must produce by hooking the package's own classes
    while the module runs once; records softmax probabilities per attention kind."""

    def __init__(self, model: nn.Module, fixture_kind: str | None = None):
        self.model, self.handles, self.stack = model, [], []
        self.fixture_kind = fixture_kind
        self.counter = {"counts": {}, "attentions": []}
        self.probe = []

    def _pop(self, *_):
        self.stack.pop()
        return None  # a forward hook that returns a value replaces the module's output

    def _count(self, key, info=None):
        self.counter["counts"][key] = self.counter["counts"].get(key, 0) + 1
        if info is not None:
            self.counter["attentions"].append(info)

    def __enter__(self):
        from openfold3.core.model.primitives.activations import SwiGLU
        from openfold3.core.model.primitives.normalization import LayerNorm as OFLayerNorm

        def kind_of(path):
            if "tri_att_start" in path:
                return "triangle_start"
            if "tri_att_end" in path:
                return "triangle_end"
            if self.fixture_kind:
                return self.fixture_kind
            return "pair_bias"

        for path, mod in self.model.named_modules():
            if isinstance(mod, Attention):
                def pre(m, args, kwargs, path=path):
                    biases = kwargs.get("biases", args[2] if len(args) > 2 else None) or []
                    kind = kind_of(path)
                    self._count("of3c.Attention", {"kind": kind, "heads": m.no_heads, "head_dim": m.c_hidden,
                                                    "n_biases": len(biases), "bias_only": False})
                    self.stack.append(kind)
                self.handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
                self.handles.append(mod.register_forward_hook(self._pop))
            elif isinstance(mod, MSAPairWeightedAveraging):
                # softmax(linear_z(LN z) + mask bias): two additive terms, no q·kᵀ.
                def pre_pwa(m, args, kwargs):
                    self._count("of3c.Attention", {"kind": "msa_pair_weighted", "heads": m.no_heads,
                                                    "head_dim": m.c_hidden, "n_biases": 2, "bias_only": True})
                    self.stack.append("msa_pair_weighted")
                self.handles.append(mod.register_forward_pre_hook(pre_pwa, with_kwargs=True))
                self.handles.append(mod.register_forward_hook(self._pop))
            elif isinstance(mod, (TriangleMultiplicationOutgoing, TriangleMultiplicationIncoming)):
                self.handles.append(mod.register_forward_pre_hook(
                    lambda *_: self._count("of3c.TriangleMultiplication")))
            elif isinstance(mod, OuterProductMean):
                self.handles.append(mod.register_forward_pre_hook(lambda *_: self._count("of3c.OuterProductMean")))
            elif isinstance(mod, SwiGLU):
                self.handles.append(mod.register_forward_pre_hook(lambda *_: self._count("of3c.SwiGLU")))
            elif isinstance(mod, (OFLayerNorm, nn.LayerNorm)):
                self.handles.append(mod.register_forward_pre_hook(lambda *_: self._count("LayerNormalization")))
        self._softmax = torch.nn.functional.softmax

        def probe_softmax(t, dim=None, *a, **k):
            r = self._softmax(t, dim, *a, **k)
            if self.stack:
                self.probe.append((self.stack[-1], r.detach().clone()))
            return r
        torch.nn.functional.softmax = probe_softmax
        return self

    def __exit__(self, *exc):
        torch.nn.functional.softmax = self._softmax
        for h in self.handles:
            h.remove()
        return False
