"""Linkers by name: the one table that says what ``linker="..."`` selects, and the call every linker answers.

Each :class:`Linker` names the function that solves a window (imported only when first used, so
OR-Tools loads only for 'flow' and 'ilp'), whether it allows divisions and which options it takes.
Calling a linker with a :class:`~edgetrack.runtime.link.problem.LinkProblem` returns a
:class:`~edgetrack.runtime.link.problem.LinkResult`, whatever the linker.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from edgetrack.runtime.errors import ConfigError

if TYPE_CHECKING:  # the problem module compiles Numba checks; the table itself stays light
    from edgetrack.runtime.link.problem import LinkProblem, LinkResult

__all__ = ["Linker", "LINKERS", "get_linker", "linker_names"]


@dataclasses.dataclass(frozen=True)
class Linker:
    """A linker in the table.

    name: what ``linker=`` selects. target: ``"module:function"`` of the array-level function
    (``function(node_frame, src, dst, dt, score, locked_parent, child_count, *, max_children, min_score,
    dist[, config, return_info]) -> parent``). divisions: whether ``max_children=2`` is honoured.
    options: ``"module:Class"`` of its typed options (a :class:`~edgetrack.runtime.config.StageConfig`),
    or None when it takes none. summary: one line for help texts.
    """

    name: str
    target: str
    divisions: bool
    summary: str
    options: str | None = None

    @property
    def function(self) -> Callable[..., Any]:
        """The array-level linker function (imported on first use)."""
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)

    def parse_options(self, values: Mapping[str, Any] | None) -> Any:
        """This linker's typed options from a mapping (unknown keys are errors); None when it takes none."""
        if self.options is None:
            if values:
                raise ConfigError(f"linker {self.name!r} takes no linker_options, got {', '.join(map(repr, values))}")
            return None
        module, name = self.options.split(":")
        return getattr(importlib.import_module(module), name).from_dict(dict(values or {}))

    def __call__(self, problem: LinkProblem, options: Any = None) -> LinkResult:
        """Solve one window. ``options``: the result of :meth:`parse_options` (defaults when None)."""
        from edgetrack.runtime.link.problem import LinkResult

        v = problem.inputs
        kwargs: dict[str, Any] = {"max_children": problem.max_children, "min_score": problem.min_score,
                                  "dist": v.dist}
        if self.options is not None:
            kwargs["config"] = options if options is not None else self.parse_options(None)
            kwargs["return_info"] = True
        out = self.function(v.node_frame, v.src, v.dst, v.dt, v.score, v.locked_parent, v.child_count, **kwargs)
        if self.options is None:
            return LinkResult(np.asarray(out, np.int64))
        parent, info = out
        return LinkResult(np.asarray(parent, np.int64), bool(info.timed_out),
                          np.asarray(info.conflicts, np.int64))


LINKERS: dict[str, Linker] = {linker.name: linker for linker in (
    Linker("lap", "edgetrack.runtime.link.lap:link_lap", False,
           "frame-to-frame assignment with gap closing (Jaqaman et al.), per connected component"),
    Linker("greedy", "edgetrack.runtime.link.greedy:link_greedy", True, "edges by descending score"),
    Linker("flow", "edgetrack.runtime.link.flow:link_flow", True,
           "exact min-cost flow over the window (OR-Tools)", "edgetrack.runtime.link.costs:IlpConfig"),
    Linker("ilp", "edgetrack.runtime.link.ilp:link_ilp", True,
           "CP-SAT integer program with a time limit and a greedy warm start (OR-Tools)",
           "edgetrack.runtime.link.costs:IlpConfig"),
    Linker("magik_post", "edgetrack.runtime.link.magik_post:link_magik_post", True,
           "MAGIK's post-processing: links >= 0.5, shortest gap first, then highest score"),
)}


def linker_names() -> list[str]:
    """The names :func:`get_linker` knows, sorted."""
    return sorted(LINKERS)


def get_linker(name: str) -> Linker:
    """The :class:`Linker` registered under ``name`` (see :data:`LINKERS`)."""
    try:
        return LINKERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown linker {name!r}; known linkers are {', '.join(linker_names())}") from None
