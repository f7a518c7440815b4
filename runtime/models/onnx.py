"""Exported ONNX models: find them by name, check their sha256, run them with ONNX Runtime.

Every model lives in the ``edgetrack.exported_models`` package folder as ``<name>.onnx`` with an
entry in its ``manifest.json`` (name, task, file, sha256, inputs, outputs, opset, training
command, seed, metrics). :func:`load_model` reads the manifest, hashes the file, refuses it on a
mismatch (:class:`~edgetrack.runtime.errors.ModelError`) and opens an inference session with the
first execution provider, in the order TensorRT, CUDA, CPU, that really creates a working
session: ``onnxruntime.get_available_providers()`` lists the providers compiled into the wheel
(``onnxruntime-gpu`` lists CUDA on a machine without a GPU), so each one is tried with the model
itself and checked with :meth:`InferenceSession.get_providers` before it is accepted.

Sessions are cached per (name, provider choice, folder, threads), so a model is hashed and
loaded once per process; a provider that fails is not tried again in the same process (ONNX
Runtime logs each failed attempt on stderr once).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgetrack.runtime.errors import InputError, ModelError

__all__ = [
    "PROVIDER_ORDER",
    "LoadedModel",
    "models_dir",
    "read_manifest",
    "manifest_entry",
    "file_sha256",
    "load_model",
    "model_names",
    "clear_cache",
]

#: Execution providers tried, in this order, when no provider is asked for.
PROVIDER_ORDER: tuple[str, ...] = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

_ALIASES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
_CACHE: dict[tuple, "LoadedModel"] = {}
_FAILED: dict[str, str] = {}  # providers that could not open a session in this process (tried once only)
_LOCK = threading.Lock()
_NP_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(double)": np.float64,
             "tensor(int32)": np.int32}


def models_dir() -> Path:
    """The folder of the ``edgetrack.exported_models`` package (where the .onnx files and manifest live)."""
    return Path(str(resources.files("edgetrack.exported_models")))


def read_manifest(folder: Path | str | None = None) -> dict[str, Any]:
    """The parsed ``manifest.json`` of ``folder`` (default :func:`models_dir`); ``{"models": []}`` when absent."""
    path = Path(folder or models_dir()) / "manifest.json"
    if not path.exists():
        return {"models": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"the model manifest {path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ModelError(f"the model manifest {path} has no 'models' list")
    return data


def model_names(folder: Path | str | None = None) -> list[str]:
    """Names of the models listed in the manifest, sorted."""
    return sorted(str(m.get("name")) for m in read_manifest(folder)["models"])


def manifest_entry(name: str, folder: Path | str | None = None) -> dict[str, Any]:
    """The manifest entry of model ``name``; ModelError when it is not listed."""
    for entry in read_manifest(folder)["models"]:
        if entry.get("name") == name:
            return entry
    where = Path(folder or models_dir())
    if not where.is_dir():
        raise ModelError(f"the models folder {where} does not exist (model {name!r} is looked for there)")
    if not (where / "manifest.json").is_file():
        raise ModelError(f"the models folder {where} has no manifest.json (model {name!r} is looked for there)")
    known = ", ".join(model_names(folder)) or "none"
    raise ModelError(f"no exported model named {name!r} in {where} (known models: {known}); train and export it first")


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class LoadedModel:
    """An ONNX Runtime session of a checked model.

    entry: its manifest entry; provider: the execution provider in use (for example
    ``"CPUExecutionProvider"``); input_names / output_names: in the model's order.
    """

    name: str
    entry: dict[str, Any]
    session: Any
    provider: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    _input_types: dict[str, Any] = field(default_factory=dict, repr=False)

    def run(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run the model; ``inputs`` maps every input name to an array (cast to the input's dtype)."""
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise InputError(f"model {self.name!r} needs input(s) {', '.join(missing)}")
        feed = {}
        for n in self.input_names:
            dtype = self._input_types.get(n)
            arr = np.asarray(inputs[n])
            feed[n] = np.ascontiguousarray(arr, dtype=dtype) if dtype is not None else np.ascontiguousarray(arr)
        names = list(outputs) if outputs is not None else list(self.output_names)
        try:
            result = self.session.run(names, feed)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"model {self.name!r} failed to run: {exc}") from None
        return dict(zip(names, result))


