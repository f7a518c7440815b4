"""The napari plugin: its npe2 manifest, readers and writers through npe2, and each widget in a real napari
viewer on a small simulated movie.

The viewer tests need napari, pytest-qt and an OpenGL display (napari draws with vispy): under
``QT_QPA_PLATFORM=offscreen`` Qt has no OpenGL, so they run under Xvfb with Mesa (``apt-get install xvfb
libgl1-mesa-dri``; pytest-xvfb, in the test extra, starts Xvfb and sets DISPLAY), and skip with that
reason where there is none. The reader / writer and colour tests need no display.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("napari", reason='napari is not installed (pip install "edgetrack[napari]")')
pytest.importorskip("pytestqt", reason="pytest-qt is not installed (the test extra has it)")

import npe2
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.io.masks import read_ctc_result
from edgetrack.runtime.io.napari import to_napari, write_napari
from edgetrack.runtime.io.tables import read_table, write_table
from edgetrack.runtime.napari_plugin.colours import (
    NO_ESTIMATE,
    STATE_COLOURS,
    motion_colours,
    ramp,
)
from edgetrack.runtime.napari_plugin.readers import (
    get_ctc_reader,
    get_geff_reader,
    get_tracks_reader,
)
from edgetrack.runtime.napari_plugin.tables import tracks_from_layer, tracks_layer_data
from edgetrack.runtime.simulate.spots import simulate_movie

import edgetrack

PLUGIN = "edgetrack"
WIDGETS = ["Track spots", "Track cells", "Analyze motion", "Live tracking"]
SPOT_OPTIONS = {"max_distance": 6.0, "max_gap": 2, "linker": "lap",  # the widget's defaults (its spot sigma
                "detect": {"psf_sigma": 1.5}}  # is fixed until "measure" is pressed)
TIMEOUT_MS = 60_000


# ----------------------------------------------------------------------------------------- data

@pytest.fixture(scope="module", autouse=True)
def _plugins_discovered() -> None:
    """npe2's plugin manager finds the installed plugins (napari does this when it starts)."""
    npe2.PluginManager.instance().discover()


@pytest.fixture(scope="module")
def movie() -> np.ndarray:
    """20 frames of 96 x 96 px, ~15 spots (uint16)."""
    return simulate_movie(n_frames=20, shape=(96, 96), n_spots=15, snr=10.0, seed=3)[0]


@pytest.fixture(scope="module")
def dividing_tracks() -> pd.DataFrame:
    """Spot tracks with divisions (greedy linker, max_children=2) of a movie whose spots divide."""
    frames, _ = simulate_movie(n_frames=25, shape=(96, 96), n_spots=10, snr=12.0, seed=5, division_rate=0.04,
                               D_range=(0.1, 0.3))
    tracks = edgetrack.track(frames, linker="greedy", max_children=2, detect={"psf_sigma": 1.5})
    assert (tracks["parent_track_id"] >= 0).any(), "the test movie should have divisions"
    return tracks


