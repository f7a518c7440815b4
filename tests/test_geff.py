"""geff import and export (issue 22): round trips, geff's own validator, graphs written by other tools, the CLI."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import tifffile
from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import FileReadError, InputError, OutputError
from edgetrack.runtime.io.geff import read_geff, write_geff
from edgetrack.runtime.io.tables import read_table


@pytest.fixture()
def geff():
    return pytest.importorskip("geff", reason="the geff package is not installed (pip install 'edgetrack[geff]')")


def lineage_table(z: bool = False) -> pd.DataFrame:
    """Track 0 (frames 0-3, frame 2 skipped) divides into 1 and 2; track 5 stands alone; track 7 has one point.

    Track 1 carries its parent on every point, track 2 on its first point only (as the cell tracker writes).

    Rows are shuffled so that row order is not track order; features of several dtypes.
    """
    rows = [(0, 0, -1), (1, 0, -1), (3, 0, -1), (4, 1, 0), (5, 1, 0), (7, 1, 0), (4, 2, 0), (5, 2, -1),
            (0, 5, -1), (1, 5, -1), (2, 5, -1), (3, 5, -1), (6, 7, -1)]
    rng = np.random.default_rng(1)
    table = pd.DataFrame(rows, columns=["frame", "track_id", "parent_track_id"])
    table.insert(1, "y", rng.uniform(0, 50, len(rows)))
    table.insert(2, "x", rng.uniform(0, 60, len(rows)))
    if z:
        table.insert(1, "z", rng.uniform(0, 8, len(rows)))
    table["mass"] = rng.uniform(100, 900, len(rows))
    table["alpha"] = np.where(np.arange(len(rows)) % 4 == 0, np.nan, 1.0)  # NaN where undefined
    table["state"] = np.arange(len(rows), dtype=np.int64) % 4
    table["bright"] = table["mass"] > 500
    table["movie"] = "a.tif"
    return table.sample(frac=1.0, random_state=3).reset_index(drop=True)


def _structure(tracks: pd.DataFrame) -> set:
    """The tracks as a set of (frozenset of points, parent's points) with labels out of the way."""
    key = {t: frozenset(map(tuple, g[["frame", "y", "x"]].round(9).to_numpy())) for t, g in tracks.groupby("track_id")}
    parents = tracks.groupby("track_id")["parent_track_id"].max()
    return {(key[t], key.get(int(parents[t]))) for t in key}


@pytest.mark.parametrize("z", [False, True])
def test_round_trip_is_identical_and_geff_validates_it(geff, tmp_path, z):
    from geff.core_io import read_to_memory
    from geff.validate.data import ValidationConfig

    tracks = lineage_table(z)
    path = write_geff(tracks, tmp_path / "tracks.geff", pixel_size=0.108, frame_interval=0.5)
    geff.validate_structure(str(path))
    memory = read_to_memory(str(path), data_validation=ValidationConfig(graph=True, tracklet=True, lineage=True))
    # 13 points: consecutive points of tracks 0 (2 edges), 1 (2), 2 (1), 5 (3), plus 2 division edges
    assert len(memory["edge_ids"]) == 10
    axes = {a.name: a for a in memory["metadata"].axes}
    assert list(axes) == ["t", *(["z"] if z else []), "y", "x"]
    assert axes["t"].unit == "frame" and axes["t"].scale == 0.5 and axes["t"].scaled_unit == "second"
    assert axes["x"].unit == "pixel" and axes["x"].scale == 0.108 and axes["x"].scaled_unit == "micrometer"
    assert memory["metadata"].track_node_props == {"tracklet": "track_id", "lineage": "lineage_id"}
    back = read_geff(path)
    pd.testing.assert_frame_equal(back, tracks)
    assert back.attrs == {"pixel_size": 0.108, "frame_interval": 0.5, "space_unit": "micrometer",
                          "time_unit": "second"}
    # the lineage of the daughters is the mother's
    lineage = pd.Series(memory["node_props"]["lineage_id"]["values"], index=memory["node_ids"].astype(int))
    assert set(lineage[tracks.index[tracks.track_id.isin([0, 1, 2])]]) == {0}


def test_edges_alone_give_back_the_tracks(geff, tmp_path):
    """A geff whose track ids are dropped (as another tool might write it) rebuilds the same tracks."""
    tracks = lineage_table().drop(columns=["movie"])
    graph, _ = geff.read(str(write_geff(tracks, tmp_path / "ours.geff")))
    for _, props in graph.nodes(data=True):
        for name in ("track_id", "parent_track_id", "lineage_id"):
            del props[name]
    plain = tmp_path / "plain.geff"
    geff.write(graph, str(plain), axis_names=["t", "y", "x"], axis_types=["time", "space", "space"])
    back = read_geff(plain)
    assert list(back.columns[:5]) == ["frame", "y", "x", "track_id", "parent_track_id"]
    assert _structure(back) == _structure(tracks)
    # tracks are numbered by their first point (frame, then node id): track 0 and 5 start at frame 0
    assert back.groupby("track_id")["frame"].min().tolist() == [0, 0, 4, 4, 6]
    pd.testing.assert_frame_equal(back[["alpha", "mass", "state"]].reset_index(drop=True),
                                  tracks[["alpha", "mass", "state"]].reset_index(drop=True), check_like=True)


def test_plain_graph_from_another_tool(geff, tmp_path):
    """A networkx graph with t/y/x but no track ids: a node with one child continues, a division starts two."""
    import networkx as nx

    g = nx.DiGraph()
    points = {10: (0, 5.0, 5.0), 11: (1, 5.5, 5.0), 12: (3, 6.0, 5.5),  # a gap of one frame
              13: (4, 4.0, 5.0), 14: (4, 8.0, 5.0), 15: (5, 3.0, 5.0),  # 12 divides into 13 and 14
              20: (2, 30.0, 30.0)}                                      # alone
    for node, (t, y, x) in points.items():
        g.add_node(node, t=t, y=y, x=x, area=float(node))
    g.add_edges_from([(10, 11), (11, 12), (12, 13), (12, 14), (13, 15)])
    path = tmp_path / "other.geff"
    geff.write(g, str(path), axis_names=["t", "y", "x"], axis_types=["time", "space", "space"],
               axis_units=["frame", "micrometer", "micrometer"])
    back = read_geff(path)
    assert back["area"].tolist() == [10, 11, 12, 13, 14, 15, 20]
    assert back["track_id"].tolist() == [0, 0, 0, 2, 3, 2, 1]
    assert back["parent_track_id"].tolist() == [-1, -1, -1, 0, 0, 0, -1]
    assert back["frame"].dtype == np.int64 and back["frame"].tolist() == [0, 1, 3, 4, 4, 5, 2]

    undirected = nx.Graph()
    undirected.add_nodes_from(g.nodes(data=True))
    undirected.add_edges_from([(11, 10), (12, 11), (13, 12), (14, 12), (15, 13)])
    path = tmp_path / "undirected.geff"
    geff.write(undirected, str(path), axis_names=["t", "y", "x"], axis_types=["time", "space", "space"])
    assert read_geff(path)[["track_id", "parent_track_id"]].equals(back[["track_id", "parent_track_id"]])

    g.add_node(16, t=5, y=9.0, x=5.0, area=16.0)
    g.add_edges_from([(14, 15), (14, 16)])  # 15 now has two parents: a merge
    merged = tmp_path / "merge.geff"
    geff.write(g, str(merged), axis_names=["t", "y", "x"], axis_types=["time", "space", "space"])
    with pytest.raises(InputError, match="merge"):
        read_geff(merged)

    from geff.core_io import write_arrays
    from geff_spec import Axis, GeffMetadata

    dangling = tmp_path / "dangling.geff"
    props = {name: {"values": np.array([0.0, 1.0]), "missing": None} for name in ("t", "y", "x")}
    axes = [Axis(name="t", type="time"), Axis(name="y", type="space"), Axis(name="x", type="space")]
    write_arrays(str(dangling), np.array([0, 1], np.uint64), props, np.array([[0, 5]], np.uint64), {},
                 GeffMetadata(directed=True, axes=axes, node_props_metadata={}, edge_props_metadata={}))
    with pytest.raises(InputError, match="names node 5, which is not a node"):
        read_geff(dangling)


def test_bad_tables_and_paths_get_one_line_errors(geff, tmp_path):
    tracks = lineage_table()
    with pytest.raises(InputError, match="track 0 has more than one point in frame 1"):
        write_geff(pd.concat([tracks, tracks[(tracks.track_id == 0) & (tracks.frame == 1)]]), tmp_path / "a.geff")
    early = tracks.copy()
    early.loc[early.track_id == 2, "frame"] -= 2  # the daughter starts before its mother ends
    with pytest.raises(InputError, match="not after its parent track 0 ends"):
        write_geff(early, tmp_path / "b.geff")
    with pytest.raises(InputError, match="'track_id' must hold whole numbers >= 0"):
        write_geff(tracks.assign(track_id=-1), tmp_path / "c.geff")
    with pytest.raises(InputError, match="missing required column"):
        write_geff(tracks.drop(columns="x"), tmp_path / "d.geff")
    with pytest.raises(InputError, match="column 't'"):
        write_geff(tracks.assign(t=1.0), tmp_path / "e.geff")
    own = tracks.assign(lineage_id=7)  # a lineage column read from another tool's geff stays as it is
    pd.testing.assert_frame_equal(read_geff(write_geff(own, tmp_path / "own.geff")), own)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="exists and is not a geff"):
        write_geff(tracks, other)
    assert (other / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    first = write_geff(tracks, tmp_path / "again.geff")
    write_geff(tracks.iloc[:3], first)  # an earlier geff is replaced
    assert len(read_geff(first)) == 3
    with pytest.raises(FileReadError, match="no such geff"):
        read_geff(tmp_path / "missing.geff")
    with pytest.raises(FileReadError, match="not a readable geff"):
        read_geff(other)


def test_empty_table_and_missing_parent_column(geff, tmp_path):
    tracks = lineage_table()
    empty = tracks.iloc[:0]
    pd.testing.assert_frame_equal(read_geff(write_geff(empty, tmp_path / "empty.geff")), empty, check_dtype=False)
    plain = tracks.drop(columns="parent_track_id")
    back = read_geff(write_geff(plain, tmp_path / "plain.geff"))
    pd.testing.assert_frame_equal(back, plain)


def test_a_missing_geff_package_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "geff.core_io", None)
    monkeypatch.setitem(sys.modules, "geff_spec", None)
    with pytest.raises(OutputError, match=r'pip install "edgetrack\[geff\]"'):
        write_geff(lineage_table(), tmp_path / "x.geff")
    with pytest.raises(FileReadError, match=r'pip install "edgetrack\[geff\]"'):
        read_geff(tmp_path / "x.geff")
    movie = tmp_path / "m.npy"
    np.save(movie, np.zeros((2, 16, 16), np.uint16))
    assert main(["track", str(movie), "--format", "geff", "--out", str(tmp_path / "t.geff")]) == 2
    assert not (tmp_path / "t.geff.csv").exists()


