"""Gap filling: objects missing inside a track get a mask there, and the CTC result has no hole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.cells.gaps import fill_gaps, gap_rows
from edgetrack.runtime.cells.tracker import track_cells
from edgetrack.runtime.io.masks import ctc_result
from edgetrack.runtime.metrics.ctc import ctc_scores


def _movie(n_frames: int = 12, shape=(64, 96)) -> np.ndarray:
    """Three discs moving right 2 px per frame; label = identity (the ground truth)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    masks = np.zeros((n_frames, *shape), np.uint16)
    for t in range(n_frames):
        for label, y0 in ((1, 12), (2, 32), (3, 52)):
            masks[t][(yy - y0) ** 2 + (xx - (10 + 2 * t + 5 * label)) ** 2 <= 16] = label
    return masks


def _lineage(masks: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"label": [1, 2, 3], "start": 0, "end": len(masks) - 1, "parent": 0})


def test_gap_rows_interpolate_inside_tracks_only():
    tracks = pd.DataFrame({"frame": [0, 3, 4, 0, 1], "track_id": [7, 7, 7, 8, 8], "label": [1, 2, 3, 4, 5],
                           "y": [0.0, 3.0, 4.0, 10.0, 11.0], "x": [0.0, 6.0, 8.0, 0.0, 0.0]})
    holes = gap_rows(tracks)
    assert holes["frame"].tolist() == [1, 2] and (holes["track_id"] == 7).all()
    np.testing.assert_allclose(holes[["y", "x"]].to_numpy(), [[1, 2], [2, 4]])
    assert holes["source_label"].tolist() == [1, 2]  # the nearer point in time
    assert len(gap_rows(tracks, max_gap=2)) == 0  # a hole of 2 frames needs links over 3


def test_filled_objects_close_the_holes_of_the_ctc_result():
    truth = _movie()
    seen = truth.copy()
    seen[4][seen[4] == 2] = 0  # the segmenter missed cell 2 in frame 4
    seen[7][seen[7] == 1] = 0  # and cell 1 in frames 7 and 8
    seen[8][seen[8] == 1] = 0
    tracks = track_cells(seen, max_distance=8.0, max_gap=3)
    assert tracks["track_id"].nunique() == 3, "the tracker bridges the gaps"
    filled, masks = fill_gaps(tracks, seen, max_gap=3)
    assert filled["filled"].sum() == 3 and len(filled) == len(tracks) + 3
    assert filled.groupby("track_id")["frame"].apply(lambda f: sorted(f) == list(range(12))).all()
    for t, source in ((4, 2), (7, 1), (8, 1)):
        row = filled[(filled["frame"] == t) & filled["filled"]].iloc[0]
        painted = masks[t] == row["label"]
        assert painted.sum() == (truth[t] == source).sum(), "the neighbour's mask, moved"
        assert (painted & (truth[t] == source)).sum() >= 0.8 * painted.sum(), "put where the cell is"
        assert not (painted & (seen[t] > 0)).any(), "never over a segmented object"
    unfilled = ctc_scores(truth, _lineage(truth), *ctc_result(tracks, seen))
    closed = ctc_scores(truth, _lineage(truth), *ctc_result(filled, masks))
    assert len(ctc_result(filled, masks)[1]) == 3, "one CTC track per cell: no hole splits a track"
    assert closed["TRA"] > unfilled["TRA"] and closed["TRA"] > 0.99


def test_no_gaps_gives_the_input_back():
    truth = _movie(6)
    tracks = track_cells(truth, max_distance=8.0)
    filled, masks = fill_gaps(tracks, truth)
    assert not filled["filled"].any() and len(filled) == len(tracks)
    np.testing.assert_array_equal(masks[3], truth[3])


def test_fill_gaps_needs_labels():
    with pytest.raises(Exception, match="label"):
        gap_rows(pd.DataFrame({"frame": [0, 2], "track_id": [1, 1], "y": [0.0, 1.0], "x": [0.0, 1.0]}))


def test_track_format_ctc_fills_gaps_by_default(tmp_path):
    import tifffile

    from edgetrack.runtime.cli.app import main
    from edgetrack.runtime.io.masks import read_ctc_result

    seen = _movie()
    seen[5][seen[5] == 3] = 0
    tifffile.imwrite(tmp_path / "masks.tif", seen)
    args = ["track", "--masks", str(tmp_path / "masks.tif"), "--max-distance", "8", "--max-gap", "3", "--quiet"]
    assert main([*args, "--format", "ctc", "--out", str(tmp_path / "RES")]) == 0
    res, lineage = read_ctc_result(tmp_path / "RES")
    assert len(lineage) == 3 and (lineage["end"] == 11).all() and (lineage["parent"] == 0).all()
    assert (np.asarray(res[5]) > 0).sum() > (seen[5] > 0).sum(), "the missing cell has a mask in frame 5"
    assert main([*args, "--format", "ctc", "--no-fill-gaps", "--out", str(tmp_path / "RES2")]) == 0
    assert len(read_ctc_result(tmp_path / "RES2")[1]) == 4, "without filling, the hole splits the track"
    assert main([*args, "--fill-gaps", "--out", str(tmp_path / "t.csv")]) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    assert table["filled"].sum() == 1 and table.loc[table["filled"], "frame"].tolist() == [5]


def _dividing(n_frames: int = 10, split: int = 5, shape=(64, 96)) -> tuple[np.ndarray, pd.DataFrame]:
    """One disc moving right that divides at frame ``split`` into two discs moving apart (CTC truth)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    masks = np.zeros((n_frames, *shape), np.uint16)
    for t in range(n_frames):
        if t < split:
            masks[t][(yy - 32) ** 2 + (xx - (20 + 2 * t)) ** 2 <= 36] = 1
        else:
            k = t - split + 1
            masks[t][(yy - (32 - 4 * k)) ** 2 + (xx - (20 + 2 * t)) ** 2 <= 16] = 2
            masks[t][(yy - (32 + 4 * k)) ** 2 + (xx - (20 + 2 * t)) ** 2 <= 16] = 3
    lineage = pd.DataFrame({"label": [1, 2, 3], "start": [0, split, split], "end": [split - 1, n_frames - 1,
                                                                                       n_frames - 1],
                            "parent": [0, 1, 1]})
    return masks, lineage


@pytest.mark.parametrize("missed", ["mother", "daughter"])
def test_a_division_across_a_gap_is_put_back_where_it_happened(missed):
    truth, lineage = _dividing()
    seen = truth.copy()
    if missed == "mother":
        seen[4][seen[4] == 1] = 0  # the mother's last frame before dividing
    else:
        seen[5][seen[5] == 2] = 0  # one daughter's first frame
    tracks = track_cells(seen, max_distance=12.0, max_gap=3, linker="greedy", check_divisions=False)
    assert (tracks["parent_track_id"] >= 0).sum() == 2, "the division is linked across the gap"
    before = ctc_scores(truth, lineage, *ctc_result(tracks, seen))
    filled, masks = fill_gaps(tracks, seen, max_gap=3)
    after = ctc_scores(truth, lineage, *ctc_result(filled, masks))
    assert filled["filled"].sum() == 1
    assert after["division_f1"] == 1.0 and after["TRA"] > before["TRA"], (before, after)
    res_lineage = ctc_result(filled, masks)[1]
    assert sorted(res_lineage["start"].tolist()) == [0, 5, 5] and sorted(res_lineage["end"].tolist()) == [4, 9, 9]
