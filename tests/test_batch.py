"""edgetrack batch: many movies on Dask distributed (an embedded LocalCluster, a real ``dask scheduler``
with two ``dask worker`` processes), against a serial loop; chunked long movies against the streaming
run; the manifest (reruns, failures, --retry-failed); a worker killed mid-run; clear errors.

Everything runs the real components: simulated movies written with tifffile, the streaming pipeline,
Dask. The cluster tests are marked slow; all of this file takes about a minute on two cores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import tifffile

distributed = pytest.importorskip("distributed", reason="edgetrack batch needs the dask extra (distributed)")

from edgetrack.runtime import __version__  # noqa: E402
from edgetrack.runtime.batch import MANIFEST_NAME, batch  # noqa: E402
from edgetrack.runtime.batch.manifest import Manifest, content_hash, file_stat, params_key  # noqa: E402
from edgetrack.runtime.batch.run import SchedulerError, expand_inputs, output_names  # noqa: E402
from edgetrack.runtime.batch.tasks import detect_chunk, link_chunks  # noqa: E402
from edgetrack.runtime.cli import app  # noqa: E402
from edgetrack.runtime.cli.app import main  # noqa: E402
from edgetrack.runtime.errors import ConfigError, InputError, OutputError  # noqa: E402
from edgetrack.runtime.io.readers import open_movie  # noqa: E402
from edgetrack.runtime.io.tables import write_table  # noqa: E402
from edgetrack.runtime.simulate.spots import simulate_movie  # noqa: E402
from edgetrack.runtime.stream.pipeline import track_movie  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_MOVIES = 5
FRAMES = 20
LONG = 45  # one longer movie, split into chunks with chunk_frames=CHUNK
CHUNK = 12
WORKERS = 2
DASHBOARD = ":0"  # any free port: other test runs may hold 8787


def write_movies(folder: Path, n: int, frames: int = FRAMES, shape=(64, 64), seed: int = 0,
                 long: int | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        movie, _ = simulate_movie(n_frames=long if (long and i == 0) else frames, shape=shape, n_spots=12,
                                  seed=seed + i)
        path = folder / f"well{i:02d}.tif"
        tifffile.imwrite(path, movie)
        paths.append(path)
    return paths


def write_corrupt(path: Path) -> Path:
    path.write_bytes(b"II*\x00" + b"\x17not a tiff\x00" * 20)
    return path


def serial_tracks(paths: list[Path], folder: Path) -> dict[str, Path]:
    """The reference: a plain loop of the streaming pipeline, written with write_table."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for path in paths:
        tracks = track_movie(open_movie(path))
        out[path.stem] = write_table(tracks, folder / f"{path.stem}.csv")
    return out


