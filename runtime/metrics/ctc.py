"""Cell Tracking Challenge metrics: TRA (AOGM), LNK and division F1.

Both the reference and the result are CTC tracking graphs: label masks (one 2-D integer image per
frame) plus a lineage ``label, start, end, parent`` (:func:`edgetrack.runtime.io.masks.read_ctc_lineage`).

- **Vertices** are the objects: (frame, label) for every label present in a frame's mask.
- **Edges**: *links* join consecutive objects of one label (a label absent for some frames is linked
  across the gap); *parent edges* join a parent's last object to the first object of each child.
- **Matching** (as in the CTC evaluation): a reference object is matched by the result object that
  covers more than half of its pixels (so at most one).
- **AOGM** (Matula et al., PLoS ONE 2015) is the weighted number of operations that turn the result
  graph into the reference: NS (splitting a result object matched by k > 1 references costs k - 1
  operations; weight 5), FN (reference objects without a match; 10), FP (result objects matching no
  reference; 1), and, among result edges whose two ends are matched one-to-one, ED (an edge the
  reference does not have; 1), EA (a reference edge the result lacks; 1.5), EC (an edge of the wrong
  kind, link vs parent edge; 1). ``AOGM_0 = 10 |V_ref| + 1.5 |E_ref|`` builds the reference from
  nothing and ``TRA = 1 - min(AOGM, AOGM_0) / AOGM_0``.
- **LNK** is the edge part: ``1 - min(AOGM_A, AOGM_A0) / AOGM_A0`` with ``AOGM_A = ED + 1.5 EA + EC``
  and ``AOGM_A0 = 1.5 |E_ref|``.
- **Division F1**: a division is a track with two or more children. A result division matches a
  reference one when its end frame is within ``tolerance`` frames, the mothers' objects match at the
  earlier of the two end frames, and each reference daughter's object matches a distinct result
  daughter's object at the later of the two start frames (one-to-one, in order of frame and label).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import InputError

__all__ = ["WEIGHTS", "ctc_scores", "tra", "lnk", "division_f1", "compare_graphs"]

WEIGHTS = {"NS": 5.0, "FN": 10.0, "FP": 1.0, "ED": 1.0, "EA": 1.5, "EC": 1.0}


@dataclass
class _Graph:
    """Vertices sorted by (frame, label) and edges (vertex indices, kind 0 link / 1 parent edge)."""

    frame: np.ndarray  # int64 (n,)
    label: np.ndarray  # int64 (n,)
    src: np.ndarray  # int64 (m,)
    dst: np.ndarray  # int64 (m,)
    kind: np.ndarray  # int64 (m,)
    lineage: pd.DataFrame

    def index(self, frame: int, label: int) -> int:
        """Vertex index of (frame, label), -1 when absent."""
        lo = np.searchsorted(self.frame, frame, side="left")
        hi = np.searchsorted(self.frame, frame, side="right")
        j = lo + np.searchsorted(self.label[lo:hi], label)
        return int(j) if j < hi and self.label[j] == label else -1


@dataclass
class GraphComparison:
    """The matched reference and result graphs (see :func:`compare_graphs`).

    ref_match: int64 (n_ref,) the result vertex matching each reference vertex, -1 none.
    res_count: int64 (n_res,) how many reference vertices each result vertex matches.
    """

    ref: _Graph
    res: _Graph
    ref_match: np.ndarray
    res_count: np.ndarray


def _load_masks(masks):
    from edgetrack.runtime.io.masks import open_masks

    return open_masks(masks)


def _load_lineage(lineage) -> pd.DataFrame:
    from edgetrack.runtime.io.masks import check_lineage, read_ctc_lineage

    if isinstance(lineage, pd.DataFrame):
        return check_lineage(lineage)
    return read_ctc_lineage(lineage)


def _present(mask: np.ndarray) -> np.ndarray:
    """Sorted nonzero labels of a mask."""
    top = int(mask.max()) if mask.size else 0
    if top == 0:
        return np.zeros(0, np.int64)
    if top < 2**24:
        return np.flatnonzero(np.bincount(mask.ravel(), minlength=top + 1)[1:]).astype(np.int64) + 1
    labels = np.unique(mask)
    return labels[labels != 0].astype(np.int64)


def _overlaps(ref: np.ndarray, res: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference label, result label) pairs where the result object covers > half of the reference's pixels."""
    sel = ref != 0
    r = ref[sel].astype(np.int64)
    c = res[sel].astype(np.int64)
    if r.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    base = int(c.max()) + 1
    pairs, counts = np.unique(r * base + c, return_counts=True)
    pr, pc = pairs // base, pairs % base
    area = np.zeros(len(pairs), np.int64)
    starts = np.flatnonzero(np.concatenate([[True], pr[1:] != pr[:-1]]))
    totals = np.add.reduceat(counts, starts)
    area[:] = np.repeat(totals, np.diff(np.concatenate([starts, [len(pairs)]])))
    hit = (pc != 0) & (2 * counts > area)
    return pr[hit], pc[hit]


