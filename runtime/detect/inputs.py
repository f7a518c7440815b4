"""The checks every detector makes on its input image, in 2-D (a frame) and 3-D (a z-stack)."""

from __future__ import annotations

import numpy as np

from edgetrack.runtime.errors import InputError

__all__ = ["checked_image"]


def checked_image(image: object, axes: str, name: str, element: str, dims: str, *,
                  float16: bool = True) -> np.ndarray:
    """``image`` as an ndarray (not converted) when it has ``len(axes)`` dimensions, is non-empty and holds
    finite integers or floats (float64 within the float32 range; float16 only with ``float16``); else InputError
    naming the problem. axes: the axis letters (``"yx"``, ``"zyx"``) for the first bad position; name:
    what the image is ("frame", "z-stack"); element: "pixel" or "voxel"; dims: the axes in words
    ("rows, columns")."""
    arr = image if isinstance(image, np.ndarray) else np.asarray(image)
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name} must hold integer or float {element}s, got dtype {arr.dtype}")
    if arr.dtype == np.float16 and not float16:
        raise InputError(f"{name} must hold integer or float {element}s (float16 not supported), got dtype {arr.dtype}")
    if arr.ndim != len(axes):
        raise InputError(f"{name} must be {len(axes)}-D ({dims}), got {arr.ndim}-D array of shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype.kind == "f":
        # Finite extremes prove every value finite (min and max propagate NaN; an inf is one of them):
        # two fast reductions, and the pixel-by-pixel search only when they are not.
        if not (np.isfinite(arr.min()) and np.isfinite(arr.max())):
            bad = np.flatnonzero(~np.isfinite(arr.ravel()))
            if bad.size:
                where = ", ".join(f"{a}={int(v)}" for a, v in zip(axes, np.unravel_index(int(bad[0]), arr.shape)))
                raise InputError(f"{name} has {bad.size} non-finite {element}(s) (NaN or inf); first at ({where})")
        if arr.dtype.itemsize > 4 and float(np.abs(arr).max()) > float(np.finfo(np.float32).max):
            raise InputError(f"{name} has values outside the float32 range (|value| > 3.4e38)")
    return arr
