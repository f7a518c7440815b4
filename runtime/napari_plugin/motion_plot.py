"""The ensemble plot of the "Analyze motion" widget, drawn on a matplotlib Figure (no Qt here).

Left: every segment of constant motion at (alpha, log10 K), its area proportional to its frames,
coloured as the tracks are (:mod:`~edgetrack.runtime.napari_plugin.colours`), with the ensemble states'
means as black crosses labelled by their share of the frames. Right: the share of the frames in each
diffusive state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from edgetrack.runtime.napari_plugin.colours import (
    STATE_COLOURS,
    STATE_NAMES,
    Scale,
    motion_colours,
)

__all__ = ["plot_ensemble"]


def plot_ensemble(figure: Any, result: Any, by: str, scale: Scale | None = None) -> None:
    """Draw ``result`` (an ``AnalyzeResult`` of ``edgetrack.analyze``) on ``figure``, segments coloured by ``by``
    (on ``scale``, the tracks' colour scale, so that a colour means the same value in both)."""
    figure.clear()
    scatter, bars = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    segments = result.segments
    ok = np.isfinite(segments["alpha"].to_numpy(float)) & (segments["K"].to_numpy(float) > 0)
    shown = segments[ok]
    colours = motion_colours(shown[by].to_numpy(float), by, scale)
    sizes = 6.0 + 60.0 * shown["n_frames"].to_numpy(float) / max(float(shown["n_frames"].max()), 1.0) if len(shown) else []
    scatter.scatter(shown["alpha"], np.log10(shown["K"].to_numpy(float)), s=sizes, c=colours, edgecolors="none")
    for row in result.ensemble.itertuples(index=False):
        if np.isfinite(row.alpha_mean) and row.K_mean > 0:
            scatter.plot(row.alpha_mean, np.log10(row.K_mean), "kx", markersize=9, mew=2)
            scatter.annotate(f"{100 * row.fraction:.0f}%", (row.alpha_mean, np.log10(row.K_mean)),
                             textcoords="offset points", xytext=(6, 6), fontsize=8)
    scatter.set_xlabel("alpha")
    scatter.set_ylabel(f"log10 K ({result.K_unit})")
    scatter.set_title(f"{len(shown)} segments, coloured by {by}", fontsize=9)
    states = result.frames["state"].to_numpy()
    counts = np.array([np.sum(states == s) for s in STATE_NAMES], float)
    share = counts / counts.sum() if counts.sum() > 0 else counts
    bars.bar(range(len(STATE_NAMES)), share, color=STATE_COLOURS[:, :3])
    bars.set_xticks(range(len(STATE_NAMES)), list(STATE_NAMES.values()), rotation=45, fontsize=8)
    bars.set_ylabel("share of frames")
    bars.set_ylim(0, 1)
    figure.tight_layout()