def _edges(frame: np.ndarray, label: np.ndarray, lineage: pd.DataFrame, source: str) -> tuple[np.ndarray, ...]:
    """Links (consecutive objects of a label) and parent edges of a graph; checks labels against the lineage."""
    known = lineage.set_index("label")
    present_labels = np.unique(label)
    missing = np.setdiff1d(present_labels, known.index.to_numpy())
    if len(missing):
        f = int(frame[label == missing[0]][0])
        raise InputError(f"{source}: label {int(missing[0])} (frame {f}) is in the masks but not in the lineage")
    order = np.lexsort((frame, label))  # by label, then frame
    lab_sorted, fr_sorted = label[order], frame[order]
    same = lab_sorted[1:] == lab_sorted[:-1]
    src = order[:-1][same]
    dst = order[1:][same]
    # each label's frames must lie inside [start, end] of its lineage line
    start = known.loc[lab_sorted, "start"].to_numpy()
    end = known.loc[lab_sorted, "end"].to_numpy()
    outside = (fr_sorted < start) | (fr_sorted > end)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise InputError(f"{source}: label {int(lab_sorted[k])} is in the mask of frame {int(fr_sorted[k])}, outside "
                         f"its lineage span {int(start[k])}..{int(end[k])}")
    first = {}
    last = {}
    if len(order):
        bounds = np.flatnonzero(np.concatenate([[True], ~same]))
        ends = np.concatenate([bounds[1:], [len(order)]]) - 1
        first = dict(zip(lab_sorted[bounds].tolist(), order[bounds].tolist()))
        last = dict(zip(lab_sorted[ends].tolist(), order[ends].tolist()))
    p_src, p_dst = [], []
    for child, parent in lineage[["label", "parent"]].itertuples(index=False):
        if parent > 0 and child in first and parent in last:
            p_src.append(last[parent])
            p_dst.append(first[child])
    kind = np.concatenate([np.zeros(len(src), np.int64), np.ones(len(p_src), np.int64)])
    return (np.concatenate([src, np.array(p_src, np.int64)]).astype(np.int64),
            np.concatenate([dst, np.array(p_dst, np.int64)]).astype(np.int64), kind)


