"""A small 1-D fully convolutional U-Net that labels every time point of a track, and the calibrated
ensemble that is exported.

U-Net layout (``base`` channels b, ``growth`` g, ``depth`` 3, kernel k; c_i = round(b g^i)):

* encoder level i (i = 0..depth-1): ``convs`` x [Conv1d(k) -> BatchNorm -> ReLU] with c_i
  channels, then MaxPool(2);
* bottom: ``convs`` blocks with c_depth channels, dilations 1, 2, 4, ... (a wider receptive
  field at little cost), then (``global_context``) the mean of the bottom features over the whole
  track (mask-weighted) is appended at every position and mixed in by a 1x1 block;
* decoder level i (i = depth-1..0): ConvTranspose1d(2, stride 2) to c_i channels, concatenated
  with the encoder's skip, ``convs`` blocks;
* head: Conv1d(1) to the 4 class logits per time point.

Front end (fixed, no weights): from the position channels and the mask, the local mean squared
displacement at lags tau in ``lags`` (1, 2, 4, ..., 128 points), averaged over a window of
min(4 tau + 1, ``lag_window``) points (129 by default) around each point, enters as
ln(MSD_local(tau) + 1e-3) - ln(tau). The positions are in units of the track's rms step, so this is
scale-free: about 0 for free diffusion, rising with tau for directed motion, falling for confined
or subdiffusive motion. These channels are appended to the inputs (a window without valid pairs
gives 0): a rolling MSD inside the network, so that the convolutions need not learn squares and
logarithms.

Input (batch, channels, length) with length a multiple of 2^depth, output logits (batch, 4, length).
The ensemble averages the members' softmax(logits / T_m), each member with its own temperature
T_m fitted on held-out tracks.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from edgetrack.runtime.config import StageConfig, require

__all__ = ["UNetConfig", "LagFeatures", "UNet1d", "CalibratedEnsemble"]


@dataclasses.dataclass(frozen=True)
class UNetConfig(StageConfig):
    """Architecture of one member: in_channels, n_classes, base channels, depth, kernel, convs per
    block, growth of the channels from one level to the next."""

    in_channels: int = 5
    n_classes: int = 4
    base: int = 16
    depth: int = 3
    kernel: int = 5
    convs: int = 2
    growth: float = 2.0
    lags: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    lag_window: int = 129
    global_context: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "lags", tuple(int(v) for v in self.lags))
        super().__post_init__()

    def widths(self) -> list[int]:
        """Channels per level: round(base * growth**i) for i = 0..depth (the last is the bottom)."""
        return [int(round(self.base * self.growth ** i)) for i in range(self.depth + 1)]

    def validate(self) -> None:
        require(self.in_channels >= 1 and self.n_classes >= 2, "need in_channels >= 1 and n_classes >= 2")
        require(self.base >= 2 and 1 <= self.depth <= 5, "need base >= 2 and 1 <= depth <= 5")
        require(self.kernel % 2 == 1 and self.kernel >= 3, "kernel must be odd and >= 3")
        require(self.convs >= 1, "convs must be >= 1")
        require(1.0 <= self.growth <= 4.0, "growth must be in [1, 4]")
        require(all(v >= 1 for v in self.lags), "lags must be >= 1")
        require(self.lag_window >= 1 and self.lag_window % 2 == 1, "lag_window must be odd and >= 1")
        require(not self.lags or self.in_channels >= 4, "lag features need position channels and a mask")


def _block(c_in: int, c_out: int, kernel: int, dilation: int, fold: bool) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    if fold:
        conv = nn.Conv2d(c_in, c_out, (1, kernel), padding=(0, pad), dilation=(1, dilation), bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
    conv = nn.Conv1d(c_in, c_out, kernel, padding=pad, dilation=dilation, bias=False)
    return nn.Sequential(conv, nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))


def _box_sum(v: torch.Tensor, w: int) -> torch.Tensor:
    """Sum over a centred window of w (odd) points along the last axis, zero outside: (B, 1, L) -> (B, 1, L).

    Cumulative sums in float64 (exact enough for any track length), one subtraction per point.
    """
    h = w // 2
    cs = torch.cumsum(F.pad(v.to(torch.float64), (h + 1, h)), dim=-1)
    return (cs[:, :, w:] - cs[:, :, :-w]).to(v.dtype)


class LagFeatures(nn.Module):
    """Appends ln(local MSD(tau)) - ln(tau) channels (see the module docstring): (B, C, L) -> (B, C + n_lags, L).

    The first ``ndim`` channels are positions, the last one the mask (1 on the track, 0 on padding).
    """

    def __init__(self, ndim: int, lags: tuple[int, ...], max_window: int = 129) -> None:
        super().__init__()
        self.ndim = ndim
        self.lags = tuple(lags)
        self.max_window = max_window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = x[:, :self.ndim]
        mask = x[:, -1:]
        out = [x]
        for lag in self.lags:
            ahead = F.pad(pos, (0, lag))[:, :, lag:]  # r(t + lag), zero past the end
            valid = mask * F.pad(mask, (0, lag))[:, :, lag:]
            sq = ((ahead - pos) ** 2).sum(dim=1, keepdim=True) * valid
            left = lag // 2
            if left:  # centre the displacement t -> t + lag on t + lag // 2
                sq = F.pad(sq, (left, 0))[:, :, :-left]
                valid = F.pad(valid, (left, 0))[:, :, :-left]
            w = min(4 * lag + 1, self.max_window)
            num = _box_sum(sq, w)
            den = _box_sum(valid, w)
            has = (den > 0.5).to(x.dtype)
            feat = torch.log(num / torch.clamp(den, min=1.0) + 1e-3) - math.log(lag)
            out.append(feat * has)
        return torch.cat(out, dim=1)


class UNet1d(nn.Module):
    """1-D U-Net: (B, C_in, L) -> logits (B, n_classes, L); L a multiple of 2**depth.

    fold=False (training): 1-D convolutions, fast in PyTorch. fold=True (export): the batch is
    folded into one image, (B, C, L) -> (1, C, B, L), and every convolution is a 2-D convolution
    with a (1, k) kernel, which ONNX Runtime runs as one large matrix product per layer instead of
    one small product per track (several times faster on a CPU). :meth:`folded` converts weights.
    """

    def __init__(self, cfg: UNetConfig, fold: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.fold = fold
        k = cfg.kernel
        widths = cfg.widths()
        self.lag = LagFeatures(cfg.in_channels - 3, cfg.lags, cfg.lag_window) if cfg.lags else None
        self.enc = nn.ModuleList()
        c = cfg.in_channels + len(cfg.lags)
        for i in range(cfg.depth):
            layers = [_block(c if j == 0 else widths[i], widths[i], k, 1, fold) for j in range(cfg.convs)]
            self.enc.append(nn.Sequential(*layers))
            c = widths[i]
        self.pool = nn.MaxPool2d((1, 2)) if fold else nn.MaxPool1d(2)
        self.bottom = nn.Sequential(*[_block(c if j == 0 else widths[-1], widths[-1], k, 2 ** j, fold)
                                      for j in range(cfg.convs)])
        self.context = _block(2 * widths[-1], widths[-1], 1, 1, fold) if cfg.global_context else None
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(cfg.depth)):
            up = (nn.ConvTranspose2d(widths[i + 1], widths[i], (1, 2), stride=(1, 2)) if fold
                  else nn.ConvTranspose1d(widths[i + 1], widths[i], 2, stride=2))
            self.up.append(up)
            self.dec.append(nn.Sequential(*[_block(2 * widths[i] if j == 0 else widths[i], widths[i], k, 1, fold)
                                            for j in range(cfg.convs)]))
        self.head = nn.Conv2d(widths[0], cfg.n_classes, 1) if fold else nn.Conv1d(widths[0], cfg.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.lag(x) if self.lag is not None else x)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The network after the fixed front end: x holds the inputs and the lag channels."""
        mask = x[:, self.cfg.in_channels - 1:self.cfg.in_channels]
        if self.fold:
            x = x.permute(1, 0, 2).unsqueeze(0)
            mask = mask.permute(1, 0, 2).unsqueeze(0)
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
            mask = self.pool(mask)
        x = self.bottom(x)
        if self.context is not None:
            # masked mean over the whole track, appended to every position
            total = (x * mask).sum(dim=-1, keepdim=True) / torch.clamp(mask.sum(dim=-1, keepdim=True), min=1.0)
            x = self.context(torch.cat([x, total.expand_as(x)], dim=1))
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        out = self.head(x)
        return out.squeeze(0).permute(1, 0, 2) if self.fold else out

    def folded(self) -> "UNet1d":
        """A copy in the folded (export) layout with the same weights, in eval mode."""
        twin = UNet1d(self.cfg, fold=True)
        state = {k: (v.unsqueeze(2) if v.ndim == 3 else v) for k, v in self.state_dict().items()}
        twin.load_state_dict(state)
        return twin.eval()


class CalibratedEnsemble(nn.Module):
    """Mean over members of softmax(logits_m / T_m): (B, C_in, L) -> probabilities (B, n_classes, L)."""

    def __init__(self, members: list[UNet1d], temperatures: list[float]) -> None:
        super().__init__()
        if len(members) != len(temperatures) or not members:
            raise ValueError("need one temperature per member and at least one member")
        self.members = nn.ModuleList(members)
        self.register_buffer("inv_t", torch.tensor([1.0 / float(t) for t in temperatures], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the fixed front end has no weights: compute it once when every member uses the same one
        lags = {(m.cfg.lags, m.cfg.lag_window) for m in self.members}
        first = self.members[0]
        shared = first.lag(x) if len(lags) == 1 and first.lag is not None else None
        total = None
        for i, member in enumerate(self.members):
            logits = member.body(shared) if shared is not None else member(x)
            p = torch.softmax(logits * self.inv_t[i], dim=1)
            total = p if total is None else total + p
        return total / len(self.members)
