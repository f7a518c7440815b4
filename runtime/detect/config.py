"""The spot detector's options: one typed, validated configuration (lengths in px, intensities in counts)."""

from __future__ import annotations

import dataclasses
import math

from edgetrack.runtime.config import StageConfig, is_int, is_real, require

__all__ = ["DetectConfig"]


@dataclasses.dataclass(frozen=True)
class DetectConfig(StageConfig):
    """Options of the spot detector. Lengths in px, intensities in counts of the input frame.

    psf_sigma: expected Gaussian sigma of a spot (px); sets the smoothing, the refinement
        weight and the default window sizes.
    threshold: absolute threshold on the band-passed image (counts); ``None`` uses
        ``snr_threshold`` times the noise estimated on each frame.
    snr_threshold: multiples of the robust noise std of the band-passed image. The default
        4.5 gives ~0.3 false spots per 512x512 frame of pure noise (4.0: ~5, 5.0: ~0) and
        finds 84% of the spots at SNR 3 (4.0: 90%, 5.0: 74%); see benchmarks/bench_detect.py.
    min_separation: radius (px) of the disc in which a maximum must be the largest;
        ``None`` = ``2 * psf_sigma``.
    min_mass: spots with a smaller mass (counts) are dropped (the default 0 drops spots whose
        background-subtracted mass came out negative).
    max_spots: keep only the ``max_spots`` spots with the largest mass (``None``: all).
    background_radius: half-width b (px) of the (2b+1)^2 box whose mean is the local
        background of the band-pass; ``None`` = ``ceil(4 * psf_sigma)``.
    mass_radius: radius (px) of the disc summed for the mass; ``None`` = ``3 * psf_sigma``.
    fit_radius: half-width (px, rounded up) of the square window of the position fit;
        ``None`` = ``2 * psf_sigma``.
    refine_iterations: maximum Newton steps per spot fit (it stops earlier once a step is
        below 0.005 px in y and x).
    deblend_sweeps: 0: each spot is fitted once (brightest first, with those already fitted
        subtracted). >= 1: crowded spots (another within 5 psf_sigma) get one refit against all
        the others, the residual (image minus the fitted spots) is searched for spots hidden
        next to brighter ones or merged into one blob, and then up to this many Gauss-Seidel
        sweeps refit what moved (the two halves of a split blob jointly).
    min_amplitude_fraction: a spot is dropped when its fitted peak amplitude would give less
        than this fraction of the threshold in the band-passed image.
    """

    psf_sigma: float = 1.5
    threshold: float | None = None
    snr_threshold: float = 4.5
    min_separation: float | None = None
    min_mass: float = 0.0
    max_spots: int | None = None
    background_radius: float | None = None
    mass_radius: float | None = None
    fit_radius: float | None = None
    refine_iterations: int = 10
    deblend_sweeps: int = 5
    min_amplitude_fraction: float = 0.5

    def validate(self) -> None:
        require(_finite(self.psf_sigma) and 0.3 <= self.psf_sigma <= 50.0,
                f"psf_sigma must be in [0.3, 50] px, got {self.psf_sigma!r}")
        require(self.threshold is None or _finite(self.threshold),
                f"threshold must be a finite number or None, got {self.threshold!r}")
        require(_finite(self.snr_threshold) and self.snr_threshold > 0.0,
                f"snr_threshold must be > 0, got {self.snr_threshold!r}")
        require(self.min_separation is None or (_finite(self.min_separation) and self.min_separation >= 1.0),
                f"min_separation must be >= 1 px or None, got {self.min_separation!r}")
        require(_finite(self.min_mass), f"min_mass must be a finite number, got {self.min_mass!r}")
        require(self.max_spots is None or (is_int(self.max_spots) and self.max_spots >= 0),
                f"max_spots must be a non-negative integer or None, got {self.max_spots!r}")
        require(self.background_radius is None
                or (_finite(self.background_radius) and self.background_radius >= 1.0),
                f"background_radius must be >= 1 px or None, got {self.background_radius!r}")
        require(self.mass_radius is None or (_finite(self.mass_radius) and self.mass_radius > 0.0),
                f"mass_radius must be > 0 px or None, got {self.mass_radius!r}")
        require(self.fit_radius is None or (_finite(self.fit_radius) and 1.0 <= self.fit_radius <= 100.0),
                f"fit_radius must be in [1, 100] px or None, got {self.fit_radius!r}")
        require(is_int(self.refine_iterations) and 0 <= self.refine_iterations <= 100,
                f"refine_iterations must be an integer in [0, 100], got {self.refine_iterations!r}")
        require(is_int(self.deblend_sweeps) and 0 <= self.deblend_sweeps <= 20,
                f"deblend_sweeps must be an integer in [0, 20], got {self.deblend_sweeps!r}")
        require(_finite(self.min_amplitude_fraction) and 0.0 <= self.min_amplitude_fraction <= 10.0,
                f"min_amplitude_fraction must be in [0, 10], got {self.min_amplitude_fraction!r}")





def _finite(value: object) -> bool:
    return is_real(value) and math.isfinite(float(value))
