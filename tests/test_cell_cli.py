"""``edgetrack track --masks``: CTC, CSV and napari output; the spot path is unchanged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from edgetrack.runtime.io.masks import read_ctc_result
from edgetrack.runtime.cli.app import main
from edgetrack.runtime.metrics.ctc import ctc_scores
from test_cell_tracking import dividing_scene


@pytest.fixture()
def mask_folder(tmp_path):
    masks, truth = dividing_scene()
    folder = tmp_path / "SEG"
    folder.mkdir()
    for t, m in enumerate(masks):
        tifffile.imwrite(folder / f"mask{t:03d}.tif", m)
    return folder, masks, truth


def test_ctc_output_is_a_valid_result(mask_folder, tmp_path):
    folder, masks, _ = mask_folder
    images = tmp_path / "raw"
    images.mkdir()
    for t, m in enumerate(masks):
        tifffile.imwrite(images / f"t{t:03d}.tif", (m > 0).astype(np.uint16) * 100)
    out = tmp_path / "01_RES"
    assert main(["track", "--masks", str(folder), "--images", str(images), "--format", "ctc", "--out", str(out),
                 "--max-distance", "20", "--quiet"]) == 0
    res_masks, lineage = read_ctc_result(out)
    assert len(res_masks) == len(masks)
    # one mother, two daughters starting right after it ends, one other cell
    assert len(lineage) == 4
    mother = lineage[lineage.parent == 0].sort_values("end").iloc[0]
    daughters = lineage[lineage.parent == mother.label]
    assert len(daughters) == 2 and (daughters.start == mother.end + 1).all()
    # the result scores perfectly against the ground truth derived from the scene
    scores = ctc_scores(out, lineage, res_masks, lineage)
    assert scores["TRA"] == 1.0


def test_csv_and_napari_output(mask_folder, tmp_path):
    folder, masks, truth = mask_folder
    out = tmp_path / "tracks.csv"
    assert main(["track", "--masks", str(folder), "--out", str(out), "--quiet", "--linker", "ilp",
                 "--max-distance", "20"]) == 0
    table = pd.read_csv(out)
    assert {"frame", "label", "y", "x", "track_id", "parent_track_id", "area", "solidity"} <= set(table.columns)
    assert len(table) == len(truth) and (table.parent_track_id >= 0).sum() == 2
    nap = tmp_path / "nap.csv"
    assert main(["track", "--masks", str(folder), "--format", "napari", "--out", str(nap), "--quiet",
                 "--max-distance", "20"]) == 0
    graph = json.loads((tmp_path / "nap.graph.json").read_text())
    assert len(graph) == 2 and len({tuple(v) for v in graph.values()}) == 1
    assert list(pd.read_csv(nap).columns[:4]) == ["track_id", "t", "y", "x"]


def test_option_errors(mask_folder, tmp_path, capsys):
    folder, _, _ = mask_folder
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, np.zeros((2, 8, 8), np.uint16))
    assert main(["track", str(movie), "--masks", str(folder), "--out", str(tmp_path / "o.csv")]) == 2
    assert main(["track", "--out", str(tmp_path / "o.csv")]) == 2
    assert main(["track", str(movie), "--format", "ctc", "--out", str(tmp_path / "o")]) == 2
    assert main(["track", str(movie), "--images", str(movie), "--out", str(tmp_path / "o.csv")]) == 2
    assert main(["track", "--masks", str(tmp_path / "absent"), "--out", str(tmp_path / "o.csv")]) == 2
    float_masks = tmp_path / "float.tif"
    tifffile.imwrite(float_masks, np.zeros((2, 8, 8), np.float32))
    assert main(["track", "--masks", str(float_masks), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "not both" in err and "integers" in err and "needs --masks" in err
    assert not (tmp_path / "o.csv").exists()
