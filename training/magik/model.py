"""The MAGIK graph network in PyTorch (Pineda et al., Nat. Mach. Intell. 5, 71-82, 2023).

Layout (latent width 96 by default):

* node encoder and edge encoder: MLPs of widths 32, 64, 96 (Linear, GELU, LayerNorm each);
* ``n_blocks`` FGNN blocks (two by default), each:
  edge update ``e'_ij = MLP([v_i, v_j, e_ij])`` (residual); learnable super-Gaussian receptive field
  ``w_ij = exp(-(d_ij^2 / (2 sigma^2))^beta)`` on the edge length ``d_ij`` (px / max_distance);
  aggregation of ``w_ij e'_ij`` at both ends of every edge (incoming and outgoing kept apart, so a
  node tells its past from its future); local representation ``h_i = W [v_i, agg_in_i, agg_out_i]``;
  a learnable global token ``U`` joins the nodes; gated multi-head self-attention (6 heads;
  queries, keys, values and a sigmoid gate) and an MLP, both residual with pre-LayerNorm;
* decoders: edges (link logit from ``[e_ij, v_i, v_j]``), nodes (regression or class logits),
  global (from U and the mean of the node representations), or, with ``global_from_nodes``, the
  global class probabilities as the mean over the real nodes of the per-node class probabilities
  (so a video's fractions of classes are the average of what every detection says about itself).

Self-attention among nodes is done in chunks (``node_mask`` of shape (n_chunks, C), nodes already
ordered so that a chunk is a spatial neighbourhood; see :mod:`edgetrack.runtime.associate.magik`): each node
attends to the nodes of its chunk and to the global token, and the global token attends to every
node, so the cost is O(N C) instead of O(N^2). With one chunk of all nodes it is exact all-pairs
attention; the same weights serve both.

Only index_select / scatter_add (Gather / ScatterElements-add), reshapes with -1 and dense ops are used,
so the model exports to ONNX with dynamic numbers of nodes, edges and chunks.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from edgetrack.runtime.config import StageConfig, require

__all__ = ["MagikConfig", "Magik", "MLP"]


@dataclasses.dataclass(frozen=True)
class MagikConfig(StageConfig):
    """Architecture of a MAGIK network.

    node_in / edge_in: numbers of input node / edge features. latent: width of the FGNN blocks.
    n_blocks: FGNN blocks. heads: attention heads (latent must be divisible by heads).
    receptive_field: learnable super-Gaussian edge weights (False: every edge weighs 1; ablation).
    attention: gated self-attention with the global token (False: only the MLP; ablation).
    sigma0 / beta0: initial receptive-field width (in units of max_distance) and exponent.
    node_out: node regression outputs, or node classes with global_from_nodes (0: no node decoder).
    global_out: outputs of the global decoder (0: none). edge_out: 1 for the link decoder, 0 for none.
    global_from_nodes: no global decoder; the global output is the mean over the real nodes of the
    softmax of the node outputs (needs node_out >= 2 and global_out = 0).
    """

    node_in: int = 3
    edge_in: int = 4
    latent: int = 96
    n_blocks: int = 2
    heads: int = 6
    receptive_field: bool = True
    attention: bool = True
    sigma0: float = 0.5
    beta0: float = 4.0
    node_out: int = 0
    global_out: int = 0
    edge_out: int = 1
    global_from_nodes: bool = False

    def validate(self) -> None:
        require(self.node_in >= 1 and self.edge_in >= 1, "node_in and edge_in must be >= 1")
        require(self.latent >= 8 and self.latent % self.heads == 0, "latent must be >= 8 and divisible by heads")
        require(self.n_blocks >= 1, "n_blocks must be >= 1")
        require(SIGMA_RANGE[0] < self.sigma0 < SIGMA_RANGE[1], f"sigma0 must be in {SIGMA_RANGE}")
        require(BETA_RANGE[0] < self.beta0 < BETA_RANGE[1], f"beta0 must be in {BETA_RANGE}")
        require(self.edge_out in (0, 1), "edge_out must be 0 or 1")
        require(self.node_out >= 0 and self.global_out >= 0, "node_out and global_out must be >= 0")
        require(not self.global_from_nodes or (self.node_out >= 2 and self.global_out == 0),
                "global_from_nodes needs node_out >= 2 classes and global_out = 0")


#: Ranges that keep the receptive field sane (sigma in units of max_distance).
SIGMA_RANGE = (0.03, 2.0)
BETA_RANGE = (0.5, 10.0)


class MLP(nn.Sequential):
    """Linear, GELU, LayerNorm for each width in ``widths`` (the encoder blocks of MAGIK)."""

    def __init__(self, n_in: int, widths: tuple[int, ...]) -> None:
        layers: list[nn.Module] = []
        for w in widths:
            layers += [nn.Linear(n_in, w), nn.GELU(), nn.LayerNorm(w)]
            n_in = w
        super().__init__(*layers)


def _head(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, 64), nn.GELU(), nn.Linear(64, 32), nn.GELU(), nn.Linear(32, n_out))


def _bounded(raw: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.sigmoid(raw)


def _unbound(value: float, lo: float, hi: float) -> float:
    p = (value - lo) / (hi - lo)
    return math.log(p / (1.0 - p))


class GatedAttention(nn.Module):
    """Gated multi-head self-attention over a global token and chunked nodes (see the module docstring)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.dh = d // heads
        self.qkvg = nn.Linear(d, 4 * d)
        self.out = nn.Linear(d, d)

    def forward(self, u: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u: (1, d) global token; v: (N, d) nodes, N = n_chunks * C; mask: (n_chunks, C) 1 = real node."""
        h, dh = self.heads, self.dh
        c = mask.shape[1]
        scale = 1.0 / math.sqrt(dh)
        qn, kn, vn, gn = self.qkvg(v).chunk(4, dim=-1)  # (N, d) each
        qu, ku, vu, gu = self.qkvg(u).chunk(4, dim=-1)  # (1, d)
        qn = qn.reshape(-1, c, h, dh).transpose(1, 2)  # (nc, h, C, dh)
        kn_c = kn.reshape(-1, c, h, dh).transpose(1, 2)
        vn_c = vn.reshape(-1, c, h, dh).transpose(1, 2)
        ku_h = ku.reshape(h, dh)
        vu_h = vu.reshape(h, dh)
        neg = (mask - 1.0) * 1e9  # (nc, C): 0 for real keys, -1e9 for padding
        # nodes attend to the nodes of their chunk and to the global token
        s_nn = torch.matmul(qn, kn_c.transpose(-1, -2)) * scale + neg[:, None, None, :]  # (nc, h, C, C)
        s_nu = (qn * ku_h[None, :, None, :]).sum(-1, keepdim=True) * scale  # (nc, h, C, 1)
        att = torch.softmax(torch.cat([s_nn, s_nu], dim=-1), dim=-1)
        o_n = torch.matmul(att[..., :-1], vn_c) + att[..., -1:] * vu_h[None, :, None, :]  # (nc, h, C, dh)
        o_n = o_n.transpose(1, 2).reshape(-1, h * dh)  # (N, d)
        # the global token attends to every node and to itself
        k_all = kn.reshape(-1, h, dh)  # (N, h, dh)
        v_all = vn.reshape(-1, h, dh)
        qu_h = qu.reshape(h, dh)
        s_un = (k_all * qu_h[None]).sum(-1) * scale + neg.reshape(-1, 1)  # (N, h)
        s_uu = (qu_h * ku_h).sum(-1, keepdim=True).transpose(0, 1) * scale  # (1, h)
        a_u = torch.softmax(torch.cat([s_un, s_uu], dim=0), dim=0)  # (N + 1, h)
        o_u = (a_u[:-1, :, None] * v_all).sum(0) + a_u[-1:, :, None].squeeze(0) * vu_h  # (h, dh)
        o_u = o_u.reshape(1, h * dh)
        return self.out(torch.sigmoid(gu) * o_u), self.out(torch.sigmoid(gn) * o_n)


class FGNNBlock(nn.Module):
    """One fingerprinting graph block (edge update, receptive field, aggregation, attention)."""

    def __init__(self, cfg: MagikConfig) -> None:
        super().__init__()
        d = cfg.latent
        self.edge_mlp = MLP(3 * d, (d, d))
        self.local = nn.Linear(3 * d, d)
        self.receptive_field = cfg.receptive_field
        self.raw_sigma = nn.Parameter(torch.tensor(_unbound(cfg.sigma0, *SIGMA_RANGE)))
        self.raw_beta = nn.Parameter(torch.tensor(_unbound(cfg.beta0, *BETA_RANGE)))
        self.use_attention = cfg.attention
        if cfg.attention:
            self.norm_att = nn.LayerNorm(d)
            self.attention = GatedAttention(d, cfg.heads)
        self.norm_mlp = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    @property
    def sigma(self) -> torch.Tensor:
        return _bounded(self.raw_sigma, *SIGMA_RANGE)

    @property
    def beta(self) -> torch.Tensor:
        return _bounded(self.raw_beta, *BETA_RANGE)

    def forward(self, v, e, u, src, dst, dist, mask):
        vi = torch.index_select(v, 0, src)
        vj = torch.index_select(v, 0, dst)
        e = e + self.edge_mlp(torch.cat([vi, vj, e], dim=-1))
        if self.receptive_field:
            sigma, beta = self.sigma, self.beta
            w = torch.exp(-torch.pow(dist * dist / (2.0 * sigma * sigma) + 1e-12, beta))
            msg = e * w[:, None]
        else:
            msg = e
        # scatter_add exports as ScatterElements(reduction="add"), which sums repeated indices
        d = msg.shape[1]
        agg_in = torch.zeros_like(v).scatter_add(0, dst[:, None].expand(-1, d), msg)  # from the past into dst
        agg_out = torch.zeros_like(v).scatter_add(0, src[:, None].expand(-1, d), msg)  # from the future into src
        h = v + self.local(torch.cat([v, agg_in, agg_out], dim=-1))
        if self.use_attention:
            du, dn = self.attention(self.norm_att(u), self.norm_att(h), mask)
            u = u + du
            h = h + dn
        u = u + self.mlp(self.norm_mlp(u))
        h = h + self.mlp(self.norm_mlp(h))
        return h, e, u


class Magik(nn.Module):
    """MAGIK network. ``forward(node_features, edge_features, edge_index, node_mask)`` returns a dict.

    node_features: float32 (N, node_in); edge_features: float32 (M, edge_in), column 0 the edge
    length in units of max_distance; edge_index: int64 (2, M) (src, dst); node_mask: float32
    (n_chunks, C) with n_chunks * C = N. Outputs (as configured): ``edge_logit`` (M,),
    ``node_pred`` (N, node_out) (class logits with ``global_from_nodes``), ``global_logit``
    (global_out,), or with ``global_from_nodes`` ``node_prob`` (N, node_out) (softmax of
    ``node_pred``) and ``global_prob`` (node_out,) (their mean over the real nodes).
    """

    def __init__(self, cfg: MagikConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or MagikConfig()
        c = self.cfg
        widths = (32, 64, c.latent)
        self.node_encoder = MLP(c.node_in, widths)
        self.edge_encoder = MLP(c.edge_in, widths)
        self.global_token = nn.Parameter(torch.zeros(1, c.latent))
        nn.init.normal_(self.global_token, std=0.02)
        self.blocks = nn.ModuleList([FGNNBlock(c) for _ in range(c.n_blocks)])
        self.edge_head = _head(3 * c.latent, 1) if c.edge_out else None
        self.node_head = _head(c.latent, c.node_out) if c.node_out else None
        self.global_head = _head(2 * c.latent, c.global_out) if c.global_out else None

    def forward(self, node_features: torch.Tensor, edge_features: torch.Tensor, edge_index: torch.Tensor,
                node_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        src, dst = edge_index[0], edge_index[1]
        dist = edge_features[:, 0]
        v = self.node_encoder(node_features)
        e = self.edge_encoder(edge_features)
        u = self.global_token
        for block in self.blocks:
            v, e, u = block(v, e, u, src, dst, dist, node_mask)
        out: dict[str, torch.Tensor] = {}
        if self.edge_head is not None:
            vi = torch.index_select(v, 0, src)
            vj = torch.index_select(v, 0, dst)
            out["edge_logit"] = self.edge_head(torch.cat([e, vi, vj], dim=-1)).reshape(-1)
        if self.node_head is not None:
            out["node_pred"] = self.node_head(v)
            if self.cfg.global_from_nodes:
                m = node_mask.reshape(-1, 1)
                prob = torch.softmax(out["node_pred"], dim=-1)
                out["node_prob"] = prob
                out["global_prob"] = (prob * m).sum(0) / torch.clamp(m.sum(), min=1.0)
        if self.global_head is not None:
            # the global token and the mean of the real nodes (padding masked out)
            m = node_mask.reshape(-1, 1)
            pooled = (v * m).sum(0, keepdim=True) / torch.clamp(m.sum(), min=1.0)
            out["global_logit"] = self.global_head(torch.cat([u, pooled], dim=-1)).reshape(-1)
        return out