def test_export_command_writes_geff_with_units(geff, tmp_path, capsys):
    tracks = lineage_table().drop(columns=["movie"])
    csv = tmp_path / "tracks.csv"
    tracks.to_csv(csv, index=False)
    out = tmp_path / "tracks.geff"
    assert main(["export", str(csv), "--format", "geff", "--out", str(out), "--pixel-size", "0.1",
                 "--frame-interval", "2", "--time-unit", "minute"]) == 0
    assert "13 points in 5 tracks (2 daughter tracks)" in capsys.readouterr().err
    back = read_geff(out)
    pd.testing.assert_frame_equal(back, pd.read_csv(csv))
    assert back.attrs["frame_interval"] == 2.0 and back.attrs["time_unit"] == "minute"
    assert main(["export", str(csv), "--format", "napari", "--out", str(tmp_path / "n.csv"), "--pixel-size", "1"]) == 2
    assert "not used by --format napari" in capsys.readouterr().err


def test_track_writes_geff_on_the_spot_path(geff, tmp_path):
    from edgetrack.runtime.simulate.spots import simulate_movie

    movie, _ = simulate_movie(n_frames=10, shape=(64, 64), n_spots=8, snr=10.0, seed=5)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie)
    assert main(["track", str(path), "--out", str(tmp_path / "t.csv"), "--quiet"]) == 0
    assert main(["track", str(path), "--format", "geff", "--out", str(tmp_path / "t.geff"), "--quiet"]) == 0
    assert not (tmp_path / "t.geff.csv").exists()
    csv = pd.read_csv(tmp_path / "t.csv")
    assert len(csv) > 10 and csv["track_id"].nunique() >= 2
    pd.testing.assert_frame_equal(read_geff(tmp_path / "t.geff"), csv)


def test_track_writes_geff_on_the_cell_path(geff, tmp_path):
    from test_cell_tracking import dividing_scene

    masks, _ = dividing_scene()
    folder = tmp_path / "SEG"
    folder.mkdir()
    for t, m in enumerate(masks):
        tifffile.imwrite(folder / f"mask{t:03d}.tif", m)
    common = ["track", "--masks", str(folder), "--max-distance", "20", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "cells.csv")]) == 0
    assert main([*common, "--format", "geff", "--out", str(tmp_path / "cells.geff")]) == 0
    back = read_geff(tmp_path / "cells.geff")
    csv = read_table(tmp_path / "cells.csv", ("frame", "y", "x", "track_id"))
    pd.testing.assert_frame_equal(back, csv, check_dtype=False)
    assert (back.groupby("track_id")["parent_track_id"].max() >= 0).sum() == 2
    _, meta = geff.read(str(tmp_path / "cells.geff"))
    assert meta.track_node_props["tracklet"] == "track_id"
