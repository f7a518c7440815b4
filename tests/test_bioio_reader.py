"""Vendor formats through bioio: CZI files written by pylibCZIrw (Zeiss's own libCZI), OME-TIFF through
bioio-ome-tiff, and the ND2 / LIF plugins' handling of files they cannot read (no writer for either
format and no sample file in any package on the index: see benchmarks/RESULTS.md, issue 22)."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import tifffile

import edgetrack
from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import FileReadError, InputError
from edgetrack.runtime.io.ome import movie_units, open_ome_tiff
from edgetrack.runtime.simulate.spots import simulate_movie

bioio = pytest.importorskip("bioio", reason="the bioio extra is not installed (pip install 'edgetrack[bioio]')")
pytest.importorskip("bioio_czi", reason="the bioio-czi plugin is not installed")
pyczi = pytest.importorskip("pylibCZIrw.czi", reason="pylibCZIrw (the CZI writer the tests use) is not installed")

from edgetrack.runtime.io.bioio_reader import BioioMovie, image_units, open_bioio


def write_czi(path, data: np.ndarray, scenes: tuple[str, ...] = (), pixel_size_um: float = 0.13) -> None:
    """Write ``data`` (S, T, C, Z, Y, X) as a CZI with libCZI, naming the scenes as ZEN does.

    A CZI stores the scaling in metres (ZEN's files and bioio-czi agree; pylibCZIrw passes the number through).
    """
    with pyczi.create_czi(str(path), exist_ok=True) as czi:
        for s, t, c, z in np.ndindex(data.shape[:4]):
            czi.write(data[s, t, c, z], plane={"T": t, "C": c, "Z": z}, scene=s, location=(s * (data.shape[5] + 16), 0))
        czi.write_metadata(document_name="edgetrack test", scale_x=pixel_size_um * 1e-6, scale_y=pixel_size_um * 1e-6,
                           scale_z=0.5e-6)
    if scenes:
        named = "".join(f'<Scene Index="{i}" Name="{name}"/>' for i, name in enumerate(scenes))
        with pyczi.edit_czi(str(path)) as editor, editor.edit_session() as builder:
            xml = builder.get_xml()
            assert "</Channels></Dimensions>" in xml
            builder.set_xml(xml.replace("</Channels></Dimensions>", f"</Channels><S><Scenes>{named}</Scenes></S></Dimensions>"))


@pytest.fixture(scope="module")
def stczyx(tmp_path_factory):
    """A CZI of 2 named scenes, 6 time points, 2 channels, 3 z planes, and the array it holds."""
    data = np.random.default_rng(7).integers(0, 4000, (2, 6, 2, 3, 40, 48)).astype(np.uint16)
    path = tmp_path_factory.mktemp("czi") / "wells.czi"
    write_czi(path, data, scenes=("A1", "B2"))
    return path, data


def test_a_czi_of_several_scenes_channels_and_planes_is_refused_until_each_is_chosen(stczyx, tmp_path, capsys):
    path, _ = stczyx
    with pytest.raises(InputError, match=r"2 scenes \(0 'A1', 1 'B2'\).*--scene 0\.\.1"):
        edgetrack.open_movie(path)
    with pytest.raises(InputError, match=r"axes TCZYX with 2 channel\(s\) and 3 z plane\(s\).*--channel 0\.\.1.*--z 0\.\.2"):
        edgetrack.open_movie(path, scene=0)
    with pytest.raises(InputError, match=r"choose a z plane \(--z 0\.\.2"):
        edgetrack.open_movie(path, scene="A1", channel=1)
    assert main(["track", str(path), "--scene", "B2", "--channel", "0", "--out", str(tmp_path / "t.csv")]) == 2
    assert "3 z plane(s)" in capsys.readouterr().err and not (tmp_path / "t.csv").exists()


def test_the_chosen_scene_channel_and_plane_are_read(stczyx):
    path, data = stczyx
    for scene, s in ((0, 0), (1, 1), ("B2", 1), ("1", 1)):
        movie = edgetrack.open_movie(path, scene=scene, channel=1, z=2)
        assert isinstance(movie, BioioMovie) and movie.plugin == "bioio-czi"
        assert (movie.scene, movie.scene_index, movie.n_scenes) == (("A1", "B2")[s], s, 2)
        assert len(movie) == 6 and movie.frame_shape == (40, 48)
        assert all(np.array_equal(movie[t], data[s, t, 1, 2]) for t in range(6))
    with pytest.raises(InputError, match=r"no scene named 'C3' \(scenes: 'A1', 'B2'\)"):
        edgetrack.open_movie(path, scene="C3", channel=0, z=0)
    with pytest.raises(InputError, match=r"scene 2 does not exist \(the file has 2: 0\.\.1\)"):
        edgetrack.open_movie(path, scene=2, channel=0, z=0)
    with pytest.raises(InputError, match="channel 2 does not exist"):
        edgetrack.open_movie(path, scene=0, channel=2, z=0)


def test_the_pixel_size_comes_from_the_czi_metadata(stczyx):
    path, _ = stczyx
    movie = edgetrack.open_movie(path, scene=0, channel=0, z=0)
    assert movie.units.pixel_size_um == pytest.approx(0.13) and movie.units.source == "bioio (bioio-czi)"
    # bioio-czi takes the interval from the subblocks' acquisition times, which libCZI's writer does not store
    assert movie.units.frame_interval_s is None
    merged = movie_units(movie, frame_interval=2.5)
    assert (merged.pixel_size_um, merged.frame_interval_s) == (pytest.approx(0.13), 2.5)
    assert merged.source == "command line + bioio (bioio-czi)"


def test_an_ome_tiff_through_bioio_has_the_frames_and_units_the_ome_reader_finds(tmp_path):
    pytest.importorskip("bioio_ome_tiff", reason="the bioio-ome-tiff plugin is not installed")
    data = np.random.default_rng(3).integers(0, 1000, (5, 2, 24, 30)).astype(np.uint16)
    path = tmp_path / "tcyx.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "TCYX", "PhysicalSizeX": 0.25, "PhysicalSizeXUnit": "µm",
                                                      "PhysicalSizeY": 0.25, "TimeIncrement": 1.5,
                                                      "TimeIncrementUnit": "s"})
    through_bioio, built_in = open_bioio(path, channel=1), open_ome_tiff(path, channel=1)
    assert through_bioio.plugin == "bioio-ome-tiff" and (through_bioio.n_channels, through_bioio.n_z) == (2, 1)
    assert (through_bioio.units.pixel_size_um, through_bioio.units.frame_interval_s) == (0.25, 1.5)
    assert (built_in.units.pixel_size_um, built_in.units.frame_interval_s) == (0.25, 1.5)
    assert all(np.array_equal(through_bioio[t], built_in[t]) for t in range(5))
    nm = tmp_path / "nm.ome.tif"  # units other than µm are converted, from the OME metadata
    tifffile.imwrite(nm, data[:, 0], ome=True, metadata={"axes": "TYX", "PhysicalSizeX": 250.0, "PhysicalSizeXUnit": "nm",
                                                         "TimeIncrement": 40.0, "TimeIncrementUnit": "ms"})
    assert image_units(bioio.BioImage(nm)).frame_interval_s == pytest.approx(0.04)


def test_an_ome_tiff_of_two_images_is_two_scenes_through_bioio(tmp_path):
    pytest.importorskip("bioio_ome_tiff", reason="the bioio-ome-tiff plugin is not installed")
    first, second = (np.random.default_rng(s).integers(0, 500, (4, 20, 22)).astype(np.uint16) for s in (1, 2))
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(first, metadata={"axes": "TYX", "Name": "left"})
        tif.write(second, metadata={"axes": "TYX", "Name": "right"})
    movie = edgetrack.open_movie(path, scene=1)  # the built-in OME-TIFF reader reads the first image only
    assert movie.scene == "Image:1" and np.array_equal(np.stack(list(movie)), second)
    assert np.array_equal(edgetrack.open_movie(path, scene="Image:0")[3], first[3])
    with pytest.raises(InputError, match=r"2 scenes \(0 'Image:0', 1 'Image:1'\)"):
        open_bioio(path)


def test_frames_are_read_one_at_a_time(tmp_path):
    frames = np.random.default_rng(5).integers(0, 4000, (1, 120, 1, 1, 128, 128)).astype(np.uint16)
    path = tmp_path / "long.czi"
    write_czi(path, frames)
    movie = edgetrack.open_movie(path)
    frame_bytes, movie_bytes = frames[0, 0, 0, 0].nbytes, frames.nbytes
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for t in (0, 1, 60, 119):
            assert np.array_equal(movie[t], frames[0, t, 0, 0])
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 8 * frame_bytes < movie_bytes / 10, f"reading 4 frames took {peak} B at the peak ({frame_bytes} B a frame)"


def test_tracking_a_czi_channel_gives_the_tracks_of_the_same_frames_in_a_tiff(tmp_path):
    movie, _ = simulate_movie(n_frames=10, n_spots=12, shape=(64, 64), seed=4)
    other, _ = simulate_movie(n_frames=10, n_spots=12, shape=(64, 64), seed=11)
    czi = tmp_path / "two_channels.czi"
    write_czi(czi, np.stack([movie, other], axis=1)[None, :, :, None])  # S, T, C, Z, Y, X
    tiff = tmp_path / "channel0.tif"
    tifffile.imwrite(tiff, movie)
    assert main(["track", str(czi), "--channel", "0", "--out", str(tmp_path / "czi.csv"), "--quiet"]) == 0
    assert main(["track", str(tiff), "--out", str(tmp_path / "tif.csv"), "--quiet"]) == 0
    from_czi = pd.read_csv(tmp_path / "czi.csv")
    assert len(from_czi) > 50
    pd.testing.assert_frame_equal(from_czi, pd.read_csv(tmp_path / "tif.csv"))
    pd.testing.assert_frame_equal(edgetrack.track(czi, channel=1, scene=0), edgetrack.track(other))


def test_nd2_and_lif_files_reach_their_plugins_and_a_missing_extra_is_named(tmp_path, monkeypatch):
    for suffix, plugin in ((".nd2", "bioio_nd2"), (".lif", "bioio_lif")):
        pytest.importorskip(plugin, reason=f"the {plugin} plugin is not installed")
        path = tmp_path / f"not_really{suffix}"
        path.write_bytes(b"\x00" * 4096)
        reason = {".nd2": "File is not supported by ND2", ".lif": "not a Leica image file"}[suffix]
        with pytest.raises(FileReadError, match=rf"not_really\{suffix}: not readable by bioio \({plugin.replace('_', '-')} "
                                                rf"does not support .*{reason}"):
            edgetrack.open_movie(path)
    monkeypatch.setitem(sys.modules, "bioio", None)  # as if the extra were not installed
    with pytest.raises(FileReadError, match=r'needs bioio and its bioio-nd2: pip install "edgetrack\[bioio\]"'):
        edgetrack.open_movie(tmp_path / "not_really.nd2")


def test_another_suffix_a_bioio_plugin_claims_is_read_through_it(tmp_path):
    pytest.importorskip("bioio_imageio", reason="the bioio-imageio plugin is not installed")
    import imageio.v3 as iio

    frames = np.random.default_rng(8).integers(0, 255, (6, 30, 40)).astype(np.uint8)
    path = tmp_path / "movie.gif"  # no built-in reader takes .gif; bioio-imageio reads it as T, Y, X, RGB
    iio.imwrite(path, frames, loop=0)
    movie = edgetrack.open_movie(path)
    assert movie.plugin == "bioio-imageio" and len(movie) == 6 and movie.frame_shape == (30, 40)
    assert np.allclose(movie[4], frames[4], atol=1e-3)  # grey stored as RGB, collapsed back to grey


def test_a_scene_of_a_single_scene_format_is_refused(tmp_path):
    path = tmp_path / "stack.npy"
    np.save(path, np.zeros((3, 8, 8), np.uint16))
    assert len(edgetrack.open_movie(path, scene=0)) == 3
    with pytest.raises(InputError, match="read as a single scene"):
        edgetrack.open_movie(path, scene=1)
