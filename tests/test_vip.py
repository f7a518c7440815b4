"""`edgetrack analyze --vip LABELS.tif`: the particles a label image marks get their tracks' results, by label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.motion.vip import match_vips, vip_labels_from_image, vip_tracks


def _walks(n_tracks: int = 8, n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for tid in range(n_tracks):
        start = np.array([20.0 + 25 * (tid % 4), 20.0 + 40 * (tid // 4)])
        p = start + np.cumsum(rng.normal(0, 0.7, (n, 2)), axis=0)
        rows.append(pd.DataFrame({"track_id": tid + 100, "frame": np.arange(n), "y": p[:, 0], "x": p[:, 1]}))
    return pd.concat(rows, ignore_index=True)


def _vip_frame(tracks: pd.DataFrame, chosen: dict[int, int], shape=(128, 128), background: int = 255) -> np.ndarray:
    """The challenge's convention: uint8, background 255, label i (0 included) on a 2 x 2 square at track i."""
    image = np.full(shape, background, dtype=np.uint8)
    first = tracks[tracks["frame"] == 0].set_index("track_id")
    for label, tid in chosen.items():
        y, x = first.loc[tid, ["y", "x"]]
        r, c = int(np.floor(y)), int(np.floor(x))
        image[r:r + 2, c:c + 2] = label
    return image


def test_labels_and_background_are_read_from_the_image():
    image = np.zeros((20, 30), dtype=np.uint16)
    image[2:4, 5:7] = 7
    image[10, 20] = 3
    vips = vip_labels_from_image(image)
    assert vips["vip"].tolist() == [3, 7]
    assert np.allclose(vips[["y", "x"]].to_numpy(), [[10, 20], [2.5, 5.5]])
    challenge = np.full((20, 30), 255, dtype=np.uint8)
    challenge[4:6, 8:10] = 0  # label 0 is a particle when the background is 255
    assert vip_labels_from_image(challenge)["vip"].tolist() == [0]
    with pytest.raises(InputError, match="no particle"):
        vip_labels_from_image(np.zeros((5, 5), np.uint8))
    with pytest.raises(InputError, match="2-D"):
        vip_labels_from_image(np.zeros((2, 5, 5), np.uint8))


def test_each_vip_gets_the_nearest_track_once():
    tracks = _walks()
    chosen = {0: 103, 1: 100, 2: 106}
    matches = match_vips(tracks, vip_labels_from_image(_vip_frame(tracks, chosen)))
    assert dict(zip(matches["vip"], matches["track_id"])) == chosen
    assert (matches["distance"] < 1.0).all() and (matches["n_points"] == 60).all()
    kept = vip_tracks(tracks, matches)
    assert sorted(kept["track_id"].unique()) == [0, 1, 2]
    original = tracks[tracks["track_id"] == 106].reset_index(drop=True)
    np.testing.assert_array_equal(kept[kept["track_id"] == 2][["y", "x"]].to_numpy(), original[["y", "x"]].to_numpy())


def test_analyze_vip_writes_one_line_per_vip_by_label(tmp_path):
    tracks = _walks()
    tracks.to_csv(tmp_path / "tracks.csv", index=False)
    chosen = {0: 103, 1: 100, 2: 106}
    image = _vip_frame(tracks, chosen)
    image[120:122, 120:122] = 5  # a VIP with no track near it
    tifffile.imwrite(tmp_path / "vip.tif", image)
    assert main(["analyze", str(tmp_path / "tracks.csv"), "--out", str(tmp_path / "all"), "--format", "andi",
                 "--quiet"]) == 0
    assert main(["analyze", str(tmp_path / "tracks.csv"), "--out", str(tmp_path / "vip"), "--format", "andi",
                 "--vip", str(tmp_path / "vip.tif"), "--quiet"]) == 0
    every = {int(line.split(",")[0]): line.split(",")[1:]
             for line in (tmp_path / "all" / "andi" / "fov_0.txt").read_text().splitlines()}
    lines = (tmp_path / "vip" / "andi" / "fov_0.txt").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines] == [0, 1, 2, 5]
    for line in lines[:3]:
        label = int(line.split(",")[0])
        assert line.split(",")[1:] == every[chosen[label]], "a VIP's line is its track's line"
    filled = [float(v) for v in lines[3].split(",")]
    assert filled[3] == 2 and filled[4] == 60 and len(filled) == 5
    matches = pd.read_csv(tmp_path / "vip" / "vip.csv")
    assert matches.set_index("vip").loc[5, "track_id"] == -1
    # the ensemble is the experiment's, over every track, with or without --vip
    assert (tmp_path / "vip" / "andi" / "ensemble_labels.txt").read_text() == \
        (tmp_path / "all" / "andi" / "ensemble_labels.txt").read_text()


def test_a_bad_vip_image_is_a_one_line_error(tmp_path, capsys):
    _walks().to_csv(tmp_path / "tracks.csv", index=False)
    tifffile.imwrite(tmp_path / "blank.tif", np.zeros((16, 16), np.uint8))
    assert main(["analyze", str(tmp_path / "tracks.csv"), "--out", str(tmp_path / "r"),
                 "--vip", str(tmp_path / "blank.tif")]) != 0
    err = capsys.readouterr().err
    assert "no particle is labelled" in err and "Traceback" not in err
