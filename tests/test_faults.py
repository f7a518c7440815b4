"""Every case of the fault catalogue (tests/faults.py) ends as it must: a clear error, or success when legal."""

from __future__ import annotations

import pytest

from faults import catalogue, run_fault

CASES = catalogue()


@pytest.mark.parametrize("fault", CASES, ids=[f.name for f in CASES])
def test_fault(fault, tmp_path):
    if fault.name.startswith("ONNX"):
        pytest.importorskip("onnx", reason="building the test models needs the onnx package (train extra)")
    if "MAGIK" in fault.name:
        from edgetrack.runtime.models.onnx import model_names

        if "andi_motion" not in model_names():
            pytest.skip("the andi_motion model is not exported in this checkout")
    outcome, detail = run_fault(fault, tmp_path)
    assert outcome in ("handled", "ok"), detail
    assert (outcome == "ok") == fault.ok, detail


def _movie_file(tmp_path, n_frames: int, shape=(64, 64), n_spots: int = 20) -> str:
    import numpy as np

    from edgetrack.runtime.simulate.spots import simulate_movie

    movie, _ = simulate_movie(n_frames=n_frames, shape=shape, n_spots=n_spots, seed=5)
    path = tmp_path / "movie.npy"
    np.save(path, movie)
    return str(path)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs POSIX resource limits")
def test_disk_full_leaves_no_output(tmp_path):
    import subprocess
    import sys
    import textwrap

    movie = _movie_file(tmp_path, 60)
    out = tmp_path / "out.csv"
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from edgetrack.runtime.cli.app import main
        sys.exit(main(["track", r"{movie}", "--out", r"{out}", "--quiet"]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_ctrl_c_leaves_previous_output_intact(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    movie = _movie_file(tmp_path, 3000, shape=(96, 96), n_spots=40)
    out = tmp_path / "out.csv"
    out.write_text("previous complete result\n")
    proc = subprocess.Popen([sys.executable, "-m", "edgetrack.runtime.cli.app", "track", movie, "--out", str(out),
                             "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.csv.*.part")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert out.read_text() == "previous complete result\n"
    assert not list(tmp_path.glob(".*.part"))