def compare_graphs(gt_masks, gt_lineage, res_masks, res_lineage) -> GraphComparison:
    """Read both CTC graphs (masks: arrays, sequences or paths; lineages: DataFrames or paths) and match them."""
    gt_m, res_m = _load_masks(gt_masks), _load_masks(res_masks)
    gt_l, res_l = _load_lineage(gt_lineage), _load_lineage(res_lineage)
    if len(gt_m) != len(res_m):
        raise InputError(f"the result has {len(res_m)} frames, the reference {len(gt_m)}")
    rf, rl, cf, cl, mr, mc = [], [], [], [], [], []
    for t in range(len(gt_m)):
        g, r = np.asarray(gt_m[t]), np.asarray(res_m[t])
        if g.shape != r.shape:
            raise InputError(f"frame {t}: result mask has shape {r.shape}, reference {g.shape}")
        gl, rl_t = _present(g), _present(r)
        rf.append(np.full(len(gl), t, np.int64))
        rl.append(gl)
        cf.append(np.full(len(rl_t), t, np.int64))
        cl.append(rl_t)
        a, b = _overlaps(g, r)
        mr.append(np.stack([np.full(len(a), t, np.int64), a]))
        mc.append(b)
    ref = _graph(np.concatenate(rf), np.concatenate(rl), gt_l, "reference")
    res = _graph(np.concatenate(cf), np.concatenate(cl), res_l, "result")
    ref_match = np.full(len(ref.frame), -1, np.int64)
    res_count = np.zeros(len(res.frame), np.int64)
    pairs = np.concatenate(mr, axis=1)
    comp = np.concatenate(mc)
    for (t, a), b in zip(pairs.T.tolist(), comp.tolist()):
        i, j = ref.index(t, a), res.index(t, b)
        ref_match[i] = j
        res_count[j] += 1
    return GraphComparison(ref, res, ref_match, res_count)


def _graph(frame: np.ndarray, label: np.ndarray, lineage: pd.DataFrame, source: str) -> _Graph:
    src, dst, kind = _edges(frame, label, lineage, source)
    return _Graph(frame, label, src, dst, kind, lineage)


def _counts(cmp: GraphComparison) -> dict:
    ref, res = cmp.ref, cmp.res
    ns = int(np.maximum(cmp.res_count - 1, 0).sum())
    fn = int((cmp.ref_match < 0).sum())
    fp = int((cmp.res_count == 0).sum())
    # result vertex -> reference vertex, for result vertices matched one-to-one
    to_ref = np.full(len(res.frame), -1, np.int64)
    one = cmp.ref_match >= 0
    single = cmp.res_count[cmp.ref_match[one]] == 1
    to_ref[cmp.ref_match[one][single]] = np.flatnonzero(one)[single]
    keep = (to_ref[res.src] >= 0) & (to_ref[res.dst] >= 0)
    n = max(len(ref.frame), 1)
    res_keys = to_ref[res.src[keep]] * n + to_ref[res.dst[keep]]
    res_kind = res.kind[keep]
    ref_keys = ref.src * n + ref.dst
    common, i_ref, i_res = np.intersect1d(ref_keys, res_keys, return_indices=True)
    ed = int(len(res_keys) - len(common))
    ea = int(len(ref_keys) - len(common))
    ec = int((ref.kind[i_ref] != res_kind[i_res]).sum())
    return {"NS": ns, "FN": fn, "FP": fp, "ED": ed, "EA": ea, "EC": ec,
            "n_vertices": int(len(ref.frame)), "n_edges": int(len(ref_keys))}


def _tra(counts: dict) -> dict:
    aogm = sum(WEIGHTS[k] * counts[k] for k in WEIGHTS)
    aogm_0 = WEIGHTS["FN"] * counts["n_vertices"] + WEIGHTS["EA"] * counts["n_edges"]
    value = 1.0 - min(aogm, aogm_0) / aogm_0 if aogm_0 > 0 else float("nan")
    return {"TRA": value, "AOGM": aogm, "AOGM_0": aogm_0, **counts}


def _lnk(counts: dict) -> dict:
    aogm_a = sum(WEIGHTS[k] * counts[k] for k in ("ED", "EA", "EC"))
    aogm_a0 = WEIGHTS["EA"] * counts["n_edges"]
    value = 1.0 - min(aogm_a, aogm_a0) / aogm_a0 if aogm_a0 > 0 else float("nan")
    return {"LNK": value, "AOGM_A": aogm_a, "AOGM_A0": aogm_a0,
            **{k: counts[k] for k in ("ED", "EA", "EC", "n_edges")}}


def _divisions(graph: _Graph) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """(end frame, mother label, [(start frame, daughter label), ...]) of each track with >= 2 children."""
    lin = graph.lineage
    children = lin[lin["parent"] > 0].groupby("parent")
    span = lin.set_index("label")
    out = []
    for mother, group in children:
        if len(group) < 2 or mother not in span.index:
            continue
        kids = sorted((int(s), int(lab)) for lab, s in group[["label", "start"]].itertuples(index=False))
        out.append((int(span.loc[mother, "end"]), int(mother), kids))
    return sorted(out)


def _division_scores(cmp: GraphComparison, tolerance: int) -> dict:
    if int(tolerance) != tolerance or tolerance < 0:
        raise InputError(f"tolerance must be a whole number of frames >= 0, got {tolerance}")
    ref, res = cmp.ref, cmp.res
    one_to_one = cmp.ref_match.copy()
    one_to_one[one_to_one >= 0] = np.where(cmp.res_count[one_to_one[one_to_one >= 0]] == 1,
                                           one_to_one[one_to_one >= 0], -1)

    def matched(t: int, ref_label: int, res_label: int) -> bool:
        i, j = ref.index(t, ref_label), res.index(t, res_label)
        return i >= 0 and j >= 0 and one_to_one[i] == j

    ref_div, res_div = _divisions(ref), _divisions(res)
    used: set[int] = set()
    tp = 0
    for t_c, m_c, kids_c in res_div:
        for k, (t_r, m_r, kids_r) in enumerate(ref_div):
            if k in used or abs(t_r - t_c) > tolerance or len(kids_r) != len(kids_c):
                continue
            if not matched(min(t_r, t_c), m_r, m_c):
                continue
            free = list(kids_c)
            for s_r, d_r in kids_r:
                hit = next((x for x in free if abs(x[0] - s_r) <= tolerance and matched(max(s_r, x[0]), d_r, x[1])),
                           None)
                if hit is None:
                    break
                free.remove(hit)
            else:
                used.add(k)
                tp += 1
                break
    fp = len(res_div) - tp
    fn = len(ref_div) - tp
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"division_f1": f1, "division_precision": precision, "division_recall": recall,
            "division_tp": tp, "division_fp": fp, "division_fn": fn}


def ctc_scores(gt_masks, gt_lineage, res_masks, res_lineage, tolerance: int = 0) -> dict:
    """TRA, LNK and division F1 with all their counts in one dict (the graphs are matched once).

    gt_masks / res_masks: (T, H, W) integer arrays, sequences of (H, W) label images, or paths that
    :func:`~edgetrack.runtime.io.masks.open_masks` opens; gt_lineage / res_lineage: ``label, start, end,
    parent`` DataFrames or paths of ``man_track.txt`` / ``res_track.txt`` (or their folders).
    Division F1 is NaN when neither side has a division.
    """
    cmp = compare_graphs(gt_masks, gt_lineage, res_masks, res_lineage)
    counts = _counts(cmp)
    return {**_tra(counts), **_lnk(counts), **_division_scores(cmp, tolerance)}


def tra(gt_masks, gt_lineage, res_masks, res_lineage) -> dict:
    """CTC TRA: ``TRA, AOGM, AOGM_0, NS, FN, FP, ED, EA, EC, n_vertices, n_edges`` (see the module docstring)."""
    return _tra(_counts(compare_graphs(gt_masks, gt_lineage, res_masks, res_lineage)))


def lnk(gt_masks, gt_lineage, res_masks, res_lineage) -> dict:
    """CTC LNK, the linking part of AOGM: ``LNK, AOGM_A, AOGM_A0, ED, EA, EC, n_edges``."""
    return _lnk(_counts(compare_graphs(gt_masks, gt_lineage, res_masks, res_lineage)))


def division_f1(gt_masks, gt_lineage, res_masks, res_lineage, tolerance: int = 0) -> dict:
    """Division F1 (and precision, recall, tp, fp, fn); ``tolerance`` frames on the division time."""
    return _division_scores(compare_graphs(gt_masks, gt_lineage, res_masks, res_lineage), tolerance)
