"""npe2 sample data: the simulated movie of ``edgetrack demo`` (File > Open Sample > edgetrack)."""

from __future__ import annotations

from edgetrack.runtime.napari_plugin.tables import LayerData

__all__ = ["DEMO", "demo_movie"]

#: The movie of ``edgetrack demo`` with its default options: frames, (H, W) px, spots per frame, SNR, seed.
DEMO = {"n_frames": 100, "shape": (512, 512), "n_spots": 500, "snr": 10.0, "seed": 0}


def demo_movie() -> list[LayerData]:
    """100 frames of 512 x 512 px with ~500 diffusing spots (SNR 10, seed 0) as an Image layer."""
    from edgetrack.runtime.simulate.spots import simulate_movie

    movie, _ = simulate_movie(**DEMO)
    return [(movie, {"name": "edgetrack demo movie"}, "image")]