def assert_same_outputs(out: Path, reference: dict[str, Path]) -> None:
    for name, ref in reference.items():
        got = out / name / "tracks.csv"
        pd.testing.assert_frame_equal(pd.read_csv(got), pd.read_csv(ref))
        assert got.read_bytes() == ref.read_bytes(), name
    assert not list(out.rglob(".*.part")), "temporary files left behind"


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """N_MOVIES tiny movies (the first one LONG frames) plus one corrupt file, and the serial reference."""
    root = tmp_path_factory.mktemp("plate")
    paths = write_movies(root / "plate", N_MOVIES, long=LONG)
    bad = write_corrupt(root / "plate" / "broken.tif")
    reference = serial_tracks(paths, root / "serial")
    return root, paths, bad, reference


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A real ``dask scheduler`` and two ``dask worker`` processes (1 thread each, with nannies)."""
    folder = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = []

    def start(*args: str) -> subprocess.Popen:
        log = open(folder / f"log{len(logs)}.txt", "w")
        logs.append(log)
        return subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=folder)

    scheduler_file = folder / "scheduler.json"
    processes = [start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                       "--no-dashboard", "--scheduler-file", str(scheduler_file))]
    try:
        for i in range(WORKERS):
            processes.append(start("distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
                                   "--no-dashboard", "--name", f"w{i}", "--death-timeout", "60"))
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(WORKERS, timeout=60)
        yield address, scheduler_file
    finally:
        for process in reversed(processes):
            _stop(process)
        for log in logs:
            log.close()


REGISTER = "from edgetrack.runtime.cli import app; app.COMMANDS.setdefault('batch', 'batch'); "


@pytest.fixture(autouse=True)
def batch_command(monkeypatch):
    """The ``batch`` sub-command (a no-op once runtime/cli/app.py lists it in COMMANDS)."""
    if "batch" not in app.COMMANDS:
        monkeypatch.setitem(app.COMMANDS, "batch", "batch")


# ---------------------------------------------------------------------------------------------- no cluster
def test_chunked_detection_linked_in_order_is_the_streaming_run(tmp_path):
    """A long movie split into chunks of frames (detected independently) and linked in order gives the
    same DataFrame as the streaming run, for chunk sizes that do and do not divide the length."""
    movie, _ = simulate_movie(n_frames=37, shape=(64, 64), n_spots=15, seed=11)
    path = tmp_path / "long.tif"
    tifffile.imwrite(path, movie)
    expected = track_movie(open_movie(path), max_gap=2, window=4)
    job = {"name": "long", "input": str(path), "out": str(tmp_path / "out"), "analyze": False,
           "tracker": {"max_gap": 2, "window": 4}, "detect": {}}
    for size in (1, 5, 12, 37):
        chunks = [detect_chunk(job, s, min(s + size, len(movie))) for s in range(0, len(movie), size)]
        record = link_chunks(job, *chunks)
        assert record["status"] == "done" and record["n_frames"] == len(movie)
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "long" / "tracks.csv"),
                                      pd.read_csv(write_table(expected, tmp_path / "expected.csv")))
    got = link_chunks(job, *[detect_chunk(job, s, min(s + 10, 37)) for s in range(0, 37, 10)])
    assert got["n_points"] == len(expected)


def test_output_names_and_inputs(tmp_path):
    for sub in ("A", "B"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "pos1.ome.tif").write_bytes(b"x")
    (tmp_path / "A" / "pos2.tif").write_bytes(b"x")
    paths = expand_inputs([str(tmp_path / "*" / "*.tif"), str(tmp_path / "A" / "pos2.tif")])
    assert len(paths) == 3  # the duplicate once
    assert sorted(output_names(paths)) == ["A__pos1", "A__pos2", "B__pos1"]
    assert list(output_names([tmp_path / "A" / "pos2.tif"])) == ["pos2"]
    with pytest.raises(InputError, match="no inputs matched"):
        expand_inputs(str(tmp_path / "*.nd2"))
    with pytest.raises(InputError, match="no such file"):
        expand_inputs(str(tmp_path / "missing.tif"))


def test_manifest_decisions(tmp_path):
    """Unchanged -> done; touched (same bytes) -> done; other bytes -> run; other parameters -> run;
    failed -> skipped unless retry_failed; a deleted output -> run."""
    movie = tmp_path / "m.tif"
    movie.write_bytes(b"0123456789")
    (tmp_path / "out" / "m").mkdir(parents=True)
    (tmp_path / "out" / "m" / "tracks.csv").write_text("frame,y,x,track_id\n")
    manifest = Manifest.open(tmp_path / "out")
    key = params_key({"a": 1})
    entry = {"input": str(movie.resolve()), "status": "done", "params_key": key, "sha256": content_hash(movie),
             "outputs": ["m/tracks.csv"], **file_stat(movie)}
    manifest.record("m", dict(entry))
    manifest.save()
    manifest = Manifest.open(tmp_path / "out")
    assert manifest.decide("m", movie, key).action == "done"
    assert manifest.decide("m", movie, params_key({"a": 2})).action == "run"
    os.utime(movie, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched: same bytes
    assert manifest.decide("m", movie, key).action == "done"
    movie.write_bytes(b"0123456780")  # same size, other bytes
    assert manifest.decide("m", movie, key).reason == "input changed"
    manifest.entries["m"] = {**entry, "status": "failed", "error": "boom", **file_stat(movie),
                             "sha256": content_hash(movie)}
    assert manifest.decide("m", movie, key).action == "failed"
    assert manifest.decide("m", movie, key, retry_failed=True).action == "run"
    manifest.entries["m"]["status"] = "done"
    (tmp_path / "out" / "m" / "tracks.csv").unlink()
    assert manifest.decide("m", movie, key).reason == "an output is missing"


def test_clear_errors_without_a_cluster(tmp_path, capsys):
    movies = write_movies(tmp_path / "in", 1)
    assert main(["batch", str(tmp_path / "nothing" / "*.tif"), "--out", str(tmp_path / "o")]) == 2
    assert "no inputs matched" in capsys.readouterr().err
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        batch(movies, blocker)
    with pytest.raises(OutputError, match="cannot create output folder"):
        batch(movies, blocker / "sub")
    bad_manifest = tmp_path / "o2"
    bad_manifest.mkdir()
    (bad_manifest / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(OutputError, match="not valid JSON"):
        batch(movies, bad_manifest)
    with pytest.raises(ConfigError):
        batch(movies, tmp_path / "o3", max_distnace=3.0)  # a typo in a tracker option
    with pytest.raises(ConfigError, match="not both"):
        batch(movies, tmp_path / "o3", workers=2, scheduler="tcp://127.0.0.1:1")


def test_unreachable_scheduler_is_one_line_and_quick(tmp_path, capsys):
    write_movies(tmp_path / "in", 1)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(SchedulerError, match="cannot reach the Dask scheduler"):
        batch(str(tmp_path / "in" / "*.tif"), tmp_path / "o", scheduler=address, timeout=1.0)
    code = main(["batch", str(tmp_path / "in" / "*.tif"), "--out", str(tmp_path / "o"), "--scheduler", address,
                 "--timeout", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("edgetrack batch: error: cannot reach the Dask scheduler")
    assert time.perf_counter() - start < 20


# ---------------------------------------------------------------------------------------------- LocalCluster
@pytest.mark.slow
def test_local_cluster_matches_serial_records_failures_and_resumes(plate, tmp_path):
    root, paths, bad, reference = plate
    out = tmp_path / "results"
    events: list[tuple[str, dict]] = []
    result = batch(str(root / "plate" / "*.tif"), out, workers=WORKERS, chunk_frames=CHUNK,
                   dashboard_address=DASHBOARD, progress=lambda kind, info: events.append((kind, info)))
    # every good movie identical to the serial loop (the long one was detected in chunks)
    assert sorted(result.done) == sorted(reference) and result.cluster
    assert_same_outputs(out, reference)
    # the corrupt movie is recorded with its error; the others went on
    assert list(result.failed) == ["broken"] and "not a readable TIFF" in result.failed["broken"]
    assert not (out / "broken" / "tracks.csv").exists()
    data = json.loads((out / MANIFEST_NAME).read_text())
    good = data["entries"]["well01"]
    assert good["status"] == "done" and good["edgetrack"] == __version__
    assert good["sha256"] == content_hash(paths[1]) and good["size"] == paths[1].stat().st_size
    assert good["mtime_ns"] == paths[1].stat().st_mtime_ns and good["n_frames"] == FRAMES
    assert data["params"][good["params_key"]]["tracker"]["max_distance"] == 6.0
    assert data["entries"]["well00"]["n_frames"] == LONG
    assert data["entries"]["broken"]["status"] == "failed"
    kinds = [k for k, _ in events]
    assert kinds[0] == "plan" and "cluster" in kinds and kinds.count("movie") == N_MOVIES + 1
    assert any(k == "frames" for k in kinds)  # frame progress reached the client from the workers
    assert next(i for k, i in events if k == "cluster")["dashboard"].startswith("http")

    # a rerun: nothing to do, no cluster (distributed not even imported), seconds; the failure listed
    code = ("import sys, time; t = time.perf_counter(); " + REGISTER + "from edgetrack.runtime.cli.app import main; "
            f"c = main(['batch', {str(root / 'plate' / '*.tif')!r}, '--out', {str(out)!r}]); "
            "print(c, 'distributed' in sys.modules, time.perf_counter() - t)")
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    exit_code, imported, seconds = run.stdout.split()
    assert exit_code == "1" and imported == "False", run.stderr  # 1: a movie failed (before)
    assert float(seconds) < 3.0 and wall < 15.0
    assert "5 done before" in run.stderr and "failed before: broken" in run.stderr
    assert "tracked" in run.stderr and "0 tracked" in run.stderr

    # --retry-failed runs (only) the failed movie again: it fails again and stays recorded
    before = json.loads((out / MANIFEST_NAME).read_text())["entries"]
    again = batch(str(root / "plate" / "*.tif"), out, workers=1, retry_failed=True, dashboard_address=DASHBOARD)
    assert list(again.failed) == ["broken"] and not again.done and len(again.skipped) == N_MOVIES
    after = json.loads((out / MANIFEST_NAME).read_text())["entries"]
    assert after["broken"]["finished"] >= before["broken"]["finished"]
    assert after["well01"] == before["well01"]

    # a repaired input is tracked without --retry-failed (its bytes changed); a deleted output is redone
    shutil.copy(paths[1], bad)
    (out / "well02" / "tracks.csv").unlink()
    fixed = batch(str(root / "plate" / "*.tif"), out, workers=WORKERS, dashboard_address=DASHBOARD)
    assert sorted(fixed.done) == ["broken", "well02"] and fixed.ok
    assert (out / "broken" / "tracks.csv").read_bytes() == (out / "well01" / "tracks.csv").read_bytes()
    assert_same_outputs(out, reference)


@pytest.mark.slow
def test_cli_batch_with_analyze(plate, tmp_path, capsys):
    root, paths, _, reference = plate
    out = tmp_path / "analysed"
    code = main(["batch", str(paths[1]), str(paths[2]), "--out", str(out), "--analyze", "--workers", "2",
                 "--dashboard-address", DASHBOARD])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "dashboard: http" in err and "2 tracked" in err
    for name in ("well01", "well02"):
        assert {"tracks.csv", "frames.csv", "segments.csv", "ensemble.csv", "units.txt"} <= {
            p.name for p in (out / name).iterdir()}
        assert (out / name / "tracks.csv").read_bytes() == reference[name].read_bytes()
        assert len(pd.read_csv(out / name / "frames.csv")) == len(pd.read_csv(reference[name]))
    entry = json.loads((out / MANIFEST_NAME).read_text())["entries"]["well01"]
    assert "well01/segments.csv" in entry["outputs"]
    # the same folder without --analyze: other parameters, so the movies are tracked again
    assert main(["batch", str(paths[1]), "--out", str(out), "--workers", "1", "--quiet",
                 "--dashboard-address", DASHBOARD]) == 0


# ---------------------------------------------------------------------------------------------- dask scheduler
@pytest.mark.slow
def test_real_scheduler_and_workers_match_serial(plate, scheduler, tmp_path):
    root, paths, _, reference = plate
    out = tmp_path / "remote"
    address, _ = scheduler
    result = batch(paths, out, scheduler=address, chunk_frames=CHUNK)
    assert sorted(result.done) == sorted(reference) and result.ok
    assert_same_outputs(out, reference)
    workers = {e["worker"] for e in json.loads((out / MANIFEST_NAME).read_text())["entries"].values()}
    assert all(w.split(":")[1] != str(os.getpid()) for w in workers)  # tracked in the worker processes


@pytest.mark.slow
def test_killed_worker_every_movie_still_finishes(scheduler, tmp_path):
    """SIGKILL the worker process that is tracking a movie: Dask reruns its task on a worker (the nanny
    starts a new one), and every movie is tracked, identical to the serial loop."""
    paths = write_movies(tmp_path / "long", 4, frames=500, shape=(128, 128), seed=50)
    reference = serial_tracks(paths, tmp_path / "serial")
    killed: list[int] = []
    address, scheduler_file = scheduler

    def killer() -> None:
        with distributed.Client(address, timeout=30) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                busy = [w for w, keys in client.processing().items()
                        if any(str(k).startswith("edgetrack-track-") for k in keys)]
                if busy:
                    time.sleep(0.3)  # well into the movie
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = batch(paths, tmp_path / "out", scheduler=str(scheduler_file))  # by its scheduler file
    thread.join(timeout=60)
    assert killed, "no worker was killed during the run"
    assert sorted(result.done) == sorted(reference) and result.ok
    assert_same_outputs(tmp_path / "out", reference)
    with distributed.Client(address, timeout=30) as client:  # the nanny replaced the killed worker
        client.wait_for_workers(WORKERS, timeout=60)
