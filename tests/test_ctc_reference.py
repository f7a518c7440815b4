"""Our CTC measures against the Cell Tracking Challenge's own Python implementation (py-ctcmetrics).

Simulated cell movies (with segmentation errors, so every kind of AOGM error occurs) are tracked, the
ground truth and the result are written as CTC folders, and TRA, LNK and division F1 (BC(0)) from
:func:`edgetrack.runtime.metrics.ctc.ctc_scores` must equal ``ctc_metrics.evaluate_sequence``'s.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile

ctc_reference = pytest.importorskip("ctc_metrics", reason="py-ctcmetrics (the test extra) is not installed")

from edgetrack.runtime.io.masks import write_ctc_result, write_lineage  # noqa: E402
from edgetrack.runtime.cells.tracker import track_cells  # noqa: E402
from edgetrack.runtime.metrics.ctc import ctc_scores  # noqa: E402
from edgetrack.training.cells import simulate_cells  # noqa: E402


def _write_gt(movie, folder):
    tra = folder / "TRA"
    tra.mkdir(parents=True)
    for t, labels in enumerate(movie.true_masks):
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", labels)
    write_lineage(movie.lineage, tra / "man_track.txt")


@pytest.mark.parametrize("seed, linker", [(1, "greedy"), (2, "ilp"), (3, "lap")])
def test_tra_lnk_and_divisions_equal_the_ctc_reference(tmp_path, seed, linker):
    movie = simulate_cells(seed=seed, n_frames=15, n_cells=25, division_rate=0.03,
                           miss_rate=0.05, merge_rate=0.05, split_rate=0.05, false_rate=0.05)
    gt = tmp_path / "01_GT"
    _write_gt(movie, gt)
    tracks = track_cells(movie.masks, linker=linker)
    res = write_ctc_result(tracks, movie.masks, tmp_path / "01_RES")

    ours = ctc_scores(gt / "TRA", gt / "TRA" / "man_track.txt", res, res / "res_track.txt")
    theirs = ctc_reference.evaluate_sequence(str(res), str(gt), metrics=["TRA", "LNK", "BC"], threads=1)
    assert 0.5 < ours["TRA"] < 1.0  # errors of every kind, so the comparison means something
    assert ours["TRA"] == pytest.approx(theirs["TRA"], abs=1e-12)
    assert ours["LNK"] == pytest.approx(theirs["LNK"], abs=1e-12)
    for ours_key, their_key in (("NS", "AOGM_NS"), ("FN", "AOGM_FN"), ("FP", "AOGM_FP"), ("ED", "AOGM_ED"),
                                ("EA", "AOGM_EA"), ("EC", "AOGM_EC")):
        assert ours[ours_key] == theirs[their_key], ours_key
    if theirs.get("BC(0)") is not None and not math.isnan(ours["division_f1"]):
        assert ours["division_f1"] == pytest.approx(theirs["BC(0)"], abs=1e-12)
