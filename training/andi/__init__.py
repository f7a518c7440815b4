"""Trajectory simulators of the AnDi challenges (training data for motion characterisation).

* :mod:`.fbm`: exact fractional Gaussian noise / Brownian motion (Davies-Harte), batched.
* :mod:`.models`: the five phenomenological models of the 2nd AnDi Challenge with per-frame
  ground truth (alpha, K, diffusive state), vectorised over particles and experiments.
* :mod:`.challenge`: experiments as in the challenge (random defaults, field of view, label
  filter, localisation noise, change points, ensemble labels).
* :mod:`.theory`: FBM, SBM, CTRW, ATTM and Levy walks with their anomalous exponent.

Units: px, frames, K in px^2/frame^alpha with per-coordinate MSD ``2 K t^alpha``.
Scores are in :mod:`edgetrack.runtime.metrics.motion`.
"""

from __future__ import annotations

from .challenge import (
    PHENOM_MODELS,
    ChallengeData,
    challenge_config,
    challenge_dataset,
    crop_to_fov,
    ensemble_labels,
    label_filter,
)
from .fbm import fgn, fgn_autocovariance, fgn_segments
from .models import (
    Confinement,
    Dimerization,
    ImmobileTraps,
    MultiState,
    SingleState,
    Trajectories,
    sample_truncated_normal,
    simulate,
)
from .theory import THEORY_MODELS, simulate_theory, theory_dataset

__all__ = [
    "PHENOM_MODELS",
    "THEORY_MODELS",
    "ChallengeData",
    "Confinement",
    "Dimerization",
    "ImmobileTraps",
    "MultiState",
    "SingleState",
    "Trajectories",
    "challenge_config",
    "challenge_dataset",
    "crop_to_fov",
    "ensemble_labels",
    "fgn",
    "fgn_autocovariance",
    "fgn_segments",
    "label_filter",
    "sample_truncated_normal",
    "simulate",
    "simulate_theory",
    "theory_dataset",
]
