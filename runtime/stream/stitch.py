"""Stitching track fragments with each track's own motion: a fast particle whose step once exceeded the
search radius (or that vanished for a few frames) is one track again.

The streaming tracker links with one ``max_distance`` for all; a particle that speeds up takes a step
beyond it and its track breaks. :func:`stitch_tracks` joins the end of one track to the start of a later
one when the jump fits *their* motion: each fragment's rms step per axis ``s`` (px/frame, from its own
steps, at least ``min_sigma``) sets a gate ``gate * s_pair * sqrt(2 k)`` on the distance across a hole of
``k`` frames (``s_pair`` the larger of the two fragments' ``s``), and among the pairs within their gates the
assignment with the least total normalised cost ``d^2 / (2 s_pair^2 k)`` is kept (one successor per end,
one predecessor per start; scipy's LAP). Fragments with fewer than ``min_steps`` steps borrow the median
step of all tracks. Tracks with divisions (``parent_track_id`` >= 0) are left as they are. Only joins the
tracker could not make are considered: a jump longer than its ``max_distance`` or a hole longer than its
``max_gap`` (a pair the tracker weighed and refused, for another candidate, stays refused).

Offline on a finished table, or on the committed part of a stream: a track that ended more than
``max_frames`` frames ago can no longer be joined, so its decision is final.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.graph.defaults import DEFAULT_MAX_DISTANCE, DEFAULT_MAX_GAP

__all__ = ["stitch_tracks", "track_step_sigma"]


def track_step_sigma(tracks: pd.DataFrame, min_steps: int = 3) -> pd.Series:
    """rms step per axis (px/frame) of each track from its consecutive points (a step over a gap of ``k``
    frames counts as ``k`` frames); NaN for tracks with fewer than ``min_steps`` steps."""
    t = tracks.sort_values(["track_id", "frame"], kind="stable")
    same = t["track_id"].to_numpy()[1:] == t["track_id"].to_numpy()[:-1]
    dy = np.diff(t["y"].to_numpy(np.float64))[same]
    dx = np.diff(t["x"].to_numpy(np.float64))[same]
    dt = np.diff(t["frame"].to_numpy(np.int64))[same]
    ids = t["track_id"].to_numpy()[1:][same]
    per = pd.DataFrame({"track_id": ids, "sq": (dy * dy + dx * dx) / (2.0 * dt), "n": 1})
    grouped = per.groupby("track_id").agg(sq=("sq", "sum"), n=("n", "sum"))
    sigma = np.sqrt(grouped["sq"] / grouped["n"])
    sigma[grouped["n"] < min_steps] = np.nan
    return sigma.reindex(pd.unique(tracks["track_id"]))


def stitch_tracks(tracks: pd.DataFrame, *, max_frames: int = 3, gate: float = 3.0, min_sigma: float = 0.5,
                  min_steps: int = 3, max_jump: float | None = None, tracker_max_distance: float | None = None,
                  tracker_max_gap: int | None = None, unambiguous: bool = True) -> pd.DataFrame:
    """Join track fragments whose jump fits their own motion (see the module docstring).

    tracks: ``frame, y, x, track_id`` (+ any columns, kept). max_frames: the largest frame difference
    between an end and a start (1 = consecutive frames). gate: in rms steps. min_sigma: the least rms
    step per axis a fragment is given, px. max_jump: a hard cap on the distance, px (None: none).
    tracker_max_distance / tracker_max_gap: the tracker's own (default: edgetrack's defaults), px and frames.
    unambiguous: join only an end and a start that are each other's only candidate within the gates (in
    crowded fields the assignment among several candidates guessed wrong more often than right).
    Returns the table with the later fragment's rows carrying the earlier one's ``track_id`` (chains
    follow), row order kept; a ``stitched`` column counts the joins into each row's track.
    """
    from scipy.optimize import linear_sum_assignment

    for name, value in (("max_frames", max_frames), ("min_steps", min_steps)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    for name, value in (("gate", gate), ("min_sigma", min_sigma)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a number > 0, got {value!r}")
    missing = [c for c in ("frame", "y", "x", "track_id") if c not in tracks.columns]
    if missing:
        raise InputError(f"tracks: missing column(s) {', '.join(missing)}")
    out = tracks.copy()
    out["stitched"] = 0
    if len(tracks) == 0:
        return out
    divided = set()
    if "parent_track_id" in tracks.columns:
        parents = tracks.loc[tracks["parent_track_id"] >= 0]
        divided = set(parents["track_id"]) | set(parents["parent_track_id"])
    ordered = tracks.sort_values(["track_id", "frame"], kind="stable")
    heads = ordered.groupby("track_id", sort=False).head(1).set_index("track_id")
    tails = ordered.groupby("track_id", sort=False).tail(1).set_index("track_id")
    sigma = track_step_sigma(tracks, min_steps)
    fallback = float(np.nanmedian(sigma.to_numpy())) if sigma.notna().any() else min_sigma
    sigma = sigma.fillna(fallback).clip(lower=min_sigma)
    ids = [t for t in heads.index if t not in divided]
    if len(ids) < 2:
        return out
    end_f = tails.loc[ids, "frame"].to_numpy(np.int64)
    start_f = heads.loc[ids, "frame"].to_numpy(np.int64)
    k = start_f[None, :] - end_f[:, None]  # end i -> start j
    dy = heads.loc[ids, "y"].to_numpy()[None, :] - tails.loc[ids, "y"].to_numpy()[:, None]
    dx = heads.loc[ids, "x"].to_numpy()[None, :] - tails.loc[ids, "x"].to_numpy()[:, None]
    d = np.hypot(dy, dx)
    s = np.maximum(sigma.loc[ids].to_numpy()[:, None], sigma.loc[ids].to_numpy()[None, :])
    ok = (k >= 1) & (k <= max_frames) & (d <= gate * s * np.sqrt(2.0 * np.maximum(k, 1)))
    if max_jump is not None:
        ok &= d <= float(max_jump)
    reach = DEFAULT_MAX_DISTANCE if tracker_max_distance is None else float(tracker_max_distance)
    span = DEFAULT_MAX_GAP if tracker_max_gap is None else int(tracker_max_gap)
    ok &= (d > reach) | (k > span)  # the tracker saw every other pair and chose
    np.fill_diagonal(ok, False)
    if unambiguous:  # an end with one candidate start that has no other candidate end
        ok &= (ok.sum(axis=1, keepdims=True) == 1) & (ok.sum(axis=0, keepdims=True) == 1)
    if not ok.any():
        return out
    rows, cols = np.nonzero(ok)
    ends, starts = np.unique(rows), np.unique(cols)
    cost = np.full((len(ends), len(starts)), 1e12)
    r = np.searchsorted(ends, rows)
    c = np.searchsorted(starts, cols)
    cost[r, c] = d[rows, cols] ** 2 / (2.0 * s[rows, cols] ** 2 * k[rows, cols])
    a, b = linear_sum_assignment(cost)
    keep = cost[a, b] < 1e12
    successor = {ids[ends[i]]: ids[starts[j]] for i, j in zip(a[keep], b[keep])}
    predecessor = {v: key for key, v in successor.items()}
    new_id: dict = {}
    joins: dict = {}
    for tid in ids:
        if tid in predecessor:
            continue  # not the first fragment of its chain
        chain, cur = [tid], tid
        while cur in successor:
            cur = successor[cur]
            chain.append(cur)
        for member in chain:
            new_id[member] = tid
        joins[tid] = len(chain) - 1
    mapped = out["track_id"].map(new_id)
    out["track_id"] = mapped.where(mapped.notna(), out["track_id"]).astype(tracks["track_id"].dtype)
    out["stitched"] = out["track_id"].map(joins).fillna(0).astype(np.int64)
    return out
