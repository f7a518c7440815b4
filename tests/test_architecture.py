"""The import rules of docs/architecture.md, checked on the source: layers, no cycles, no private
names across modules, no torch or training in the runtime, no side effects at import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime"

# Bottom to top: a runtime module may import its own subpackage and the layers below its own.
LAYERS: list[set[str]] = [
    {"errors", "lazy"},
    {"config", "kernels"},
    {"io", "models", "simulate"},
    {"detect", "graph"},
    {"associate", "link"},
    {"stream"},
    {"cells", "motion"},
    {"metrics", "plot"},
    {"live", "api", "info", "batch"},
    {"cli", "napari_plugin"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _module_name(path: Path) -> str:
    rel = path.relative_to(RUNTIME).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["edgetrack.runtime", *parts])


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in RUNTIME.rglob("*.py") if "__pycache__" not in p.parts}


MODULES = _modules()


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import statement, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, is_package, node)
            names = [alias.name for alias in node.names]
            submodules = [n for n in names if f"{module}.{n}" in MODULES]
            out.append((module, [n for n in names if n not in submodules], node.lineno))
            out.extend((f"{module}.{n}", [], node.lineno) for n in submodules)
    return out


def _top(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["edgetrack", "runtime"] or len(parts) < 3:
        return None
    return parts[2]


def test_the_layers_cover_every_runtime_subpackage():
    tops = {_top(m) for m in MODULES} - {None}
    assert tops <= set(LAYER_OF), f"add {sorted(tops - set(LAYER_OF))} to LAYERS and docs/architecture.md"


def test_runtime_never_imports_torch_or_training():
    bad = [f"{name}:{line} imports {module}" for name, path in MODULES.items()
           for module, _, line in _imports(name, path)
           if module.split(".")[0] in ("torch", "onnx") or module.startswith("edgetrack.training")]
    # onnx (the model format package) is allowed only where a classifier is exported
    bad = [b for b in bad if not (b.startswith("edgetrack.runtime.motion.classifier") and b.endswith(" onnx"))]
    assert not bad, "\n".join(bad)


def test_imports_point_down_the_layers():
    bad = []
    for name, path in MODULES.items():
        own = _top(name)
        if own is None:
            continue
        for module, _, line in _imports(name, path):
            other = _top(module)
            if other is None or other == own:
                continue
            if LAYER_OF[other] >= LAYER_OF[own]:
                bad.append(f"{name}:{line} imports {module} ({own} is layer {LAYER_OF[own]}, "
                           f"{other} is layer {LAYER_OF[other]})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_runtime_modules():
    graph = {name: sorted({m for m, _, _ in _imports(name, path) if m in MODULES and m != name})
             for name, path in MODULES.items()}
    # a package's __init__ may name its submodules (lazily); the cycle rule is about modules
    graph = {n: [m for m in deps if not (MODULES[m].name == "__init__.py" and n.startswith(m + "."))]
             for n, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in graph[node]:
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("tree", ["runtime", "training"])
def test_no_private_names_cross_modules(tree):
    bad = []
    for path in (ROOT / tree).rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    n = alias.name
                    if n.startswith("_") and not (n.startswith("__") and n.endswith("__")):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {n}")
    assert not bad, "\n".join(bad)


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT.parent).stdout


def test_import_edgetrack_is_light_and_lists_its_api():
    out = _run(
        "import sys, edgetrack\n"
        "heavy = [m for m in ('onnxruntime', 'ortools', 'matplotlib', 'numba', 'scipy', 'pandas', 'torch') "
        "if m in sys.modules]\n"
        "print(','.join(heavy)); print(' '.join(edgetrack.__all__))\n"
    )
    heavy, names = out.splitlines()
    assert heavy == ""
    for name in ("locate", "link", "track", "Tracker", "track_cells", "analyze", "open_movie", "__version__"):
        assert name in names.split()


def test_tracker_import_leaves_ortools_and_onnxruntime_alone():
    out = _run("import sys, edgetrack\nedgetrack.Tracker\n"
               "print([m for m in ('onnxruntime', 'ortools', 'matplotlib', 'torch') if m in sys.modules])")
    assert out.strip() == "[]"


def test_importing_every_module_has_no_side_effects():
    out = _run(
        "import os, logging, warnings, importlib, pkgutil\n"
        "import numpy, scipy.optimize, scipy.special, scipy.ndimage, scipy.spatial, scipy.sparse.csgraph, pandas, numba\n"
        "import tifffile, ruptures, onnxruntime  # third-party effects are theirs, not edgetrack's\n"
        "env = dict(os.environ); filters = list(warnings.filters); handlers = list(logging.getLogger().handlers)\n"
        "level = logging.getLogger().level\n"
        "import edgetrack.runtime as r\n"
        "for m in pkgutil.walk_packages(r.__path__, 'edgetrack.runtime.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "print(dict(os.environ) == env, list(warnings.filters) == filters, "
        "list(logging.getLogger().handlers) == handlers, logging.getLogger().level == level)\n"
    )
    assert out.split() == ["True", "True", "True", "True"]


def test_the_command_line_parser_is_light():
    out = _run("import sys\nfrom edgetrack.runtime.cli.app import build_parser\nbuild_parser()\n"
               "print([m for m in ('numba', 'onnxruntime', 'ortools', 'matplotlib', 'scipy', 'pandas') if m in sys.modules])")
    assert out.strip() == "[]"
