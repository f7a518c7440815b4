"""The ``edgetrack`` command line.

Each sub-command lives in its own module under ``edgetrack.runtime.cli.commands`` and exposes
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Command modules keep
their heavy imports inside ``run`` so that ``edgetrack --help`` starts fast.

Errors that edgetrack raises on purpose (:class:`~edgetrack.runtime.errors.EdgetrackError`)
are printed as one line on stderr and exit with code 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings
from collections.abc import Iterator
from typing import Sequence

from edgetrack.runtime.errors import DegradedWarning, EdgetrackError
from edgetrack.runtime.cli.interrupt import check as check_interrupt
from edgetrack.runtime.cli.interrupt import handling_sigint

# Sub-command name -> module under edgetrack.runtime.cli.commands. Add new commands here.
COMMANDS: dict[str, str] = {
    "track": "track",
    "link": "link",
    "simulate": "simulate",
    "demo": "demo",
    "magik-predict": "magik_predict",
    "serve": "serve",
    "plot": "plot",
    "export": "export",
    "analyze": "analyze",
    "train-classifier": "train_classifier",
    "doctor": "doctor",
    "batch": "batch",
}


# commands that detect and link spots: on a cold Numba cache their linking kernels compile in a helper process
WARMUP_COMMANDS = frozenset({"track", "demo", "serve"})


def build_parser() -> argparse.ArgumentParser:
    from edgetrack.runtime import __version__

    parser = argparse.ArgumentParser(
        prog="edgetrack",
        description="Track and characterise moving objects in live microscopy movies.",
    )
    parser.add_argument("--version", action="version", version=f"edgetrack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f".commands.{module_name}", __package__)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgetrack`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in WARMUP_COMMANDS and getattr(args, "masks", None) is None:
        from edgetrack.runtime.cli.warmup import announce_and_warm

        announce_and_warm(quiet=bool(getattr(args, "quiet", False)))
    try:
        with handling_sigint(), _one_line_warnings(args.command):
            code = int(args._run(args) or 0)
            check_interrupt()  # a Ctrl-C that a library swallowed still ends the run as interrupted
        return code
    except EdgetrackError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the underlying library said
        print(f"edgetrack {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgetrack {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # Ctrl-C that lands while Numba is inside a compiled function (or unpickling one from
        # its cache) surfaces as a SystemError whose cause chain holds the KeyboardInterrupt.
        if _caused_by_interrupt(exc):
            print(f"edgetrack {args.command}: interrupted", file=sys.stderr)
            return 130
        raise


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """edgetrack's own warnings (:class:`DegradedWarning`) as one ``edgetrack CMD: warning: ...`` line each;
    other libraries' warnings as Python shows them."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, DegradedWarning):
                print(f"edgetrack {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _caused_by_interrupt(exc: BaseException) -> bool:
    """True when a KeyboardInterrupt is anywhere in ``exc``'s cause / context chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
