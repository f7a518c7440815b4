"""Atomic output: write to a temporary file beside the target, then rename it into place.

An interrupted or failed write leaves either the complete previous file or none, never a
half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from edgetrack.runtime.errors import EdgetrackError, OutputError


def _apply_umask(path: Path) -> None:
    """Give a new file the permissions an ordinary ``open`` would (mkstemp creates it 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~mask)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``target``.

    On any exception the temporary file is removed and the target is left untouched. A target that
    exists and is not a regular file (``/dev/null``, a named pipe, ``/dev/stdout``) is never replaced:
    the finished temporary file is copied into it instead.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {target}: folder {folder} does not exist")
    special = target.exists() and not target.is_file() and not target.is_dir()  # a device or a pipe
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".part",
                                        dir=None if special else folder)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    _apply_umask(tmp)
    try:
        yield tmp
        if special:
            import shutil

            with open(tmp, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.unlink()
        else:
            os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, EdgetrackError):  # e.g. an input file that failed while the output was open
            raise
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``target`` only when closed successfully."""
    with atomic_path(target) as tmp:
        try:
            with open(tmp, mode, **kwargs) as handle:
                yield handle
        except OSError as exc:
            if isinstance(exc, EdgetrackError):
                raise
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
