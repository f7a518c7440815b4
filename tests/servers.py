"""Starting ``edgetrack serve`` as a user would, for the tests that talk to a real server process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def start_server(args: list[str], port_file: Path, env: dict[str, str], *, stderr=subprocess.PIPE,
                 stdout=subprocess.DEVNULL, timeout: float = 180.0) -> tuple[subprocess.Popen, int]:
    """``edgetrack serve --port 0 --port-file PORT_FILE ARGS`` in a new process; waits for the port file
    (a cold Numba cache compiles during the server's warm-up, hence the long default) and returns
    (the process, its port)."""
    proc = subprocess.Popen([sys.executable, "-m", "edgetrack.runtime.cli.app", "serve", "--port", "0",
                             "--port-file", str(port_file), *args], stdout=stdout, stderr=stderr, text=True, env=env)
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"edgetrack serve did not start: {proc.communicate()[1]}")
        time.sleep(0.05)
    return proc, int(port_file.read_text())
