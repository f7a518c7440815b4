"""Movie and table reading: formats, lazy frames, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from edgetrack.runtime.errors import FileReadError, InputError
from edgetrack.runtime.io.tables import check_table, read_table, write_table
from edgetrack.runtime.io.readers import open_movie


@pytest.fixture()
def stack() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 4000, size=(5, 16, 20), dtype=np.uint16)


def test_multipage_tiff_roundtrip(tmp_path, stack):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, stack)
    movie = open_movie(path)
    assert len(movie) == 5 and movie.frame_shape == (16, 20)
    np.testing.assert_array_equal(np.stack(list(movie)), stack)


def test_compressed_tiff_is_read_page_by_page(tmp_path, stack):
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, stack, compression="zlib")
    movie = open_movie(path)
    np.testing.assert_array_equal(movie[3], stack[3])


@pytest.mark.parametrize("compression", ["lzw", "zstd"])
def test_lzw_and_zstd_tiffs_as_microscopes_write_them(tmp_path, stack, compression):
    path = tmp_path / f"{compression}.tif"
    tifffile.imwrite(path, stack, compression=compression)
    np.testing.assert_array_equal(np.stack(list(open_movie(path))), stack)
    folder = tmp_path / f"{compression}_frames"
    folder.mkdir()
    for t, frame in enumerate(stack):
        tifffile.imwrite(folder / f"t{t:03d}.tif", frame, compression=compression)
    np.testing.assert_array_equal(np.stack(list(open_movie(folder))), stack)


def test_png_folder_in_natural_order_and_rgb_to_grey(tmp_path):
    import imageio.v3 as iio

    for i in (8, 9, 10):  # natural order 8, 9, 10 (not the lexicographic 10, 8, 9)
        img = np.full((8, 9, 3), i * 10, np.uint8)
        iio.imwrite(tmp_path / f"frame_{i}.png", img)
    movie = open_movie(tmp_path)
    assert len(movie) == 3
    assert [float(f[0, 0]) for f in movie] == pytest.approx([80.0, 90.0, 100.0], abs=0.01)


def test_folder_with_a_missing_frame_number(tmp_path):
    for i in (0, 1, 3, 4):
        tifffile.imwrite(tmp_path / f"t{i:03d}.tif", np.zeros((8, 8), np.uint16))
    with pytest.raises(InputError, match=r"frame number\(s\) 2 missing"):
        open_movie(tmp_path)


def test_npy_and_array(tmp_path, stack):
    np.save(tmp_path / "m.npy", stack)
    assert len(open_movie(tmp_path / "m.npy")) == 5
    assert open_movie(stack).frame_shape == (16, 20)


def test_missing_empty_truncated_and_unsupported_files(tmp_path, stack):
    with pytest.raises(FileReadError, match="no such"):
        open_movie(tmp_path / "nope.tif")
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(FileReadError, match="empty"):
        open_movie(tmp_path / "empty.tif")
    (tmp_path / "junk.tif").write_bytes(b"this is not a tiff at all")
    with pytest.raises(FileReadError):
        open_movie(tmp_path / "junk.tif")
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, stack)
    data = path.read_bytes()
    (tmp_path / "trunc.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileReadError):
        list(open_movie(tmp_path / "trunc.tif"))
    (tmp_path / "movie.avi").write_bytes(b"x")
    with pytest.raises(FileReadError, match="unsupported"):
        open_movie(tmp_path / "movie.avi")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileReadError, match="no frames"):
        open_movie(tmp_path / "empty_dir")


def test_folder_with_a_differently_sized_frame(tmp_path):
    tifffile.imwrite(tmp_path / "a_0.tif", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(tmp_path / "a_1.tif", np.zeros((8, 9), np.uint16))
    movie = open_movie(tmp_path)
    with pytest.raises(InputError, match="frame 1 has shape"):
        list(movie)


def test_tables_checked(tmp_path):
    good = pd.DataFrame({"frame": [0, 1], "y": [1.0, 2.0], "x": [3.0, 4.0], "mass": [5.0, 6.0]})
    write_table(good, tmp_path / "d.csv")
    back = read_table(tmp_path / "d.csv")
    assert back["frame"].dtype == np.int64 and list(back.columns) == ["frame", "y", "x", "mass"]
    with pytest.raises(InputError, match="missing required column"):
        check_table(good.drop(columns="x"))
    with pytest.raises(InputError, match="NaN"):
        check_table(good.assign(y=[1.0, np.nan]))
    with pytest.raises(InputError, match="non-numeric"):
        check_table(good.assign(x=["3", "four"]))
    with pytest.raises(InputError, match="whole numbers"):
        check_table(good.assign(frame=[0.5, 1.0]))
    (tmp_path / "bad.csv").write_bytes(b"\x00\xff\xfe garbage")
    with pytest.raises((FileReadError, InputError)):
        read_table(tmp_path / "bad.csv")
    with pytest.raises(FileReadError, match="no such"):
        read_table(tmp_path / "missing.csv")
