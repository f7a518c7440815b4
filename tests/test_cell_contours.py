"""Contour (boundary) maps: cutting masks and labels where a boundary runs (runtime/cells/contours.py), and the
segment chooser with a contour map (runtime/cells/hypotheses.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from edgetrack.runtime.cells.contours import contour_scale, contours_from_labels, cut_by_contours
from edgetrack.runtime.cells.fragments import relabel_masks
from edgetrack.runtime.cells.hypotheses import SegmentChooser
from edgetrack.runtime.cells.tracker import CellTracker
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.io.masks import ctc_result
from edgetrack.runtime.metrics.ctc import ctc_scores

SHAPE = (60, 100)


def _two_touching_cells():
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    a = (yy - 30) ** 2 + (xx - 30) ** 2 <= 400
    b = ((yy - 30) ** 2 + (xx - 68) ** 2 <= 400) & ~a
    labels = np.zeros(SHAPE, np.int32)
    labels[a], labels[b] = 1, 2
    return a, b, labels


def test_a_mask_is_cut_where_a_boundary_runs_and_only_there():
    a, b, labels = _two_touching_cells()
    fg, contours = contours_from_labels([labels])
    assert fg.dtype == np.float32 and set(np.unique(fg)) == {0.0, 1.0}
    cut = cut_by_contours(fg > 0.5, contours, 0.5)
    assert cut.max() == 2 and len(np.unique(cut[a])) == 1 and len(np.unique(cut[b])) == 1
    assert cut[a][0] != cut[b][0] and ((cut > 0) == (a | b)).all()  # every mask pixel in one piece
    assert cut_by_contours(fg > 0.5, contours, 1.0).max() == 1  # no boundary is stronger than 1
    assert cut_by_contours(fg > 0.5, np.zeros(SHAPE, np.float32), 0.5).max() == 1
    assert cut_by_contours(np.zeros(SHAPE, bool), contours, 0.5).max() == 0


def test_a_merged_label_is_cut_but_a_piece_never_crosses_into_another_label():
    a, b, labels = _two_touching_cells()
    _, contours = contours_from_labels([labels])
    merged = (a | b).astype(np.int32)
    pieces = cut_by_contours(merged, contours, 0.5)
    assert pieces.max() == 2 and pieces[a][0] != pieces[b][0]
    # two labels with no boundary drawn between them stay two pieces: the labels' own border holds
    assert cut_by_contours(labels, np.zeros(SHAPE, np.float32), 0.5).max() == 2
    # a region that is boundary everywhere is one piece of its own, not lost
    ring = np.ones(SHAPE, np.float32)
    assert cut_by_contours(labels, ring, 0.5).max() == 2


def test_contours_from_several_segmentations_weigh_the_boundaries_they_agree_on():
    a, b, labels = _two_touching_cells()
    whole = (a | b).astype(np.int32)
    fg, contours = contours_from_labels([labels, labels, whole])
    seam = contours[30, 49:51].max()  # the boundary between the two cells: drawn by 2 of the 3
    assert seam == pytest.approx(2 / 3)
    assert contours[30, 30] == 0.0 and fg[30, 30] == 1.0 and fg[0, 0] == 0.0
    assert cut_by_contours(fg > 0.5, contours, 0.5).max() == 2
    assert cut_by_contours(fg > 0.5, contours, 0.7).max() == 1
    with pytest.raises(InputError, match="one shape"):
        contours_from_labels([labels, labels[:10]])
    with pytest.raises(InputError, match="integers"):
        contours_from_labels([labels.astype(float)])
    with pytest.raises(InputError, match="at least one"):
        contours_from_labels([])


def test_contour_scale_keeps_a_probability_and_scales_any_other_map():
    p = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    assert contour_scale(p) is not None and np.array_equal(contour_scale(p), p)
    g = np.random.default_rng(0).normal(100.0, 20.0, (128, 128))  # a gradient magnitude, say, in counts
    s = contour_scale(g)
    assert s.dtype == np.float32 and s.min() == 0.0 and s.max() == 1.0
    assert 0.003 < (s == 1.0).mean() < 0.02 and 0.003 < (s == 0.0).mean() < 0.03  # the percentiles, clipped
    order = np.argsort(g.ravel())
    assert (np.diff(s.ravel()[order]) >= 0).all()  # the order of the values is kept
    assert not contour_scale(np.full((4, 4), 7.0)).any()


def test_the_chooser_splits_a_merge_where_the_frame_before_had_two_cells():
    a, b, labels = _two_touching_cells()
    fg = np.where(a | b, 0.9, 0.0)
    _, contours = contours_from_labels([labels])
    chooser = SegmentChooser()
    chooser.push(labels, fg, contours)
    merged = (a | b).astype(np.int32)
    without = SegmentChooser()
    without.push(labels, fg)
    assert without.push(merged, fg).max() == 1  # without a boundary map the merge stays
    out = chooser.push(merged, fg, contours)
    assert out.max() == 2 and out[a][0] != out[b][0]
    with pytest.raises(InputError, match="contours"):
        chooser.push(merged, fg, contours[:10])
    with pytest.raises(InputError, match="finite"):
        chooser.push(merged, fg, np.full(SHAPE, np.nan))
    with pytest.raises(ConfigError, match="contour_level"):
        SegmentChooser(contour_level=1.5)
    with pytest.raises(ConfigError, match="foreground"):
        CellTracker().push(labels, None, contours=contours)


def _tra(sim, contours_of):
    tracker = CellTracker(hypotheses={"sigma": 1.0})
    chosen = []
    for t, (m, im) in enumerate(zip(sim.masks, sim.images)):
        tracker.push(m, im, foreground=im, contours=None if contours_of is None else contours_of(t))
        chosen.append(tracker.chosen_labels)
    tracks = tracker.finish()
    res, lineage = ctc_result(tracks, relabel_masks(np.stack(chosen), tracker.merged_labels))
    return ctc_scores(sim.true_masks, sim.lineage, res, lineage)["TRA"]


def test_a_boundary_map_undoes_simulated_merges_and_a_noise_map_does_little_harm():
    from edgetrack.training.cells import simulate_cells

    sim = simulate_cells(seed=1, shape=(256, 256), n_frames=30, n_cells=20, merge_rate=0.1, split_rate=0.05)
    rng = np.random.default_rng(1)

    def network_like(t):  # what a boundary network gives: the true boundaries, blurred, with noise
        _, edge = contours_from_labels([sim.true_masks[t]])
        return np.clip(ndi.gaussian_filter(edge, 1.0) * 2 + rng.normal(0, 0.1, edge.shape), 0, 1)

    def noise(t):
        return np.clip(ndi.gaussian_filter(rng.random(sim.masks[t].shape), 1.0) * 2 - 0.5, 0, 1)

    plain = _tra(sim, None)
    assert _tra(sim, network_like) > plain + 0.015  # 0.978 against 0.945 when written
    assert _tra(sim, noise) > plain - 0.08  # 0.903: a map that knows nothing does not wreck the tracking


def test_track_masks_with_contours_from_the_command_line(tmp_path):
    import tifffile

    from edgetrack.runtime.cli.app import main
    from edgetrack.training.cells import simulate_cells

    sim = simulate_cells(seed=3, shape=(128, 128), n_frames=6, n_cells=8, merge_rate=0.2)
    edges = np.stack([contours_from_labels([m])[1] for m in sim.true_masks])
    tifffile.imwrite(tmp_path / "masks.tif", sim.masks)
    tifffile.imwrite(tmp_path / "raw.tif", sim.images)
    tifffile.imwrite(tmp_path / "edges.tif", edges)
    base = ["track", "--masks", str(tmp_path / "masks.tif"), "--quiet", "--out", str(tmp_path / "t.csv")]
    assert main([*base, "--contours", str(tmp_path / "edges.tif")]) == 2  # needs --foreground
    assert main([*base, "--foreground", str(tmp_path / "raw.tif"), "--contours", str(tmp_path / "masks.tif"),
                 "--contour-level", "2"]) == 2
    tifffile.imwrite(tmp_path / "short.tif", edges[:2])
    assert main([*base, "--foreground", str(tmp_path / "raw.tif"), "--contours", str(tmp_path / "short.tif")]) == 2
    assert main([*base, "--foreground", str(tmp_path / "raw.tif"), "--foreground-sigma", "1",
                 "--contours", str(tmp_path / "edges.tif")]) == 0
    with_contours = pd.read_csv(tmp_path / "t.csv")
    assert main([*base, "--foreground", str(tmp_path / "raw.tif"), "--foreground-sigma", "1"]) == 0
    without = pd.read_csv(tmp_path / "t.csv")
    # merged objects come apart with the boundary map: more objects are tracked
    assert len(with_contours) > len(without)
