"""TrackMate XML export (issue 22): the file parsed back, read by geff's TrackMate converter, and (where a
Fiji installation is named by EDGETRACK_FIJI) loaded by TrackMate's own TmXmlReader on a real JVM."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.io.trackmate import write_trackmate
from test_geff import _structure, lineage_table


def _expected_edges(tracks: pd.DataFrame) -> set[tuple[int, int]]:
    """(source row, target row): consecutive points of each track, and parent's last -> daughter's first."""
    edges = set()
    first, last = {}, {}
    for tid, g in tracks.groupby("track_id"):
        rows = g.sort_values("frame").index.tolist()
        edges |= set(itertools.pairwise(rows))
        first[tid], last[tid] = rows[0], rows[-1]
    for tid, parent in tracks.groupby("track_id")["parent_track_id"].max().items():
        if parent >= 0:
            edges.add((last[parent], first[tid]))
    return edges


@pytest.mark.parametrize("z", [False, True])
def test_the_file_has_the_spots_edges_and_tracks_trackmate_reads(tmp_path, z):
    tracks = lineage_table(z)
    path = write_trackmate(tracks, tmp_path / "tracks.xml", pixel_size=0.2, frame_interval=0.5)
    root = ET.parse(path).getroot()
    assert root.tag == "TrackMate" and [c.tag for c in root] == ["Log", "Model", "Settings", "GUIState",
                                                                   "DisplaySettings"]
    model = root.find("Model")
    assert model.attrib == {"spatialunits": "µm", "timeunits": "sec"}
    declared = {kind: {f.attrib["feature"]: f.attrib for f in model.find(f"FeatureDeclarations/{kind}")}
                for kind in ("SpotFeatures", "EdgeFeatures", "TrackFeatures")}
    for attrib in declared["SpotFeatures"].values():
        assert attrib["isint"] in ("true", "false") and attrib["dimension"]
    spots = model.find("AllSpots")
    assert int(spots.attrib["nspots"]) == len(tracks)
    by_id = {}
    for group in spots:
        for spot in group:
            assert int(spot.attrib["FRAME"]) == int(group.attrib["frame"])
            assert set(spot.attrib) - {"ID", "name"} <= set(declared["SpotFeatures"])  # TmXmlReader reads them all
            by_id[int(spot.attrib["ID"])] = spot.attrib
    assert sorted(by_id) == list(range(len(tracks)))
    for i, row in tracks.iterrows():
        spot = by_id[i]
        assert float(spot["POSITION_X"]) == pytest.approx(row.x * 0.2)
        assert float(spot["POSITION_Y"]) == pytest.approx(row.y * 0.2)
        assert float(spot["POSITION_Z"]) == pytest.approx(row.z * 0.2 if z else 0.0)
        assert float(spot["POSITION_T"]) == pytest.approx(row.frame * 0.5)
        assert int(spot["EDGETRACK_TRACK_ID"]) == row.track_id
        assert float(spot["MASS"]) == pytest.approx(row.mass)
        assert spot["ALPHA"] == ("NaN" if np.isnan(row.alpha) else "1.0")  # Java's Double.valueOf spelling
        assert int(spot["STATE"]) == row.state and int(spot["BRIGHT"]) == int(row.bright)
        assert spot["VISIBILITY"] == "1" and float(spot["RADIUS"]) == pytest.approx(0.2)
    assert "MOVIE" not in by_id[0]  # text columns cannot be TrackMate features
    all_tracks = model.find("AllTracks")
    edges = set()
    for track in all_tracks:
        assert set(track.attrib) - {"name"} <= set(declared["TrackFeatures"])
        for edge in track:
            assert set(edge.attrib) <= set(declared["EdgeFeatures"])
            s, t = int(edge.attrib["SPOT_SOURCE_ID"]), int(edge.attrib["SPOT_TARGET_ID"])
            assert int(by_id[s]["FRAME"]) < int(by_id[t]["FRAME"])
            edges.add((s, t))
    assert edges == _expected_edges(tracks)
    # one TrackMate track per connected lineage: 0 with its daughters 1 and 2, and 5; 7 is a lone spot
    features = {int(t.attrib["TRACK_ID"]): t.attrib for t in all_tracks}
    assert len(features) == 2
    mother = next(f for f in features.values() if f["NUMBER_SPLITS"] == "1")
    assert mother["NUMBER_SPOTS"] == "8" and mother["NUMBER_GAPS"] == "2" and mother["LONGEST_GAP"] == "1"
    assert float(mother["TRACK_START"]) == 0.0 and float(mother["TRACK_STOP"]) == pytest.approx(3.5)
    assert {int(t.attrib["TRACK_ID"]) for t in model.find("FilteredTracks")} == set(features)
    settings = root.find("Settings")
    for tag in ("ImageData", "BasicSettings", "DetectorSettings", "InitialSpotFilter", "SpotFilterCollection",
                "TrackerSettings", "TrackFilterCollection", "AnalyzerCollection"):
        assert settings.find(tag) is not None, tag
    image = settings.find("ImageData").attrib
    assert image["pixelwidth"] == "0.2" and image["timeinterval"] == "0.5" and image["nframes"] == "8"
    assert settings.find("DetectorSettings").attrib["DETECTOR_NAME"] == "MANUAL_DETECTOR"


def test_geffs_trackmate_reader_gets_the_same_tracks(tmp_path):
    """geff's own TrackMate XML converter (a reader that is not ours) finds the same spots, features and links."""
    pytest.importorskip("geff", reason="the geff package is not installed (pip install 'edgetrack[geff]')")
    from edgetrack.runtime.io.geff import read_geff
    from geff.convert import from_trackmate_xml_to_geff

    tracks = lineage_table(z=True)
    xml = write_trackmate(tracks, tmp_path / "tracks.xml")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not found in the attributes metadata")  # undeclared features
        warnings.filterwarnings("ignore", message="No image path found")
        from_trackmate_xml_to_geff(xml, tmp_path / "from_trackmate.geff")
    back = read_geff(tmp_path / "from_trackmate.geff")
    assert len(back) == len(tracks)
    back = back.set_index("ID").sort_index()
    np.testing.assert_allclose(back[["z", "y", "x"]].to_numpy(), tracks[["z", "y", "x"]].to_numpy())
    np.testing.assert_allclose(back["MASS"], tracks["mass"])
    assert (back["EDGETRACK_TRACK_ID"] == tracks["track_id"]).all()
    rebuilt = back[["frame", "y", "x", "track_id", "parent_track_id"]].reset_index(drop=True)
    assert _structure(rebuilt) == _structure(tracks)