def nvidia_driver_present() -> bool:
    """True when the NVIDIA driver's CUDA library can be found (libcuda on Linux, nvcuda on Windows).

    Without it the GPU providers cannot work, and trying them only makes ONNX Runtime print
    errors on stderr, so automatic selection goes straight to the CPU.
    """
    import ctypes.util

    return any(ctypes.util.find_library(name) for name in ("cuda", "nvcuda"))


def _provider_list(provider: str | Sequence[str] | None) -> list[str]:
    if provider is None:
        if not nvidia_driver_present():
            return ["CPUExecutionProvider"]
        return list(PROVIDER_ORDER)
    items = [provider] if isinstance(provider, str) else list(provider)
    out = []
    for p in items:
        full = _ALIASES.get(str(p).lower(), str(p))
        if full not in PROVIDER_ORDER:
            raise InputError(f"unknown execution provider {p!r}; use one of tensorrt, cuda, cpu")
        out.append(full)
    return out


def _open_session(path: Path, providers: list[str], threads: int | None):
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    errors = []
    for prov in providers:
        if prov not in available:
            errors.append(f"{prov}: not in this onnxruntime build")
            continue
        if prov in _FAILED:
            errors.append(_FAILED[prov])
            continue
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: a provider that fails to load is tried, not fatal
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        chain = [prov] if prov == "CPUExecutionProvider" else [prov, "CPUExecutionProvider"]
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=chain)
        except Exception as exc:  # a missing CUDA / TensorRT library raises here on some builds
            message = f"{prov}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            if prov != "CPUExecutionProvider":
                _FAILED[prov] = message
            errors.append(message)
            continue
        # on other builds ORT falls back to CPU by itself: accept the provider only when it is really in use
        if session.get_providers() and session.get_providers()[0] == prov:
            return session, prov
        _FAILED[prov] = f"{prov}: could not be initialised (onnxruntime fell back to {session.get_providers()[0]})"
        errors.append(_FAILED[prov])
    raise ModelError(f"no execution provider could run {path.name}: " + "; ".join(errors))


def load_model(name: str, *, provider: str | Sequence[str] | None = None, folder: Path | str | None = None,
               threads: int | None = None) -> LoadedModel:
    """Load exported model ``name`` after checking its sha256 against the manifest.

    provider: None (try TensorRT, CUDA, CPU in that order and keep the first that really works),
    one of ``"tensorrt"``, ``"cuda"``, ``"cpu"`` (or the full ORT names), or a list of them in
    order of preference. folder: where the manifest and .onnx files are (default: the installed
    ``edgetrack.exported_models``). threads: intra-op threads of the session (default: ORT's).
    Raises ModelError when the model is not listed, its file is missing, its checksum differs,
    or no provider can open it. Loaded models are cached.
    """
    folder_path = Path(folder) if folder is not None else models_dir()
    providers = _provider_list(provider)
    key = (name, tuple(providers), str(folder_path.resolve()), threads)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        entry = manifest_entry(name, folder_path)
        file_name = entry.get("file") or f"{name}.onnx"
        path = folder_path / file_name
        if not path.is_file():
            raise ModelError(f"model {name!r}: file {path} is missing")
        expected = str(entry.get("sha256", "")).lower()
        if not expected:
            raise ModelError(f"model {name!r}: the manifest has no sha256 for {file_name}")
        actual = file_sha256(path)
        if actual != expected:
            raise ModelError(f"model {name!r}: sha256 of {path} is {actual[:12]}..., the manifest says "
                             f"{expected[:12]}... (corrupt or replaced file; re-export the model)")
        try:
            session, used = _open_session(path, providers, threads)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"model {name!r}: onnxruntime cannot load {path}: {exc}") from None
        types = {i.name: _NP_TYPES.get(i.type) for i in session.get_inputs()}
        model = LoadedModel(
            name=name, entry=entry, session=session, provider=used,
            input_names=tuple(i.name for i in session.get_inputs()),
            output_names=tuple(o.name for o in session.get_outputs()),
            _input_types=types,
        )
        _CACHE[key] = model
        return model


def clear_cache() -> None:
    """Forget every loaded session (the next :func:`load_model` re-hashes and re-opens the file)."""
    with _LOCK:
        _CACHE.clear()
