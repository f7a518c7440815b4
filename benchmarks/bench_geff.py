"""geff and TrackMate XML export of a 100 000-point tracks table: round-trip checks and times.

The table: 400 lineages (a mother track over frames 0-49 dividing into two daughters over frames
50-99, 150 points each) and 400 tracks of 100 points over frames 0-100 with frame 50 skipped (a gap),
with the features mass, size (float), state (int) and alpha (float, NaN on every fifth point).

Checks: ``read_geff(write_geff(t))`` equals ``t`` (pandas ``assert_frame_equal``: rows, order, dtypes),
geff's validator (structure, graph, tracklets, lineages) accepts the file; the TrackMate XML parsed back
with ``xml.etree`` has the same spots (ID, FRAME, POSITION_X/Y, EDGETRACK_TRACK_ID) and edges as the table's
graph. Times: the import of geff (with zarr and pydantic), the first call, then the median of 3 more.

    python benchmarks/bench_geff.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd


def make_table(n_lineages: int = 400, n_gapped: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(n_lineages):
        mother, a, b = 3 * k, 3 * k + 1, 3 * k + 2
        parts.append((np.arange(50), np.full(50, mother), np.full(50, -1)))
        parts.append((np.arange(50, 100), np.full(50, a), np.full(50, mother)))
        parts.append((np.arange(50, 100), np.full(50, b), np.full(50, mother)))
    base = 3 * n_lineages
    gapped = np.delete(np.arange(101), 50)
    for k in range(n_gapped):
        parts.append((gapped, np.full(100, base + k), np.full(100, -1)))
    frame, tid, parent = (np.concatenate(c) for c in zip(*parts))
    n = len(frame)
    return pd.DataFrame({"frame": frame, "y": rng.uniform(0, 2048, n), "x": rng.uniform(0, 2048, n),
                         "track_id": tid, "parent_track_id": parent, "mass": rng.uniform(100, 5000, n),
                         "size": rng.uniform(1, 3, n), "state": rng.integers(0, 4, n),
                         "alpha": np.where(np.arange(n) % 5 == 0, np.nan, rng.uniform(0.2, 1.8, n))})


def timed(fn, repeats: int = 3) -> tuple[float, float, object]:
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times), result


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    start = time.perf_counter()
    from geff.core_io import read_to_memory
    from geff.validate.data import ValidationConfig

    print(f"import geff.core_io: {time.perf_counter() - start:.2f} s")
    from edgetrack.runtime.io.geff import read_geff, write_geff
    from edgetrack.runtime.io.trackgraph import track_graph
    from edgetrack.runtime.io.trackmate import write_trackmate

    table = make_table()
    graph = track_graph(table)
    print(f"table: {len(table)} points, {table.track_id.nunique()} tracks, {len(graph.src)} edges "
          f"({graph.n_divisions} at divisions)")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        w_first, w_med, path = timed(lambda: write_geff(table, out / "t.geff", pixel_size=0.1, frame_interval=0.5))
        r_first, r_med, back = timed(lambda: read_geff(path))
        pd.testing.assert_frame_equal(back, table)
        read_to_memory(str(path), data_validation=ValidationConfig(graph=True, tracklet=True, lineage=True))
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        print("geff round trip identical (assert_frame_equal) and accepted by geff's validator "
              "(structure, graph, tracklet, lineage)")
        x_first, x_med, xml = timed(lambda: write_trackmate(table, out / "t.xml", pixel_size=0.1, frame_interval=0.5))
        p_first, p_med, root = timed(lambda: ET.parse(xml).getroot())
        spots = [s.attrib for s in root.iter("Spot")]
        ids = np.array([int(s["ID"]) for s in spots])
        order = np.argsort(ids)
        assert np.array_equal(ids[order], np.arange(len(table)))
        for key, column, scale in (("FRAME", "frame", 1), ("POSITION_X", "x", 0.1), ("POSITION_Y", "y", 0.1),
                                   ("EDGETRACK_TRACK_ID", "track_id", 1)):
            values = np.array([float(spots[i][key]) for i in order])
            np.testing.assert_allclose(values, table[column].to_numpy() * scale, rtol=1e-12)
        edges = {(int(e.attrib["SPOT_SOURCE_ID"]), int(e.attrib["SPOT_TARGET_ID"])) for e in root.iter("Edge")}
        assert edges == set(zip(graph.src.tolist(), graph.dst.tolist()))
        n_tm = len(root.find("Model/AllTracks"))
        print(f"TrackMate XML parsed back: {len(spots)} spots and {len(edges)} edges, the same as the table; "
              f"{n_tm} TrackMate tracks (connected lineages)")
        xml_mb = xml.stat().st_size / 1e6
    print()
    print("| step | first call s | median of 3 s | size |")
    print("|---|---:|---:|---:|")
    print(f"| write_geff | {w_first:.2f} | {w_med:.2f} | {size / 1e6:.1f} MB |")
    print(f"| read_geff | {r_first:.2f} | {r_med:.2f} | |")
    print(f"| write_trackmate | {x_first:.2f} | {x_med:.2f} | {xml_mb:.1f} MB |")
    print(f"| xml.etree parse of it | {p_first:.2f} | {p_med:.2f} | |")


if __name__ == "__main__":
    main()