def disc_masks() -> tuple[np.ndarray, np.ndarray]:
    """Label masks (8, 80, 120) uint16 of cell A dividing after frame 3 and cell B moving down, and an
    intensity movie (cells at 100 + label counts on 10). Labels change every frame, as a segmenter's do."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:80, :120]
    masks = np.zeros((8, 80, 120), np.uint16)
    for t in range(8):
        cells = [(40.0, 20.0 + 3 * t)] if t <= 3 else [(33.0 - (t - 4), 29.0 + 2 * t), (47.0 + (t - 4), 29.0 + 2 * t)]
        cells.append((10.0 + 2 * t, 95.0))
        for (y, x), label in zip(cells, rng.choice(np.arange(1, 50), len(cells), replace=False)):
            masks[t][(rows - y) ** 2 + (cols - x) ** 2 <= 25] = label
    return masks, np.where(masks > 0, 100.0 + masks, 10.0).astype(np.float32)


# ----------------------------------------------------------------------------------------- manifest, I/O

def test_the_manifest_is_valid_and_found_by_npe2():
    manifest = npe2.PluginManifest.from_distribution(PLUGIN)
    contributions = manifest.contributions
    assert [w.display_name for w in contributions.widgets] == WIDGETS
    assert {r.command for r in contributions.readers} == {"edgetrack.get_tracks_reader", "edgetrack.get_ctc_reader",
                                                          "edgetrack.get_geff_reader"}
    assert {(w.command, tuple(w.layer_types)) for w in contributions.writers} == {
        ("edgetrack.write_tracks_table", ("tracks",)), ("edgetrack.write_tracks_geff", ("tracks",)),
        ("edgetrack.write_ctc_folder", ("labels", "tracks"))}
    for command in contributions.commands:  # every python_name resolves to a callable
        module, _, name = command.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name)), command.id


def test_the_sample_is_the_movie_of_edgetrack_demo():
    from edgetrack.runtime.cli.app import build_parser
    from edgetrack.runtime.napari_plugin.sample import DEMO

    demo = build_parser().parse_args(["demo"])
    assert DEMO == {"n_frames": demo.frames, "shape": (demo.size, demo.size), "n_spots": demo.spots,
                    "snr": demo.snr, "seed": demo.seed}
    (sample,) = npe2.PluginManifest.from_distribution(PLUGIN).contributions.sample_data
    assert sample.key == "demo" and sample.command == "edgetrack.demo_movie"


def _tracks_layer(path: Path) -> tuple:
    layers = npe2.read([str(path)], stack=False, plugin_name=PLUGIN)
    assert [kind for _, _, kind in layers] == ["tracks"]
    return layers[0]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tracks_table_round_trip_through_npe2(tmp_path, dividing_tracks, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (the parquet extra)")
    source = write_table(dividing_tracks, tmp_path / f"tracks{suffix}")
    data, meta, _ = _tracks_layer(source)
    expected_data, expected_graph = to_napari(dividing_tracks)
    np.testing.assert_allclose(data, expected_data)
    assert meta["graph"] == expected_graph and len(expected_graph) > 0
    assert {"mass", "size", "signal", "eccentricity"} <= set(meta["features"].columns)
    written = npe2.write(str(tmp_path / f"again{suffix}"), [(data, meta, "tracks")], plugin_name=PLUGIN)
    back = read_table(written[0], ("frame", "y", "x", "track_id"))
    original = dividing_tracks.sort_values(["track_id", "frame"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back[original.columns], original, check_dtype=False)


def test_napari_layout_csv_is_read_with_its_graph(tmp_path, dividing_tracks):
    out, _ = write_napari(dividing_tracks, tmp_path / "tracks_napari.csv")
    data, meta, _ = _tracks_layer(out)
    expected_data, expected_graph = to_napari(dividing_tracks)
    np.testing.assert_allclose(data, expected_data)
    assert meta["graph"] == expected_graph


def test_other_files_and_folders_are_left_to_other_readers(tmp_path):
    pd.DataFrame({"axis-0": [0.0], "axis-1": [1.0]}).to_csv(tmp_path / "points.csv", index=False)
    folder = tmp_path / "plain"
    folder.mkdir()
    assert get_tracks_reader(str(tmp_path / "points.csv")) is None
    assert get_ctc_reader(str(folder)) is None and get_geff_reader(str(folder)) is None
    assert get_tracks_reader([str(tmp_path / "points.csv"), str(tmp_path / "x.csv")]) is None
    assert list(folder.iterdir()) == []  # asking wrote nothing into the user's folder


def test_ctc_folder_round_trip_through_npe2(tmp_path):
    masks, _ = disc_masks()
    tracks = edgetrack.track_cells(masks, max_distance=20.0)
    layers = [(masks, {"name": "masks"}, "labels"), tracks_layer_data(tracks, name="cells")]
    written = npe2.write(str(tmp_path / "01_RES"), layers, plugin_name=PLUGIN)
    assert written == [str(tmp_path / "01_RES")]
    _, lineage = read_ctc_result(tmp_path / "01_RES")
    roots = lineage.loc[lineage["parent"] == 0, "label"].tolist()
    daughters = lineage.loc[lineage["parent"] > 0, "parent"].tolist()
    assert len(roots) == 2 and len(daughters) == 2 and daughters[0] == daughters[1] in roots  # A's two daughters
    back = npe2.read([str(tmp_path / "01_RES")], stack=False, plugin_name=PLUGIN)
    assert [kind for _, _, kind in back] == ["labels", "tracks"]
    (labels, _, _), (data, meta, _) = back
    assert labels.shape == masks.shape and np.array_equal(labels > 0, masks > 0)
    assert len(data) == len(tracks) and len(np.unique(data[:, 0])) == 4
    assert sorted(meta["graph"].values()) == [[daughters[0]]] * 2
    # each object sits where the tracker saw it
    table = tracks_from_layer(data, meta["features"], meta["graph"]).sort_values(["frame", "y"]).reset_index(drop=True)
    np.testing.assert_allclose(table[["y", "x"]], tracks.sort_values(["frame", "y"])[["y", "x"]], atol=1e-9)


def test_ctc_writer_needs_the_label_feature(tmp_path):
    masks, _ = disc_masks()
    tracks = edgetrack.track_cells(masks, max_distance=20.0).drop(columns=["label"])
    with pytest.raises(InputError, match="no 'label' feature"):
        npe2.write(str(tmp_path / "res"), [(masks, {}, "labels"), tracks_layer_data(tracks)], plugin_name=PLUGIN)


def test_geff_round_trip_through_npe2(tmp_path, dividing_tracks):
    pytest.importorskip("geff", reason='geff is not installed (pip install "edgetrack[geff]")')
    layer = tracks_layer_data(dividing_tracks, name="tracks")
    written = npe2.write(str(tmp_path / "tracks.geff"), [layer], plugin_name=PLUGIN)
    data, meta, _ = _tracks_layer(Path(written[0]))
    np.testing.assert_allclose(data, layer[0])
    assert meta["graph"] == layer[1]["graph"]
    pd.testing.assert_frame_equal(meta["features"][layer[1]["features"].columns], layer[1]["features"],
                                  check_dtype=False)


def test_layer_tracks_refuse_merges_and_bad_data():
    data = np.array([[0, 0, 1.0, 1.0], [1, 0, 5.0, 5.0], [2, 1, 3.0, 3.0]])
    with pytest.raises(InputError, match="2 parents"):
        tracks_from_layer(data, graph={2: [0, 1]})
    with pytest.raises(InputError, match=r"\(N, 4\)"):
        tracks_from_layer(np.zeros((3, 3)))
    table = tracks_from_layer(data, graph={2: [0]})
    assert table["parent_track_id"].tolist() == [-1, -1, 0]


def test_motion_colours_use_fixed_scales():
    np.testing.assert_allclose(motion_colours(np.array([0.0, 1.0, 2.0, np.nan]), "alpha"),
                               np.vstack([ramp(np.array([0.0, 0.5, 1.0])), NO_ESTIMATE]), atol=1e-6)
    np.testing.assert_allclose(motion_colours(np.array([0, 1, 2, 3, -1]), "state"),
                               np.vstack([STATE_COLOURS, NO_ESTIMATE]), atol=1e-6)
    k = motion_colours(np.array([0.01, 1.0, 100.0, 0.0]), "K")
    assert k[0][2] < k[2][2] or not np.allclose(k[0], k[2])
    np.testing.assert_allclose(k[3], NO_ESTIMATE, atol=1e-6)  # K = 0 has no log
    with pytest.raises(InputError, match="colour by"):
        motion_colours(np.ones(2), "speed")


# ----------------------------------------------------------------------------------------- the viewer

def _display_problem() -> str | None:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform in ("offscreen", "minimal"):
        return (f"QT_QPA_PLATFORM={platform} has no OpenGL for napari's canvas: unset it and run under Xvfb "
                "(apt-get install xvfb libgl1-mesa-dri; pytest-xvfb starts it)")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display for napari's OpenGL canvas: apt-get install xvfb libgl1-mesa-dri (pytest-xvfb starts Xvfb)"
    return None


def _require_display() -> None:
    problem = _display_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture
def qt(request):
    """pytest-qt's ``qtbot``, once the display is checked (its QApplication is session-wide: requested
    directly it would start before any check, and Qt aborts the process without a display)."""
    _require_display()
    return request.getfixturevalue("qtbot")


@pytest.fixture
def viewer(request):
    """A real napari viewer (not shown) whose canvas can draw; skips with the reason where OpenGL is missing.

    The display is checked before napari's ``make_napari_viewer`` (and pytest-qt's QApplication) start:
    Qt aborts the process when it has no display to connect to."""
    _require_display()
    make_viewer = request.getfixturevalue("make_napari_viewer")
    try:
        viewer = make_viewer()
        viewer.layers.remove(viewer.add_image(np.zeros((2, 8, 8), np.float32)))
    except Exception as exc:  # vispy raises whatever the GL driver gives  # noqa: BLE001
        pytest.skip(f"napari's canvas cannot draw here (no usable OpenGL: {type(exc).__name__}: {exc})")
    return viewer


def dock(viewer, name: str):
    """Open a widget as napari does from the Plugins menu (through the npe2 manifest)."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def wait_done(qt, task) -> None:
    qt.waitUntil(lambda: not task.busy, timeout=TIMEOUT_MS)


