"""The README's examples run as written.

Every ```python block of README.md is executed in a fresh namespace, in a temporary working
directory (the blocks write files such as ``movie.tif`` there). A block may opt out only with an
HTML comment ``<!-- not-run: reason -->`` on the line right before its fence (hardware such as a
microscope); it is then skipped with that reason. Every dotted ``edgetrack.`` name the README
mentions must exist.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path
from typing import NamedTuple

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")
MAX_NOT_RUN = 2
OPTIONAL_IMPORTS = {"trackpy"}  # test extras a block may use: skipped with a reason where missing


class Block(NamedTuple):
    line: int  # 1-based README line of the block's first code line
    code: str
    not_run: str | None  # the reason, when the block opts out


def python_blocks(text: str) -> list[Block]:
    """The ```python fenced blocks of a Markdown text, with the not-run marker before each."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if end == len(lines):
                raise AssertionError(f"README.md:{i + 1}: ```python block is never closed")
            marker = NOT_RUN.match(lines[i - 1].strip()) if i > 0 else None
            reason = marker.group("reason") if marker else None
            if marker and not reason:
                raise AssertionError(f"README.md:{i}: <!-- not-run: --> needs a reason")
            blocks.append(Block(start + 1, "\n".join(lines[start:end]) + "\n", reason))
            i = end + 1
        else:
            i += 1
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_runnable_python_blocks():
    assert len(BLOCKS) >= 5, "README.md lost its Python examples"
    not_run = [b for b in BLOCKS if b.not_run is not None]
    assert len(not_run) <= MAX_NOT_RUN, (
        f"{len(not_run)} README blocks opt out with <!-- not-run -->; at most {MAX_NOT_RUN} (hardware only): "
        + ", ".join(f"line {b.line}" for b in not_run))
    for block in BLOCKS:
        compile(block.code, f"README.md:{block.line}", "exec")  # a syntax error names the block


def _imported_modules(code: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("block", BLOCKS, ids=[f"line{b.line}" for b in BLOCKS])
def test_readme_block_runs(block: Block, tmp_path, monkeypatch):
    if block.not_run is not None:
        pytest.skip(f"README.md:{block.line} is marked not-run: {block.not_run}")
    for module in sorted(_imported_modules(block.code) & OPTIONAL_IMPORTS):
        pytest.importorskip(module, reason=f"README.md:{block.line} uses {module} (pip install -e '.[test]')")
    monkeypatch.chdir(tmp_path)
    # blank lines in front keep the README's line numbers in tracebacks
    code = compile("\n" * (block.line - 1) + block.code, str(README), "exec")
    exec(code, {"__name__": "__readme__"})


DOTTED = re.compile(r"(?<![\w/.\-])edgetrack(?:\.[A-Za-z_]\w*)+")


def _resolve(name: str) -> None:
    """Import the longest module prefix of ``name`` (a module is only found, not run) and get the rest."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        if i == len(parts):
            return
        obj = importlib.import_module(module)
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return
    raise ModuleNotFoundError(name)


def test_every_edgetrack_name_in_the_readme_exists():
    names = sorted(set(DOTTED.findall(README.read_text(encoding="utf-8"))))
    assert names, "no edgetrack.* names found in README.md"
    bad = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            bad.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not bad, "README.md names what does not exist:\n" + "\n".join(bad)