def test_cells_get_their_radius_from_the_area_and_quality_from_it(tmp_path):
    tracks = lineage_table().assign(area=lambda t: np.pi * 4.0).drop(columns=["mass"])
    root = ET.parse(write_trackmate(tracks, tmp_path / "cells.xml", pixel_size=0.5)).getroot()
    spot = root.find("Model/AllSpots/SpotsInFrame/Spot").attrib
    assert float(spot["RADIUS"]) == pytest.approx(2.0 * 0.5)
    assert float(spot["AREA"]) == pytest.approx(np.pi * 4.0 * 0.25)  # px^2 -> µm^2
    assert float(spot["QUALITY"]) == pytest.approx(np.pi * 4.0)
    assert root.find("Model").attrib["timeunits"] == "frame"


def test_bad_input_gets_one_line_errors(tmp_path):
    tracks = lineage_table()
    with pytest.raises(InputError, match="pixel_size must be a positive number"):
        write_trackmate(tracks, tmp_path / "a.xml", pixel_size=0)
    with pytest.raises(InputError, match="radius: no column 'r'"):
        write_trackmate(tracks, tmp_path / "a.xml", radius="r")
    with pytest.raises(InputError, match="more than one point in frame"):
        write_trackmate(pd.concat([tracks, tracks.iloc[:1]]), tmp_path / "a.xml")
    assert not (tmp_path / "a.xml").exists()


