"""napari plugin (issue 22): seconds from opening napari to tracks shown on the demo movie, and the README's
screenshots of the four widgets.

    python benchmarks/bench_napari.py [--repeats 3]        # the timing, each run in a fresh process
    python benchmarks/bench_napari.py --screenshots docs/images

The demo movie is ``edgetrack demo``'s (100 frames of 512 x 512 px, ~500 spots, SNR 10, seed 0), written
once as a TIFF. Each run starts a new Python process, as typing ``napari`` does, and times: the viewer
open (import napari, window shown), the movie opened (napari's TIFF reader), the "Track spots" widget
docked from the plugin (npe2; its preview detects the shown frame), and the click on Track until the
Tracks layer is drawn on the canvas. Needs the napari extra and a display with OpenGL: with DISPLAY unset
an Xvfb is started through pyvirtualdisplay (apt-get install xvfb libgl1-mesa-dri).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WINDOW = (1150, 760)  # px, the viewer window for the timing and the screenshots
SHOT_WIDTH = 900  # px, screenshots are scaled down to this width


def ensure_display() -> object | None:
    """Start an Xvfb (pyvirtualdisplay) when there is no display; returns it (stop it at the end) or None."""
    if os.environ.get("DISPLAY") or sys.platform != "linux":
        return None
    from pyvirtualdisplay import Display

    display = Display(visible=False, size=(1600, 1200), color_depth=24)
    display.start()
    return display


def wait(predicate, timeout: float = 300.0) -> None:
    """Run Qt's event loop until ``predicate()`` holds."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the viewer did not get there in time")
        QApplication.processEvents()
        time.sleep(0.005)


def settle() -> None:
    """Let Qt handle the events that are waiting (the window's first paint, resizes)."""
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()


def child(movie: Path) -> None:
    """One timed session (a fresh process): prints one JSON line of epoch stamps."""
    stamps = {"start": time.time()}
    viewer = open_viewer()
    stamps["viewer"] = time.time()
    viewer.open(str(movie))
    stamps["opened"] = time.time()
    _, widget = viewer.window.add_plugin_dock_widget("edgetrack", "Track spots")
    stamps["widget"] = time.time()
    widget.task.run.native.click()
    name = f"{viewer.layers[0].name} tracks"
    wait(lambda: name in viewer.layers and not widget.task.busy)
    viewer.screenshot(canvas_only=True)  # draws the canvas with the tracks
    stamps["shown"] = time.time()
    layer = viewer.layers[name]
    stamps["points"], stamps["tracks"] = len(layer.data), len(set(layer.data[:, 0]))
    print(json.dumps(stamps), flush=True)
    viewer.close()


def time_runs(repeats: int) -> None:
    import tifffile
    from edgetrack.runtime.napari_plugin.sample import DEMO
    from edgetrack.runtime.simulate.spots import simulate_movie

    with tempfile.TemporaryDirectory() as folder:
        movie = Path(folder) / "demo.tif"
        tifffile.imwrite(movie, simulate_movie(**DEMO)[0])
        print(f"demo movie {DEMO} -> {movie}")
        for run in range(1, repeats + 1):
            time_one(movie, run)


def time_one(movie: Path, run: int) -> None:
    """One cold run in a fresh process; prints its phases."""
    launched = time.time()
    out = subprocess.run([sys.executable, __file__, "--child", str(movie)], capture_output=True, text=True,
                         check=True)
    s = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"run {run}: tracks shown {s['shown'] - launched:.1f} s after launch "
          f"(python start {s['start'] - launched:.1f} s, viewer open {s['viewer'] - s['start']:.1f} s, "
          f"movie opened {s['opened'] - s['viewer']:.1f} s, widget docked {s['widget'] - s['opened']:.1f} s, "
          f"tracking to drawn {s['shown'] - s['widget']:.1f} s); {s['tracks']} tracks, {s['points']} points")


# ----------------------------------------------------------------------------------------- screenshots

