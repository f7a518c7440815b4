"""The per-frame motion network: a masked 1-D attention U-Net over a track's points.

Layout (widths 32, 48, 64, 96 by default):

* stem: a 1x1 convolution of the input channels (:data:`edgetrack.runtime.motion.network.INPUT_CHANNELS`);
* encoder: at each of four resolutions (1, 1/2, 1/4, 1/8 of the points) a residual block
  (channel LayerNorm, convolution of width 5, GELU, convolution of width 5), then a masked
  average pooling by 2 and a 1x1 convolution to the next width;
* bottleneck (1/8 resolution): masked multi-head self-attention over the whole track, a
  residual MLP, and a masked track mean added back to every position (global context);
* decoder: nearest upsampling by 2, concatenation with the encoder's skip, a 1x1 convolution
  and a residual block, up to full resolution;
* head: a 1x1 convolution to 7 values per point: alpha (2 sigmoid, in (0, 2)), log K relative to
  the track's scale, four state logits and a change-point logit.

Every layer multiplies by the (downsampled) mask, so padded points are zero everywhere and a
track's outputs do not depend on how much padding its batch has. The length must be a multiple of
8 (the runtime pads to it). Only convolutions, pooling, matmul, softmax and elementwise ops are
used, so the network exports to ONNX with dynamic batch and length.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.motion.network import INPUT_CHANNELS, LENGTH_MULTIPLE, STATES

__all__ = ["MotionNetConfig", "MotionNet", "N_OUT"]

N_OUT = 3 + len(STATES)  # alpha, log K, cp + state logits


@dataclasses.dataclass(frozen=True)
class MotionNetConfig(StageConfig):
    """Architecture. widths: channels at resolutions 1, 1/2, 1/4, 1/8 (four values).
    kernel: convolution width (odd). heads: attention heads (widths[-1] divisible by heads)."""

    in_channels: int = len(INPUT_CHANNELS)
    widths: tuple[int, ...] = (32, 48, 64, 96)
    kernel: int = 5
    heads: int = 4

    def validate(self) -> None:
        require(len(self.widths) == 4 and all(int(w) > 0 for w in self.widths), "widths needs four positive values")
        require(self.kernel % 2 == 1 and self.kernel >= 1, "kernel must be odd")
        require(self.widths[-1] % self.heads == 0, "widths[-1] must be divisible by heads")
        require(2 ** (len(self.widths) - 1) == LENGTH_MULTIPLE, "the number of levels must match LENGTH_MULTIPLE")


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of every position of (B, C, L)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ResBlock(nn.Module):
    def __init__(self, c: int, kernel: int) -> None:
        super().__init__()
        self.norm = ChannelNorm(c)
        self.conv1 = nn.Conv1d(c, c, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(c, c, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.norm(x) * m) * m
        h = self.conv2(F.gelu(h)) * m
        return x + h


class Attention(nn.Module):
    """Pre-norm masked multi-head self-attention and MLP over (B, C, L)."""

    def __init__(self, c: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = ChannelNorm(c)
        self.qkv = nn.Conv1d(c, 3 * c, 1)
        self.proj = nn.Conv1d(c, c, 1)
        self.norm2 = ChannelNorm(c)
        self.mlp1 = nn.Conv1d(c, 2 * c, 1)
        self.mlp2 = nn.Conv1d(2 * c, c, 1)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        b, c, _ = x.shape
        dh = c // self.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(b, 3, self.heads, dh, -1).unbind(1)  # (B, H, dh, L)
        scores = torch.matmul(q.transpose(2, 3), k) / math.sqrt(dh)  # (B, H, L, L)
        scores = scores + (m[:, None, :, :] - 1.0) * 1e4  # m: (B, 1, L) -> keys only
        att = torch.softmax(scores, dim=-1)
        h = torch.matmul(v, att.transpose(2, 3)).reshape(b, c, -1)  # (B, C, L)
        x = (x + self.proj(h)) * m
        return (x + self.mlp2(F.gelu(self.mlp1(self.norm2(x)))) * m) * m


def _pool(x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked average pooling by 2 of (B, C, L) with mask (B, 1, L)."""
    s = F.avg_pool1d(x * m, 2)
    cnt = F.avg_pool1d(m, 2)
    m2 = (cnt > 0).to(x.dtype)
    return s / torch.clamp(cnt, min=0.5) * m2, m2


def _up(x: torch.Tensor) -> torch.Tensor:
    return torch.repeat_interleave(x, 2, dim=2)


class MotionNet(nn.Module):
    """Inputs: features (B, C_in, L) float32, mask (B, L) float32 (L a multiple of 8).
    Output of :meth:`forward`: raw (B, 7, L): alpha logit, log K rel, cp logit, 4 state logits."""

    def __init__(self, cfg: MotionNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or MotionNetConfig()
        w, k = tuple(int(v) for v in self.cfg.widths), self.cfg.kernel
        self.stem = nn.Conv1d(self.cfg.in_channels, w[0], 1)
        self.enc = nn.ModuleList([ResBlock(c, k) for c in w])
        self.down = nn.ModuleList([nn.Conv1d(w[i], w[i + 1], 1) for i in range(len(w) - 1)])
        self.attn = Attention(w[-1], self.cfg.heads)
        self.glob = nn.Linear(w[-1], w[-1])
        self.up = nn.ModuleList([nn.Conv1d(w[i + 1] + w[i], w[i], 1) for i in range(len(w) - 1)])
        self.dec = nn.ModuleList([ResBlock(w[i], k) for i in range(len(w) - 1)])
        self.head_norm = ChannelNorm(w[0])
        self.head = nn.Conv1d(w[0], N_OUT, 1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :]
        x = self.stem(features) * m
        skips, masks = [], []
        for i, block in enumerate(self.enc):
            x = block(x, m)
            if i < len(self.down):
                skips.append(x)
                masks.append(m)
                x, m = _pool(x, m)
                x = self.down[i](x) * m
        x = self.attn(x, m)
        mean = torch.sum(x, dim=2) / torch.clamp(torch.sum(m, dim=2), min=1.0)
        x = (x + self.glob(mean)[:, :, None]) * m
        for i in reversed(range(len(self.up))):
            x = _up(x)
            m = masks[i]
            x = self.up[i](torch.cat([x, skips[i]], dim=1)) * m
            x = self.dec[i](x, m)
        return self.head(self.head_norm(x)) * m

    def predict(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run-time outputs: alpha (B, L), log_k_rel (B, L), state_prob (B, L, 4), cp_prob (B, L)."""
        raw = self.forward(features, mask)
        alpha = 2.0 * torch.sigmoid(raw[:, 0])
        state_prob = torch.softmax(raw[:, 3:], dim=1).transpose(1, 2)
        return alpha, raw[:, 1], state_prob, torch.sigmoid(raw[:, 2])
