"""OME-TIFF and OME-Zarr movies: lazy frame reading, channel/plane choice, physical units, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import FileReadError, InputError
from edgetrack.runtime.io.readers import open_movie
from edgetrack.runtime.io.ome import PhysicalUnits, movie_units, open_ome_tiff, open_ome_zarr, tiff_units

DATA = np.arange(5 * 2 * 3 * 16 * 20, dtype=np.uint16).reshape(5, 2, 3, 16, 20)  # T, C, Z, Y, X
AXES_04 = [{"name": "t", "type": "time", "unit": "millisecond"}, {"name": "c", "type": "channel"},
           {"name": "z", "type": "space", "unit": "micrometer"}, {"name": "y", "type": "space", "unit": "micrometer"},
           {"name": "x", "type": "space", "unit": "micrometer"}]


@pytest.fixture()
def ome_tiff(tmp_path):
    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, DATA, ome=True, photometric="minisblack",
                     metadata={"axes": "TCZYX", "PhysicalSizeX": 108.0, "PhysicalSizeXUnit": "nm",
                               "PhysicalSizeY": 108.0, "PhysicalSizeYUnit": "nm",
                               "TimeIncrement": 50.0, "TimeIncrementUnit": "ms"})
    return path


def test_ome_tiff_frames_channels_and_units(ome_tiff):
    with pytest.raises(InputError, match="2 channel.*3 z plane"):  # no guessing of the plane
        open_movie(ome_tiff)
    movie = open_movie(ome_tiff, channel=0, z=0)
    assert len(movie) == 5 and movie.frame_shape == (16, 20) and movie.axes == "TCZYX"
    for t in range(5):
        np.testing.assert_array_equal(movie[t], DATA[t, 0, 0])
    assert movie.units == PhysicalUnits(0.108, 0.05, "OME-XML")
    other = open_ome_tiff(ome_tiff, channel=1, z=2)
    np.testing.assert_array_equal(other[4], DATA[4, 1, 2])
    assert (other.n_channels, other.n_z) == (2, 3)
    with pytest.raises(InputError, match="channel 2 does not exist"):
        open_ome_tiff(ome_tiff, channel=2)
    assert tiff_units(ome_tiff).pixel_size_um == pytest.approx(0.108)


def test_units_overrides_and_plain_tiffs(ome_tiff, tmp_path):
    movie = open_movie(ome_tiff, channel=0, z=0)
    assert movie_units(movie, frame_interval=0.2) == PhysicalUnits(0.108, 0.2, "command line + OME-XML")
    assert movie_units(movie, pixel_size=0.2, frame_interval=0.1).source == "command line"
    assert movie_units(str(ome_tiff)).frame_interval_s == pytest.approx(0.05)
    with pytest.raises(InputError, match="pixel size must be > 0"):
        movie_units(movie, pixel_size=-1.0)
    imagej = tmp_path / "hyper.tif"
    tifffile.imwrite(imagej, DATA[:, 0, 0], imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                     metadata={"axes": "TYX", "unit": "um", "finterval": 0.5})
    assert movie_units(open_movie(imagej)) == PhysicalUnits(0.25, 0.5, "ImageJ")
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, DATA[:, 0, 0], photometric="minisblack")
    assert movie_units(bare) == PhysicalUnits()
    assert movie_units(None, pixel_size=0.1).pixel_size_um == 0.1


def test_ome_xml_delta_t_fallback(tmp_path):
    path = tmp_path / "dt.ome.tif"
    tifffile.imwrite(path, DATA[:, 0, 0], ome=True, photometric="minisblack",
                     metadata={"axes": "TYX", "Plane": {"DeltaT": [0.0, 0.2, 0.4, 0.6, 0.8], "DeltaTUnit": ["s"] * 5}})
    assert open_movie(path).units.frame_interval_s == pytest.approx(0.2)


def test_tracking_an_ome_tiff_from_the_command_line(tmp_path, small_movie):
    movie, _ = small_movie
    path = tmp_path / "spots.ome.tif"
    stack = np.stack([movie, np.zeros_like(movie)], axis=1)  # T, C, Y, X: spots in channel 0 only
    tifffile.imwrite(path, stack, ome=True, photometric="minisblack", metadata={"axes": "TCYX"})
    out = tmp_path / "tracks.csv"
    assert main(["track", str(path), "--out", str(out), "--quiet"]) == 2  # which channel? not guessed
    assert main(["track", str(path), "--channel", "0", "--out", str(out), "--quiet"]) == 0
    tracks = pd.read_csv(out)
    assert tracks["frame"].nunique() == len(movie) and len(tracks) > 10 * len(movie)


zarr = pytest.importorskip("zarr", minversion="3.0", reason="zarr >= 3 is optional (the microscope and test extras)")


def write_ngff(path, version: str, data=DATA, scale=(40.0, 1.0, 0.5, 0.11, 0.11)) -> None:
    fmt = 2 if version == "0.4" else 3
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    array = group.create_array("0", shape=data.shape, chunks=(1, 1, 1) + data.shape[3:], dtype=data.dtype)
    array[:] = data
    image = {"axes": AXES_04, "datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": list(scale)}]}]}
    if version == "0.4":
        group.attrs["multiscales"] = [{"version": "0.4", **image}]
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [image]}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_frames_and_units(tmp_path, version):
    path = tmp_path / "image.zarr"
    write_ngff(path, version)
    with pytest.raises(InputError, match="choose a channel"):
        open_movie(path)
    movie = open_movie(path, channel=0, z=0)
    assert len(movie) == 5 and movie.frame_shape == (16, 20)
    np.testing.assert_array_equal(movie[3], DATA[3, 0, 0])
    assert movie.units == PhysicalUnits(0.11, 0.04, "OME-NGFF")
    np.testing.assert_array_equal(open_ome_zarr(path, channel=1, z=1)[2], DATA[2, 1, 1])
    assert movie_units(path, pixel_size=0.2).frame_interval_s == pytest.approx(0.04)


def test_zarr_is_read_lazily(tmp_path):
    path = tmp_path / "huge.zarr"
    # declared: 100,000 frames of 512 x 512 uint16 (52 GB); only two chunks are ever written
    array = zarr.open_array(str(path), mode="w", shape=(100_000, 512, 512), chunks=(1, 512, 512), dtype="u2",
                            fill_value=0, zarr_format=2)
    array[7] = 3
    movie = open_movie(path)
    assert len(movie) == 100_000 and movie.units == PhysicalUnits()
    assert int(movie[7].sum()) == 3 * 512 * 512 and int(movie[99_999].max()) == 0


def test_zarr_errors(tmp_path):
    group = zarr.open_group(str(tmp_path / "nometa.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(2, 4, 4), dtype="u2")
    with pytest.raises(InputError, match="multiscales"):
        open_movie(tmp_path / "nometa.zarr")
    zarr.open_array(str(tmp_path / "4d.zarr"), mode="w", shape=(2, 2, 4, 4), dtype="u2", zarr_format=2)
    with pytest.raises(InputError, match="plain zarr array"):
        open_movie(tmp_path / "4d.zarr")
    write_ngff(tmp_path / "ok.zarr", "0.4")
    with pytest.raises(InputError, match="z plane 3 does not exist"):
        open_ome_zarr(tmp_path / "ok.zarr", z=3)
    with pytest.raises(InputError, match="resolution level 1"):
        open_ome_zarr(tmp_path / "ok.zarr", level=1)
    (tmp_path / "broken.zarr").mkdir()
    (tmp_path / "broken.zarr" / ".zarray").write_text("{not json")
    with pytest.raises(FileReadError):
        open_movie(tmp_path / "broken.zarr")
