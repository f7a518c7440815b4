"""Gap filling: an object missing for a few frames inside a track gets a mask there.

A segmenter misses a cell for a frame or two; the tracker bridges the gap (``max_gap``), but a track
with a hole is two tracks in a Cell Tracking Challenge result (the CTC format has no gaps, so the
measure counts the bridging link as a wrong edge) and the missing frames have no object at all.
:func:`gap_rows` lists the missing frames of every track; :func:`fill_gaps` adds one row per missing
frame (``filled`` True; centroid interpolated linearly between the points before and after, in px;
shape features copied from the nearer of the two) and returns the masks with each such object painted
in: the nearer object's pixels moved by the interpolated displacement, on background pixels only (a
filled object never covers a segmented one), with a new label above the frame's own labels.
:func:`division_gap_rows` does the same for a division linked across a gap: the missed mother or the late
daughter is put back where the division happened.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import InputError
from edgetrack.runtime.io.masks import Masks, open_masks
from edgetrack.runtime.io.movie import Movie

__all__ = ["GAP_COLUMNS", "gap_rows", "division_gap_rows", "fill_gaps"]

#: Columns of :func:`gap_rows`.
GAP_COLUMNS = ("frame", "track_id", "y", "x", "source_frame", "source_label", "source_row")


def gap_rows(tracks: pd.DataFrame, max_gap: int | None = None) -> pd.DataFrame:
    """One row per frame missing inside a track (columns :data:`GAP_COLUMNS`).

    tracks: ``frame, track_id, y, x, label`` (one row per object). A hole of ``k`` frames between two
    points of a track is listed when ``max_gap`` is None or ``k + 1 <= max_gap`` (a link that spans
    ``k + 1`` frames). ``y, x`` are interpolated linearly (px); ``source_*`` name the nearer of the two
    points (the earlier on a tie) by frame, label and row position in ``tracks``.
    """
    missing = [c for c in ("frame", "track_id", "y", "x", "label") if c not in tracks.columns]
    if missing:
        raise InputError(f"tracks: missing column(s) {', '.join(missing)} for gap filling")
    order = np.lexsort((tracks["frame"].to_numpy(), tracks["track_id"].to_numpy()))
    tid = tracks["track_id"].to_numpy()[order]
    f = tracks["frame"].to_numpy(np.int64)[order]
    same = tid[1:] == tid[:-1]
    span = f[1:] - f[:-1]
    hole = same & (span > 1)
    if max_gap is not None:
        hole &= span <= int(max_gap)
    a = np.flatnonzero(hole)
    if a.size == 0:
        return pd.DataFrame({c: np.zeros(0, np.int64 if c != "y" and c != "x" else np.float64) for c in GAP_COLUMNS})
    counts = span[a] - 1
    left = np.repeat(a, counts)  # index (in sorted order) of the point before each missing frame
    step = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + 1  # 1..k within a hole
    frame = f[left] + step
    w = step / span[left].astype(np.float64)  # 0 at the point before, 1 at the point after
    y = tracks["y"].to_numpy(np.float64)[order]
    x = tracks["x"].to_numpy(np.float64)[order]
    yi = y[left] + w * (y[left + 1] - y[left])
    xi = x[left] + w * (x[left + 1] - x[left])
    nearer = np.where(w <= 0.5, left, left + 1)
    return pd.DataFrame({
        "frame": frame, "track_id": tid[left], "y": yi, "x": xi,
        "source_frame": f[nearer], "source_label": tracks["label"].to_numpy(np.int64)[order][nearer],
        "source_row": order[nearer],
    })


def division_gap_rows(tracks: pd.DataFrame, max_gap: int | None = None) -> pd.DataFrame:
    """One row per frame missing around a division (columns :data:`GAP_COLUMNS`).

    A division linked across a gap (the mother's last point at frame ``a``, a daughter's first at ``b >
    a + 1``) leaves frames with no object, and the Cell Tracking Challenge's lineage then has the mother
    end, or a daughter start, a frame or more away from where it does. When every daughter starts after
    ``a + 1``, the mother is what was missed: her track is extended up to the frame before the first
    daughter, moving from her last point towards the mean of the first daughters' first points (source:
    her last object). A daughter that starts later than that is then filled back to the frame after the
    mother's (extended) end, moving from the mother's last point to its own first (source: its own first
    object). Holes longer than ``max_gap - 1`` frames are left (None: any).
    """
    empty = pd.DataFrame({c: np.zeros(0, np.float64 if c in ("y", "x") else np.int64) for c in GAP_COLUMNS})
    if "parent_track_id" not in tracks.columns or len(tracks) == 0:
        return empty
    table = tracks.reset_index(drop=True)
    tid = table["track_id"].to_numpy(np.int64)
    frame = table["frame"].to_numpy(np.int64)
    order = np.lexsort((frame, tid))
    first_row: dict[int, int] = {}
    last_row: dict[int, int] = {}
    for r in order:
        t = int(tid[r])
        first_row.setdefault(t, int(r))
        last_row[t] = int(r)
    parent_of = {int(t): int(p) for t, p in table.groupby("track_id")["parent_track_id"].max().items() if p >= 0}
    daughters: dict[int, list[int]] = {}
    for child, mother in parent_of.items():
        if mother in last_row:
            daughters.setdefault(mother, []).append(child)
    y, x = table["y"].to_numpy(np.float64), table["x"].to_numpy(np.float64)
    label = table["label"].to_numpy(np.int64)
    longest = None if max_gap is None else int(max_gap) - 1
    rows: list[tuple] = []

    def add(track: int, frames: range, start_row: int, end_yx: tuple[float, float], end_frame: int,
            source_row: int) -> None:
        if len(frames) == 0 or (longest is not None and len(frames) > longest):
            return
        a = int(frame[start_row])
        for f in frames:
            w = (f - a) / float(end_frame - a)
            rows.append((f, track, y[start_row] + w * (end_yx[0] - y[start_row]),
                         x[start_row] + w * (end_yx[1] - x[start_row]), int(frame[source_row]),
                         int(label[source_row]), int(source_row)))

    for mother, kids in daughters.items():
        m_last = last_row[mother]
        a = int(frame[m_last])
        starts = {k: int(frame[first_row[k]]) for k in kids}
        b = min(starts.values())
        end = a
        if b > a + 1:
            first = [first_row[k] for k, s in starts.items() if s == b]
            target = (float(np.mean(y[first])), float(np.mean(x[first])))
            before = len(rows)
            add(mother, range(a + 1, b), m_last, target, b, m_last)
            if len(rows) > before:
                end = b - 1
        for kid, start in starts.items():
            if start > end + 1:
                k_first = first_row[kid]
                add(kid, range(end + 1, start), m_last, (float(y[k_first]), float(x[k_first])), start, k_first)
    if not rows:
        return empty
    out = pd.DataFrame(rows, columns=list(GAP_COLUMNS))
    # source rows are positions in ``tracks`` as given
    out["source_row"] = out["source_row"].to_numpy(np.int64)
    return out


def fill_gaps(tracks: pd.DataFrame, masks, *, max_gap: int | None = None) -> tuple[pd.DataFrame, Masks]:
    """Fill the holes of every track: (tracks with a ``filled`` column and the new rows, masks with them).

    tracks: a cell tracks table (``frame, label, y, x, track_id, parent_track_id`` and features, as
    :func:`~edgetrack.runtime.cells.tracker.track_cells` returns); masks: the label masks it refers to
    (anything :func:`~edgetrack.runtime.io.masks.open_masks` takes). The new rows keep the track's id,
    ``parent_track_id`` -1, the nearer point's features, and a label unused in their frame. The masks
    returned are read lazily: frame t is the original frame with the filled objects painted in (on
    background pixels; a filled object moved partly out of the frame is clipped there). Every frame
    that a filled object comes from or goes to is read once here.
    """
    masks = open_masks(masks)
    holes = pd.concat([gap_rows(tracks, max_gap), division_gap_rows(tracks, max_gap)], ignore_index=True)
    out = tracks.copy()
    out["filled"] = False
    if len(holes) == 0:
        return out, masks
    n = len(masks)
    if holes["frame"].max() >= n:
        raise InputError(f"tracks: frames must lie in 0..{n - 1} (the masks have {n} frames)")
    shape = masks.frame_shape
    pixels: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # (frame, label) -> (rows, cols)
    top: dict[int, int] = {}  # frame -> its largest label
    wanted = holes.groupby("source_frame")["source_label"].apply(lambda s: set(s.tolist())).to_dict()
    for t in sorted(set(wanted) | set(holes["frame"].tolist())):
        frame = np.asarray(masks[t])
        top[t] = int(frame.max()) if frame.size else 0
        for label in wanted.get(t, ()):
            rows, cols = np.nonzero(frame == label)
            pixels[(t, label)] = (rows.astype(np.int64), cols.astype(np.int64))
    source = tracks.iloc[holes["source_row"].to_numpy()]
    holes = holes.assign(
        dy=np.rint(holes["y"].to_numpy() - source["y"].to_numpy()).astype(np.int64),
        dx=np.rint(holes["x"].to_numpy() - source["x"].to_numpy()).astype(np.int64))
    rank = holes.groupby("frame").cumcount().to_numpy()
    holes["label"] = np.array([top[t] for t in holes["frame"].to_numpy()], np.int64) + 1 + rank
    new = source.copy()
    new["frame"] = holes["frame"].to_numpy()
    new["label"] = holes["label"].to_numpy()
    new["y"] = holes["y"].to_numpy()
    new["x"] = holes["x"].to_numpy()
    new["track_id"] = holes["track_id"].to_numpy()
    if "parent_track_id" in new.columns:
        new["parent_track_id"] = -1
    new["filled"] = True
    filled = pd.concat([out, new], ignore_index=True).sort_values(["frame", "track_id"], kind="stable")
    paint = {t: list(g[["label", "source_frame", "source_label", "dy", "dx"]].itertuples(index=False, name=None))
             for t, g in holes.groupby("frame")}

    def read(t: int) -> np.ndarray:
        frame = np.asarray(masks[t])
        todo = paint.get(t)
        if not todo:
            return frame
        largest = max(label for label, *_ in todo)
        dtype = np.result_type(frame.dtype, np.min_scalar_type(largest))
        frame = frame.astype(dtype, copy=True)
        for label, sf, sl, dy, dx in todo:
            rows, cols = pixels[(sf, sl)]
            r, c = rows + dy, cols + dx
            inside = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
            r, c = r[inside], c[inside]
            free = frame[r, c] == 0
            frame[r[free], c[free]] = label
        return frame

    return filled.reset_index(drop=True), Masks(Movie(f"{masks.source} (gaps filled)", n, shape, read),
                                                masks.frame_numbers)
