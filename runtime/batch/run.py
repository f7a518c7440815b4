"""``batch``: track many movies on Dask distributed, one task per movie, resumable through a manifest.

The process that calls :func:`batch` plans (reads the manifest, decides what is left), starts or connects
to a Dask cluster only when something is left, submits one task per movie (a long movie: one detection
task per chunk of frames and one linking task), and records each result in the manifest as it arrives.
Workers only read inputs and write their own movie's outputs; the manifest has one writer.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from edgetrack.runtime import __version__
from edgetrack.runtime.batch.manifest import Decision, Manifest, file_stat, params_key
from edgetrack.runtime.batch.tasks import FRAMES_TOPIC, detect_chunk, link_chunks, track_one
from edgetrack.runtime.errors import ConfigError, EdgetrackError, InputError

MOVIE_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".npy", ".zarr", ".png")
ANALYZE_OPTIONS = ("pixel_size", "frame_interval", "max_states", "harmonise", "shrink", "extras")

Progress = Callable[[str, dict[str, Any]], None]


class SchedulerError(EdgetrackError, ConnectionError):
    """The Dask scheduler cannot be reached, or its workers cannot run edgetrack."""


@dataclasses.dataclass
class BatchResult:
    """What one call of :func:`batch` did.

    done / failed: movies run now (failed: name -> error); skipped: done before (not run again);
    failed_before: failed in an earlier run with the same input and parameters (not retried without
    ``retry_failed``); cluster: whether a Dask cluster was started or connected to.
    """

    out: Path
    manifest: Path
    done: list[str]
    failed: dict[str, str]
    skipped: list[str]
    failed_before: dict[str, str]
    seconds: float
    cluster: bool = False
    dashboard: str | None = None

    @property
    def ok(self) -> bool:
        """True when every movie of the batch has its outputs."""
        return not self.failed and not self.failed_before

    def summary(self) -> str:
        parts = [f"{len(self.done)} tracked", f"{len(self.skipped)} done before"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.failed_before:
            parts.append(f"{len(self.failed_before)} failed before (not retried; --retry-failed)")
        return f"{', '.join(parts)} in {self.seconds:.1f} s -> {self.out}"


# ---------------------------------------------------------------------------------------------- inputs
def _has_magic(text: str) -> bool:
    return glob.has_magic(text)


def expand_inputs(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Movies named by ``inputs``: paths and glob patterns (``**`` recursive), in order, duplicates once.

    InputError when a pattern matches nothing, a path does not exist, or nothing is left."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        text = os.fspath(item)
        if _has_magic(text):
            matched = sorted(glob.glob(os.path.expanduser(text), recursive=True), key=_natural)
            matched = [m for m in matched if not Path(m).name.startswith(".")]
            if not matched:
                raise InputError(f"no inputs matched {text!r}")
        else:
            if not Path(text).expanduser().exists():
                raise InputError(f"{text}: no such file or folder")
            matched = [os.path.expanduser(text)]
        for m in matched:
            path = Path(m).resolve()
            if path not in seen:
                seen.add(path)
                paths.append(path)
    if not paths:
        raise InputError("no inputs given")
    return paths


def _natural(text: str) -> list:
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _stem(name: str) -> str:
    lower = name.lower()
    for suffix in MOVIE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def output_names(paths: Sequence[Path]) -> dict[str, Path]:
    """One output name per input: the file name without its movie suffix (``A01.tif`` -> ``A01``); where
    two inputs share a name, their paths below the common folder joined by ``__`` (``A/01.tif`` -> ``A__01``)."""
    stems = [_stem(p.name) for p in paths]
    if len(set(stems)) == len(stems):
        return dict(zip(stems, paths))
    common = Path(os.path.commonpath([str(p.parent) for p in paths]))
    names = ["__".join(p.relative_to(common).parent.parts + (_stem(p.name),)) for p in paths]
    return dict(zip(names, paths))


# ---------------------------------------------------------------------------------------------- parameters
def _parameters(tracker_options: dict[str, Any], detect: Any, analyze: bool | dict, channel: int | None,
                z: int | None) -> dict[str, Any]:
    from edgetrack.runtime.detect.config import DetectConfig
    from edgetrack.runtime.detect.psf import AUTO, split_auto
    from edgetrack.runtime.stream.config import TrackerConfig

    tracker = TrackerConfig.from_dict(tracker_options or {})  # unknown names: ConfigError
    tracker = tracker.replace(keep_results=True)  # the batch writes the whole table
    detect, auto = split_auto(detect)  # psf_sigma="auto": measured by each movie's task on its first frames
    detect_cfg = detect if isinstance(detect, DetectConfig) else DetectConfig.from_dict(detect or {})
    detect_cfg = dataclasses.asdict(detect_cfg) | ({"psf_sigma": AUTO} if auto else {})
    if isinstance(analyze, dict):
        unknown = sorted(set(analyze) - set(ANALYZE_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown analyze option(s) {unknown}; known: {list(ANALYZE_OPTIONS)}")
        analyze_options, analyze = dict(analyze), True
    else:
        analyze_options, analyze = {}, bool(analyze)
    return {"tracker": dataclasses.asdict(tracker), "detect": detect_cfg, "analyze": analyze,
            "analyze_options": analyze_options, "channel": channel, "z": z, "edgetrack": __version__}


# ---------------------------------------------------------------------------------------------- the cluster
def worker_version() -> str:
    """edgetrack's version on a worker (run there by the client to check that workers can run the tasks)."""
    return __version__


