"""Per-object features of a 3-D label stack (segmented cells), in one Numba pass over the voxels.

Every nonzero label of a (Z, Y, X) integer stack is one object (labels need not be consecutive).
Lengths are physical: each voxel is ``voxel_size = (z, y, x)`` um (or voxels when it is (1, 1, 1)),
so anisotropic stacks give true shapes. For each object :func:`frame_features_3d` returns its
centroid ``z, y, x`` (voxels, not physical: the units of the detection and tracking tables) and
:data:`CELL3D_FEATURES`:

- ``volume``: voxel count times ``vz * vy * vx``, um^3 (voxels^3 when the voxel size is 1).
- ``surface_area``: from the voxel faces between the object and anything else (another label,
  background, or the outside of the stack): ``2/3 * (n_z * vy * vx + n_y * vz * vx + n_x * vz * vy)``,
  um^2, where ``n_a`` counts the faces normal to axis ``a``. The plain face area (without the 2/3)
  overestimates a smooth surface by 3/2 on average (a staircase: a surface element of normal ``n``
  is counted as ``|n_z| + |n_y| + |n_x|`` times its area, 3/2 averaged over directions); the 2/3 is
  the Cauchy-Crofton correction for three line directions, exact on average for randomly oriented
  surfaces (within a few % of ``4 pi r^2`` for balls of radius >= 5 voxels) and 2/3 of the true area
  of a box aligned with the axes.
- ``axis_major``, ``axis_mid``, ``axis_minor``: full axis lengths, um, of the solid ellipsoid with
  the same second moments as the object: ``2 * sqrt(5 * l)`` for the eigenvalues ``l`` of the
  covariance of the voxel-centre positions in um (a solid ellipsoid of semi-axis ``a`` has variance
  ``a^2 / 5`` along it); largest first. skimage's ``axis_major_length`` is the same quantity.
- ``mean_intensity``: mean of the intensity stack over the object's voxels (image units; 0.0
  without an image).

Voxel centres are at integer coordinates, ``z`` = plane, ``y`` = row, ``x`` = column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numba
import numpy as np
import pandas as pd
from edgetrack.runtime.cells.features import check_labels
from edgetrack.runtime.errors import InputError

__all__ = [
    "CELL3D_COLUMNS",
    "CELL3D_FEATURES",
    "check_labels_3d",
    "frame_features_3d",
    "frame_features_3d_array",
    "movie_features_3d",
]

CELL3D_FEATURES: tuple[str, ...] = ("volume", "surface_area", "axis_major", "axis_mid", "axis_minor",
                                    "mean_intensity")
CELL3D_COLUMNS: tuple[str, ...] = ("frame", "label", "z", "y", "x", *CELL3D_FEATURES)

_LOOKUP_LIMIT = 1 << 24  # labels up to this use a direct lookup table; larger ones are compacted first


@numba.njit(cache=True, nogil=True)
def _index_objects(labels, lookup):
    """Give each nonzero label an object index in raster order of first appearance; ``lookup``
    (int64 (max_label + 1,), -1 filled) is set here. Returns (label per object int64 (n,), its
    first voxel int64 (n, 3))."""
    nz, ny, nx = labels.shape
    n = 0
    for k in range(nz):
        for i in range(ny):
            for j in range(nx):
                lab = labels[k, i, j]
                if lab != 0 and lookup[lab] < 0:
                    lookup[lab] = n
                    n += 1
    obj_label = np.zeros(n, np.int64)
    ref = np.full((n, 3), -1, np.int64)
    for k in range(nz):
        for i in range(ny):
            for j in range(nx):
                lab = labels[k, i, j]
                if lab != 0:
                    o = lookup[lab]
                    if ref[o, 0] < 0:
                        obj_label[o] = lab
                        ref[o, 0] = k
                        ref[o, 1] = i
                        ref[o, 2] = j
    return obj_label, ref


@numba.njit(cache=True, nogil=True)
def _voxel_pass(labels, lookup, ref, image, has_image):
    """One raster pass over the voxels: per object float64 (n, 14) sums of 1, z, y, x, zz, zy, zx, yy,
    yx, xx (voxel offsets from the object's first voxel ``ref``, so no cancellation), intensity, and
    the faces normal to z, y and x that the object shares with a different label or the outside."""
    nz, ny, nx = labels.shape
    acc = np.zeros((ref.shape[0], 14), np.float64)
    for k in range(nz):
        for i in range(ny):
            for j in range(nx):
                lab = labels[k, i, j]
                if lab == 0:
                    continue
                o = lookup[lab]
                fz = float(k - ref[o, 0])
                fy = float(i - ref[o, 1])
                fx = float(j - ref[o, 2])
                a = acc[o]
                a[0] += 1.0
                a[1] += fz
                a[2] += fy
                a[3] += fx
                a[4] += fz * fz
                a[5] += fz * fy
                a[6] += fz * fx
                a[7] += fy * fy
                a[8] += fy * fx
                a[9] += fx * fx
                if has_image:
                    a[10] += image[k, i, j]
                # the six faces of this voxel: counted where the neighbour is not the same object
                if k == 0 or labels[k - 1, i, j] != lab:
                    a[11] += 1.0
                if k == nz - 1 or labels[k + 1, i, j] != lab:
                    a[11] += 1.0
                if i == 0 or labels[k, i - 1, j] != lab:
                    a[12] += 1.0
                if i == ny - 1 or labels[k, i + 1, j] != lab:
                    a[12] += 1.0
                if j == 0 or labels[k, i, j - 1] != lab:
                    a[13] += 1.0
                if j == nx - 1 or labels[k, i, j + 1] != lab:
                    a[13] += 1.0
    return acc


def check_labels_3d(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """A 3-D (Z, Y, X), C-contiguous, non-negative integer label stack (bool becomes uint8); InputError otherwise."""
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise InputError(f"{name} must be a 3-D label stack (Z, Y, X), got {arr.ndim}-D array of shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape})")
    # the dtype, size and layout rules of 2-D label images, on the (Z * Y, X) view
    return check_labels(arr.reshape(arr.shape[0] * arr.shape[1], arr.shape[2]), name).reshape(arr.shape)


def _voxel_triple(voxel_size: Sequence[float]) -> np.ndarray:
    try:
        voxel = np.asarray(voxel_size, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"voxel_size must be three numbers (z, y, x), got {voxel_size!r}") from None
    if voxel.shape != (3,) or not np.all(np.isfinite(voxel)) or np.any(voxel <= 0):
        raise InputError(f"voxel_size must be three finite numbers > 0 (z, y, x), got {voxel_size!r}")
    return voxel


def _check_image_3d(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    img = np.asarray(image)
    if img.shape != shape:
        raise InputError(f"image has shape {img.shape}, but the labels have shape {shape}")
    if img.dtype.kind == "b":
        img = img.view(np.uint8)
    elif img.dtype.kind not in "iuf" or img.dtype == np.float16:
        raise InputError(f"image must hold integer or float values, got dtype {img.dtype}")
    if img.dtype.kind == "f" and not np.isfinite(img).all():
        raise InputError("image holds NaN or inf")
    return np.ascontiguousarray(img)


def _finish(acc: np.ndarray, ref: np.ndarray, voxel: np.ndarray, has_image: bool) -> np.ndarray:
    """Features per object from the accumulators: float64 (n, 3 + len(CELL3D_FEATURES))."""
    count = acc[:, 0]
    mean = acc[:, 1:4] / count[:, None]  # voxels, about ref
    second = np.empty((len(count), 3, 3))
    for (a, b), col in zip(((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)), range(4, 10)):
        value = acc[:, col] / count - mean[:, a] * mean[:, b]
        second[:, a, b] = second[:, b, a] = value * voxel[a] * voxel[b]
    eig = np.linalg.eigvalsh(second)[:, ::-1]  # um^2, largest first
    axes = 2.0 * np.sqrt(5.0 * np.maximum(eig, 0.0))
    faces = acc[:, 11] * voxel[1] * voxel[2] + acc[:, 12] * voxel[0] * voxel[2] + acc[:, 13] * voxel[0] * voxel[1]
    out = np.empty((len(count), 3 + len(CELL3D_FEATURES)))
    out[:, 0:3] = mean + ref
    out[:, 3] = count * float(np.prod(voxel))
    out[:, 4] = 2.0 / 3.0 * faces
    out[:, 5:8] = axes
    out[:, 8] = acc[:, 10] / count if has_image else 0.0
    return out


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels small enough for a direct lookup table: ``labels`` itself, or (for labels up to
    huge values, rare) their ranks among the distinct values with 0 kept as 0, plus the original
    label of each rank (int64; None when unchanged)."""
    if int(labels.max()) < _LOOKUP_LIMIT:
        return labels, None
    values = np.union1d(np.zeros(1, labels.dtype), np.unique(labels)).astype(np.int64)
    ranks = np.searchsorted(values, labels.ravel()).reshape(labels.shape)
    return np.ascontiguousarray(ranks, dtype=np.int64), values


def frame_features_3d_array(labels: np.ndarray, image: np.ndarray | None = None,
                            voxel_size: Sequence[float] = (1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Features of every object of one label stack as arrays.

    labels: (Z, Y, X) integer, 0 = background. image: optional (Z, Y, X) intensity. voxel_size:
    (z, y, x) um per voxel. Returns (label int64 (n,), values float64 (n, 3 + len(CELL3D_FEATURES))
    with columns ``z, y, x, *CELL3D_FEATURES``), sorted by label.
    """
    labels = check_labels_3d(labels)
    voxel = _voxel_triple(voxel_size)
    has_image = image is not None
    img = _check_image_3d(image, labels.shape) if has_image else np.zeros((1, 1, 1), np.float64)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0:
        raise InputError(f"labels must be >= 0 (0 = background), found {lo}")
    if hi == 0:
        return np.zeros(0, np.int64), np.zeros((0, 3 + len(CELL3D_FEATURES)), np.float64)
    labels, original = _compact(labels)
    lookup = np.full(int(labels.max()) + 1, -1, np.int64)
    obj_label, ref = _index_objects(labels, lookup)
    acc = _voxel_pass(labels, lookup, ref, img, has_image)
    values = _finish(acc, ref, voxel, has_image)
    if original is not None:
        obj_label = original[obj_label]
    order = np.argsort(obj_label, kind="stable")
    return obj_label[order], np.ascontiguousarray(values[order])


def _table(frame: np.ndarray, label: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    data: dict[str, np.ndarray] = {"frame": frame, "label": label}
    for j, name in enumerate(CELL3D_COLUMNS[2:]):
        data[name] = values[:, j]
    return pd.DataFrame(data, columns=list(CELL3D_COLUMNS))


def frame_features_3d(labels: np.ndarray, image: np.ndarray | None = None,
                      voxel_size: Sequence[float] = (1.0, 1.0, 1.0), frame: int = 0) -> pd.DataFrame:
    """Per-object features of one label stack: one row per nonzero label, sorted by label.

    labels: (Z, Y, X) integer (any integer dtype; 0 = background). image: optional (Z, Y, X)
    intensity for ``mean_intensity``. voxel_size: (z, y, x) um per voxel. Columns
    :data:`CELL3D_COLUMNS`: ``frame`` (= ``frame``), ``label``, ``z, y, x`` (voxels), then
    :data:`CELL3D_FEATURES` in physical units (module docstring).
    """
    label, values = frame_features_3d_array(labels, image, voxel_size)
    return _table(np.full(len(label), int(frame), np.int64), label, values)


def movie_features_3d(masks: np.ndarray | Sequence[np.ndarray] | Iterable[np.ndarray],
                      images: np.ndarray | Sequence[np.ndarray] | None = None,
                      voxel_size: Sequence[float] = (1.0, 1.0, 1.0)) -> pd.DataFrame:
    """Per-object features of every stack of a (T, Z, Y, X) label movie (frame = index in ``masks``).

    masks: (T, Z, Y, X) integer array or a sequence of (Z, Y, X) stacks; images: optional intensity
    stacks of the same count and shape. Rows of :func:`frame_features_3d`, sorted by frame then label.
    """
    stacks = list(masks)
    intensity = [None] * len(stacks) if images is None else list(images)
    if len(intensity) != len(stacks):
        raise InputError(f"{len(intensity)} image stacks for {len(stacks)} mask stacks: the counts must match")
    parts = [(np.zeros(0, np.int64), np.zeros((0, 3 + len(CELL3D_FEATURES))))]
    first = np.shape(stacks[0]) if stacks else None
    for t, (mask, image) in enumerate(zip(stacks, intensity)):
        if np.shape(mask) != first:
            raise InputError(f"mask stack {t} has shape {np.shape(mask)}, but stack 0 has {first}")
        try:
            parts.append(frame_features_3d_array(mask, image, voxel_size))
        except InputError as exc:
            raise InputError(f"stack {t}: {exc}") from None
    frames = np.repeat(np.arange(-1, len(stacks), dtype=np.int64), [len(lab) for lab, _ in parts])
    return _table(frames, np.concatenate([lab for lab, _ in parts]), np.concatenate([val for _, val in parts]))
