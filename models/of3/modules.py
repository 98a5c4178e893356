"""OpenFold3 trunk modules, written from the math in shared/OF3_MODEL.md.

Plain PyTorch (eval mode, no in-place tricks, no chunking, no custom kernels), so both
ONNX exporters see the textbook graph that of3c must recognise and fuse:

* attention is always ``q/sqrt(c)``, ``q @ k^T``, ``+ bias_0 + ... + bias_n``, ``softmax(-1)``,
  ``@ v``, ``* sigmoid(gate)``, ``@ Wo`` (:func:`gated_attention`);
* SwiGLU is ``silu(x Wa) * (x Wb)`` with two separate bias-free linears;
* LayerNorm is ``nn.LayerNorm`` (eps 1e-5).

Tensors carry no batch dimension: single ``[N, c_s]``, pair ``[N, N, c_z]``, MSA
``[S, N, c_m]``; token mask ``[N]``, pair mask ``[N, N]``, MSA mask ``[S, N]`` (float 0/1).

While :data:`COUNTER` is a dict, every attention / SwiGLU / LayerNorm call records itself there
(``export.py`` uses this to derive ``expected_fused`` for fixtures.json), and while
:data:`SOFTMAX_PROBE` is a list every attention appends its probabilities (degeneracy check).
Both are ``None`` during ONNX export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, asdict, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

INF = 1e9

# Instrumentation (None = off).
COUNTER: dict | None = None
SOFTMAX_PROBE: list | None = None


def _record(key: str, info: dict | None = None):
    if COUNTER is None:
        return
    COUNTER.setdefault("counts", {}).setdefault(key, 0)
    COUNTER["counts"][key] += 1
    if info is not None:
        COUNTER.setdefault("attentions", []).append(info)


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    # Pairformer
    c_s: int = 384
    c_z: int = 128
    pb_heads: int = 16          # AttentionPairBias heads
    pb_head_dim: int = 24
    ta_heads: int = 4           # triangle attention
    ta_head_dim: int = 32
    tm_hidden: int = 128        # triangle multiplication hidden channels
    transition_n: int = 4
    pairformer_blocks: int = 48
    # MSA module
    c_m: int = 64
    pwa_heads: int = 8
    pwa_head_dim: int = 8
    opm_hidden: int = 32
    msa_tm_hidden: int = 128
    msa_ta_heads: int = 4
    msa_ta_head_dim: int = 32
    msa_transition_n: int = 4
    # Template pair stack
    c_t: int = 64
    tmpl_ta_heads: int = 4
    tmpl_ta_head_dim: int = 16
    tmpl_tm_hidden: int = 64
    tmpl_transition_n: int = 2
    # Diffusion transformer
    c_a: int = 768
    dt_heads: int = 16
    dt_head_dim: int = 48
    dt_transition_n: int = 2


PRESETS: dict[str, Config] = {
    "of3": Config(),
    # Same structure and per-head dims (24, 32, 8, 16, 48), fewer channels and heads.
    "tiny": Config(
        c_s=32, c_z=16, pb_heads=2, ta_heads=2, tm_hidden=16, pairformer_blocks=2,
        c_m=16, pwa_heads=2, opm_hidden=8, msa_tm_hidden=16, msa_ta_heads=2,
        c_t=16, tmpl_ta_heads=2, tmpl_tm_hidden=16,
        c_a=96, dt_heads=2,
    ),
}


def config_dict(cfg: Config) -> dict:
    return asdict(cfg)


# ---------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm (eps 1e-5) that records itself in COUNTER."""

    def __init__(self, c: int, affine: bool = True, bias: bool = True):
        super().__init__(c, eps=1e-5, elementwise_affine=affine, bias=bias and affine)

    def forward(self, x):
        _record("LayerNormalization")
        return super().forward(x)


def linear(c_in: int, c_out: int, bias: bool = False) -> nn.Linear:
    return nn.Linear(c_in, c_out, bias=bias)