def _connect(scheduler: str | None, workers: int | None, n_tasks: int, timeout: float,
             dashboard_address: str | None):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("batch needs Dask distributed: pip install 'edgetrack[dask]'") from None
    cluster = None
    if scheduler is not None:
        address = str(scheduler)
        as_file = address.endswith(".json") and "://" not in address  # dask scheduler --scheduler-file F
        if as_file and not Path(address).is_file():
            raise SchedulerError(f"scheduler file {address}: no such file")
        try:
            client = (Client(scheduler_file=address, timeout=timeout) if as_file
                      else Client(address, timeout=timeout))
        except (OSError, TimeoutError, ValueError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise SchedulerError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                                 f"({message})") from None
    else:
        n = workers if workers is not None else min(os.cpu_count() or 1, max(n_tasks, 1))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=dashboard_address)
        client = Client(cluster)
    try:
        versions = client.run(worker_version) if client.scheduler_info().get("workers") else {}
    except Exception as exc:  # a worker that cannot import edgetrack
        client.close()
        if cluster is not None:
            cluster.close()
        raise SchedulerError(f"the Dask workers cannot run edgetrack ({type(exc).__name__}: {exc}); install "
                             f"edgetrack {__version__} on every worker") from None
    wrong = sorted({v for v in versions.values() if v != __version__})
    if wrong:
        client.close()
        raise SchedulerError(f"the Dask workers run edgetrack {', '.join(wrong)}, this process {__version__}; "
                             "install the same version everywhere")
    return client, cluster


def _dashboard(client) -> str | None:
    try:
        link = client.dashboard_link
    except Exception:
        return None
    return link or None


def _chunks(path: Path, job: dict[str, Any], chunk_frames: int | None) -> list[tuple[int, int]] | None:
    """Frame ranges of a movie longer than ``chunk_frames`` (None: one task for the whole movie)."""
    if not chunk_frames:
        return None
    from edgetrack.runtime.io.readers import open_movie

    try:
        n = len(open_movie(path, channel=job.get("channel"), z=job.get("z")))
    except EdgetrackError:
        return None  # the task will record the error
    if n <= chunk_frames:
        return None
    return [(s, min(s + chunk_frames, n)) for s in range(0, n, chunk_frames)]


