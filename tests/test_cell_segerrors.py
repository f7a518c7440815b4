"""Segmentation errors handled by the cell tracker: fragments, flickers, false and true divisions."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from edgetrack.runtime.cells.divisions import check_divisions, division_consistent
from edgetrack.runtime.cells.features import frame_features
from edgetrack.runtime.cells.fragments import relabel_masks, union_values
from edgetrack.runtime.cells.tracker import CellTracker, track_cells
from edgetrack.runtime.errors import ConfigError

SHAPE = (80, 120)


def paint(frames: list[list[tuple[float, float, float, int]]]) -> np.ndarray:
    """Masks (T, 80, 120) uint16 from per-frame lists of discs (y, x, radius, label)."""
    masks = np.zeros((len(frames), *SHAPE), np.uint16)
    for t, discs in enumerate(frames):
        for y, x, r, label in discs:
            rr, cc = disk((y, x), r, shape=SHAPE)
            masks[t, rr, cc] = label
    return masks


def run(masks: np.ndarray, **options):
    tracker = CellTracker(linker="greedy", max_distance=20.0, max_gap=2, **options)
    for m in masks:
        tracker.push(m)
    return tracker.finish(), tracker


def fragment_scene() -> np.ndarray:
    """One cell (r 9 px, moving right 2 px/frame) cut in two halves (labels 5 and 6) in frame 3."""
    frames = [[(40.0, 30.0 + 2 * t, 9.0, 1)] for t in range(7)]
    masks = paint(frames)
    cut = masks[3].copy()
    cols = np.arange(SHAPE[1])[None, :].repeat(SHAPE[0], 0)
    masks[3][(cut == 1) & (cols < 36)] = 5
    masks[3][(cut == 1) & (cols >= 36)] = 6
    return masks


def test_fragments_are_merged_into_one_object():
    masks = fragment_scene()
    raw, _ = run(masks, merge_fragments=False, check_divisions=False)
    assert (raw.frame == 3).sum() == 2 and raw.track_id.nunique() > 1  # the error shows without the handling
    tracks, tracker = run(masks)
    assert (tracks.frame == 3).sum() == 1 and tracks.track_id.nunique() == 1 and (tracks.parent_track_id == -1).all()
    merged = tracker.merged_labels
    assert merged.values.tolist() in ([[3, 5, 6]], [[3, 6, 5]])
    row = tracks[tracks.frame == 3].iloc[0]
    whole = frame_features(paint([[(40.0, 36.0, 9.0, 1)]])[0]).iloc[0]
    assert row.area == whole.area and abs(row.y - whole.y) < 1e-9 and abs(row.x - whole.x) < 1e-9
    assert row.inertia_xx == pytest.approx(whole.inertia_xx) and row.inertia_yy == pytest.approx(whole.inertia_yy)
    fixed = relabel_masks(masks, merged)
    assert set(np.unique(fixed[3])) == {0, int(merged["into"].iloc[0])}
    np.testing.assert_array_equal(fixed[2], masks[2])


def test_flicker_is_dropped_only_when_asked():
    frames = [[(40.0, 30.0 + 2 * t, 8.0, 1)] for t in range(6)]
    frames[2].append((10.0, 100.0, 4.0, 9))  # a one-frame object, nothing near it before or after
    masks = paint(frames)
    kept, _ = run(masks)
    assert ((kept.frame == 2) & (kept.label == 9)).sum() == 1  # default: kept (a real cell seen once counts)
    dropped, _ = run(masks, min_track_length=2)
    assert ((dropped.frame == 2) & (dropped.label == 9)).sum() == 0 and len(dropped) == 6


def false_division_scene() -> np.ndarray:
    """Cell A (r 8) moves right; from frame 3 a neighbour N (r 8) appears 13 px below A and stays."""
    frames = []
    for t in range(8):
        discs = [(35.0, 30.0 + t, 8.0, 1)]
        if t >= 3:
            discs.append((48.0, 33.0 + t, 8.0, 2))
        frames.append(discs)
    return paint(frames)


def true_division_scene() -> np.ndarray:
    """Mother (r 9) divides after frame 3 into two daughters (r 6.4, half her area) 7 px either side."""
    frames = []
    for t in range(9):
        if t <= 3:
            frames.append([(40.0, 40.0 + t, 9.0, 1)])
        else:
            s = 7.0 + (t - 4)
            frames.append([(40.0 - s, 43.0 + t - 3, 6.4, 3), (40.0 + s, 43.0 + t - 3, 6.4, 4)])
    return paint(frames)


def test_false_division_is_cut_true_division_kept():
    raw, _ = run(false_division_scene(), check_divisions=False)
    assert (raw.parent_track_id >= 0).sum() == 2  # the linker makes A divide into A and N
    tracks, _ = run(false_division_scene())
    assert (tracks.parent_track_id >= 0).sum() == 0
    a = tracks[tracks.label == 1]
    assert a.track_id.nunique() == 1 and len(a) == 8  # A keeps one track through the cut
    divided, _ = run(true_division_scene())
    assert (divided.parent_track_id >= 0).sum() == 2
    assert divided[divided.parent_track_id >= 0].frame.tolist() == [4, 4]


def test_brief_daughter_is_cut():
    # the second "daughter" lives one frame (a piece that vanishes): not a division
    masks = true_division_scene()
    masks[5:][masks[5:] == 4] = 0
    raw, _ = run(masks, check_divisions=False)
    assert (raw.parent_track_id >= 0).sum() == 2
    tracks, _ = run(masks)
    assert (tracks.parent_track_id >= 0).sum() == 0


def test_division_rules_on_rows():
    def row(y, x, area):
        r = np.zeros(11)
        r[0], r[1], r[3] = y, x, area
        return r

    mother = row(0.0, 0.0, 400.0)
    assert division_consistent(mother, row(-6.0, 0.0, 200.0), row(6.0, 0.0, 190.0))
    assert not division_consistent(mother, row(-6.0, 0.0, 200.0), row(6.0, 0.0, 50.0))  # sizes differ
    assert not division_consistent(mother, row(-6.0, 0.0, 200.0), row(-6.0, 3.0, 200.0))  # same side
    assert not division_consistent(mother, row(1.0, 1.0, 390.0), row(9.0, 0.0, 300.0))  # mother still there
    assert not division_consistent(mother, row(-6.0, 0.0, 40.0), row(6.0, 0.0, 40.0))  # too small
    frame = np.array([0, 1, 1, 2, 2, 3, 3])
    det = np.arange(7)
    parent = np.array([-1, 0, 0, 1, 2, 3, 4])
    values = np.stack([mother, row(-6, 0, 200), row(6, 0, 50), row(-7, 0, 200), row(7, 0, 50),
                       row(-8, 0, 200), row(8, 0, 50)])
    cut = check_divisions(frame, det, parent, values)
    assert cut.tolist() == [-1, 0, -1, 1, 2, 3, 4]  # the weaker child link (the small one) cut
    with pytest.raises(ConfigError, match="similarity"):
        check_divisions(frame, det, parent, values, similarity=2.0)


def test_union_values_match_the_union_mask():
    masks = paint([[(30.0, 30.0, 7.0, 1), (30.0, 44.0, 6.0, 2)]])
    both = frame_features((masks[0] > 0).astype(np.uint8)).iloc[0]
    parts = frame_features(masks[0])
    cols = ["y", "x", "label", "area", "perimeter", "eccentricity", "solidity", "mean_intensity",
            "inertia_yy", "inertia_xy", "inertia_xx"]
    u = union_values(parts[cols].to_numpy(float)[0], parts[cols].to_numpy(float)[1])
    for name in ("y", "x", "area", "inertia_yy", "inertia_xy", "inertia_xx", "eccentricity"):
        assert u[cols.index(name)] == pytest.approx(both[name], abs=1e-9), name


def test_options_are_checked_and_reach_track_cells():
    with pytest.raises(ConfigError, match="min_track_length"):
        CellTracker(min_track_length=0)
    frames = [[(40.0, 30.0 + 2 * t, 8.0, 1)] for t in range(5)]
    frames[1].append((10.0, 100.0, 4.0, 9))
    masks = paint(frames)
    assert len(track_cells(masks, max_distance=20.0, min_track_length=2)) == 5
    assert len(track_cells(masks, max_distance=20.0)) == 6


def test_track_format_ctc_keeps_the_pixels_of_merged_fragments(tmp_path):
    import tifffile

    from edgetrack.runtime.cli.app import main
    from edgetrack.runtime.io.masks import read_ctc_result

    masks = fragment_scene()
    tifffile.imwrite(tmp_path / "masks.tif", masks)
    assert main(["track", "--masks", str(tmp_path / "masks.tif"), "--max-distance", "20", "--format", "ctc",
                 "--out", str(tmp_path / "RES"), "--quiet"]) == 0
    res, lineage = read_ctc_result(tmp_path / "RES")
    assert len(lineage) == 1, "one cell, one CTC track"
    frame3 = np.asarray(res[3])
    assert ((frame3 > 0) == (masks[3] > 0)).all(), "both fragments' pixels are the cell's"
    assert len(np.unique(frame3[frame3 > 0])) == 1