def mask_bias(mask: torch.Tensor) -> torch.Tensor:
    """0 where mask is 1, -1e9 where it is 0."""
    return INF * (mask - 1.0)


def gated_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, biases: list,
                    kind: str, heads: int, head_dim: int) -> torch.Tensor:
    """softmax(q/sqrt(c) @ k^T + sum(biases)) @ v, heads in dim -3.

    q: [*, H, Q, c], k/v: [*, H, K, c]; each bias broadcasts to [*, H, Q, K]. Returns [*, H, Q, c].
    """
    q = q / math.sqrt(head_dim)
    logits = torch.matmul(q, k.transpose(-1, -2))
    for b in biases:
        logits = logits + b
    a = torch.softmax(logits, dim=-1)
    if SOFTMAX_PROBE is not None:
        SOFTMAX_PROBE.append((kind, a.detach().clone()))
    if COUNTER is not None:
        _record("of3c.Attention", {"kind": kind, "heads": heads, "head_dim": head_dim,
                                   "n_biases": len(biases), "bias_only": False})
    return torch.matmul(a, v)


class SwiGLU(nn.Module):
    """silu(x Wa) * (x Wb): the part that of3c.SwiGLU fuses."""

    def __init__(self, c_in: int, c_hidden: int):
        super().__init__()
        self.linear_a = linear(c_in, c_hidden)
        self.linear_b = linear(c_in, c_hidden)

    def forward(self, x):
        _record("of3c.SwiGLU")
        return F.silu(self.linear_a(x)) * self.linear_b(x)


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------


class SwiGLUTransition(nn.Module):
    """linear_out(silu(LN(x) Wa) * (LN(x) Wb)) * mask[..., None], hidden n*c."""

    def __init__(self, c: int, n: int):
        super().__init__()
        self.layer_norm = LayerNorm(c)
        self.swiglu = SwiGLU(c, n * c)
        self.linear_out = linear(n * c, c)

    def forward(self, x, mask):
        x = self.layer_norm(x)
        return self.linear_out(self.swiglu(x)) * mask.unsqueeze(-1)


class TriangleMultiplicativeUpdate(nn.Module):
    """Outgoing: p_ij = sum_k a_ik * b_jk; incoming: p_ij = sum_k a_ki * b_kj."""

    def __init__(self, c_z: int, c_hidden: int, outgoing: bool):
        super().__init__()
        self.outgoing = outgoing
        self.layer_norm_in = LayerNorm(c_z)
        self.linear_a_g = linear(c_z, c_hidden)
        self.linear_a_p = linear(c_z, c_hidden)
        self.linear_b_g = linear(c_z, c_hidden)
        self.linear_b_p = linear(c_z, c_hidden)
        self.layer_norm_out = LayerNorm(c_hidden)
        self.linear_z = linear(c_hidden, c_z)
        self.linear_g = linear(c_z, c_z)

    def forward(self, z, mask):
        z = self.layer_norm_in(z)
        m = mask.unsqueeze(-1)
        a = m * torch.sigmoid(self.linear_a_g(z)) * self.linear_a_p(z)   # [I, K, C]
        b = m * torch.sigmoid(self.linear_b_g(z)) * self.linear_b_p(z)   # [J, K, C]
        if self.outgoing:
            # p[c, i, j] = sum_k a[i, k, c] b[j, k, c]
            p = torch.matmul(a.permute(2, 0, 1), b.permute(2, 1, 0))
        else:
            # p[c, i, j] = sum_k a[k, i, c] b[k, j, c]
            p = torch.matmul(a.permute(2, 1, 0), b.permute(2, 0, 1))
        p = p.permute(1, 2, 0)                                            # [I, J, C]
        return self.linear_z(self.layer_norm_out(p)) * torch.sigmoid(self.linear_g(z))


