"""Per-object features of label images, checked against scikit-image's regionprops."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from skimage.draw import disk
from skimage.measure import regionprops
from skimage.morphology import convex_hull_image
from skimage.segmentation import expand_labels

from edgetrack.runtime.cells.features import CELL_FEATURES, frame_features, movie_features
from edgetrack.runtime.errors import InputError


def random_labels(shape=(90, 110), n=25, grow=6, seed=0, holes=0.02) -> np.ndarray:
    """Voronoi-like cells with non-consecutive labels and scattered background holes."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.int32)
    labels = rng.choice(np.arange(1, 20 * n), n, replace=False)
    image[rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)] = labels
    image = expand_labels(image, grow)
    image[rng.random(shape) < holes] = 0
    return image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_features_match_regionprops(seed):
    labels = random_labels(seed=seed)
    rng = np.random.default_rng(seed + 10)
    intensity = rng.random(labels.shape) * 100
    table = frame_features(labels, intensity, frame=7)
    assert list(table.columns) == ["frame", "label", "y", "x", *CELL_FEATURES]
    props = regionprops(labels, intensity_image=intensity)
    assert table["label"].tolist() == [p.label for p in props]  # sorted by label, one row each
    assert (table["frame"] == 7).all()
    for p, row in zip(props, table.itertuples(index=False)):
        assert row.area == p.area
        np.testing.assert_allclose([row.y, row.x], p.centroid, rtol=0, atol=1e-9)
        it = p.inertia_tensor  # [[xx, -xy], [-xy, yy]]
        np.testing.assert_allclose([row.inertia_yy, row.inertia_xy, row.inertia_xx], [it[1, 1], -it[0, 1], it[0, 0]],
                                   rtol=1e-9, atol=1e-9)
        assert row.eccentricity == pytest.approx(p.eccentricity, abs=1e-6)
        assert row.perimeter == pytest.approx(p.perimeter_crofton, rel=1e-9)
        assert row.mean_intensity == pytest.approx(p.intensity_mean, rel=1e-9)
        # solidity: pixels whose centres lie in the hull of the pixel centres
        if p.area >= 3 and min(p.image.shape) > 1:
            hull = convex_hull_image(p.image, offset_coordinates=False, include_borders=True)
            assert row.solidity == pytest.approx(p.area / hull.sum(), rel=1e-12)


@pytest.mark.parametrize("radius", [5, 8, 12, 20, 40])
def test_perimeter_of_discs(radius):
    labels = np.zeros((100, 100), np.uint16)
    rr, cc = disk((49.6, 50.3), radius, shape=labels.shape)
    labels[rr, cc] = 3
    row = frame_features(labels).iloc[0]
    p = regionprops(labels)[0]
    assert row.perimeter == pytest.approx(2 * math.pi * radius, rel=0.015)
    assert row.perimeter == pytest.approx(p.perimeter, rel=0.05)
    assert row.solidity == 1.0  # a digital disc is digitally convex
    assert row.eccentricity < 0.3


def test_small_and_degenerate_objects():
    labels = np.zeros((12, 14), np.uint8)
    labels[2, 3] = 5  # a single pixel
    labels[5, 2:9] = 9  # a horizontal line of 7 px
    labels[7:11, 10:13] = 200  # a 4 x 3 rectangle
    labels[0:3, 11:14] = 4  # a U shape touching the border (middle of its top edge removed)
    labels[0, 12] = 0
    table = frame_features(labels).set_index("label")
    assert table.index.tolist() == [4, 5, 9, 200]
    single = table.loc[5]
    assert (single.area, single.y, single.x, single.solidity, single.eccentricity) == (1, 2, 3, 1.0, 0.0)
    # a single pixel: 2 transitions along every direction
    assert single.perimeter == pytest.approx(math.pi / 8 * (2 + 2 + (2 + 2) / math.sqrt(2)))
    line = table.loc[9]
    assert line.solidity == 1.0 and line.eccentricity == pytest.approx(1.0) and line.inertia_yy == 0.0
    assert line.inertia_xx == pytest.approx(np.var(np.arange(7)))
    rect = table.loc[200]
    assert rect.solidity == 1.0 and (rect.y, rect.x) == (8.5, 11.0)
    ell = table.loc[4]
    assert ell.area == 8 and ell.solidity == pytest.approx(8 / 9)


def test_labels_of_any_integer_dtype_and_huge_values():
    labels = random_labels(seed=4)
    base = frame_features(labels)
    for dtype in (np.uint16, np.int64, np.uint32, np.uint64):
        pd.testing.assert_frame_equal(frame_features(labels.astype(dtype)), base)
    huge = labels.astype(np.int64) * 10_000_000_000  # beyond the lookup table: compacted first
    table = frame_features(huge)
    assert table["label"].tolist() == (base["label"] * 10_000_000_000).tolist()
    pd.testing.assert_frame_equal(table.drop(columns="label"), base.drop(columns="label"))
    mask = frame_features(labels > 0)  # a boolean mask is one object, label 1
    assert mask["label"].tolist() == [1] and mask["area"].iloc[0] == (labels > 0).sum()


def test_integer_image_and_empty_frame():
    labels = random_labels(seed=5)
    image = (np.arange(labels.size).reshape(labels.shape) % 251).astype(np.uint8)
    a = frame_features(labels, image)
    b = frame_features(labels, image.astype(np.float64))
    np.testing.assert_allclose(a["mean_intensity"], b["mean_intensity"])
    assert (frame_features(labels)["mean_intensity"] == 0.0).all()
    empty = frame_features(np.zeros((5, 6), np.uint16), frame=3)
    assert len(empty) == 0 and list(empty.columns) == ["frame", "label", "y", "x", *CELL_FEATURES]


def test_bad_input_is_named():
    with pytest.raises(InputError, match="2-D"):
        frame_features(np.zeros((2, 3, 4), np.uint16))
    with pytest.raises(InputError, match="integer labels"):
        frame_features(np.zeros((3, 4), np.float32))
    with pytest.raises(InputError, match=">= 0"):
        frame_features(-np.ones((3, 4), np.int32))
    with pytest.raises(InputError, match="shape"):
        frame_features(np.ones((3, 4), np.int32), np.ones((4, 3)))
    with pytest.raises(InputError, match="NaN"):
        frame_features(np.ones((3, 4), np.int32), np.full((3, 4), np.nan))
    with pytest.raises(InputError, match="frame 1"):
        movie_features([np.ones((3, 4), np.int32), np.ones((4, 4), np.int32)])
    with pytest.raises(InputError, match="counts must match"):
        movie_features(np.ones((2, 3, 4), np.int32), images=np.ones((3, 3, 4)))


def test_movie_features_concatenates_frames():
    masks = np.stack([random_labels(seed=s) for s in range(3)])
    images = np.random.default_rng(0).random(masks.shape)
    table = movie_features(masks, images)
    parts = [frame_features(masks[t], images[t], frame=t) for t in range(3)]
    pd.testing.assert_frame_equal(table, pd.concat(parts, ignore_index=True))
    assert movie_features(list(masks)).shape[0] == table.shape[0]  # a sequence of frames works too
    assert len(movie_features(np.zeros((0, 4, 4), np.uint16))) == 0
