"""The light install (issue 16): core dependencies only for the default pipeline, every import declared,
`edgetrack doctor`, the cold-start helper and an honest progress ETA."""

from __future__ import annotations

import ast
import io
import sys
from pathlib import Path

import pytest

from edgetrack.runtime import info
from edgetrack.runtime.cli.app import main
from edgetrack.runtime.cli.progress import Progress

ROOT = Path(__file__).resolve().parents[1]

# import name -> distribution, for every third-party module the runtime imports
DISTRIBUTIONS = {"numpy": "numpy", "scipy": "scipy", "pandas": "pandas", "numba": "numba", "onnxruntime": "onnxruntime",
                 "tifffile": "tifffile", "imagecodecs": "imagecodecs", "imageio": "imageio", "ruptures": "ruptures",
                 "ortools": "ortools", "matplotlib": "matplotlib", "imageio_ffmpeg": "imageio-ffmpeg", "zarr": "zarr",
                 "pycromanager": "pycromanager", "PIL": "pillow", "distributed": "distributed", "dask": "distributed", "pyarrow": "pyarrow", "onnx": "onnx", "llvmlite": "llvmlite",
                 "geff": "geff", "geff_spec": "geff-spec", "bioio": "bioio",
                 "napari": "napari", "magicgui": "magicgui", "qtpy": "qtpy"}


def _project():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements):
    import re

    return {re.split(r"[\[<>=;! ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_core_is_light_and_the_gpu_is_an_extra():
    project = _project()
    core = _names(project["dependencies"])
    assert {"scikit-image", "trackpy", "onnx", "onnxruntime-gpu", "torch", "matplotlib"}.isdisjoint(core)
    assert {"numpy", "scipy", "pandas", "numba", "onnxruntime", "tifffile", "imagecodecs", "ruptures"} <= core
    extras = project["optional-dependencies"]
    assert "onnxruntime-gpu" in _names(extras["gpu"]) and "[cuda,cudnn]" in extras["gpu"][0]
    for extra in ("plot", "microscope", "parquet", "dask", "train", "test", "all"):
        assert extra in extras


def test_every_third_party_import_of_the_runtime_is_declared():
    project = _project()
    declared = _names(project["dependencies"]) | set().union(*(_names(v) for v in project["optional-dependencies"].values()))
    stdlib = set(sys.stdlib_module_names)
    missing = []
    for path in (ROOT / "runtime").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for module in modules:
                top = module.split(".")[0]
                if top in stdlib or top == "edgetrack":
                    continue
                dist = DISTRIBUTIONS.get(top)
                if dist is None or (dist not in declared and top != "llvmlite"):
                    missing.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not missing, "\n".join(missing)


def test_doctor_reports_the_models_and_exits_0(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "edgetrack works" in out
    for name in ("magik_link", "andi_motion", "deepspt_2d", "cell_assoc"):
        line = next(l for l in out.splitlines() if l.strip().startswith(name + ":"))
        assert "ExecutionProvider" in line and "one inference" in line and " ms" in line
    assert "numba:" in out and "optional:" in out


def test_doctor_fails_with_the_reason_when_a_core_package_is_missing(monkeypatch):
    monkeypatch.setitem(info.CORE, "no_such_module_here", "no-such-distribution")
    out = io.StringIO()
    assert info.show_info(out, models=False) == 1
    assert "no_such_module_here: missing" in out.getvalue()
    assert "pip install no-such-distribution" in out.getvalue()


def test_doctor_warns_when_both_onnxruntime_builds_are_installed(monkeypatch):
    real = info._version
    monkeypatch.setattr(info, "_version", lambda d: "1.31.1" if d in ("onnxruntime", "onnxruntime-gpu") else real(d))
    check = next(c for c in info.collect(models=False) if c.name == "onnxruntime")
    assert check.status == "warn" and "shadow" in check.detail and "pip uninstall" in check.fix


def test_show_info_is_public():
    import edgetrack

    assert edgetrack.show_info is info.show_info


def test_cold_cache_starts_one_compile_helper_and_says_so(monkeypatch, tmp_path):
    from edgetrack.runtime.cli import warmup

    monkeypatch.setattr(info, "numba_cache_state", lambda: (tmp_path, True))
    assert warmup.announce_and_warm(io.StringIO()) is None  # warm: nothing to do
    monkeypatch.setattr(info, "numba_cache_state", lambda: (tmp_path, False))
    stream = io.StringIO()
    process = warmup.announce_and_warm(stream)
    assert process is not None
    process.join(240)  # the kernels are cached in the test environment: the helper only loads them
    assert process.exitcode == 0
    text = stream.getvalue()
    assert text.count("\n") == 1 and "compiling" in text and str(tmp_path) in text


def test_progress_eta_leaves_out_the_start_up(monkeypatch):
    clock = iter([0.0, 30.0, 31.0, 32.0])  # 30 s of compiling, then one frame per second
    monkeypatch.setattr("edgetrack.runtime.cli.progress.time.perf_counter", lambda: next(clock))
    out = io.StringIO()
    bar = Progress(10, "tracking", stream=out)
    bar.update()
    assert "eta -" in out.getvalue()
    bar.update()
    bar.update()
    assert out.getvalue().splitlines()[-1].endswith("1.0 frames/s eta 7 s")
