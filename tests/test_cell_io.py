"""Label masks in, CTC lineage files, CTC result folders out (and back)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from edgetrack.runtime.io.masks import (ctc_from_tracks, open_images, open_masks, read_ctc_lineage, read_ctc_result,
                                       write_ctc_result)
from edgetrack.runtime.metrics.ctc import ctc_scores
from edgetrack.runtime.errors import FileReadError, InputError, OutputError


def blocks(n_frames: int = 5, shape=(12, 30)) -> np.ndarray:
    """Masks with objects labelled 3, 8 and 20 (2x2 blocks), one of them absent in frame 2."""
    masks = np.zeros((n_frames, *shape), np.uint16)
    for t in range(n_frames):
        masks[t, 2:4, 2:4] = 3
        masks[t, 6:8, 10:12] = 8
        if t != 2:
            masks[t, 2:4, 20:22] = 20
    return masks


def test_open_masks_from_ctc_folder_stack_npy_and_array(tmp_path):
    masks = blocks()
    folder = tmp_path / "TRA"
    folder.mkdir()
    for t, m in enumerate(masks):
        tifffile.imwrite(folder / f"man_track{t:03d}.tif", m)
    (folder / "man_track.txt").write_text("3 0 4 0\n")
    opened = open_masks(folder)
    assert len(opened) == 5 and opened.frame_shape == (12, 30)
    np.testing.assert_array_equal(opened.frame_numbers, np.arange(5))
    np.testing.assert_array_equal(np.stack(list(opened)), masks)
    tifffile.imwrite(tmp_path / "stack.tif", masks)
    np.testing.assert_array_equal(np.stack(list(open_masks(tmp_path / "stack.tif"))), masks)
    np.save(tmp_path / "stack.npy", masks)
    np.testing.assert_array_equal(open_masks(tmp_path / "stack.npy")[4], masks[4])
    np.testing.assert_array_equal(open_masks(masks)[1], masks[1])
    # a result folder's maskTTT.tif files are taken before any other TIFF there
    res = tmp_path / "RES"
    res.mkdir()
    for t, m in enumerate(masks[:3]):
        tifffile.imwrite(res / f"mask{t:03d}.tif", m)
    tifffile.imwrite(res / "notes.tif", np.zeros((2, 2), np.uint8))
    assert len(open_masks(res)) == 3


def test_lzw_tiffs_as_the_ctc_ships_them(tmp_path):
    from PIL import Image

    masks = blocks(3)
    folder = tmp_path / "lzw"
    folder.mkdir()
    for t, m in enumerate(masks):
        Image.fromarray(m).save(folder / f"mask{t:03d}.tif", compression="tiff_lzw")
        Image.fromarray((m * 10).astype(np.uint8)).save(folder / f"t{t:03d}.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(np.stack(list(open_masks(folder))), masks)
    images = tmp_path / "raw"
    images.mkdir()
    for t in range(3):
        (folder / f"t{t:03d}.tif").rename(images / f"t{t:03d}.tif")
    np.testing.assert_array_equal(open_images(images)[2], (masks[2] * 10).astype(np.uint8))


def test_bad_masks_are_named(tmp_path):
    with pytest.raises(FileReadError, match="no such"):
        open_masks(tmp_path / "absent")
    with pytest.raises(InputError, match="integers"):
        open_masks(np.zeros((2, 4, 4), np.float32))
    folder = tmp_path / "gap"
    folder.mkdir()
    for t in (0, 1, 3):
        tifffile.imwrite(folder / f"mask{t:03d}.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(InputError, match="missing"):
        open_masks(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileReadError, match="no frames"):
        open_masks(empty)


def test_read_lineage_and_its_errors(tmp_path):
    path = tmp_path / "res_track.txt"
    path.write_text("1 0 4 0\n\n2 5 9 1\n3 5 7 1\n")
    lin = read_ctc_lineage(path)
    assert lin.to_numpy().tolist() == [[1, 0, 4, 0], [2, 5, 9, 1], [3, 5, 7, 1]]
    assert read_ctc_lineage(tmp_path).equals(lin)  # the folder finds its res_track.txt
    for text, match in [("1 0 4\n", "line 1"), ("1 0 x 0\n", "line 1"), ("1 0 4 0\n2 5 3 1\n", "line 2"),
                        ("1 0 4 0\n1 5 6 0\n", "more than once"), ("2 5 6 9\n", "not a track"),
                        ("1 0 5 0\n2 5 6 1\n", "end before")]:
        path.write_text(text)
        with pytest.raises(InputError, match=match):
            read_ctc_lineage(path)
    with pytest.raises(FileReadError):
        read_ctc_lineage(tmp_path / "none.txt")


def tracks_table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["frame", "label", "track_id", "parent_track_id"])


def test_ctc_from_tracks_cuts_gaps_and_divisions():
    # track 0: frames 0, 1, then a gap, 3, 4; track 1 divides into 2 (frame 2) and 3 (frame 3, a gap)
    rows = [(0, 1, 0, -1), (1, 1, 0, -1), (3, 1, 0, -1), (4, 1, 0, -1),
            (0, 2, 1, -1), (1, 2, 1, -1), (2, 2, 2, 1), (3, 2, 2, -1), (3, 5, 3, 1)]
    objects, lin = ctc_from_tracks(tracks_table(rows))
    assert lin.to_numpy().tolist() == [[1, 0, 1, 0], [2, 0, 1, 0], [3, 2, 3, 2], [4, 3, 4, 1], [5, 3, 3, 2]]
    assert objects["ctc_label"].tolist() == [1, 1, 4, 4, 2, 2, 3, 3, 5]


def test_ctc_from_tracks_splits_a_mother_that_goes_on():
    # the streaming tracker can keep the mother's track id on the first daughter and give only the
    # second daughter a new track: CTC needs the mother to end before both daughters start
    rows = [(0, 1, 0, -1), (1, 1, 0, -1), (2, 1, 0, -1), (2, 4, 1, 0), (3, 1, 0, -1)]
    _, lin = ctc_from_tracks(tracks_table(rows))
    assert lin.to_numpy().tolist() == [[1, 0, 1, 0], [2, 2, 3, 1], [3, 2, 2, 1]]


def test_ctc_from_tracks_rejects_bad_tables():
    with pytest.raises(InputError, match="missing"):
        ctc_from_tracks(pd.DataFrame({"frame": [0], "label": [1]}))
    with pytest.raises(InputError, match="two objects in one frame"):
        ctc_from_tracks(tracks_table([(0, 1, 0, -1), (0, 2, 0, -1)]))
    with pytest.raises(InputError, match="twice"):
        ctc_from_tracks(tracks_table([(0, 1, 0, -1), (0, 1, 1, -1)]))
    with pytest.raises(InputError, match="not a track_id"):
        ctc_from_tracks(tracks_table([(0, 1, 0, 7)]))
    with pytest.raises(InputError, match="no object before"):
        ctc_from_tracks(tracks_table([(1, 1, 0, -1), (0, 2, 1, 0)]))


def test_write_and_read_back_a_result(tmp_path):
    masks = blocks()
    # object 20 is absent at frame 2: its track has a gap; object 8 is left out of the tracks
    rows = [(t, 3, 10, -1) for t in range(5)] + [(t, 20, 11, -1) for t in (0, 1, 3, 4)]
    out = write_ctc_result(tracks_table(rows), masks, tmp_path / "01_RES")
    assert sorted(p.name for p in out.iterdir()) == [f"mask{t:03d}.tif" for t in range(5)] + ["res_track.txt"]
    res_masks, res_lin = read_ctc_result(out)
    assert res_lin.to_numpy().tolist() == [[1, 0, 4, 0], [2, 0, 1, 0], [3, 3, 4, 2]]
    frame3 = res_masks[3]
    assert frame3.dtype == np.uint16 and set(np.unique(frame3)) == {0, 1, 3}
    assert (frame3[masks[3] == 20] == 3).all() and (frame3[masks[3] == 8] == 0).all()
    # the ground truth of the same tracks scores 1 against this result
    gt_masks = np.where(masks == 8, 0, masks)
    gt_lin = pd.DataFrame([(3, 0, 4, 0), (20, 0, 4, 0)], columns=["label", "start", "end", "parent"])
    scores = ctc_scores(gt_masks, gt_lin, out, out)
    # CTC form turns the gap into a parent edge where the reference has a link across it: EC 1
    assert (scores["FN"], scores["FP"], scores["EA"], scores["ED"], scores["EC"]) == (0, 0, 0, 0, 1)


def test_write_is_atomic_and_keeps_foreign_folders(tmp_path):
    masks = blocks()
    out = tmp_path / "RES"
    good = tracks_table([(t, 3, 0, -1) for t in range(5)])
    write_ctc_result(good, masks, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tracks_table([(0, 3, 0, -1), (1, 99, 0, -1)])  # label 99 is not in frame 1's mask
    with pytest.raises(InputError, match="label 99 of frame 1"):
        write_ctc_result(bad, masks, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old result is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RES"]  # no temporary folder left behind
    write_ctc_result(good.assign(track_id=5), masks, out)  # an existing result is replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="not a CTC result"):
        write_ctc_result(good, masks, other)
    with pytest.raises(OutputError, match="does not exist"):
        write_ctc_result(good, masks, tmp_path / "no" / "RES")
    with pytest.raises(InputError, match="frames must lie"):
        write_ctc_result(tracks_table([(7, 3, 0, -1)]), masks, out)
