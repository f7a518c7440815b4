"""What this installation of edgetrack has and can do: ``edgetrack doctor`` and ``edgetrack.show_info()``.

A report of checks, each ``ok``, ``warn`` (works, but something a user should know) or ``fail``
(the core pipeline cannot run): versions, CPU cores, the ONNX Runtime providers and the one that
opened each shipped model (with the time of one inference), the Numba cache, the GPU, and every
optional feature with the command that installs it.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import importlib.metadata as metadata
import os
import platform
import sys
import time
from pathlib import Path
from typing import TextIO

__all__ = ["Check", "collect", "show_info", "CORE", "OPTIONAL"]

# import name -> distribution name, for the core dependencies
CORE = {"numpy": "numpy", "scipy": "scipy", "pandas": "pandas", "numba": "numba", "onnxruntime": None,
        "tifffile": "tifffile", "imagecodecs": "imagecodecs", "imageio": "imageio", "ruptures": "ruptures",
        "ortools": "ortools"}
# feature -> (import names, pip command)
OPTIONAL = {
    "plots (edgetrack plot)": (("matplotlib",), 'pip install "edgetrack[plot]"'),
    "MP4 animations": (("matplotlib", "imageio_ffmpeg"), 'pip install "edgetrack[video]"'),
    "OME-Zarr movies": (("zarr",), 'pip install "edgetrack[microscope]"'),
    "Micro-Manager (pycromanager)": (("pycromanager",), 'pip install "edgetrack[microscope]"'),
    "Parquet tables": (("pyarrow",), 'pip install "edgetrack[parquet]"'),
    "batch on Dask (edgetrack batch)": (("distributed",), 'pip install "edgetrack[dask]"'),
    "train-classifier (ONNX export)": (("onnx",), 'pip install "edgetrack[classifier]"'),
    "geff graphs (--format geff)": (("geff",), 'pip install "edgetrack[geff]"'),
    "napari plugin": (("napari",), 'pip install "edgetrack[napari]"'),
    "ND2 / CZI / LIF movies (bioio)": (("bioio",), 'pip install "edgetrack[bioio]"'),
    "training models (PyTorch)": (("torch",), 'pip install torch --index-url https://download.pytorch.org/whl/cpu '
                                              '&& pip install "edgetrack[train]"'),
}


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the report: ``status`` is "ok", "warn" or "fail"; ``fix`` says what to do, if anything."""

    section: str
    name: str
    status: str
    detail: str
    fix: str = ""


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _core_checks() -> list[Check]:
    from edgetrack.runtime import __version__

    out = [Check("edgetrack", "version", "ok", f"{__version__} on Python {platform.python_version()} "
                                               f"({platform.system()} {platform.machine()})"),
           Check("edgetrack", "CPU cores", "ok", str(os.cpu_count() or "unknown"))]
    for module, dist in CORE.items():
        if module == "onnxruntime":
            continue
        version = _version(dist)
        if version is None or not _installed(module):
            out.append(Check("core", module, "fail", "missing", f"pip install {dist}"))
        else:
            out.append(Check("core", module, "ok", version))
    cpu, gpu = _version("onnxruntime"), _version("onnxruntime-gpu")
    if cpu is None and gpu is None:
        out.append(Check("core", "onnxruntime", "fail", "missing", "pip install onnxruntime"))
    elif cpu is not None and gpu is not None:
        out.append(Check("core", "onnxruntime", "warn",
                         f"both onnxruntime {cpu} and onnxruntime-gpu {gpu} are installed: they share one "
                         "package folder and shadow each other",
                         "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu "
                         "(for the GPU) or pip install onnxruntime (CPU only)"))
    else:
        out.append(Check("core", "onnxruntime", "ok", f"onnxruntime-gpu {gpu}" if gpu else f"onnxruntime {cpu}"))
    return out


def dummy_inputs(session) -> dict:
    """Inputs of the right shapes and dtypes for one small run of an ONNX Runtime ``session``."""
    import numpy as np

    types = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32, "tensor(bool)": np.bool_}
    # a small problem of consistent size for the symbolic axes the exported models use (a chunked graph
    # of 16 nodes, 64-point tracks, ...); masks are all ones, index arrays point at node 0
    sizes = {"batch": 1, "length": 64, "n_nodes": 16, "n_edges": 32, "n_chunks": 1, "chunk": 16, "n_objects": 8}
    feed = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else sizes.get(str(d), 8) for d in i.shape]
        fill = np.ones if "mask" in i.name else np.zeros
        feed[i.name] = fill(shape, dtype=types.get(i.type, np.float32))
    return feed


