"""The cell association transformer in PyTorch (after Gallusser and Weigert, "Trackastra", ECCV 2024).

One window of ``N`` segmented objects over a few frames is one sequence of tokens. Inputs are
those built by :func:`edgetrack.runtime.associate.cell_transformer.window_inputs`: ``coords`` float32 (N, 3)
``t, y, x`` (frames; cell diameters relative to the window's mean position) and ``features``
float32 (N, 9) (normalised shallow features).

Layout (width ``d``, 64 by default):

* token = Linear(learned Fourier features of (t, y, x)) + MLP(shallow features): the Fourier
  features are ``cos, sin(2 pi W p)`` with a learned frequency matrix ``W`` (3 x n_fourier);
* encoder: ``n_encoder`` pre-LayerNorm blocks of multi-head self-attention over every token of the
  window and an MLP, giving ``Y``;
* decoder: ``n_decoder`` blocks of self-attention, cross-attention to ``Y`` and an MLP, starting
  from the same tokens, giving ``Z`` (a simplification of the paper's decoder: the same token
  embeddings feed both stacks, and the decoder is not causal);
* every attention is masked beyond ``radius`` cell diameters (spatial distance, any frames), and
  uses rotary position embeddings (RoPE) over (t, y, x): the head dimension is split into three
  parts rotated by ``t``, ``y`` and ``x`` at fixed geometric frequencies, so attention scores
  depend on relative positions only;
* association logits ``A_ij = <rot(MLP_p(Y_i), p_i), rot(MLP_c(Z_j), p_j)> / sqrt(d_a) + b(d_ij)``:
  the two MLP projections are rotated with RoPE as well (so ``A`` depends on the relative
  position of ``i`` and ``j``, never on where the window is), and ``b`` is a learned
  ``-softplus(a) d - softplus(c) d^2`` prior on the pair's distance ``d_ij`` in cell diameters;
* parental softmax with +1 in the denominator, per child ``j`` and per earlier frame ``t``:
  ``P_ij = exp(A_ij) / (1 + sum_{k: t_k = t_i, valid} exp(A_kj))`` for valid pairs
  (``t_i < t_j`` and ``d_ij <= radius``), 0 elsewhere. The "+1" is the option "no object of frame
  ``t_i`` is ``j``'s ancestor" (a cell that appears, or was missed in that frame).

Only dense ops (matmul, softmax, where, comparisons) on (N, N) matrices are used, so the network
exports to ONNX with a dynamic number of tokens.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from edgetrack.runtime.associate.cell_transformer import INPUT_FEATURES
from edgetrack.runtime.config import StageConfig, require

__all__ = ["AssocConfig", "CellAssoc", "log_parental_softmax"]

_NEG = -1e9
_LOGIT_CLAMP = 30.0


@dataclasses.dataclass(frozen=True)
class AssocConfig(StageConfig):
    """Architecture of the association transformer.

    d: token width. heads: attention heads (d divisible by heads; head width divisible by 2 and
    at least 8). n_encoder / n_decoder: blocks. n_fourier: learned Fourier frequencies. radius:
    attention and association cut-off in cell diameters. d_assoc: width of the association
    projections. fourier_scale: initial std of the Fourier frequencies (cycles per unit).
    """

    d: int = 64
    heads: int = 4
    n_encoder: int = 2
    n_decoder: int = 2
    n_fourier: int = 16
    n_features: int = len(INPUT_FEATURES)
    radius: float = 4.0
    d_assoc: int = 64
    fourier_scale: float = 0.5
    dropout: float = 0.0

    def validate(self) -> None:
        require(self.d >= 16 and self.d % self.heads == 0, "d must be >= 16 and divisible by heads")
        require((self.d // self.heads) % 2 == 0 and self.d // self.heads >= 8, "head width must be even and >= 8")
        require(self.d_assoc % 2 == 0 and self.d_assoc >= 8, "d_assoc must be even and >= 8")
        require(self.n_encoder >= 1 and self.n_decoder >= 1, "n_encoder and n_decoder must be >= 1")
        require(self.n_fourier >= 1, "n_fourier must be >= 1")
        require(self.radius > 0, "radius must be > 0 cell diameters")
        require(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")


def _rope_split(width: int) -> tuple[int, int, int]:
    """Pairs of a width given to t, y and x (the rest of width // 2 after t goes to y and x equally)."""
    half = width // 2
    n_t = max(1, half // 4)
    n_y = (half - n_t) // 2
    n_x = half - n_t - n_y
    return n_t, n_y, n_x


class Rope(nn.Module):
    """Rotary position embedding over (t, y, x) for vectors of ``width`` (even)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        n_t, n_y, n_x = _rope_split(width)
        # wavelengths: t from 1.5 to 12 frames; y, x from 0.5 to 16 cell diameters
        t_freq = 2 * math.pi / torch.logspace(math.log10(1.5), math.log10(12.0), n_t)
        y_freq = 2 * math.pi / torch.logspace(math.log10(0.5), math.log10(16.0), n_y)
        x_freq = 2 * math.pi / torch.logspace(math.log10(0.5), math.log10(16.0), n_x)
        freq = torch.zeros(3, n_t + n_y + n_x)
        freq[0, :n_t] = t_freq
        freq[1, n_t:n_t + n_y] = y_freq
        freq[2, n_t + n_y:] = x_freq
        self.register_buffer("freq", freq)

    def angles(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin (N, width // 2) of the rotation angles of each token."""
        theta = coords @ self.freq
        return torch.cos(theta), torch.sin(theta)

    @staticmethod
    def rotate(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate v (..., N, width) pairwise (first half with second half) by the angles."""
        h = v.shape[-1] // 2
        a, b = v[..., :h], v[..., h:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Attention(nn.Module):
    """Multi-head attention with RoPE and an additive (N, N) mask (0 allowed, -1e9 blocked)."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dh = d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.rope = Rope(self.dh)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, bias: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> torch.Tensor:
        h, dh = self.heads, self.dh
        q = self.q(x).reshape(-1, h, dh).transpose(0, 1)  # (h, N, dh)
        k, v = self.kv(memory).chunk(2, dim=-1)
        k = k.reshape(-1, h, dh).transpose(0, 1)
        v = v.reshape(-1, h, dh).transpose(0, 1)
        q = self.rope.rotate(q, cos, sin)
        k = self.rope.rotate(k, cos, sin)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh) + bias
        att = self.drop(torch.softmax(scores, dim=-1))
        o = torch.matmul(att, v).transpose(0, 1).reshape(-1, h * dh)
        return self.out(o)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: self-attention, optional cross-attention, MLP (all residual)."""

    def __init__(self, d: int, heads: int, dropout: float, cross: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.self_att = Attention(d, heads, dropout)
        self.cross = cross
        if cross:
            self.norm_x = nn.LayerNorm(d)
            self.norm_m = nn.LayerNorm(d)
            self.cross_att = Attention(d, heads, dropout)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * d, d))

    def forward(self, x, bias, cos, sin, memory=None):
        y = self.norm1(x)
        x = x + self.self_att(y, y, bias, cos, sin)
        if self.cross:
            x = x + self.cross_att(self.norm_x(x), self.norm_m(memory), bias, cos, sin)
        return x + self.mlp(self.norm2(x))


def log_parental_softmax(logits: torch.Tensor, coords: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log P (N, N) of the parental softmax (see the module docstring); -inf-like (-1e9) where not valid.

    logits: (N, N) A_ij (row: candidate ancestor i, column: child j); coords: (N, 3) with t in
    column 0; valid: bool (N, N).
    """
    t = coords[:, 0]
    same = t[:, None] == t[None, :]  # (N, N): i and k in one frame
    a = torch.where(valid, logits, torch.full_like(logits, _NEG))
    m = torch.clamp(a.max(dim=0, keepdim=True).values, min=0.0)  # (1, N) per column, >= 0 for the +1
    e = torch.exp(a - m)  # masked entries underflow to 0
    denom = torch.exp(-m) + torch.matmul(same.to(e.dtype), e)  # (N, N): 1 + sum over i's frame (scaled)
    return a - m - torch.log(denom)


class CellAssoc(nn.Module):
    """The association transformer. ``forward(coords, features)`` returns logits (N, N) and valid (N, N).

    Use :meth:`probabilities` for the parental-softmax probabilities (the exported output).
    """

    def __init__(self, cfg: AssocConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or AssocConfig()
        c = self.cfg
        self.fourier = nn.Parameter(torch.randn(3, c.n_fourier) * c.fourier_scale)
        self.pos_proj = nn.Linear(2 * c.n_fourier, c.d)
        self.feat_mlp = nn.Sequential(nn.Linear(c.n_features, c.d), nn.GELU(), nn.Linear(c.d, c.d))
        self.norm_in = nn.LayerNorm(c.d)
        self.encoder = nn.ModuleList([Block(c.d, c.heads, c.dropout, cross=False) for _ in range(c.n_encoder)])
        self.decoder = nn.ModuleList([Block(c.d, c.heads, c.dropout, cross=True) for _ in range(c.n_decoder)])
        self.norm_y = nn.LayerNorm(c.d)
        self.norm_z = nn.LayerNorm(c.d)
        self.proj_parent = nn.Sequential(nn.Linear(c.d, c.d), nn.GELU(), nn.Linear(c.d, c.d_assoc))
        self.proj_child = nn.Sequential(nn.Linear(c.d, c.d), nn.GELU(), nn.Linear(c.d, c.d_assoc))
        self.assoc_rope = Rope(c.d_assoc)
        self.dist_a = nn.Parameter(torch.tensor(0.5))
        self.dist_c = nn.Parameter(torch.tensor(0.0))
        self.bias0 = nn.Parameter(torch.tensor(0.0))

    def forward(self, coords: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg
        proj = 2 * math.pi * (coords @ self.fourier)
        x = self.pos_proj(torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)) + self.feat_mlp(features)
        x = self.norm_in(x)
        yx = coords[:, 1:]
        diff = yx[:, None, :] - yx[None, :, :]
        dist = torch.sqrt((diff * diff).sum(-1) + 1e-12)  # (N, N) cell diameters
        near = dist <= c.radius
        bias = torch.where(near, torch.zeros_like(dist), torch.full_like(dist, _NEG))
        cos, sin = self.encoder[0].self_att.rope.angles(coords)
        y = x
        for block in self.encoder:
            y = block(y, bias, cos, sin)
        y = self.norm_y(y)
        z = x
        for block in self.decoder:
            z = block(z, bias, cos, sin, memory=y)
        z = self.norm_z(z)
        ca, sa = self.assoc_rope.angles(coords)
        p = self.assoc_rope.rotate(self.proj_parent(y), ca, sa)
        q = self.assoc_rope.rotate(self.proj_child(z), ca, sa)
        logits = torch.matmul(p, q.transpose(0, 1)) / math.sqrt(c.d_assoc)
        logits = logits + self.bias0 - nn.functional.softplus(self.dist_a) * dist \
            - nn.functional.softplus(self.dist_c) * dist * dist
        logits = torch.clamp(logits, -_LOGIT_CLAMP, _LOGIT_CLAMP)
        t = coords[:, 0]
        valid = (t[:, None] < t[None, :]) & near
        return logits, valid

    def probabilities(self, coords: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """float32 (N, N) parental-softmax probabilities, 0 where the pair is not valid."""
        logits, valid = self.forward(coords, features)
        p = torch.exp(log_parental_softmax(logits, coords, valid))
        return torch.where(valid, p, torch.zeros_like(p))