def test_track_spots_preview_follows_frame_and_parameters(viewer, movie):
    viewer.add_image(movie, name="movie")
    widget = dock(viewer, "Track spots")
    preview = viewer.layers["movie detections"]
    viewer.dims.set_current_step(0, 4)
    expected = edgetrack.locate(movie[4])
    assert len(preview.data) == len(expected) > 5
    assert set(preview.data[:, 0]) == {4.0}
    np.testing.assert_allclose(np.sort(preview.data[:, 1]), np.sort(expected["y"]))
    widget.parameters.snr_threshold.value = 30.0
    assert len(preview.data) == len(edgetrack.locate(movie[4], snr_threshold=30.0)) < len(expected)


def test_measure_sets_the_spot_sigma_from_the_shown_frame(viewer, qt):
    from edgetrack.runtime.detect.psf import estimate_psf_sigma
    from edgetrack.runtime.simulate.spots import simulate_movie

    narrow, _ = simulate_movie(n_frames=3, shape=(160, 160), n_spots=50, snr=6.0, psf_sigma=0.9, seed=3)
    viewer.add_image(narrow, name="narrow")
    widget = dock(viewer, "Track spots")
    viewer.dims.set_current_step(0, 2)
    widget.measure.native.click()
    want = round(estimate_psf_sigma(narrow[2].astype(np.float64)).sigma, 2)
    assert widget.parameters.psf_sigma.value == pytest.approx(want, abs=1e-9)
    assert abs(want - 0.9) < 0.06
    assert "spot sigma" in widget.task.status.value
    shown = viewer.layers["narrow detections"].data  # the preview follows the new sigma
    assert len(shown) == len(edgetrack.locate(narrow[2], psf_sigma=want))
    viewer.add_image(np.zeros((2, 64, 64)), name="blank")
    widget.image.value = viewer.layers["blank"]
    widget.measure.native.click()
    assert "measure:" in widget.task.status.value and "isolated spots" in widget.task.status.value
    assert widget.parameters.psf_sigma.value == pytest.approx(want, abs=1e-9)  # unchanged


