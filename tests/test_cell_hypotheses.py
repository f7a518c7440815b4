"""Choosing among the user's labels and a foreground map's coarser objects (runtime/cells/hypotheses.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.cells.fragments import relabel_masks
from edgetrack.runtime.cells.hypotheses import SegmentChooser, hierarchy_levels
from edgetrack.runtime.cells.tracker import CellTracker
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.io.masks import ctc_result
from edgetrack.runtime.metrics.ctc import ctc_scores


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


SHAPE = (80, 120)


def _scene():
    """Two bright cells side by side and one dim cell; a probability-like map of them."""
    a, b, dim = _disc(SHAPE, 40, 30, 10), _disc(SHAPE, 40, 70, 10), _disc(SHAPE, 40, 100, 8)
    fg = np.zeros(SHAPE)
    fg[a | b] = 0.9
    fg[dim] = 0.35  # under 0.5 (the labels' level), above 0.6 * 0.5
    fg[38:43, 40:61] = 0.45  # a bridge: at the lower levels the two bright cells are one component
    labels = np.zeros(SHAPE, np.int32)
    labels[a], labels[b] = 1, 2
    return a, b, dim, fg, labels


def test_fragments_of_a_whole_cell_are_chosen_whole_and_missed_cells_added():
    a, b, dim, fg, labels = _scene()
    chooser = SegmentChooser()
    first = chooser.push(labels, fg)
    assert len(np.unique(first)) - 1 == 3  # the two cells as labelled, and the dim one found in the map
    assert (first[dim] > 0).all() and len(np.unique(first[a])) == 1 and np.unique(first[a]) != np.unique(first[b])
    assert chooser.counts[-1] == {"kept": 2, "coarser": 0, "added": 1}
    cut = labels.copy()
    cut[a & (np.arange(SHAPE[1])[None, :] >= 30)] = 3  # the segmenter cuts cell a in two
    apart = fg.copy()
    apart[~(a | b | dim)] = 0.0  # no bridge: cell a alone is one object of the map's lower levels
    second = chooser.push(cut, apart)
    assert len(np.unique(second[a])) == 1 and second[a][0] > 0  # one object again, as in the frame before
    assert len(np.unique(second)) - 1 == 3


def test_cells_merged_at_a_lower_level_stay_split_and_user_objects_are_never_dropped():
    a, b, dim, fg, labels = _scene()
    chooser = SegmentChooser()
    chooser.push(labels, fg)
    small = labels.copy()
    small[_disc(SHAPE, 10, 10, 4)] = 7  # a small object (a fresh daughter), far below the median area
    out = chooser.push(small, fg)
    assert len(np.unique(out[a | b])) == 2  # not the merged blob of the lower levels
    assert (out[_disc(SHAPE, 10, 10, 4)] > 0).all()


def test_a_probability_map_uses_one_half_and_an_intensity_map_its_li_threshold():
    fg = np.zeros((40, 40))
    fg[10:20, 10:20] = 0.45
    assert hierarchy_levels(fg, [0.8])[0].max() == 1  # 0.45 > 0.4
    assert hierarchy_levels(fg, [0.95])[0].max() == 0
    rng = np.random.default_rng(0)
    img = rng.normal(100, 3, (64, 64))
    img[20:40, 20:40] += 200
    assert hierarchy_levels(img, [0.8])[0].max() >= 1


def test_bad_inputs_and_options_are_named():
    a, b, dim, fg, labels = _scene()
    with pytest.raises(InputError, match="one shape"):
        SegmentChooser().push(labels, fg[:10])
    with pytest.raises(InputError, match="non-negative"):
        SegmentChooser().push(-labels, fg)
    bad = fg.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        SegmentChooser().push(labels, bad)
    with pytest.raises(ConfigError, match="decreasing"):
        SegmentChooser(levels=(0.6, 0.8))
    with pytest.raises(ConfigError, match="sigma"):
        SegmentChooser(sigma=-1.0)
    with pytest.raises(ConfigError, match="hypotheses"):
        CellTracker(hypotheses={"bogus": 1})
    with pytest.raises(ConfigError, match="2-D"):
        CellTracker(ndim=3, hypotheses={})


@pytest.mark.parametrize("seed", [1, 2])
def test_choosing_with_the_raw_frames_raises_tra_on_simulated_segmentation_errors(seed):
    from edgetrack.training.cells import simulate_cells

    sim = simulate_cells(seed=seed, shape=(256, 256), n_frames=30, n_cells=20)
    tra = {}
    for use in (False, True):
        tracker = CellTracker(hypotheses={"sigma": 1.0} if use else None)
        chosen = []
        for m, im in zip(sim.masks, sim.images):
            tracker.push(m, im, foreground=im if use else None)
            chosen.append(tracker.chosen_labels)
        tracks = tracker.finish()
        res, lineage = ctc_result(tracks, relabel_masks(np.stack(chosen), tracker.merged_labels))
        tra[use] = ctc_scores(sim.true_masks, sim.lineage, res, lineage)["TRA"]
    assert tra[True] > tra[False] + 0.005, tra


def test_track_masks_with_foreground_from_the_command_line(tmp_path):
    import tifffile

    from edgetrack.runtime.cli.app import main
    from edgetrack.runtime.io.masks import read_ctc_result
    from edgetrack.training.cells import simulate_cells

    sim = simulate_cells(seed=3, shape=(128, 128), n_frames=8, n_cells=8)
    tifffile.imwrite(tmp_path / "masks.tif", sim.masks)
    tifffile.imwrite(tmp_path / "raw.tif", sim.images)
    out = tmp_path / "RES"
    assert main(["track", "--masks", str(tmp_path / "masks.tif"), "--images", str(tmp_path / "raw.tif"),
                 "--foreground", str(tmp_path / "raw.tif"), "--foreground-sigma", "1", "--format", "ctc",
                 "--out", str(out), "--quiet"]) == 0
    masks, lineage = read_ctc_result(out)
    assert len(masks) == 8 and len(lineage) > 0
    # the written masks are the chosen objects, tracked: each frame's labels are tracks of the lineage
    for t in range(8):
        ids = set(np.unique(np.asarray(masks[t]))) - {0}
        alive = set(lineage[(lineage["start"] <= t) & (lineage["end"] >= t)]["label"])
        assert ids == alive
    tifffile.imwrite(tmp_path / "short.tif", sim.images[:3])
    assert main(["track", "--masks", str(tmp_path / "masks.tif"), "--foreground", str(tmp_path / "short.tif"),
                 "--out", str(tmp_path / "t.csv"), "--quiet"]) == 2
    assert main(["track", "--masks", str(tmp_path / "masks.tif"), "--foreground", str(tmp_path / "raw.tif"),
                 "--out", str(tmp_path / "t.csv"), "--quiet"]) == 0
    assert len(pd.read_csv(tmp_path / "t.csv"))


def test_li_threshold_agrees_with_scikit_image():
    filters = pytest.importorskip("skimage.filters")
    from edgetrack.runtime.cells.hypotheses import li_threshold

    rng = np.random.default_rng(0)
    for k in range(4):
        img = rng.normal(100, 5, (200, 200))
        img[50:120, 60:150] += 30 + 90 * k
        ref = float(filters.threshold_li(img))
        assert li_threshold(img) == pytest.approx(ref, rel=0.01)
