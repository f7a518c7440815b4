"""Limits enforced up front: a typo in an option is a clear error, never an overflow or a stalled stream."""

from __future__ import annotations

import math

import pytest

from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import ConfigError
from edgetrack.runtime.stream.tracker import Tracker


@pytest.mark.parametrize("options, message", [
    ({"max_distance": 1e200}, "max_distance"),
    ({"max_distance": math.nan}, "max_distance"),
    ({"max_distance": math.inf}, "max_distance"),
    ({"window": 10_000_000}, "window must be at most"),
    ({"max_gap": 1_000_000}, "max_gap must be at most"),
    ({"max_gap": math.inf}, "max_gap"),
])
def test_out_of_range_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        Tracker(**options)


def test_the_command_line_says_it_in_one_line(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("frame,y,x\n0,1,1\n1,1.5,1\n")
    assert main(["link", str(tmp_path / "d.csv"), "--out", str(tmp_path / "t.csv"), "--max-distance", "1e200"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_distance" in err[0] and "Traceback" not in err[0]


def test_writing_to_dev_null_leaves_the_device_alone(tmp_path):
    import os
    import stat

    from edgetrack.runtime.io.atomic import atomic_open

    if not os.path.exists(os.devnull) or not stat.S_ISCHR(os.stat(os.devnull).st_mode):
        import pytest

        pytest.skip("no character device at os.devnull here")
    with atomic_open(os.devnull) as fh:
        fh.write("frame,y,x\n")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)  # still the device, not a renamed regular file
    import glob

    assert not glob.glob("/dev/.null.*.part")
