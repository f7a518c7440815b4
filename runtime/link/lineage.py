"""Track ids from detection links, with divisions: the rule every offline output follows.

A streaming tracker commits ids frame by frame, so a mother whose second daughter is linked a frame
after the first has by then handed her id to the first daughter. Once all links are known, ids are
rebuilt here: an object with two or more children ends its track, and each child starts a new track
whose ``parent_track_id`` is the mother's (the Cell Tracking Challenge's lineage rule: a mother ends
the frame before her daughters start).
"""

from __future__ import annotations

import numpy as np
from edgetrack.runtime.errors import InputError

__all__ = ["tracks_from_links"]


def tracks_from_links(det_id: np.ndarray, parent_det_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Track ids from detection links: an object with two or more children ends its track.

    det_id: int64 (n,) unique ids, in an order where every parent comes before its children;
    parent_det_id: int64 (n,) the linked predecessor's id (-1 none). Returns (track_id int64 (n,)
    numbered 0.. in order of the tracks' first objects, parent_track_id int64 (n,): the mother's track
    on a daughter's first object, -1 elsewhere).
    """
    det_id = np.asarray(det_id, np.int64)
    parent_det_id = np.asarray(parent_det_id, np.int64)
    n = len(det_id)
    order = np.argsort(det_id, kind="stable")
    sorted_ids = det_id[order]
    has = parent_det_id >= 0
    parent_row = np.full(n, -1, np.int64)
    if has.any():
        pos = np.searchsorted(sorted_ids, parent_det_id[has])
        pos = np.minimum(pos, n - 1)
        if (sorted_ids[pos] != parent_det_id[has]).any():
            raise InputError("a link names a parent detection that is not in the table")
        parent_row[has] = order[pos]
    children = np.bincount(parent_row[has], minlength=n) if n else np.zeros(0, np.int64)
    track = np.full(n, -1, np.int64)
    parent_track = np.full(n, -1, np.int64)
    next_id = 0
    for r in order.tolist():
        p = parent_row[r]
        if p >= 0 and track[p] < 0:
            raise InputError("links must point from earlier to later detections")
        if p >= 0 and children[p] == 1:
            track[r] = track[p]
        else:
            track[r] = next_id
            next_id += 1
            if p >= 0:
                parent_track[r] = track[p]
    return track, parent_track