def test_export_command_writes_trackmate(tmp_path, capsys):
    tracks = lineage_table()
    csv = tmp_path / "tracks.csv"
    tracks.to_csv(csv, index=False)
    movie = tmp_path / "movie.tif"
    movie.write_bytes(b"")
    out = tmp_path / "tracks.xml"
    assert main(["export", str(csv), "--format", "trackmate", "--out", str(out), "--pixel-size", "0.1",
                 "--frame-interval", "2", "--space-unit", "nm", "--image", str(movie)]) == 0
    assert "13 points in 5 tracks (2 daughter tracks)" in capsys.readouterr().err
    root = ET.parse(out).getroot()
    assert root.find("Model").attrib == {"spatialunits": "nm", "timeunits": "sec"}
    image = root.find("Settings/ImageData").attrib
    assert image["filename"] == "movie.tif" and Path(image["folder"]) == tmp_path.resolve()
    assert main(["export", str(csv), "--format", "geff", "--out", str(tmp_path / "t.geff"), "--image", "x"]) == 2


LOADER = """
import fiji.plugin.trackmate.Model;
import fiji.plugin.trackmate.Spot;
import fiji.plugin.trackmate.io.TmXmlReader;
import java.io.File;
import org.jgrapht.graph.DefaultWeightedEdge;

public class LoadTrackMate {
    public static void main(String[] args) {
        TmXmlReader reader = new TmXmlReader(new File(args[0]));
        Model model = reader.getModel();
        if (!reader.isReadingOk()) {
            System.err.println(reader.getErrorMessage());
            System.exit(1);
        }
        System.out.println("units " + model.getSpaceUnits() + " " + model.getTimeUnits());
        System.out.println("tracks " + model.getTrackModel().nTracks(false));
        for (Spot spot : model.getSpots().iterable(false))
            System.out.println("spot " + spot.ID() + " " + spot.getFeature("FRAME").intValue() + " "
                + spot.getFeature("POSITION_X") + " " + spot.getFeature("EDGETRACK_TRACK_ID").intValue());
        for (DefaultWeightedEdge edge : model.getTrackModel().edgeSet())
            System.out.println("edge " + model.getTrackModel().getEdgeSource(edge).ID() + " "
                + model.getTrackModel().getEdgeTarget(edge).ID());
    }
}
"""


def test_trackmate_itself_loads_the_file(tmp_path):
    """TrackMate's TmXmlReader on a JVM: needs a Fiji installation (EDGETRACK_FIJI=/path/to/Fiji.app), with
    TrackMate and its dependencies in jars/ and plugins/. TrackMate is not on any package registry here."""
    fiji = os.environ.get("EDGETRACK_FIJI")
    if not fiji or not list(Path(fiji).glob("plugins/TrackMate*.jar")) + list(Path(fiji).glob("jars/TrackMate*.jar")):
        pytest.skip("no Fiji installation with TrackMate (set EDGETRACK_FIJI to a Fiji.app folder)")
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("no JDK (javac and java) on PATH")
    folders = [Path(fiji) / "jars", Path(fiji) / "plugins"]
    folders += [p for p in (Path(fiji) / "jars").rglob("*") if p.is_dir()]
    classpath = os.pathsep.join(str(f / "*") for f in folders)
    (tmp_path / "LoadTrackMate.java").write_text(LOADER)
    subprocess.run(["javac", "-cp", classpath, "-d", str(tmp_path), str(tmp_path / "LoadTrackMate.java")],
                   check=True, capture_output=True, timeout=120)
    tracks = lineage_table()
    xml = write_trackmate(tracks, tmp_path / "tracks.xml", pixel_size=0.2, frame_interval=0.5)
    run = subprocess.run(["java", "-Djava.awt.headless=true", "-cp", classpath + os.pathsep + str(tmp_path),
                          "LoadTrackMate", str(xml)], check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [line.split() for line in run.stdout.splitlines()]
    assert ["units", "µm", "sec"] in lines and ["tracks", "2"] in lines
    spots = {int(w[1]): (int(w[2]), float(w[3]), int(w[4])) for w in lines if w[0] == "spot"}
    assert spots == {i: (row.frame, pytest.approx(row.x * 0.2), row.track_id) for i, row in tracks.iterrows()}
    assert {(int(w[1]), int(w[2])) for w in lines if w[0] == "edge"} == _expected_edges(tracks)
