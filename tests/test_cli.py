"""The edgetrack command line: track, link, demo; errors exit with code 2 and leave no output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from conftest import make_walks
from edgetrack.runtime.cli.app import main


@pytest.fixture()
def movie_file(tmp_path, small_movie):
    movie, truth = small_movie
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie)
    return path, truth


def test_track_writes_tracks(movie_file, tmp_path, capsys):
    path, truth = movie_file
    out = tmp_path / "tracks.csv"
    assert main(["track", str(path), "--out", str(out)]) == 0
    tracks = pd.read_csv(out)
    assert list(tracks.columns[:4]) == ["frame", "y", "x", "track_id"]
    assert {"mass", "size", "signal", "eccentricity"} <= set(tracks.columns)
    assert tracks["frame"].nunique() == truth["frame"].nunique()
    assert "frames/s" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*part"))


def test_track_errors_exit_2_without_output(tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert main(["track", str(tmp_path / "missing.tif"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = np.zeros((3, 16, 16), np.float32)
    bad[1, 2, 2] = np.inf
    tifffile.imwrite(tmp_path / "inf.tif", bad, photometric="minisblack")
    assert main(["track", str(tmp_path / "inf.tif"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "edgetrack track: error:" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".*part"))
    assert main(["track", str(tmp_path / "inf.tif"), "--out", str(tmp_path / "no_dir" / "t.csv")]) == 2


def test_track_keeps_previous_output_on_failure(tmp_path, capsys):
    out = tmp_path / "t.csv"
    out.write_text("previous complete result\n")
    tifffile.imwrite(tmp_path / "nan.tif", np.full((2, 8, 8), np.nan, np.float32))
    assert main(["track", str(tmp_path / "nan.tif"), "--out", str(out), "--quiet"]) == 2
    assert out.read_text() == "previous complete result\n"


def test_link_detections_csv(tmp_path):
    truth = make_walks(n_tracks=10, n_frames=12)
    truth[["frame", "y", "x"]].to_csv(tmp_path / "d.csv", index=False)
    assert main(["link", str(tmp_path / "d.csv"), "--out", str(tmp_path / "t.csv"), "--quiet"]) == 0
    tracks = pd.read_csv(tmp_path / "t.csv")
    assert tracks["track_id"].nunique() == 10 and len(tracks) == len(truth)


def test_link_bad_tables_exit_2(tmp_path, capsys):
    pd.DataFrame({"frame": [0], "y": [1.0]}).to_csv(tmp_path / "d.csv", index=False)
    assert main(["link", str(tmp_path / "d.csv"), "--out", str(tmp_path / "t.csv")]) == 2
    assert "missing required column(s) x" in capsys.readouterr().err
    pd.DataFrame({"frame": [0, 1], "y": [1.0, "a"], "x": [1.0, 2.0]}).to_csv(tmp_path / "e.csv", index=False)
    assert main(["link", str(tmp_path / "e.csv"), "--out", str(tmp_path / "t.csv")]) == 2
    assert "non-numeric" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()


def test_unknown_linker_is_a_clear_error(tmp_path, capsys):
    truth = make_walks(n_tracks=2, n_frames=3)
    truth.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(SystemExit) as exit_info:  # the parser lists the linkers it knows
        main(["link", str(tmp_path / "d.csv"), "--out", str(tmp_path / "t.csv"), "--linker", "magic"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "magic" in err and "greedy" in err


def test_demo_prints_accuracy_and_speed(capsys):
    assert main(["demo", "--frames", "15", "--size", "96", "--spots", "20"]) == 0
    out = capsys.readouterr().out
    assert "F1" in out and "frames/s" in out


def test_outputs_get_ordinary_permissions(tmp_path):
    import os

    truth = make_walks(n_tracks=2, n_frames=3)
    truth.to_csv(tmp_path / "d.csv", index=False)
    assert main(["link", str(tmp_path / "d.csv"), "--out", str(tmp_path / "t.csv"), "--quiet"]) == 0
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "t.csv").stat().st_mode & 0o777 == 0o666 & ~mask


def test_interrupt_wrapped_by_numba_exits_130(monkeypatch, capsys):
    """Ctrl-C inside a Numba call arrives as SystemError caused by KeyboardInterrupt."""
    from edgetrack.runtime import cli
    from edgetrack.runtime.cli.commands import simulate

    def interrupted(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise SystemError("returned a result with an exception set") from exc

    monkeypatch.setattr(simulate, "run", interrupted)
    assert cli.main(["simulate", "--out", "x.tif"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_other_errors_are_not_swallowed(monkeypatch):
    from edgetrack.runtime import cli
    from edgetrack.runtime.cli.commands import simulate

    def broken(args):
        raise SystemError("a real bug")

    monkeypatch.setattr(simulate, "run", broken)
    with pytest.raises(SystemError):
        cli.main(["simulate", "--out", "x.tif"])


def test_swallowed_ctrl_c_is_raised_again_at_the_next_check():
    import os
    import signal

    from edgetrack.runtime.cli import interrupt

    with interrupt.handling_sigint():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs at the next bytecode boundary
                pass
        except KeyboardInterrupt:
            pass  # what a library that eats it would do
        assert interrupt.requested()
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    assert not interrupt.requested()
    interrupt.check()  # outside the block nothing is pending


def test_after_ctrl_c_llvmlite_destructor_reports_are_dropped(monkeypatch):
    """A Ctrl-C inside Numba's compiler can leave a half-built llvmlite object whose destructor
    fails at exit; that report is dropped, any other unraisable exception still gets through."""
    import sys
    import types

    from edgetrack.runtime.cli import interrupt

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    interrupt.quiet_library_destructors()
    interrupt.quiet_library_destructors()  # idempotent: one wrapper, not two

    def report(module: str):
        owner = types.FunctionType((lambda: None).__code__, {"__name__": module}, "__del__")
        return types.SimpleNamespace(exc_type=AttributeError, exc_value=AttributeError("x"), exc_traceback=None,
                                     err_msg="Exception ignored in", object=owner)

    assert report("llvmlite.binding.ffi").object.__module__ == "llvmlite.binding.ffi"
    sys.unraisablehook(report("llvmlite.binding.ffi"))
    sys.unraisablehook(report("numba.core.dispatcher"))
    assert seen == []
    other = report("mypackage.things")
    sys.unraisablehook(other)
    assert seen == [other]
