"""`analyze --format andi` on a table with tracks too short to characterise: every track gets a line."""

from __future__ import annotations

import numpy as np
import pandas as pd

from edgetrack.runtime.cli.app import main


def test_short_tracks_get_filled_lines_not_a_traceback(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for tid in range(6):
        n = 2 if tid % 2 else 60
        p = np.cumsum(rng.normal(0, 1, (n, 2)), axis=0) + 50
        rows.append(pd.DataFrame({"track_id": tid, "frame": np.arange(n), "y": p[:, 0], "x": p[:, 1]}))
    pd.concat(rows).to_csv(tmp_path / "tracks.csv", index=False)
    assert main(["analyze", str(tmp_path / "tracks.csv"), "--out", str(tmp_path / "r"), "--format", "andi"]) == 0
    lines = (tmp_path / "r" / "andi" / "fov_0.txt").read_text().splitlines()
    assert len(lines) == 6
    for line in lines:
        values = [float(v) for v in line.split(",")]
        assert np.all(np.isfinite(values))
        assert values[3] in (0, 1, 2, 3)
    short = [line for line in lines if line.endswith(",2")]
    assert len(short) == 3 and all(line.split(",")[3] == "2" for line in short)