class TriangleAttention(nn.Module):
    """Starting-node triangle attention: rows i are the batch, queries/keys run over j."""

    def __init__(self, c_z: int, heads: int, head_dim: int, kind: str = "triangle_start"):
        super().__init__()
        self.heads, self.head_dim, self.kind = heads, head_dim, kind
        self.layer_norm = LayerNorm(c_z)
        self.linear_z = linear(c_z, heads)                    # triangle bias, no bias term
        self.linear_q = linear(c_z, heads * head_dim)
        self.linear_k = linear(c_z, heads * head_dim)
        self.linear_v = linear(c_z, heads * head_dim)
        self.linear_g = linear(c_z, heads * head_dim)
        self.linear_o = linear(heads * head_dim, c_z)

    def _heads(self, t):  # [I, J, H*c] -> [I, H, J, c]
        return t.reshape(t.shape[:-1] + (self.heads, self.head_dim)).transpose(-2, -3)

    def forward(self, x, mask):
        x = self.layer_norm(x)
        mb = mask_bias(mask)[:, None, None, :]                 # [I, 1, 1, J]
        tri = self.linear_z(x).permute(2, 0, 1).unsqueeze(0)  # [1, H, J, K]
        q, k, v = self._heads(self.linear_q(x)), self._heads(self.linear_k(x)), self._heads(self.linear_v(x))
        o = gated_attention(q, k, v, [mb, tri], self.kind, self.heads, self.head_dim)     # [I, H, J, c]
        o = o.transpose(-2, -3)                                # [I, J, H, c]
        g = torch.sigmoid(self.linear_g(x))
        o = o.reshape(o.shape[:-2] + (self.heads * self.head_dim,)) * g
        return self.linear_o(o)


class TriangleAttentionEnding(nn.Module):
    """Ending node, as PairBlock does it: transpose z and mask, attend, transpose back."""

    def __init__(self, c_z: int, heads: int, head_dim: int):
        super().__init__()
        self.att = TriangleAttention(c_z, heads, head_dim, kind="triangle_end")

    def forward(self, z, mask):
        return self.att(z.transpose(-2, -3), mask.transpose(-1, -2)).transpose(-2, -3)


class AttentionPairBias(nn.Module):
    """Trunk attention with pair bias (q has a bias).

    Diffusion variant (``diffusion=True``): LN_z has no bias, the input is expected to be
    AdaLN-conditioned already, and the caller applies the sigmoid(s W_ada_out) gate.
    """

    def __init__(self, c_s: int, c_z: int, heads: int, head_dim: int, diffusion: bool = False):
        super().__init__()
        self.heads, self.head_dim, self.diffusion = heads, head_dim, diffusion
        if not diffusion:
            self.layer_norm = LayerNorm(c_s)
        self.layer_norm_z = LayerNorm(c_z, bias=not diffusion)
        self.linear_z = linear(c_z, heads)
        self.linear_q = linear(c_s, heads * head_dim, bias=True)
        self.linear_k = linear(c_s, heads * head_dim)
        self.linear_v = linear(c_s, heads * head_dim)
        self.linear_g = linear(c_s, heads * head_dim)
        self.linear_o = linear(heads * head_dim, c_s)

    def _heads(self, t):  # [N, H*c] -> [H, N, c]
        return t.reshape(t.shape[:-1] + (self.heads, self.head_dim)).transpose(-2, -3)

    def forward(self, s, z, mask):
        if not self.diffusion:
            s = self.layer_norm(s)
        mb = mask_bias(mask)[None, None, :]                             # [1, 1, N]
        pair = self.linear_z(self.layer_norm_z(z)).permute(2, 0, 1)    # [H, N, N]
        q, k, v = self._heads(self.linear_q(s)), self._heads(self.linear_k(s)), self._heads(self.linear_v(s))
        o = gated_attention(q, k, v, [mb, pair], "pair_bias", self.heads, self.head_dim)          # [H, N, c]
        o = o.transpose(-2, -3)
        o = o.reshape(o.shape[:-2] + (self.heads * self.head_dim,)) * torch.sigmoid(self.linear_g(s))
        return self.linear_o(o)