def test_track_spots_adds_tracks_and_points(viewer, qt, movie):
    image = viewer.add_image(movie, name="movie", scale=(1.0, 0.5, 0.5))
    widget = dock(viewer, "Track spots")
    widget.task.run.native.click()
    wait_done(qt, widget.task)
    expected = edgetrack.track(movie, **SPOT_OPTIONS)
    tracks, spots = viewer.layers["movie tracks"], viewer.layers["movie spots"]
    assert type(tracks).__name__ == "Tracks" and type(spots).__name__ == "Points"
    assert tracks.data.shape == (len(expected), 4)
    assert len(np.unique(tracks.data[:, 0])) == expected["track_id"].nunique() > 10
    assert spots.data.shape == (len(expected), 3)
    np.testing.assert_allclose(tracks.data, to_napari(expected)[0])
    assert list(tracks.scale) == list(image.scale)  # the tracks sit on the image
    assert widget.task.progress.value == widget.task.progress.max == len(movie)
    assert "tracks" in widget.task.status.value


def test_track_spots_shows_the_division_graph(viewer, qt, dividing_tracks):
    frames, _ = simulate_movie(n_frames=25, shape=(96, 96), n_spots=10, snr=12.0, seed=5, division_rate=0.04,
                               D_range=(0.1, 0.3))
    viewer.add_image(frames, name="dividing")
    widget = dock(viewer, "Track spots")
    widget.parameters.linker.value = "greedy"
    widget.parameters.divisions.value = True
    widget.track()
    wait_done(qt, widget.task)
    layer = viewer.layers["dividing tracks"]
    assert layer.graph == to_napari(dividing_tracks)[1] and len(layer.graph) > 0


def test_track_spots_refuses_a_4d_layer_with_one_line(viewer):
    viewer.add_image(np.zeros((2, 3, 16, 16), np.float32), name="zstack")
    widget = dock(viewer, "Track spots")
    widget.image.value = viewer.layers["zstack"]
    assert widget.track() is None
    assert "needs (T, H, W)" in widget.task.status.value and "\n" not in widget.task.status.value


def test_track_cells_with_divisions_and_intensities(viewer, qt):
    masks, image = disc_masks()
    viewer.add_labels(masks, name="masks")
    viewer.add_image(image, name="raw")
    widget = dock(viewer, "Track cells")
    widget.image.value = viewer.layers["raw"]
    widget.max_distance.value = 20.0
    widget.task.run.native.click()
    wait_done(qt, widget.task)
    layer = viewer.layers["masks tracks"]
    assert type(layer).__name__ == "Tracks"
    assert layer.data.shape == (int(sum(len(np.unique(m)) - 1 for m in masks)), 4)
    assert len(np.unique(layer.data[:, 0])) == 4 and len(layer.graph) == 2
    (mother,) = {parents[0] for parents in layer.graph.values()}
    assert mother not in layer.graph
    features = layer.features
    assert {"label", "area", "mean_intensity"} <= set(features.columns)
    np.testing.assert_allclose(features["mean_intensity"], 100.0 + features["label"])  # the image was used


