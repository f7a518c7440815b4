"""The fault catalogue: bad inputs tried on purpose, and how each must end.

Each :class:`Fault` builds its bad input in a temporary folder and either runs an ``edgetrack``
command (``argv``) or calls the Python API (``call``). A command must exit with code 2, print a
one-line error containing ``expect`` (no traceback) and leave no output behind (or the previous
output untouched); an API call must raise ``error`` with ``expect`` in its message. Cases marked
``ok=True`` are legal inputs that must succeed (all-zero frames, an empty table, ...). Cases marked
``partial=True`` (a movie that breaks off mid-file) exit 2 with the one-line error, but leave what was
committed before the break as a complete output.

Used by ``tests/test_faults.py`` (CI) and ``benchmarks/fault_report.py`` (the table in RESULTS.md).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import tifffile


@dataclasses.dataclass
class Fault:
    name: str
    build: Callable[[Path], list[str] | Callable[[], object]]
    expect: str = ""
    error: type[BaseException] | None = None  # API cases: the exception class
    ok: bool = False  # a legal input that must succeed
    output: str = "out.csv"  # the output a command would write (checked absent on failure)
    partial: bool = False  # the run stops mid-stream (exit 2) and writes what it committed as a complete file


def _movie(tmp: Path, name: str, data: np.ndarray) -> str:
    path = tmp / name
    tifffile.imwrite(path, data, photometric="minisblack")
    return str(path)


def _spots(n_frames: int = 6, shape=(48, 48)) -> np.ndarray:
    from edgetrack.runtime.simulate.spots import simulate_movie

    movie, _ = simulate_movie(n_frames=n_frames, shape=shape, n_spots=8, seed=11)
    return movie


def _track(tmp: Path, movie: str, *extra: str) -> list[str]:
    return ["track", movie, "--out", str(tmp / "out.csv"), "--quiet", *extra]


def _link(tmp: Path, table: pd.DataFrame | str) -> list[str]:
    path = tmp / "dets.csv"
    if isinstance(table, str):
        path.write_text(table)
    else:
        table.to_csv(path, index=False)
    return ["link", str(path), "--out", str(tmp / "out.csv"), "--quiet"]


def _dets() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"frame": np.repeat(np.arange(5), 4), "y": rng.uniform(0, 50, 20), "x": rng.uniform(0, 50, 20)})


# ----------------------------------------------------------------------------- movies (edgetrack track)

def empty_tiff(tmp):
    (tmp / "m.tif").write_bytes(b"")
    return _track(tmp, str(tmp / "m.tif"))


def truncated_tiff(tmp):
    path = _movie(tmp, "full.tif", _spots())
    data = Path(path).read_bytes()
    (tmp / "m.tif").write_bytes(data[: len(data) * 2 // 3])
    return _track(tmp, str(tmp / "m.tif"))


def corrupt_tiff(tmp):
    (tmp / "m.tif").write_bytes(b"II*\x00" + bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)))
    return _track(tmp, str(tmp / "m.tif"))


def zero_frame_tiff(tmp):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile: "writing zero-size array to nonconformant TIFF"
        tifffile.imwrite(tmp / "m.tif", np.zeros((0, 16, 16), np.uint16))
    return _track(tmp, str(tmp / "m.tif"))


def truncated_tiff_long(tmp):
    path = _movie(tmp, "full.tif", _spots(n_frames=12))
    data = Path(path).read_bytes()
    (tmp / "m.tif").write_bytes(data[: len(data) * 3 // 4])
    return _track(tmp, str(tmp / "m.tif"), "--window", "2")


def analyze_missing_models(tmp):
    (tmp / "tracks.csv").write_text("track_id,frame,y,x\n" + "".join(f"0,{t},{t * 0.5},1\n" for t in range(30)))
    return ["analyze", str(tmp / "tracks.csv"), "--out", str(tmp / "an"), "--models", str(tmp / "no_models"),
            "--quiet"]


def missing_movie(tmp):
    return _track(tmp, str(tmp / "nowhere.tif"))


def png_folder_missing_frame(tmp):
    import imageio.v3 as iio

    folder = tmp / "pngs"
    folder.mkdir()
    for i in (0, 1, 2, 4):
        iio.imwrite(folder / f"frame_{i:03d}.png", np.zeros((32, 32), np.uint8))
    return _track(tmp, str(folder))


def png_folder_other_size(tmp):
    import imageio.v3 as iio

    folder = tmp / "pngs"
    folder.mkdir()
    for i in range(4):
        iio.imwrite(folder / f"frame_{i:03d}.png", np.zeros((32, 32 if i != 2 else 40), np.uint8))
    return _track(tmp, str(folder))


def png_folder_unreadable_frame(tmp):
    import imageio.v3 as iio

    folder = tmp / "pngs"
    folder.mkdir()
    for i in range(4):
        iio.imwrite(folder / f"frame_{i:03d}.png", np.zeros((32, 32), np.uint8))
    (folder / "frame_002.png").write_bytes(b"\x89PNG broken")
    return _track(tmp, str(folder))


def nan_frame(tmp):
    movie = _spots().astype(np.float32)
    movie[3, 10, 10] = np.nan
    return _track(tmp, _movie(tmp, "m.tif", movie))


def inf_frame(tmp):
    movie = _spots().astype(np.float32)
    movie[2, 5, 7] = np.inf
    return _track(tmp, _movie(tmp, "m.tif", movie))


def all_zero_frames(tmp):
    return _track(tmp, _movie(tmp, "m.tif", np.zeros((4, 32, 32), np.uint16)))


def saturated_frames(tmp):
    return _track(tmp, _movie(tmp, "m.tif", np.full((4, 32, 32), 65535, np.uint16)))


def complex_dtype(tmp):
    np.save(tmp / "m.npy", np.zeros((3, 16, 16), np.complex64))
    return _track(tmp, str(tmp / "m.npy"))


def one_dimensional(tmp):
    np.save(tmp / "m.npy", np.zeros(100, np.float32))
    return _track(tmp, str(tmp / "m.npy"))


def four_dimensional(tmp):
    np.save(tmp / "m.npy", np.zeros((2, 3, 16, 16), np.float32))
    return _track(tmp, str(tmp / "m.npy"))


def unsupported_format(tmp):
    (tmp / "m.avi").write_bytes(b"RIFF....AVI ")
    return _track(tmp, str(tmp / "m.avi"))


def output_in_missing_folder(tmp):
    return ["track", _movie(tmp, "m.tif", _spots()), "--out", str(tmp / "no" / "such" / "out.csv"), "--quiet"]


def output_parent_is_a_file(tmp):
    (tmp / "afile").write_text("x")
    return ["track", _movie(tmp, "m.tif", _spots()), "--out", str(tmp / "afile" / "out.csv"), "--quiet"]


# ----------------------------------------------------------------------------- tables (edgetrack link)

def csv_missing_column(tmp):
    return _link(tmp, _dets().drop(columns="x"))


def csv_text_in_numbers(tmp):
    d = _dets().astype({"y": object})
    d.loc[3, "y"] = "twelve"
    return _link(tmp, d)


def csv_nan_coordinates(tmp):
    d = _dets()
    d.loc[5, "x"] = np.nan
    return _link(tmp, d)


def csv_negative_frame(tmp):
    d = _dets()
    d.loc[0, "frame"] = -1
    return _link(tmp, d)


def csv_fractional_frame(tmp):
    d = _dets().astype({"frame": float})
    d.loc[2, "frame"] = 1.5
    return _link(tmp, d)


def csv_duplicated_rows(tmp):
    d = _dets()
    return _link(tmp, pd.concat([d, d.iloc[[4]]], ignore_index=True))


def csv_unsorted_frames(tmp):
    return _link(tmp, _dets().sample(frac=1.0, random_state=3))


def csv_header_only(tmp):
    return _link(tmp, "frame,y,x\n")


def csv_empty_file(tmp):
    return _link(tmp, "")


def csv_binary_garbage(tmp):
    path = tmp / "dets.csv"
    path.write_bytes(bytes(np.random.default_rng(2).integers(0, 256, 3000, dtype=np.uint8)))
    return ["link", str(path), "--out", str(tmp / "out.csv"), "--quiet"]


def csv_single_point_tracks(tmp):
    return _link(tmp, pd.DataFrame({"frame": [0, 3, 7], "y": [1.0, 40.0, 80.0], "x": [1.0, 40.0, 80.0]}))


# ----------------------------------------------------------------------------- API

def api_frame_shape_changes(tmp):
    from edgetrack.runtime.stream.tracker import Tracker

    def call():
        t = Tracker()
        t.push(np.zeros((32, 32), np.uint16))
        t.push(np.zeros((32, 30), np.uint16))
    return call


def api_frames_out_of_order(tmp):
    from edgetrack.runtime.stream.tracker import Tracker

    def call():
        t = Tracker()
        t.push(pd.DataFrame({"y": [1.0], "x": [1.0]}), frame=5)
        t.push(pd.DataFrame({"y": [1.0], "x": [1.0]}), frame=4)
    return call


def api_string_frame(tmp):
    from edgetrack.runtime.stream.tracker import Tracker

    return lambda: Tracker().push(np.array([["a", "b"], ["c", "d"]]))


def api_empty_frame(tmp):
    from edgetrack.runtime.stream.tracker import Tracker

    return lambda: Tracker().push(np.zeros((0, 0), np.float32))


def api_unknown_option(tmp):
    from edgetrack.runtime.stream.tracker import Tracker

    return lambda: Tracker(max_distanse=3)


def api_scores_out_of_range(tmp):
    from edgetrack.runtime.link.problem import LinkProblem
    from edgetrack.runtime.link.registry import get_linker

    def call():
        frame = np.array([0, 1], np.int64)
        e = np.array([0], np.int64)
        get_linker("lap")(LinkProblem.from_arrays(frame, e, e + 1, e + 1, np.array([1.5]), np.full(2, -2, np.int64),
                                                  np.zeros(2, np.int64)))
    return call


def api_edge_backwards(tmp):
    from edgetrack.runtime.link.problem import LinkProblem
    from edgetrack.runtime.link.registry import get_linker

    def call():
        frame = np.array([0, 1], np.int64)
        get_linker("greedy")(LinkProblem.from_arrays(frame, np.array([1]), np.array([0]), np.array([1]),
                                                     np.array([0.5]), np.full(2, -2, np.int64), np.zeros(2, np.int64)))
    return call


def api_corrupt_checkpoint(tmp):
    from edgetrack.runtime.stream.checkpoint import load_checkpoint

    (tmp / "c.npz").write_bytes(b"PK\x03\x04 not really a zip")
    return lambda: load_checkpoint(tmp / "c.npz")


def _model_folder(tmp: Path, *, write_file: bool = True, corrupt: bool = False, bad_sha: bool = False) -> Path:
    import hashlib

    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime this project supports
    data = model.SerializeToString()
    if corrupt:
        data = data[: len(data) // 2] + b"\x00garbage"
    folder = tmp / "models"
    folder.mkdir()
    if write_file:
        (folder / "toy.onnx").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    if bad_sha:
        sha = "0" * 64
    manifest = {"models": [{"name": "toy", "task": "toy", "file": "toy.onnx", "sha256": sha}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def model_missing(tmp):
    from edgetrack.runtime.models.onnx import load_model

    folder = _model_folder(tmp, write_file=False)
    return lambda: load_model("toy", folder=folder)


def model_corrupt(tmp):
    from edgetrack.runtime.models.onnx import load_model

    folder = _model_folder(tmp, corrupt=True)
    return lambda: load_model("toy", folder=folder)


def model_wrong_checksum(tmp):
    from edgetrack.runtime.models.onnx import load_model

    folder = _model_folder(tmp, bad_sha=True)
    return lambda: load_model("toy", folder=folder)


def model_not_listed(tmp):
    from edgetrack.runtime.models.onnx import load_model

    folder = _model_folder(tmp)
    return lambda: load_model("magik_link", folder=folder)


def model_wrong_inputs(tmp):
    from edgetrack.runtime.models.onnx import load_model

    folder = _model_folder(tmp)
    return lambda: load_model("toy", folder=folder, provider="cpu").run({"features": np.zeros(3, np.float32)})


def model_wrong_kind_for_magik(tmp):
    """A model that exists and loads, but is not a link model, used as the MAGIK link scorer."""
    from edgetrack.runtime.associate.magik import MagikScorer

    def call():
        scorer = MagikScorer(model="andi_motion")
        edges_frame = np.array([0, 1], np.int64)
        from edgetrack.runtime.graph.candidates import build_graph

        y = np.array([1.0, 1.5])
        edges = build_graph(edges_frame, y, y, 5.0, 1)
        scorer.score_window(edges_frame, np.stack([y, y], axis=1), ("y", "x"), edges)
    return call


def _errors():
    from edgetrack.runtime.errors import ConfigError, FileReadError, InputError, ModelError

    return ConfigError, FileReadError, InputError, ModelError


def catalogue() -> list[Fault]:
    ConfigError, FileReadError, InputError, ModelError = _errors()
    return [
        Fault("TIFF: empty file", empty_tiff, "empty"),
        Fault("TIFF: truncated", truncated_tiff, "frame 4 is missing", partial=True),
        Fault("TIFF: truncated after 9 of 12 frames", truncated_tiff_long, "stopped before frame", partial=True),
        Fault("TIFF: zero frames", zero_frame_tiff, "no frames"),
        Fault("analyze: --models folder missing", analyze_missing_models, "no_models does not exist", output="an"),
        Fault("TIFF: corrupt bytes", corrupt_tiff, "m.tif"),
        Fault("movie: missing file", missing_movie, "no such file"),
        Fault("movie: unsupported format", unsupported_format, "unsupported"),
        Fault("PNG folder: missing frame number", png_folder_missing_frame, "missing"),
        Fault("PNG folder: frame of another size", png_folder_other_size, "shape"),
        Fault("PNG folder: unreadable frame", png_folder_unreadable_frame, "frame_002.png", partial=True),
        Fault("frame with NaN", nan_frame, "frame 3: frame has 1 non-finite"),
        Fault("frame with inf", inf_frame, "frame 2:"),
        Fault("all-zero frames", all_zero_frames, ok=True),
        Fault("saturated frames", saturated_frames, ok=True),
        Fault("complex dtype", complex_dtype, "dtype"),
        Fault("1-D data", one_dimensional, "shape"),
        Fault("4-D data (T, Z, H, W) as .npy", four_dimensional, "shape"),
        Fault("output folder missing", output_in_missing_folder, "does not exist", output="no/such/out.csv"),
        Fault("output parent is a file", output_parent_is_a_file, "afile", output="afile/out.csv"),
        Fault("CSV: missing column", csv_missing_column, "missing required column"),
        Fault("CSV: text in a numeric column", csv_text_in_numbers, "non-numeric"),
        Fault("CSV: NaN coordinates", csv_nan_coordinates, "NaN"),
        Fault("CSV: negative frame", csv_negative_frame, "frame"),
        Fault("CSV: fractional frame", csv_fractional_frame, "whole numbers"),
        Fault("CSV: duplicated rows", csv_duplicated_rows, "duplicated"),
        Fault("CSV: unsorted frames", csv_unsorted_frames, ok=True),
        Fault("CSV: header only", csv_header_only, ok=True),
        Fault("CSV: empty file", csv_empty_file, "dets.csv"),
        Fault("CSV: binary garbage", csv_binary_garbage, "dets.csv"),
        Fault("CSV: tracks of one point", csv_single_point_tracks, ok=True),
        Fault("API: frame shape changes mid-stream", api_frame_shape_changes, "shape", InputError),
        Fault("API: frames out of order", api_frames_out_of_order, "must increase", InputError),
        Fault("API: text frame", api_string_frame, "", InputError),
        Fault("API: empty (0x0) frame", api_empty_frame, "", InputError),
        Fault("API: unknown option", api_unknown_option, "max_distanse", ConfigError),
        Fault("API: scores outside [0, 1]", api_scores_out_of_range, "", InputError),
        Fault("API: edge backwards in time", api_edge_backwards, "", InputError),
        Fault("API: corrupt checkpoint", api_corrupt_checkpoint, "checkpoint", FileReadError),
        Fault("ONNX: file missing", model_missing, "missing", ModelError),
        Fault("ONNX: corrupt file (checksum matches)", model_corrupt, "toy.onnx", ModelError),
        Fault("ONNX: wrong checksum", model_wrong_checksum, "sha256", ModelError),
        Fault("ONNX: model not in the manifest", model_not_listed, "no exported model", ModelError),
        Fault("ONNX: wrong inputs for the model", model_wrong_inputs, "needs input", InputError),
        Fault("ONNX: a motion model used as MAGIK link scorer", model_wrong_kind_for_magik, "not a link model",
              ModelError),
    ]


def run_fault(fault: Fault, tmp: Path) -> tuple[str, str]:
    """Run one case; returns (outcome, detail). outcome is 'handled', 'ok' or 'FAILED'."""
    import contextlib
    import io

    from edgetrack.runtime.cli.app import main

    target = fault.build(tmp)
    if callable(target):
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - the catalogue checks the class
            if fault.error is not None and isinstance(exc, fault.error) and fault.expect.lower() in str(exc).lower():
                return "handled", f"{type(exc).__name__}: {str(exc)[:160]}"
            return "FAILED", f"unexpected {type(exc).__name__}: {str(exc)[:160]}"
        return ("ok", "accepted") if fault.ok else ("FAILED", "no error raised")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(target)
        except SystemExit as exc:  # argparse
            code = exc.code
        except BaseException as exc:  # noqa: BLE001
            return "FAILED", f"escaped {type(exc).__name__}: {str(exc)[:160]}"
    message = err.getvalue().strip()
    out = tmp / fault.output
    leftovers = [p.name for p in out.parent.glob(".*.part")] if out.parent.exists() else []
    if fault.ok:
        if code == 0 and out.exists():
            return "ok", f"exit 0, {len(pd.read_csv(out))} rows written"
        return "FAILED", f"exit {code}: {message[:160]}"
    if code != 2:
        return "FAILED", f"exit {code}: {message[:160]}"
    if "Traceback" in message or len(message.splitlines()) != 1:
        return "FAILED", f"not a one-line error: {message[:200]}"
    if fault.expect.lower() not in message.lower():
        return "FAILED", f"message lacks {fault.expect!r}: {message[:160]}"
    if fault.partial:
        if leftovers or not out.exists():
            return "FAILED", f"no complete partial output: {leftovers or 'nothing written'}"
        text = out.read_text()
        if not text.endswith("\n") or "track_id" not in text.splitlines()[0]:
            return "FAILED", "the partial output is not a complete table"
        return "handled", f"exit 2, {len(pd.read_csv(out))} committed rows kept: {message[:120]}"
    if out.exists() or leftovers:
        return "FAILED", f"output left behind: {out if out.exists() else leftovers}"
    return "handled", f"exit 2: {message[:160]}"