class OuterProductMean(nn.Module):
    """outer[i,j] = sum_s a[s,i] (x) b[s,j]; Wout (+bias); / (sum_s mask[s,i] mask[s,j] + 1e-3)."""

    def __init__(self, c_m: int, c_z: int, c_hidden: int):
        super().__init__()
        self.c_hidden = c_hidden
        self.layer_norm = LayerNorm(c_m)
        self.linear_1 = linear(c_m, c_hidden)
        self.linear_2 = linear(c_m, c_hidden)
        self.linear_out = linear(c_hidden * c_hidden, c_z, bias=True)

    def forward(self, m, mask):
        m = self.layer_norm(m)
        mk = mask.unsqueeze(-1)
        a = self.linear_1(m) * mk                                   # [S, N, c]
        b = self.linear_2(m) * mk
        n, c = a.shape[-2], self.c_hidden
        a2 = a.reshape(a.shape[:-2] + (-1,)).transpose(-1, -2)      # [N*c, S]
        b2 = b.reshape(b.shape[:-2] + (-1,))                        # [S, N*c]
        outer = torch.matmul(a2, b2)                                # [N*c, N*c]  (i,c) x (j,d)
        outer = outer.reshape(n, c, n, c).permute(0, 2, 1, 3)       # [N, N, c, d]
        outer = outer.reshape(n, n, c * c)
        out = self.linear_out(outer)
        norm = torch.matmul(mask.transpose(-1, -2), mask) + 1e-3    # [N, N]
        return out / norm.unsqueeze(-1)