def test_analyze_motion_colours_tracks_and_plots(viewer, qt, movie):
    tracks = edgetrack.track(movie, **SPOT_OPTIONS)
    data, meta, _ = tracks_layer_data(tracks, name="tracks")
    layer = viewer.add_tracks(data, **meta)
    widget = dock(viewer, "Analyze motion")
    widget.task.run.native.click()
    wait_done(qt, widget.task)
    expected = edgetrack.analyze(tracks, extras=False).frames
    merged = tracks_from_layer(layer.data, layer.features).merge(expected, on=["track_id", "frame"],
                                                                 suffixes=("", "_expected"))
    assert len(merged) == len(tracks)
    np.testing.assert_allclose(merged["alpha"], merged["alpha_expected"])
    np.testing.assert_array_equal(merged["state"], merged["state_expected"])
    assert layer.color_by == "alpha"
    np.testing.assert_allclose(layer.track_colors, motion_colours(layer.features["alpha"].to_numpy(), "alpha"))
    widget.colour_by.value = "state"
    assert layer.color_by == "state"
    np.testing.assert_allclose(layer.track_colors, motion_colours(layer.features["state"].to_numpy(), "state"))
    scatter, bars = widget.figure.axes
    n_segments = int((widget.result.segments["alpha"].notna() & (widget.result.segments["K"] > 0)).sum())
    assert len(scatter.collections[0].get_offsets()) == n_segments > 5
    assert len(bars.patches) == 4


def _append_frames(qt, layer, frames, start: int) -> None:
    for t in range(start, len(frames)):
        layer.data = frames[: t + 1]  # what an acquisition plugin does: the layer grows by one frame
        qt.wait(5)


def test_live_mode_follows_frames_appended_to_a_layer(viewer, qt, movie):
    layer = viewer.add_image(movie[:3], name="camera")
    widget = dock(viewer, "Live tracking")
    widget.image.value = layer
    widget.start_button.native.click()
    assert widget.following
    _append_frames(qt, layer, movie, 3)
    window = int(widget.window.value)
    qt.waitUntil(lambda: widget.live.frames_committed >= len(movie) - (window - 1), timeout=TIMEOUT_MS)
    qt.waitUntil(lambda: "camera live tracks" in viewer.layers, timeout=TIMEOUT_MS)
    shown = viewer.layers["camera live tracks"]
    assert 0 < len(shown.data) and shown.data[:, 1].max() <= len(movie) - window  # committed frames only
    widget.stop_button.native.click()
    assert not widget.following and "stopped" in widget.status.value
    expected = edgetrack.track(movie, **SPOT_OPTIONS)
    np.testing.assert_allclose(viewer.layers["camera live tracks"].data, to_napari(expected)[0])
    layer.data = np.concatenate([movie, movie[-1:]])  # after Stop the layer is no longer followed
    assert widget.submitted == len(movie)


def test_live_mode_takes_each_new_image_of_a_2d_layer(viewer, qt, movie):
    layer = viewer.add_image(movie[0], name="live view")
    widget = dock(viewer, "Live tracking")
    widget.image.value = layer
    widget.start()
    for frame in movie[1:]:
        layer.data = frame  # a live view: the image is replaced
        qt.wait(5)
    qt.waitUntil(lambda: widget.submitted == len(movie), timeout=TIMEOUT_MS)
    widget.stop()
    expected = edgetrack.track(movie, **SPOT_OPTIONS)
    np.testing.assert_allclose(viewer.layers["live view live tracks"].data, to_napari(expected)[0])


def test_viewer_opens_and_saves_tracks_through_the_plugin(viewer, tmp_path, dividing_tracks):
    source = write_table(dividing_tracks, tmp_path / "tracks.csv")
    (layer,) = viewer.open(str(source), plugin=PLUGIN)
    assert type(layer).__name__ == "Tracks" and layer.graph == to_napari(dividing_tracks)[1]
    viewer.layers.selection = {layer}
    written = viewer.layers.save(str(tmp_path / "saved.csv"), selected=True, plugin=PLUGIN)
    back = read_table(written[0], ("frame", "y", "x", "track_id"))
    assert len(back) == len(dividing_tracks) and (back["parent_track_id"] >= 0).sum() == len(layer.graph)