def save_shot(viewer, path: Path) -> None:
    from PIL import Image

    settle()  # the widgets' last texts laid out
    image = Image.fromarray(viewer.screenshot(canvas_only=False, flash=False)).convert("RGB")
    height = round(image.height * SHOT_WIDTH / image.width)
    image = image.resize((SHOT_WIDTH, height), Image.LANCZOS).quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    image.save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1024} KiB)")


def run_and_shoot(viewer, widget, frame: int, path: Path, show: str | None = None) -> None:
    """Click the widget's Run button, wait for its task, go to ``frame`` (showing layer ``show``) and shoot."""
    widget.task.run.native.click()
    wait(lambda: not widget.task.busy)
    if show is not None:
        viewer.layers[show].visible = True
    viewer.dims.set_current_step(0, frame)
    save_shot(viewer, path)


def open_viewer():
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window.resize(*WINDOW)
    settle()
    return viewer


def shots(folder: Path) -> None:
    from edgetrack.runtime.napari_plugin.tables import tracks_layer_data
    from edgetrack.runtime.simulate.spots import simulate_movie
    from edgetrack.training.cells import simulate_cells

    import edgetrack

    folder.mkdir(parents=True, exist_ok=True)
    viewer = open_viewer()

    movie = simulate_movie(n_frames=40, shape=(200, 200), n_spots=40, snr=8.0, seed=2)[0]
    viewer.add_image(movie, name="movie")
    _, widget = viewer.window.add_plugin_dock_widget("edgetrack", "Track spots")
    run_and_shoot(viewer, widget, 25, folder / "napari_track_spots.png", show="movie detections")

    viewer.close()
    viewer = open_viewer()
    cells = simulate_cells(seed=1, n_frames=30)
    viewer.add_image(cells.images, name="cells")
    viewer.add_labels(cells.masks, name="masks", opacity=0.35)
    _, widget = viewer.window.add_plugin_dock_widget("edgetrack", "Track cells")
    widget.image.value = viewer.layers["cells"]
    run_and_shoot(viewer, widget, 22, folder / "napari_track_cells.png")

    viewer.close()
    viewer = open_viewer()
    movie = simulate_movie(n_frames=100, shape=(160, 160), n_spots=25, snr=10.0, seed=4,
                           motion_fractions=(0.4, 0.3, 0.3), mean_lifetime=float("inf"))[0]
    viewer.add_image(movie, name="movie")
    data, meta, _ = tracks_layer_data(edgetrack.track(movie), name="tracks")
    viewer.add_tracks(data, tail_length=100, tail_width=3, **meta)
    _, widget = viewer.window.add_plugin_dock_widget("edgetrack", "Analyze motion")
    widget.colour_by.value = "alpha"
    run_and_shoot(viewer, widget, 99, folder / "napari_analyze_motion.png")

    viewer.close()
    viewer = open_viewer()
    movie = simulate_movie(n_frames=60, shape=(200, 200), n_spots=40, snr=8.0, seed=6)[0]
    layer = viewer.add_image(movie[:5], name="camera")
    _, widget = viewer.window.add_plugin_dock_widget("edgetrack", "Live tracking")
    widget.image.value = layer
    widget.start_button.native.click()
    for t in range(5, 40):  # frames arrive while the acquisition runs
        layer.data = movie[: t + 1]
        settle()
    shown = "camera live tracks"
    wait(lambda: shown in viewer.layers and viewer.layers[shown].data[:, 1].max() >= 37)
    viewer.dims.set_current_step(0, 39)
    save_shot(viewer, folder / "napari_live_tracking.png")
    widget.stop()
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, each a fresh process (default 3)")
    parser.add_argument("--screenshots", type=Path, default=None, help="write the widgets' screenshots here")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    display = ensure_display()
    try:
        if args.child is not None:
            child(args.child)
        elif args.screenshots is not None:
            shots(args.screenshots)
        else:
            time_runs(args.repeats)
    finally:
        if display is not None:
            display.stop()


if __name__ == "__main__":
    main()
