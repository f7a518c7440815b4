"""``edgetrack plot`` (tracks picture, motion map, GIF/MP4 overlay) and the napari export."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile

from edgetrack.runtime.cli.app import main
from edgetrack.runtime.io.napari import to_napari, write_napari

pytest.importorskip("matplotlib", reason="plotting needs the 'plot' extra (matplotlib)")
from PIL import Image  # noqa: E402  (Pillow comes with scikit-image)

from edgetrack.runtime.plot import tracks as plot  # noqa: E402


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, small_movie):
    from edgetrack.runtime.stream.pipeline import track_movie

    movie, _ = small_movie
    folder = tmp_path_factory.mktemp("plot")
    movie_path = folder / "movie.ome.tif"
    tifffile.imwrite(movie_path, movie, ome=True, photometric="minisblack",
                     metadata={"axes": "TYX", "PhysicalSizeX": 0.1, "TimeIncrement": 0.05})
    tracks = track_movie(movie, max_distance=5.0)
    tracks_path = folder / "tracks.csv"
    tracks.to_csv(tracks_path, index=False)
    values = tracks[["track_id", "frame"]].copy()
    values["alpha"] = np.where(tracks["x"] < 64, 0.5, 1.5)  # a left/right difference the map must show
    values_path = folder / "frames.csv"
    values.to_csv(values_path, index=False)
    return movie, tracks, folder, movie_path, tracks_path, values_path


def coloured_pixels(path) -> int:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int32)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).sum())  # saturated: not grey, not white


def test_tracks_picture_map_and_gif(tracked, capsys):
    movie, tracks, folder, movie_path, tracks_path, values_path = tracked
    out = folder / "tracks.png"
    gif = folder / "overlay.gif"
    assert main(["plot", str(tracks_path), "--movie", str(movie_path), "--out", str(out), "--values",
                 str(values_path), "--map", "alpha", "--bin-px", "32", "--animate", str(gif), "--max-frames", "6",
                 "--frame", "last"]) == 0
    err = capsys.readouterr().err
    assert "pixel size 0.1 µm from OME-XML" in err and "overlay of 6 frames" in err
    picture = Image.open(out)
    assert picture.format == "PNG" and picture.size[0] > 600
    assert coloured_pixels(out) > 2000  # the tracks are drawn in colour over the grey frame
    assert Image.open(folder / "tracks_map_alpha.png").format == "PNG"
    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == 6
    # drawing no tracks (all shorter than min-length) leaves the picture grey
    empty = folder / "none.png"
    assert main(["plot", str(tracks_path), "--movie", str(movie_path), "--out", str(empty), "--min-length", "999",
                 "--quiet"]) == 0
    assert coloured_pixels(empty) < coloured_pixels(out) / 10


def test_value_grid_shows_where_values_differ(tracked):
    _, tracks, _, _, _, _ = tracked
    points = tracks.assign(alpha=np.where(tracks["x"] < 63.5, 0.5, 1.5))
    grid, counts, label = plot.value_grid(points, "alpha", (128, 128), bin_px=32, min_count=3)
    assert grid.shape == (4, 4) and counts.sum() == len(points)
    np.testing.assert_allclose(grid[:, :2][np.isfinite(grid[:, :2])], 0.5)
    np.testing.assert_allclose(grid[:, 2:][np.isfinite(grid[:, 2:])], 1.5)
    assert label.startswith("α")
    units = plot.PhysicalUnits(0.1, 0.05, "test")
    values, label = plot.physical_column(points.assign(D=2.0), "D", units)
    np.testing.assert_allclose(values, 2.0 * 0.01 / 0.05)
    assert label == "D (µm²/s)"


def test_colour_by_a_column_and_errors(tracked, capsys):
    _, _, folder, movie_path, tracks_path, values_path = tracked
    out = folder / "by_alpha.svg"
    assert main(["plot", str(tracks_path), "--out", str(out), "--values", str(values_path), "--color-by", "alpha",
                 "--quiet"]) == 0
    assert out.read_text().lstrip().startswith("<?xml")
    assert main(["plot", str(tracks_path), "--out", str(folder / "x.png"), "--color-by", "speed"]) == 2
    assert "cannot colour by 'speed'" in capsys.readouterr().err
    assert main(["plot", str(tracks_path), "--movie", str(movie_path), "--out", str(folder / "x.png"),
                 "--frame", "500"]) == 2
    assert "outside the movie" in capsys.readouterr().err
    assert main(["plot", str(tracks_path), "--out", str(folder / "x.png"), "--animate", str(folder / "a.gif")]) == 2
    assert "--animate needs --movie" in capsys.readouterr().err
    assert not list(folder.glob(".*part"))  # no partial files left behind


def test_mp4_written_or_skipped_with_a_message(tracked, capsys, monkeypatch):
    _, _, folder, movie_path, tracks_path, _ = tracked
    mp4 = folder / "overlay.mp4"
    args = ["plot", str(tracks_path), "--movie", str(movie_path), "--out", str(folder / "t.png"), "--animate",
            str(mp4), "--max-frames", "6"]
    if plot.mp4_available():
        assert main(args) == 0
        assert mp4.stat().st_size > 1000 and mp4.read_bytes()[4:8] == b"ftyp"
        mp4.unlink()
    monkeypatch.setattr(plot, "mp4_available", lambda: False)
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "skipping" in err and "pip install imageio-ffmpeg" in err
    assert not mp4.exists()


def test_napari_export_with_divisions(tmp_path, capsys):
    tracks = pd.DataFrame({
        "frame": [0, 1, 2, 3, 3, 0, 1, 4, 4],
        "y": np.arange(9, dtype=float), "x": np.arange(9, dtype=float) * 2,
        "track_id": [0, 0, 0, 1, 2, 5, 5, 1, 2],
        "parent_track_id": [-1, -1, -1, 0, 0, -1, -1, 0, 0],
        "mass": np.linspace(1, 9, 9),
    })
    data, graph = to_napari(tracks)
    assert data.shape == (9, 4)
    np.testing.assert_array_equal(data[:, 0], [0, 0, 0, 1, 1, 2, 2, 5, 5])  # sorted by track, then time
    np.testing.assert_array_equal(data[:3, 1], [0, 1, 2])
    assert graph == {1: [0], 2: [0]}
    out = tmp_path / "napari.csv"
    assert main(["export", str(_save(tracks, tmp_path)), "--format", "napari", "--out", str(out)]) == 0
    assert "2 division link(s)" in capsys.readouterr().err
    table = pd.read_csv(out)
    assert list(table.columns) == ["track_id", "t", "y", "x", "mass"]
    np.testing.assert_allclose(table[["track_id", "t", "y", "x"]].to_numpy(), data)
    assert json.loads((tmp_path / "napari.graph.json").read_text()) == {"1": [0], "2": [0]}
    with_z = tracks.assign(z=1.0)
    assert to_napari(with_z)[0].shape == (9, 5)
    assert to_napari(tracks.drop(columns="parent_track_id"))[1] == {}
    write_napari(tracks.iloc[:0], tmp_path / "empty.csv")
    assert len(pd.read_csv(tmp_path / "empty.csv")) == 0


def _save(tracks, folder):
    path = folder / "tracks.csv"
    tracks.to_csv(path, index=False)
    return path


def test_cli_import_stays_light():
    code = ("import sys, edgetrack.runtime.plot.tracks, edgetrack.runtime.io.napari, edgetrack.runtime.cli.app as c; "
            "c.build_parser(); print('matplotlib' in sys.modules, 'zarr' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr
