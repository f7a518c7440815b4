"""CTC TRA / LNK / division F1 against a small example computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import shared_data
from edgetrack.runtime.metrics.ctc import ctc_scores, division_f1, lnk, tra
from edgetrack.runtime.errors import InputError

# The reference: 4 frames, a division and a plain track (each object a 2x2 block of its own).
#
#   frame:     0      1      2      3
#              1 ---- 1 -+-> 2 ---- 2          track 1 divides after frame 1 into 2 and 3
#                        +-> 3 ---- 3
#              4 ---- 4 ---- 4 ---- 4
#
# |V_ref| = 10 objects; |E_ref| = 6 links + 2 parent edges = 8; AOGM_0 = 10 * 10 + 1.5 * 8 = 112.
#
# The result of the main example:
#
#   frame:     0      1      2      3
#              7 ---- 7 -+-> 8 ---- 8          the division is right
#                        +-> 10                3 at frame 3 is missed: FN
#              5 ---- 5      6 ---- 6          the link 4@1 -> 4@2 is missing: EA
#                     9                        a false object: FP
#
# NS 0, FN 1, FP 1, ED 0, EC 0; EA 2 (4@1 -> 4@2, and 3@2 -> 3@3 whose end is unmatched).
# AOGM = 10 * 1 + 1 * 1 + 1.5 * 2 = 14, TRA = 1 - 14 / 112 = 0.875.
# LNK = 1 - 1.5 * 2 / (1.5 * 8) = 0.75. Division F1 = 1 (mother and both daughters match).

REF_OBJECTS = [(0, 1), (1, 1), (2, 2), (3, 2), (2, 3), (3, 3), (0, 4), (1, 4), (2, 4), (3, 4)]
REF_LINEAGE = [(1, 0, 1, 0), (2, 2, 3, 1), (3, 2, 3, 1), (4, 0, 3, 0)]
FP_BLOCK = 6  # a block where the reference has nothing


def _block(mask: np.ndarray, block: int, label: int) -> None:
    mask[2:4, 3 * block:3 * block + 2] = label


def render(objects: list[tuple[int, int, list[int]]], n_frames: int = 4) -> np.ndarray:
    """Masks (T, 6, 24): each object (frame, label, blocks) fills 2x2 blocks; block b sits at columns 3b, 3b+1."""
    masks = np.zeros((n_frames, 6, 24), np.uint16)
    for frame, label, blocks in objects:
        for b in blocks:
            _block(masks[frame], b, label)
    return masks


def lineage(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["label", "start", "end", "parent"])


def reference():
    return render([(t, lab, [lab]) for t, lab in REF_OBJECTS]), lineage(REF_LINEAGE)


def main_result():
    # result label -> the reference block it covers, per frame
    objects = [(0, 7, [1]), (1, 7, [1]), (2, 8, [2]), (3, 8, [2]), (2, 10, [3]),
               (0, 5, [4]), (1, 5, [4]), (2, 6, [4]), (3, 6, [4]), (1, 9, [FP_BLOCK])]
    rows = [(5, 0, 1, 0), (6, 2, 3, 0), (7, 0, 1, 0), (8, 2, 3, 7), (9, 1, 1, 0), (10, 2, 2, 7)]
    return objects, rows


def test_hand_computed_example():
    gt_masks, gt_lin = reference()
    objects, rows = main_result()
    scores = ctc_scores(gt_masks, gt_lin, render(objects), lineage(rows))
    assert (scores["NS"], scores["FN"], scores["FP"], scores["ED"], scores["EA"], scores["EC"]) == (0, 1, 1, 0, 2, 0)
    assert (scores["n_vertices"], scores["n_edges"]) == (10, 8)
    assert scores["AOGM"] == 14.0 and scores["AOGM_0"] == 112.0
    assert scores["TRA"] == pytest.approx(0.875)
    assert scores["LNK"] == pytest.approx(0.75)
    assert scores["division_f1"] == 1.0 and scores["division_tp"] == 1
    # the single-metric functions agree
    assert tra(gt_masks, gt_lin, render(objects), lineage(rows))["TRA"] == pytest.approx(0.875)
    assert lnk(gt_masks, gt_lin, render(objects), lineage(rows))["LNK"] == pytest.approx(0.75)
    assert division_f1(gt_masks, gt_lin, render(objects), lineage(rows))["division_f1"] == 1.0


def test_reference_against_itself():
    gt_masks, gt_lin = reference()
    scores = ctc_scores(gt_masks, gt_lin, gt_masks.copy(), gt_lin.copy())
    assert scores["TRA"] == 1.0 and scores["LNK"] == 1.0 and scores["AOGM"] == 0.0 and scores["division_f1"] == 1.0


def test_wrong_semantics_costs_one():
    # the broken track continued CTC-style (6's parent is 5): the edge exists but is a parent edge,
    # the reference's is a link: EC 1 instead of EA. AOGM = 10 + 1 + 1.5 * 1 + 1 = 13.5
    gt_masks, gt_lin = reference()
    objects, rows = main_result()
    rows = [(6, 2, 3, 5) if r[0] == 6 else r for r in rows]
    s = ctc_scores(gt_masks, gt_lin, render(objects), lineage(rows))
    assert (s["NS"], s["FN"], s["FP"], s["ED"], s["EA"], s["EC"]) == (0, 1, 1, 0, 1, 1)
    assert s["AOGM"] == 13.5 and s["TRA"] == pytest.approx(1 - 13.5 / 112)
    assert s["division_f1"] == 1.0  # one child is not a division


def test_merged_object_needs_a_split():
    # at frame 0 one result object covers the blocks of 1 and 4: NS 1; its edges do not count, so the
    # links 1@0 -> 1@1 and 4@0 -> 4@1 are missing too: EA 4. AOGM = 5 + 10 + 1 + 1.5 * 4 = 22
    gt_masks, gt_lin = reference()
    objects, rows = main_result()
    objects = [o for o in objects if o[:2] not in ((0, 7), (0, 5))] + [(0, 7, [1, 4])]
    rows = [(5, 1, 1, 0) if r[0] == 5 else r for r in rows]
    s = ctc_scores(gt_masks, gt_lin, render(objects), lineage(rows))
    assert (s["NS"], s["FN"], s["FP"], s["ED"], s["EA"], s["EC"]) == (1, 1, 1, 0, 4, 0)
    assert s["AOGM"] == 22.0


def test_redundant_edge_and_missed_division():
    # the second daughter is given to the wrong mother (10's parent is 5): the edge 5@1 -> 10@2 maps to
    # 4@1 -> 3@2, which the reference lacks: ED 1; 1@1 -> 3@2 is missing: EA 3 in all.
    # AOGM = 10 + 1 + 1 + 1.5 * 3 = 16.5; no result track has two children: division F1 = 0
    gt_masks, gt_lin = reference()
    objects, rows = main_result()
    rows = [(10, 2, 2, 5) if r[0] == 10 else r for r in rows]
    s = ctc_scores(gt_masks, gt_lin, render(objects), lineage(rows))
    assert (s["NS"], s["FN"], s["FP"], s["ED"], s["EA"], s["EC"]) == (0, 1, 1, 1, 3, 0)
    assert s["AOGM"] == 16.5
    assert (s["division_tp"], s["division_fp"], s["division_fn"], s["division_f1"]) == (0, 0, 1, 0.0)


def test_division_tolerance():
    # the reference mother ends at frame 2, its daughters start at 3; the result divides one frame
    # early (its daughter 2 covers the mother at frame 2): a match only with tolerance >= 1
    gt_rows = [(1, 0, 2, 0), (2, 3, 3, 1), (3, 3, 3, 1)]
    gt_masks = render([(0, 1, [1]), (1, 1, [1]), (2, 1, [1]), (3, 2, [2]), (3, 3, [3])])
    res_rows = [(1, 0, 1, 0), (2, 2, 3, 1), (3, 2, 3, 1)]
    res_masks = render([(0, 1, [1]), (1, 1, [1]), (2, 2, [1]), (3, 2, [2]), (2, 3, [3]), (3, 3, [3])])
    strict = division_f1(gt_masks, lineage(gt_rows), res_masks, lineage(res_rows))
    loose = division_f1(gt_masks, lineage(gt_rows), res_masks, lineage(res_rows), tolerance=1)
    assert strict["division_tp"] == 0 and loose["division_tp"] == 1
    with pytest.raises(InputError, match="tolerance"):
        division_f1(gt_masks, lineage(gt_rows), res_masks, lineage(res_rows), tolerance=-1)


def test_inconsistent_inputs_are_named():
    gt_masks, gt_lin = reference()
    with pytest.raises(InputError, match="not in the lineage"):
        ctc_scores(gt_masks, gt_lin, gt_masks, gt_lin[gt_lin.label != 4])
    with pytest.raises(InputError, match="frames"):
        ctc_scores(gt_masks, gt_lin, gt_masks[:3], gt_lin)
    bad = gt_lin.copy()
    bad.loc[bad.label == 4, "end"] = 2
    with pytest.raises(InputError, match="outside"):
        ctc_scores(gt_masks, gt_lin, gt_masks, bad)


@pytest.mark.parametrize("name", ["Fluo-N2DH-GOWT1", "Fluo-N2DH-SIM+"])
def test_real_ground_truth_and_one_broken_link(name):
    from edgetrack.runtime.io.masks import open_masks, read_ctc_lineage

    folder = shared_data("ctc", name, "01_GT", "TRA")
    masks = np.stack(list(open_masks(folder)))
    lin = read_ctc_lineage(folder)
    assert ctc_scores(masks, lin, masks, lin)["TRA"] == 1.0
    # break the longest track after its first frame into a new label without a parent: exactly one
    # missing link, AOGM 1.5
    longest = lin.assign(n=lin.end - lin.start).sort_values(["n", "label"]).iloc[-1]
    new = int(lin.label.max()) + 1
    res = masks.copy()
    later = res[longest.start + 1:]
    later[later == longest.label] = new
    res_lin = pd.concat([lin, lineage([(new, longest.start + 1, longest.end, 0)])], ignore_index=True)
    res_lin.loc[res_lin.label == longest.label, "end"] = longest.start
    res_lin.loc[res_lin.parent == longest.label, "parent"] = new
    s = ctc_scores(masks, lin, res, res_lin)
    assert (s["EA"], s["ED"], s["EC"], s["FN"], s["FP"], s["NS"]) == (1, 0, 0, 0, 0, 0)
    assert s["AOGM"] == 1.5 and s["TRA"] == pytest.approx(1 - 1.5 / s["AOGM_0"])
