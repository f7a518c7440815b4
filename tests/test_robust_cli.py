"""Stopped runs keep what they committed and resume to the identical result; clear errors for bad inputs.

Before: SIGTERM / SIGHUP killed ``edgetrack track`` on the spot (a ``.part`` file left, nothing written),
a truncated movie was refused at open (all the work lost), ``analyze`` interrupted while writing left an
empty folder, a 0-frame TIFF said "cannot tell which axis is time", a NaN frame did not say which.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import InputError


def _movie(n_frames: int, shape=(64, 64), n_spots: int = 25, seed: int = 5) -> np.ndarray:
    from edgetrack.runtime.simulate.spots import simulate_movie

    movie, _ = simulate_movie(n_frames=n_frames, shape=shape, n_spots=n_spots, seed=seed)
    return movie


def _track(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgetrack.runtime.cli.app", "track", *args, "--quiet"],
                            stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be stopped"


@pytest.fixture(scope="module")
def long_movie(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    path = folder / "movie.npy"
    np.save(path, _movie(1200))
    reference = folder / "reference.csv"
    assert main(["track", str(path), "--out", str(reference), "--quiet"]) == 0
    return path, reference.read_bytes()


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("signame", [s for s in ("SIGTERM", "SIGHUP") if hasattr(signal, s)])
def test_a_terminated_run_writes_what_it_committed_and_resumes_identically(long_movie, tmp_path, signame):
    movie, reference = long_movie
    out = tmp_path / "out.csv"
    ckpt = Path(f"{out}.checkpoint.npz")
    proc = _track(str(movie), "--out", str(out), "--checkpoint-every", "50")
    _wait_for(lambda: ckpt.exists(), proc)  # well into the movie
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + getattr(signal, signame), err
    assert signame in err and "stopped before frame" in err and "Traceback" not in err
    assert not list(tmp_path.glob(".*.part"))
    partial = out.read_bytes()
    assert partial.endswith(b"\n") and reference.startswith(partial) and len(partial) < len(reference)
    stopped_at = int(err.split("stopped before frame ")[1].split()[0])
    assert 0 < stopped_at < 1200
    assert pd.read_csv(out)["frame"].max() < stopped_at
    assert main(["track", str(movie), "--out", str(out), "--quiet", "--resume"]) == 0
    assert out.read_bytes() == reference  # byte-identical to the uninterrupted run
    assert not ckpt.exists() and not list(tmp_path.glob(".*.part"))


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL")
def test_a_killed_run_resumes_from_its_last_periodic_checkpoint(long_movie, tmp_path):
    movie, reference = long_movie
    out = tmp_path / "out.csv"
    ckpt = Path(f"{out}.checkpoint.npz")
    proc = _track(str(movie), "--out", str(out), "--checkpoint-every", "100")
    _wait_for(lambda: ckpt.exists(), proc)
    time.sleep(0.3)
    proc.kill()  # no handler runs: only the periodic checkpoint and the partial file survive
    proc.communicate(timeout=60)
    assert not out.exists() and list(tmp_path.glob(".out.csv.*.part"))
    assert main(["track", str(movie), "--out", str(out), "--quiet", "--resume"]) == 0
    assert out.read_bytes() == reference
    assert not ckpt.exists() and not list(tmp_path.glob(".*.part"))


def test_a_truncated_movie_keeps_its_committed_frames_and_resumes_when_complete(tmp_path, capsys):
    movie = _movie(40, shape=(48, 48), n_spots=10)
    tifffile.imwrite(tmp_path / "full.tif", movie, photometric="minisblack")
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) * 3 // 5])  # the acquisition crashed mid-file
    ref = tmp_path / "ref.csv"
    assert main(["track", str(tmp_path / "full.tif"), "--out", str(ref), "--quiet"]) == 0
    out = tmp_path / "out.csv"
    assert main(["track", str(tmp_path / "cut.tif"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "frame 24 is missing" in err and "stopped before frame 24 of 40" in err and len(err.splitlines()) == 1
    kept = pd.read_csv(out)
    assert len(kept) and kept["frame"].max() == 24 - 3  # committed: all but the last window - 1 frames read
    assert ref.read_bytes().startswith(out.read_bytes())
    assert main(["track", str(tmp_path / "full.tif"), "--out", str(out), "--quiet", "--resume"]) == 0
    assert out.read_bytes() == ref.read_bytes()


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys):
    movie = _movie(30, shape=(48, 48), n_spots=10)
    tifffile.imwrite(tmp_path / "full.tif", movie, photometric="minisblack")
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.csv"
    assert main(["track", str(tmp_path / "full.tif"), "--out", str(tmp_path / "x.csv"), "--resume", "--quiet"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "cut.tif"), "--out", str(out), "--quiet"]) == 2
    capsys.readouterr()
    assert main(["track", str(tmp_path / "full.tif"), "--out", str(out), "--quiet", "--resume",
                 "--max-distance", "4"]) == 2
    assert "max_distance 6.0 (checkpoint) vs 4.0 (now)" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "other.tif", movie[:, :40], photometric="minisblack")
    assert main(["track", str(tmp_path / "other.tif"), "--out", str(out), "--quiet", "--resume"]) == 2
    assert "shape" in capsys.readouterr().err
    out.write_text("frame,y,x,track_id\n")  # the output was changed since the stop
    assert main(["track", str(tmp_path / "full.tif"), "--out", str(out), "--quiet", "--resume"]) == 2
    assert "does not start with" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "full.tif"), "--out", str(out), "--checkpoint-every", "0"]) == 2
    assert "--checkpoint-every" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name == "nt", reason="POSIX signals")
def test_sigterm_inside_the_command_line_is_a_clean_interrupt():
    from edgetrack.runtime.cli.interrupt import Terminated, handling_sigint

    with pytest.raises(Terminated):
        with handling_sigint():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_an_interrupted_analyze_leaves_no_empty_folder(tmp_path, monkeypatch):
    from edgetrack.runtime.io import tables
    from edgetrack.runtime.motion import analyze

    rng = np.random.default_rng(0)
    rows = [(k, t, 10 + np.cumsum(rng.normal(0, 1, 40))[t], 10.0 + t * 0.1) for k in range(3) for t in range(40)]
    pd.DataFrame(rows, columns=["track_id", "frame", "y", "x"]).to_csv(tmp_path / "t.csv", index=False)
    result = analyze.analyze_tracks(pd.read_csv(tmp_path / "t.csv"))
    real = tables.write_table
    calls = []

    def interrupted(table, path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(table, path)

    monkeypatch.setattr(tables, "write_table", interrupted)
    with pytest.raises(KeyboardInterrupt):
        analyze.write_analysis(result, tmp_path / "new" / "out")
    assert (tmp_path / "new" / "out" / "frames.csv").is_file()  # complete files, or none
    assert not list((tmp_path / "new" / "out").glob(".*.part"))
    calls.clear()
    calls.append("skip")  # the next write (the first) is interrupted
    with pytest.raises(KeyboardInterrupt):
        analyze.write_analysis(result, tmp_path / "fresh" / "out")
    assert not (tmp_path / "fresh").exists()


def test_frame_errors_name_the_frame(tmp_path):
    from edgetrack.runtime.stream.pipeline import track_frames
    from edgetrack.runtime.stream.tracker import Tracker

    movie = _movie(6, shape=(32, 32), n_spots=4).astype(np.float32)
    movie[4, 3, 3] = np.nan
    with pytest.raises(InputError, match="frame 4: frame has 1 non-finite"):
        for _ in track_frames(Tracker(), movie):
            pass
    tracker = Tracker()
    with pytest.raises(InputError, match="frame 7: "):
        tracker.push(movie[4], frame=7)


def test_a_tiff_of_zero_frames(tmp_path):
    import warnings

    from edgetrack.runtime.io.readers import open_movie

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tifffile.imwrite(tmp_path / "m.tif", np.zeros((0, 16, 16), np.uint16))
    with pytest.raises(InputError, match="no frames"):
        open_movie(tmp_path / "m.tif")


def test_a_missing_models_folder_is_named(tmp_path):
    from edgetrack.runtime.errors import ModelError
    from edgetrack.runtime.models.onnx import load_model

    with pytest.raises(ModelError, match="models folder .*nowhere does not exist"):
        load_model("andi_motion", folder=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no manifest.json"):
        load_model("andi_motion", folder=tmp_path / "empty")