def _model_checks(provider: str | None) -> list[Check]:
    out = []
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return [Check("models", "onnxruntime", "fail", f"cannot import: {exc}", "pip install onnxruntime")]
    available = ort.get_available_providers()
    out.append(Check("models", "providers", "ok", ", ".join(available)))
    from edgetrack.runtime.errors import ModelError
    from edgetrack.runtime.models.onnx import load_model, model_names

    try:
        names = model_names()
    except ModelError as exc:
        return out + [Check("models", "manifest", "fail", str(exc), "reinstall edgetrack")]
    for name in names:
        try:
            t0 = time.perf_counter()
            model = load_model(name, provider=provider)
            opened = time.perf_counter() - t0
        except ModelError as exc:
            out.append(Check("models", name, "fail", str(exc), "reinstall edgetrack"))
            continue
        try:
            feed = dummy_inputs(model.session)
            model.session.run(None, feed)  # the first run allocates; time the second
            t0 = time.perf_counter()
            model.session.run(None, feed)
            run = f"one inference {1e3 * (time.perf_counter() - t0):.2f} ms"
        except Exception as exc:  # a model whose inputs need real values: say so, do not fail the report
            run = f"not timed ({type(exc).__name__})"
        out.append(Check("models", name, "ok", f"{model.provider}, opened in {opened:.2f} s, {run}"))
    return out


def numba_cache_state() -> tuple[Path, bool]:
    """(folder of the detection kernels' Numba cache, whether it holds compiled kernels)."""
    from numba.core.config import CACHE_DIR

    spec = importlib.util.find_spec("edgetrack.runtime.detect.filters")
    source = Path(spec.origin) if spec and spec.origin else Path(".")
    folder = Path(CACHE_DIR) if CACHE_DIR else source.parent / "__pycache__"
    pattern = "filters.*.nbi"
    warm = folder.is_dir() and any(folder.rglob(pattern) if CACHE_DIR else folder.glob(pattern))
    return folder, warm


def _numba_checks() -> list[Check]:
    try:
        folder, warm = numba_cache_state()
    except Exception as exc:  # numba missing is already a core failure
        return [Check("numba", "cache", "warn", f"unknown ({exc})")]
    if warm:
        return [Check("numba", "cache", "ok", f"warm ({folder})")]
    return [Check("numba", "cache", "warn", f"cold ({folder}): the first run compiles the kernels it needs",
                  "edgetrack demo (compiles and caches them once)")]


def _gpu_checks() -> list[Check]:
    from edgetrack.runtime.models.onnx import nvidia_driver_present

    if not nvidia_driver_present():
        return [Check("gpu", "NVIDIA driver", "ok", "none found: models run on the CPU")]
    gpu = _version("onnxruntime-gpu")
    if gpu is None:
        return [Check("gpu", "NVIDIA driver", "warn", "found, but the CPU onnxruntime is installed",
                      'pip uninstall -y onnxruntime && pip install "edgetrack[gpu]"')]
    return [Check("gpu", "NVIDIA driver", "ok", f"found; onnxruntime-gpu {gpu} (see the models above for the "
                                                "provider each one opened with)")]


def _optional_checks() -> list[Check]:
    out = []
    for feature, (modules, command) in OPTIONAL.items():
        missing = [m for m in modules if not _installed(m)]
        if missing:
            out.append(Check("optional", feature, "ok", f"not installed ({', '.join(missing)})", command))
        else:
            out.append(Check("optional", feature, "ok", "installed"))
    return out


def collect(models: bool = True, provider: str | None = None) -> list[Check]:
    """Every check of the report, in order. models: open and time every shipped model."""
    checks = _core_checks()
    if not any(c.status == "fail" for c in checks):
        checks += _numba_checks() + _gpu_checks()
        if models:
            checks += _model_checks(provider)
    return checks + _optional_checks()


def show_info(file: TextIO | None = None, models: bool = True, provider: str | None = None) -> int:
    """Print the report (to stdout by default); returns 0 when the core works, 1 otherwise."""
    file = file if file is not None else sys.stdout
    checks = collect(models=models, provider=provider)
    section = None
    for c in checks:
        if c.section != section:
            section = c.section
            print(f"{section}:", file=file)
        mark = {"ok": "  ", "warn": "! ", "fail": "X "}[c.status]
        print(f"  {mark}{c.name}: {c.detail}", file=file)
        if c.fix and c.status != "ok" or (c.fix and c.section == "optional"):
            print(f"      -> {c.fix}", file=file)
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        print(f"edgetrack cannot run: {'; '.join(f'{c.name}: {c.detail}' for c in failed)}", file=file)
        return 1
    print("edgetrack works" + (" (see the warnings above)" if any(c.status == "warn" for c in checks) else ""),
          file=file)
    return 0