# ---------------------------------------------------------------------------------------------- batch
def batch(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], out: str | os.PathLike[str], *,
          analyze: bool | dict = False, workers: int | None = None, scheduler: str | None = None,
          retry_failed: bool = False, chunk_frames: int | None = None, detect: Any = None,
          channel: int | None = None, z: int | None = None, retries: int = 2, timeout: float = 10.0,
          dashboard_address: str | None = ":8787", progress: Progress | None = None,
          **tracker_options: Any) -> BatchResult:
    """Track every movie of ``inputs`` (paths, glob patterns) into ``out/<name>/tracks.csv`` on Dask.

    analyze: also write the motion tables (``frames.csv, segments.csv, ensemble.csv``) into
    ``out/<name>/``; a dict passes ``pixel_size, frame_interval, max_states, ...`` to ``analyze_tracks``.
    workers: processes of the embedded ``distributed.LocalCluster`` (1 thread each; default one per core,
    at most one per movie). scheduler: the address of a running Dask scheduler (``tcp://host:8786``;
    dask-jobqueue, Kubernetes, ``dask scheduler``) or its scheduler file (``*.json``) instead; ``timeout``
    s to reach it.
    retry_failed: run movies that failed before again. chunk_frames: split movies longer than this into
    chunks of frames detected in parallel, then linked in order (the same tracks as one streaming run).
    detect: detection options (a DetectConfig or dict); channel / z: the plane of multi-plane files;
    tracker_options: the Tracker's (``max_distance, max_gap, window, linker, ...``). retries: times Dask
    reruns a task that raised unexpectedly (a worker that dies is replaced and its task rerun by Dask).
    progress: called as ``progress(kind, info)`` with kind ``plan, cluster, movie, frames``.

    Only what the manifest ``out/edgetrack-batch.json`` does not record as done is run; when nothing is
    left no cluster is started. A movie that fails is recorded with its error and the others go on.
    """
    start = time.perf_counter()
    emit = progress or (lambda kind, info: None)
    if workers is not None and scheduler is not None:
        raise ConfigError("give workers (an embedded cluster) or scheduler (an existing one), not both")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if chunk_frames is not None and (not isinstance(chunk_frames, int) or chunk_frames < 1):
        raise ConfigError(f"chunk_frames must be an integer >= 1, got {chunk_frames!r}")
    params = _parameters(tracker_options, detect, analyze, channel, z)
    key = params_key(params)
    named = output_names(expand_inputs(inputs))
    manifest = Manifest.open(out)
    out_path = manifest.folder
    decisions: list[Decision] = [manifest.decide(name, path, key, retry_failed=retry_failed)
                                 for name, path in named.items()]
    todo = [d for d in decisions if d.action == "run"]
    skipped = [d.name for d in decisions if d.action == "done"]
    failed_before = {d.name: str(d.entry.get("error")) for d in decisions if d.action == "failed" and d.entry}
    emit("plan", {"total": len(decisions), "run": len(todo), "done_before": len(skipped),
                  "failed_before": dict(failed_before), "reasons": {d.name: d.reason for d in todo}})
    result = BatchResult(out_path, manifest.path, [], {}, skipped, failed_before, 0.0)
    used = {e.get("params_key") for e in manifest.entries.values()} | {key}
    known = manifest.meta.get("params") if isinstance(manifest.meta.get("params"), dict) else {}
    # the parameters by key (each entry names its key), only those still in use
    manifest.meta["params"] = {**{k: v for k, v in known.items() if k in used}, key: params}
    if not todo:
        if any(d.entry is not None and d.action == "done" for d in decisions) and manifest.path.exists():
            manifest.save()  # touched-only inputs: their new mtimes
        result.seconds = time.perf_counter() - start
        return result

    manifest.save()  # fails early (OutputError) if the folder cannot take the manifest
    client, cluster = _connect(scheduler, workers, len(todo), timeout, dashboard_address)
    result.cluster = True
    result.dashboard = _dashboard(client)
    frames_lock = threading.Lock()
    frames_done: dict[str, int] = {}
    frames_total: dict[str, int] = {}

    def on_frames(event) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        with frames_lock:
            name = msg["name"]
            frames_total[name] = int(msg["total"])
            frames_done[name] = min(frames_done.get(name, 0) + int(msg["done"]), frames_total[name])
            info = {"done": sum(frames_done.values()), "total": sum(frames_total.values())}
        emit("frames", info)

    futures: dict[Any, Decision] = {}
    try:
        n_workers = len(client.scheduler_info().get("workers", {}))
        emit("cluster", {"dashboard": result.dashboard, "workers": n_workers,
                         "scheduler": client.scheduler.address, "embedded": cluster is not None})
        try:
            client.subscribe_topic(FRAMES_TOPIC, on_frames)
        except Exception:  # frame progress is optional
            pass
        run_id = uuid.uuid4().hex[:8]
        for d in todo:
            job = {"name": d.name, "input": d.input, "out": str(out_path), "tracker": params["tracker"],
                   "detect": params["detect"], "analyze": params["analyze"],
                   "analyze_options": params["analyze_options"], "channel": channel, "z": z}
            chunks = _chunks(Path(d.input), job, chunk_frames)
            if chunks is None:
                future = client.submit(track_one, job, key=f"edgetrack-track-{d.name}-{run_id}", retries=retries)
            else:
                parts = [client.submit(detect_chunk, job, s, e, key=f"edgetrack-detect-{d.name}-{s}-{run_id}",
                                       retries=retries) for s, e in chunks]
                future = client.submit(link_chunks, job, *parts, key=f"edgetrack-link-{d.name}-{run_id}",
                                       retries=retries)
            futures[future] = d

        from distributed import as_completed

        for future in as_completed(list(futures)):
            d = futures.pop(future)
            try:
                record = future.result()
            except Exception as exc:  # raised after its retries, or KilledWorker (worker lost too often)
                record = _client_failure(d, exc)
            record.update(params_key=key, edgetrack=__version__,
                          finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            if record.get("size") is None:  # the task could not read the input
                try:
                    record.update(file_stat(d.input))
                except OSError:
                    pass
            manifest.record(d.name, record)
            manifest.save()
            if record["status"] == "done":
                result.done.append(d.name)
            else:
                result.failed[d.name] = str(record.get("error"))
            if record.get("n_frames"):
                with frames_lock:
                    frames_total[d.name] = frames_done[d.name] = int(record["n_frames"])
            emit("movie", {"name": d.name, "status": record["status"], "error": record.get("error"),
                           "done": len(result.done) + len(result.failed), "total": len(todo),
                           "seconds": record.get("seconds")})
            future.release()
    finally:
        if futures:
            try:
                client.cancel(list(futures))
            except Exception:
                pass
        try:
            client.unsubscribe_topic(FRAMES_TOPIC)
        except Exception:
            pass
        client.close()
        if cluster is not None:
            cluster.close()
    result.seconds = time.perf_counter() - start
    return result


def _client_failure(d: Decision, exc: BaseException) -> dict[str, Any]:
    message = " ".join(str(exc).split())
    return {"name": d.name, "input": d.input, "status": "failed", "outputs": [],
            "error": f"{type(exc).__name__}: {message}" if message else type(exc).__name__,
            "size": None, "mtime_ns": None, "sha256": None}
