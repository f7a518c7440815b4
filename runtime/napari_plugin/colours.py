"""Colours for motion values on fixed, documented scales (numpy only; the widget hands them to napari).

- ``alpha``: the anomalous exponent on 0 (immobile) .. 2 (ballistic), 1 = free diffusion in the middle.
- ``K``: log10 of the generalised diffusion coefficient (px^2/frame^alpha), from the 2nd to the 98th
  percentile of the finite values (so one outlier does not flatten the scale).
- ``state``: the diffusive state of the 2nd AnDi Challenge, one colour each (:data:`STATE_COLOURS`).

Points without an estimate (NaN, state -1: tracks shorter than the motion network needs) are grey.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from edgetrack.runtime.errors import InputError

__all__ = [
    "COLOUR_BY",
    "NO_ESTIMATE",
    "STATE_COLOURS",
    "STATE_NAMES",
    "Scale",
    "colour_scale",
    "motion_colours",
    "ramp",
]

COLOUR_BY = ("alpha", "K", "state")
STATE_NAMES = {0: "immobile", 1: "confined", 2: "free", 3: "directed"}
#: RGBA per diffusive state (0 immobile, 1 confined, 2 free, 3 directed).
STATE_COLOURS = np.array([[0.35, 0.45, 0.95, 1.0], [1.0, 0.6, 0.1, 1.0], [0.2, 0.8, 0.3, 1.0], [0.9, 0.15, 0.2, 1.0]])
#: RGBA of a point without an estimate.
NO_ESTIMATE = np.array([0.6, 0.6, 0.6, 0.5])
# a perceptually ordered ramp (dark blue -> teal -> yellow), linearly interpolated between these stops
_RAMP = np.array([[0.27, 0.00, 0.33], [0.23, 0.32, 0.55], [0.13, 0.57, 0.55], [0.37, 0.79, 0.38], [0.99, 0.91, 0.14]])


class Scale(NamedTuple):
    """What a colour means: the value at the ramp's two ends (``label`` names the value shown)."""

    label: str
    low: float
    high: float


def ramp(t: np.ndarray) -> np.ndarray:
    """RGBA (n, 4) of the ramp at ``t`` in [0, 1] (values outside are clipped)."""
    t = np.clip(np.asarray(t, np.float64), 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.minimum(np.floor(t).astype(np.int64), len(_RAMP) - 2)
    w = (t - lo)[:, None]
    rgb = _RAMP[lo] * (1.0 - w) + _RAMP[lo + 1] * w
    return np.column_stack([rgb, np.ones(len(rgb))])


def colour_scale(values: np.ndarray, by: str) -> Scale | None:
    """The scale of ``by`` (``alpha`` or ``K``) for these values; None for ``state`` (categorical)."""
    if by == "alpha":
        return Scale("alpha", 0.0, 2.0)
    if by == "K":
        logk = np.log10(np.asarray(values, np.float64)[np.asarray(values, np.float64) > 0])
        logk = logk[np.isfinite(logk)]
        if len(logk) == 0:
            return Scale("log10 K", -1.0, 1.0)
        low, high = np.percentile(logk, [2.0, 98.0])
        return Scale("log10 K", float(low), float(high) if high > low else float(low) + 1.0)
    if by == "state":
        return None
    raise InputError(f"colour by must be one of {', '.join(COLOUR_BY)}, got {by!r}")


def motion_colours(values: np.ndarray, by: str, scale: Scale | None = None) -> np.ndarray:
    """RGBA float32 (n, 4), one colour per point, for ``alpha``, ``K`` (px^2/frame^alpha) or ``state`` values.

    scale: the ends of the ramp (default :func:`colour_scale` of these values), to colour other values alike.
    """
    values = np.asarray(values, np.float64).reshape(-1)
    default = colour_scale(values, by)  # also refuses an unknown ``by``
    scale = None if by == "state" else (scale or default)
    out = np.tile(NO_ESTIMATE, (len(values), 1))
    if scale is None:
        ok = np.isfinite(values) & (values >= 0) & (values < len(STATE_COLOURS))
        out[ok] = STATE_COLOURS[values[ok].astype(np.int64)]
        return out.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        shown = np.log10(values) if by == "K" else values
    ok = np.isfinite(shown)
    out[ok] = ramp((shown[ok] - scale.low) / (scale.high - scale.low))
    return out.astype(np.float32)