class MSAPairWeightedAveraging(nn.Module):
    """Bias-only attention: softmax_k(LN_z(z) Wz + mask) averages v from the MSA, gated."""

    def __init__(self, c_m: int, c_z: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.layer_norm_m = LayerNorm(c_m)
        self.layer_norm_z = LayerNorm(c_z)
        self.linear_z = linear(c_z, heads)
        self.linear_v = linear(c_m, heads * head_dim)
        self.linear_g = linear(c_m, heads * head_dim)
        self.linear_o = linear(heads * head_dim, c_m)

    def forward(self, m, z, pair_mask):
        m = self.layer_norm_m(m)
        w = self.linear_z(self.layer_norm_z(z)).permute(2, 0, 1)     # [H, Q, K]
        w = w + mask_bias(pair_mask)                                 # [Q, K] broadcast
        a = torch.softmax(w, dim=-1)
        if SOFTMAX_PROBE is not None:
            SOFTMAX_PROBE.append(("msa_pair_weighted", a.detach().clone()))
        _record("of3c.Attention", {"kind": "msa_pair_weighted", "heads": self.heads,
                                   "head_dim": self.head_dim, "n_biases": 2, "bias_only": True})
        v = self.linear_v(m)
        v = v.reshape(v.shape[:-1] + (self.heads, self.head_dim)).permute(0, 2, 1, 3)  # [S, H, K, c]
        o = torch.matmul(a.unsqueeze(0), v)                          # [S, H, Q, c]
        o = o.permute(0, 2, 1, 3)                                    # [S, Q, H, c]
        o = o.reshape(o.shape[:-2] + (self.heads * self.head_dim,)) * torch.sigmoid(self.linear_g(m))
        return self.linear_o(o)


class PairBlock(nn.Module):
    """z += TriMulOut; z += TriMulIn; z += TriAttStart; z += TriAttEnd; z += Transition."""

    def __init__(self, c_z: int, tm_hidden: int, ta_heads: int, ta_head_dim: int, transition_n: int):
        super().__init__()
        self.tri_mul_out = TriangleMultiplicativeUpdate(c_z, tm_hidden, outgoing=True)
        self.tri_mul_in = TriangleMultiplicativeUpdate(c_z, tm_hidden, outgoing=False)
        self.tri_att_start = TriangleAttention(c_z, ta_heads, ta_head_dim)
        self.tri_att_end = TriangleAttentionEnding(c_z, ta_heads, ta_head_dim)
        self.pair_transition = SwiGLUTransition(c_z, transition_n)

    def forward(self, z, pair_mask):
        z = z + self.tri_mul_out(z, pair_mask)
        z = z + self.tri_mul_in(z, pair_mask)
        z = z + self.tri_att_start(z, pair_mask)
        z = z + self.tri_att_end(z, pair_mask)
        z = z + self.pair_transition(z, pair_mask)
        return z


class PairformerBlock(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.pair = PairBlock(cfg.c_z, cfg.tm_hidden, cfg.ta_heads, cfg.ta_head_dim, cfg.transition_n)
        self.attention = AttentionPairBias(cfg.c_s, cfg.c_z, cfg.pb_heads, cfg.pb_head_dim)
        self.single_transition = SwiGLUTransition(cfg.c_s, cfg.transition_n)

    def forward(self, s, z, mask, pair_mask):
        z = self.pair(z, pair_mask)
        s = s + self.attention(s, z, mask)
        s = s + self.single_transition(s, mask)
        return s, z


class PairformerStack(nn.Module):
    def __init__(self, cfg: Config, n_blocks: int | None = None):
        super().__init__()
        n = cfg.pairformer_blocks if n_blocks is None else n_blocks
        self.blocks = nn.ModuleList([PairformerBlock(cfg) for _ in range(n)])

    def forward(self, s, z, mask, pair_mask):
        for blk in self.blocks:
            s, z = blk(s, z, mask, pair_mask)
        return s, z


class MSAModuleBlock(nn.Module):
    """z += OPM(m); m += PWA(m, z); m += Transition(m); z = PairBlock(z). (Not the last block.)"""

    def __init__(self, cfg: Config):
        super().__init__()
        self.outer_product_mean = OuterProductMean(cfg.c_m, cfg.c_z, cfg.opm_hidden)
        self.pair_weighted_averaging = MSAPairWeightedAveraging(cfg.c_m, cfg.c_z, cfg.pwa_heads, cfg.pwa_head_dim)
        self.msa_transition = SwiGLUTransition(cfg.c_m, cfg.msa_transition_n)
        self.pair = PairBlock(cfg.c_z, cfg.msa_tm_hidden, cfg.msa_ta_heads, cfg.msa_ta_head_dim, cfg.transition_n)

    def forward(self, m, z, msa_mask, pair_mask):
        z = z + self.outer_product_mean(m, msa_mask)
        m = m + self.pair_weighted_averaging(m, z, pair_mask)
        m = m + self.msa_transition(m, msa_mask)
        z = self.pair(z, pair_mask)
        return m, z


class TemplatePairBlock(nn.Module):
    """One block of the template pair stack: a PairBlock at template widths."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.pair = PairBlock(cfg.c_t, cfg.tmpl_tm_hidden, cfg.tmpl_ta_heads, cfg.tmpl_ta_head_dim,
                              cfg.tmpl_transition_n)

    def forward(self, t, pair_mask):
        return self.pair(t, pair_mask)


class AdaLN(nn.Module):
    """sigmoid(LN_s(s) Wg + bg) * LN_noaffine(a) + LN_s(s) Ws.

    LN_s has a weight and no offset (AF3 Alg. 26, ``offset=False``)."""

    def __init__(self, c_a: int, c_s: int):
        super().__init__()
        self.layer_norm_a = LayerNorm(c_a, affine=False)
        self.layer_norm_s = LayerNorm(c_s, bias=False)
        self.linear_g = linear(c_s, c_a, bias=True)
        self.linear_s = linear(c_s, c_a)

    def forward(self, a, s):
        a = self.layer_norm_a(a)
        s = self.layer_norm_s(s)
        return torch.sigmoid(self.linear_g(s)) * a + self.linear_s(s)


class DiffusionTransformerBlock(nn.Module):
    """a += APB_diff(AdaLN(a, s), z) * sigmoid(s W_ada_out + b);
    a += sigmoid(s Wg + bg) * Wout(SwiGLU(AdaLN(a, s)))."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.adaln_att = AdaLN(cfg.c_a, cfg.c_s)
        self.attention = AttentionPairBias(cfg.c_a, cfg.c_z, cfg.dt_heads, cfg.dt_head_dim, diffusion=True)
        self.linear_ada_out = linear(cfg.c_s, cfg.c_a, bias=True)
        self.adaln_tr = AdaLN(cfg.c_a, cfg.c_s)
        self.swiglu = SwiGLU(cfg.c_a, cfg.dt_transition_n * cfg.c_a)
        self.linear_out = linear(cfg.dt_transition_n * cfg.c_a, cfg.c_a)
        self.linear_g = linear(cfg.c_s, cfg.c_a, bias=True)

    def forward(self, a, s, z, mask):
        b = self.attention(self.adaln_att(a, s), z, mask)
        a = a + b * torch.sigmoid(self.linear_ada_out(s))
        t = self.linear_out(self.swiglu(self.adaln_tr(a, s)))
        a = a + torch.sigmoid(self.linear_g(s)) * t
        return a


# ---------------------------------------------------------------------------
# Fixture specs: module name -> how to build it and what its inputs/outputs are
# ---------------------------------------------------------------------------
# Input spec entries: (name, symbolic shape, kind) with kind in
#   "x" (activation, randn), "tok_mask" [N], "pair_mask" [N,N], "msa_mask" [S,N].


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

    zin = lambda c: ("z", ("N", "N", c), "x")
    pm = ("pair_mask", ("N", "N"), "pair_mask")
    tm = ("mask", ("N",), "tok_mask")
    add("tri_mul_out", "TriangleMultiplicativeUpdate",
        lambda c: TriangleMultiplicativeUpdate(c.c_z, c.tm_hidden, outgoing=True),
        lambda c: [zin(c.c_z), pm], lambda c: [("z_update", ("N", "N", c.c_z))])
    add("tri_mul_in", "TriangleMultiplicativeUpdate",
        lambda c: TriangleMultiplicativeUpdate(c.c_z, c.tm_hidden, outgoing=False),
        lambda c: [zin(c.c_z), pm], lambda c: [("z_update", ("N", "N", c.c_z))])
    add("tri_att_start", "TriangleAttention",
        lambda c: TriangleAttention(c.c_z, c.ta_heads, c.ta_head_dim),
        lambda c: [zin(c.c_z), pm], lambda c: [("z_update", ("N", "N", c.c_z))])
    add("tri_att_end", "TriangleAttention(ending)",
        lambda c: TriangleAttentionEnding(c.c_z, c.ta_heads, c.ta_head_dim),
        lambda c: [zin(c.c_z), pm], lambda c: [("z_update", ("N", "N", c.c_z))])
    add("attention_pair_bias", "AttentionPairBias",
        lambda c: AttentionPairBias(c.c_s, c.c_z, c.pb_heads, c.pb_head_dim),
        lambda c: [("s", ("N", c.c_s), "x"), zin(c.c_z), tm], lambda c: [("s_update", ("N", c.c_s))])
    add("swiglu_transition", "SwiGLUTransition",
        lambda c: SwiGLUTransition(c.c_s, c.transition_n),
        lambda c: [("s", ("N", c.c_s), "x"), tm], lambda c: [("s_update", ("N", c.c_s))])
    add("outer_product_mean", "OuterProductMean",
        lambda c: OuterProductMean(c.c_m, c.c_z, c.opm_hidden),
        lambda c: [("m", ("S", "N", c.c_m), "x"), ("msa_mask", ("S", "N"), "msa_mask")],
        lambda c: [("z_update", ("N", "N", c.c_z))])
    add("msa_pair_weighted_avg", "MSAPairWeightedAveraging",
        lambda c: MSAPairWeightedAveraging(c.c_m, c.c_z, c.pwa_heads, c.pwa_head_dim),
        lambda c: [("m", ("S", "N", c.c_m), "x"), zin(c.c_z), pm], lambda c: [("m_update", ("S", "N", c.c_m))])
    add("pairformer_block", "PairformerBlock", lambda c: PairformerBlock(c),
        lambda c: [("s", ("N", c.c_s), "x"), zin(c.c_z), tm, pm],
        lambda c: [("s_out", ("N", c.c_s)), ("z_out", ("N", "N", c.c_z))])
    add("msa_module_block", "MSAModuleBlock", lambda c: MSAModuleBlock(c),
        lambda c: [("m", ("S", "N", c.c_m), "x"), zin(c.c_z), ("msa_mask", ("S", "N"), "msa_mask"), pm],
        lambda c: [("m_out", ("S", "N", c.c_m)), ("z_out", ("N", "N", c.c_z))])
    add("template_pair_block", "TemplatePairStack block", lambda c: TemplatePairBlock(c),
        lambda c: [("t", ("N", "N", c.c_t), "x"), pm], lambda c: [("t_out", ("N", "N", c.c_t))])
    add("diffusion_transformer_block", "DiffusionTransformer block", lambda c: DiffusionTransformerBlock(c),
        lambda c: [("a", ("N", c.c_a), "x"), ("s", ("N", c.c_s), "x"), zin(c.c_z), tm],
        lambda c: [("a_out", ("N", c.c_a))])
    add("pairformer_stack", "PairformerStack", lambda c: PairformerStack(c),
        lambda c: [("s", ("N", c.c_s), "x"), zin(c.c_z), tm, pm],
        lambda c: [("s_out", ("N", c.c_s)), ("z_out", ("N", "N", c.c_z))])
    return {s.name: s for s in S}


SPECS = _specs()


def resolve_io(spec: ModuleSpec, cfg: Config):
    """Concrete (inputs, outputs) lists for a config."""
    return list(spec.inputs(cfg)), list(spec.outputs(cfg))


# ---------------------------------------------------------------------------
# Weights and inputs
# ---------------------------------------------------------------------------


def init_weights(module: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights at realistic scales.

    Linear: W ~ N(0, 1/fan_in), bias ~ 0.05 N(0,1) (linear_ada_out / diffusion transition gate:
    -2 + 0.1 N(0,1), as OF3 initialises them to -2); LayerNorm: weight 1 + 0.1 N, bias 0.1 N.
    All values are then rounded to bfloat16-representable fp32.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, mod in sorted(module.named_modules(), key=lambda kv: kv[0]):
            if isinstance(mod, nn.Linear):
                fan_in = mod.weight.shape[1]
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) / math.sqrt(fan_in))
                if mod.bias is not None:
                    if name.endswith("linear_ada_out") or (isinstance(module, DiffusionTransformerBlock)
                                                           and name == "linear_g"):
                        mod.bias.copy_(-2.0 + 0.1 * torch.randn(mod.bias.shape, generator=g))
                    else:
                        mod.bias.copy_(0.05 * torch.randn(mod.bias.shape, generator=g))
            elif isinstance(mod, nn.LayerNorm):
                if mod.weight is not None:
                    mod.weight.copy_(1.0 + 0.1 * torch.randn(mod.weight.shape, generator=g))
                if mod.bias is not None:
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
        # Every weight is exactly representable in bfloat16 (as a bf16 checkpoint's would be): the
        # fp32 values keep their meaning, bf16 runs see the same weights, and the zero low mantissa
        # halves the committed fixtures once git compresses them.
        for p in module.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return module.eval()


def make_inputs(spec_inputs, dims: dict, seed: int) -> list:
    """Random activations ~N(0,1) and 0/1 masks with some masked tokens.

    Token mask: ~15% zeros, token 1 always masked (so the pair mask has a fully masked row and
    column), token 0 always present. MSA mask: token mask AND ~10% random zeros, row 0 full."""
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
            out.append(tok.clone())
        elif kind == "pair_mask":
            out.append(tok[:, None] * tok[None, :])
        elif kind == "msa_mask":
            mm = (torch.rand(conc, generator=g) > 0.1).float() * tok[None, :]
            mm[0] = tok
            out.append(mm)
        else:
            raise ValueError(kind)
    return out
