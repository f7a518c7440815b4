"""The manifest of a batch output folder: what was done, from which input, with which parameters.

``out/edgetrack-batch.json`` holds one entry per movie (by its output name): the input's path, size,
mtime and sha256, the parameters and the edgetrack version they were tracked with, the status
(``done`` or ``failed``, with the error), the outputs and a few counts. It is written by the process
that runs the batch (never by the workers), atomically, after every movie, so an interrupted batch
keeps everything that finished.

A movie is redone when its entry is missing, its parameters or the edgetrack version changed, its
input changed (size or mtime differ and the sha256 differs too: a file that was only touched is not
redone), or an output is missing. A movie that failed is skipped while its input and parameters are
unchanged (``retry_failed`` tries it again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

from edgetrack.runtime.errors import OutputError
from edgetrack.runtime.io.atomic import atomic_open

MANIFEST_NAME = "edgetrack-batch.json"
FORMAT = 1
HASH_BLOCK = 1 << 20


def _files(path: Path) -> list[Path]:
    """The files that make up an input: itself, or every file under a folder (sorted, hidden ones left out)."""
    if path.is_dir():
        return sorted((p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")),
                      key=lambda p: p.relative_to(path).as_posix())
    return [path]


def file_stat(path: str | os.PathLike[str]) -> dict[str, int]:
    """``size`` (bytes) and ``mtime_ns`` of a file; of a folder (a folder of frames, a zarr store) the
    total size and the newest mtime of its files."""
    path = Path(path)
    files = _files(path)
    stats = [f.stat() for f in files]
    return {"size": int(sum(s.st_size for s in stats)),
            "mtime_ns": int(max((s.st_mtime_ns for s in stats), default=path.stat().st_mtime_ns))}


def content_hash(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a file's bytes; of a folder, of every file's relative name and bytes in order."""
    path = Path(path)
    digest = hashlib.sha256()
    folder = path.is_dir()
    for file in _files(path):
        if folder:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(HASH_BLOCK), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def params_key(params: dict[str, Any]) -> str:
    """A short, stable hash of the parameters (canonical JSON): entries with another key are redone."""
    text = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass
class Decision:
    """What to do with one input: ``run`` it, or skip it as ``done`` / ``failed`` (before), and why."""

    name: str
    input: str
    action: str  # "run", "done", "failed"
    reason: str
    entry: dict[str, Any] | None = None


class Manifest:
    """The JSON manifest of one output folder (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).expanduser().absolute()  # workers elsewhere get absolute paths
        self.path = self.folder / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {}

    # ------------------------------------------------------------------ reading and writing
    @classmethod
    def open(cls, folder: str | os.PathLike[str], *, create: bool = True) -> "Manifest":
        """Read the manifest of ``folder`` (created with ``create``); OutputError when the folder cannot be
        created or written, or the manifest cannot be read."""
        manifest = cls(folder)
        folder = manifest.folder
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"output folder {folder}: exists and is not a folder")
        if not folder.exists():
            if not create:
                raise OutputError(f"output folder {folder}: does not exist")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot create output folder {folder}: {exc.strerror or exc}") from None
        if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
            raise OutputError(f"output folder {folder}: not readable and writable by this user")
        if manifest.path.exists():
            try:
                data = json.loads(manifest.path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise OutputError(f"cannot read the batch manifest {manifest.path}: {exc.strerror or exc}") from None
            except ValueError as exc:
                raise OutputError(f"the batch manifest {manifest.path} is not valid JSON ({exc}); move it away "
                                  "to start the batch afresh") from None
            if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
                raise OutputError(f"the batch manifest {manifest.path} has no 'entries'; move it away to start afresh")
            if data.get("format", FORMAT) > FORMAT:
                raise OutputError(f"the batch manifest {manifest.path} has format {data['format']}, newer than this "
                                  f"edgetrack reads ({FORMAT}); upgrade edgetrack")
            manifest.entries = dict(data["entries"])
            manifest.meta = {k: v for k, v in data.items() if k != "entries"}
        return manifest

    def save(self) -> Path:
        """Write the manifest atomically (a temporary file renamed into place)."""
        data = {**self.meta, "format": FORMAT, "entries": dict(sorted(self.entries.items()))}
        with atomic_open(self.path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=False, default=str)
            handle.write("\n")
        return self.path

    def record(self, name: str, entry: dict[str, Any]) -> None:
        self.entries[name] = entry

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(self.entries.items())

    def __len__(self) -> int:
        return len(self.entries)

    # ------------------------------------------------------------------ deciding
    def outputs_exist(self, entry: dict[str, Any]) -> bool:
        return all((self.folder / rel).exists() for rel in entry.get("outputs", ()))

    def decide(self, name: str, source: str | os.PathLike[str], key: str, *, retry_failed: bool = False) -> Decision:
        """Whether input ``source`` (output name ``name``) must run with parameters ``key``; cheap when
        nothing changed (one ``stat``; the file is hashed only when its size or mtime changed)."""
        source = str(Path(source).resolve())
        entry = self.entries.get(name)
        if entry is None:
            return Decision(name, source, "run", "new")
        if entry.get("params_key") != key:
            return Decision(name, source, "run", "parameters or edgetrack version changed", entry)
        if entry.get("input") != source:
            return Decision(name, source, "run", f"input moved (was {entry.get('input')})", entry)
        try:
            stat = file_stat(source)
        except OSError:
            return Decision(name, source, "run", "input cannot be read", entry)
        unchanged = stat["size"] == entry.get("size") and stat["mtime_ns"] == entry.get("mtime_ns")
        if not unchanged and entry.get("sha256") and stat["size"] == entry.get("size"):
            try:
                unchanged = content_hash(source) == entry["sha256"]
            except OSError:
                unchanged = False
            if unchanged:  # only touched: same bytes
                entry["mtime_ns"] = stat["mtime_ns"]
        if not unchanged:
            return Decision(name, source, "run", "input changed", entry)
        if entry.get("status") == "failed":
            if retry_failed:
                return Decision(name, source, "run", "retrying a failed movie", entry)
            return Decision(name, source, "failed", f"failed before: {entry.get('error', '?')}", entry)
        if entry.get("status") != "done":
            return Decision(name, source, "run", f"status {entry.get('status')!r}", entry)
        if not self.outputs_exist(entry):
            return Decision(name, source, "run", "an output is missing", entry)
        return Decision(name, source, "done", "done before", entry)
