"""The wire format of ``edgetrack serve`` (full specification: ``docs/serve-protocol.md``).

Every message, both ways, is::

    offset  size  field
    0       4     magic  b"ETRK"
    4       2     protocol version, uint16 little-endian (1)
    6       2     message type, uint16 little-endian (see :class:`Msg`)
    8       4     length J of the JSON header, uint32 little-endian
    12      8     length P of the binary payload, uint64 little-endian
    20      J     JSON header, UTF-8, an object (``{}`` when empty)
    20+J    P     payload (raw pixels, or a float64 table), little-endian, row-major

A fixed 20-byte prefix tells the reader exactly how much follows, so any language with a TCP socket
(Java, C#, LabVIEW's TCP Read/Write) can frame messages without a library; the small JSON header
carries the few named fields (frame index, shape, dtype, columns) and the bulk data stays raw bytes.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import secrets
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgetrack.runtime.errors import EdgetrackError

MAGIC = b"ETRK"
VERSION = 1
PREFIX = struct.Struct("<4sHHIQ")  # magic, version, type, json length, payload length
#: Largest JSON header accepted, bytes (headers hold a few named fields; HELLO's options fit easily).
MAX_JSON_BYTES = 64 * 1024
#: Deepest nesting of objects/arrays accepted in a JSON header (deeper headers are refused before parsing).
MAX_JSON_DEPTH = 16
#: Payloads are read in pieces of at most this many bytes: memory grows only with the bytes that arrived.
READ_CHUNK = 1 << 20

#: Pixel types a FRAME may carry (the JSON ``dtype`` field; little-endian).
FRAME_DTYPES = {"uint8": "<u1", "uint16": "<u2", "int16": "<i2", "uint32": "<u4", "int32": "<i4",
                "float32": "<f4", "float64": "<f8"}


class Msg(enum.IntEnum):
    """Message types. Client to server below 64, server to client from 64."""

    HELLO = 1  # start a session: {"token", "name", "tracker": {...}, "detect": {...}}
    FRAME = 2  # {"frame", "shape": [H, W], "dtype"}; payload H*W pixels
    SPOTS = 3  # {"frame", "columns": [...], "rows"}; payload rows*len(columns) float64
    END = 4  # end of the stream: commit everything, reply ENDED
    PING = 5  # reply PONG
    SHUTDOWN = 6  # {"token"}: ask the server to stop (every session is ended cleanly)
    READY = 64  # session started: {"session", "protocol", "queue_frames", "drop_policy", "tracker", "detect", "limits"}
    UPDATE = 65  # committed frame: {"frame", "rows", "columns"}; payload rows*len(columns) float64
    DROPPED = 66  # {"frame", "dropped_total", "reason"}: that frame was not tracked
    ERROR = 67  # {"code", "message", "frame", "fatal"}
    ENDED = 68  # {"frames_received", "frames_tracked", "frames_committed", "frames_dropped", "tracks", ...}
    PONG = 69  # {"session", "queued", ...counters}


class ProtocolError(EdgetrackError):
    """A message that breaks the protocol. ``fatal`` ones end the connection (the byte stream is lost)."""

    def __init__(self, code: str, message: str, *, fatal: bool = False, frame: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal
        self.frame = frame


class ConnectionClosed(EdgetrackError):
    """The peer closed the connection (``truncated``: in the middle of a message), or reading was stopped."""

    def __init__(self, truncated: bool, message: str) -> None:
        super().__init__(message)
        self.truncated = truncated


@dataclasses.dataclass
class Incoming:
    """A message whose prefix and JSON header have been read; its payload (``payload_len`` bytes) not yet.

    deadline: time.monotonic() by which the whole message must have arrived (counted from its first byte).
    """

    kind: int
    header: dict[str, Any]
    payload_len: int
    deadline: float


def encode(kind: Msg | int, header: dict[str, Any] | None = None, payload: bytes | memoryview = b"") -> list:
    """The buffers of one message (prefix + JSON, then the payload), ready for ``sendall`` each."""
    body = json.dumps(header or {}, separators=(",", ":"), allow_nan=False).encode("utf-8")
    payload = memoryview(payload).cast("B") if not isinstance(payload, bytes) else payload
    first = PREFIX.pack(MAGIC, VERSION, int(kind), len(body), len(payload)) + body
    return [first, payload] if len(payload) else [first]


def send_message(sock: socket.socket, kind: Msg | int, header: dict[str, Any] | None = None,
                 payload: bytes | memoryview = b"", timeout: float | None = None) -> None:
    """Send one message (the caller serialises concurrent senders).

    timeout: seconds the whole message may take when the socket has a timeout set (a peer that does
    not read for that long raises ``TimeoutError``; the connection is then unusable). None = no limit.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    for part in encode(kind, header, payload):
        view = memoryview(part).cast("B")
        sent = 0
        while sent < len(view):
            try:
                sent += sock.send(view[sent:sent + (1 << 22)])
            except socket.timeout:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"peer did not read {len(view) - sent} bytes within {timeout} s") from None


def parse_prefix(prefix: bytes | bytearray, max_payload: int, max_json: int = MAX_JSON_BYTES) -> tuple[int, int, int]:
    """Check the 20-byte prefix; returns (type, JSON length, payload length). Fatal ProtocolError otherwise."""
    if len(prefix) != PREFIX.size:
        raise ProtocolError("bad_message", f"a prefix has {PREFIX.size} bytes, got {len(prefix)}", fatal=True)
    magic, version, kind, json_len, payload_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("bad_message", f"bad magic {bytes(magic)!r} (expected {MAGIC!r}): not an edgetrack "
                            "message, or the stream lost its framing", fatal=True)
    if version != VERSION:
        raise ProtocolError("bad_version", f"protocol version {version} not supported (this side speaks {VERSION})",
                            fatal=True)
    if json_len > max_json:
        raise ProtocolError("too_large", f"JSON header of {json_len} bytes (at most {max_json})", fatal=True)
    if payload_len > max_payload:
        raise ProtocolError("too_large", f"payload of {payload_len} bytes announced (at most {max_payload} here)",
                            fatal=True)
    return kind, json_len, payload_len


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(body: bytes) -> int:
    """Deepest nesting of objects and arrays in a JSON text (brackets inside strings do not count)."""
    bare = np.frombuffer(_JSON_STRING.sub(b'""', body), dtype=np.uint8)
    step = np.isin(bare, (ord("["), ord("{"))).astype(np.int64) - np.isin(bare, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def parse_header(body: bytes | bytearray, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The JSON header as a dict; a fatal ProtocolError for anything else (bad UTF-8, bad JSON, too deep, NaN)."""
    body = bytes(body)
    if not body:
        return {}
    depth = json_depth(body)
    if depth > max_depth:
        raise ProtocolError("bad_message", f"JSON header nested {depth} levels deep (at most {max_depth})", fatal=True)
    try:
        header = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError("bad_message", f"JSON header is not valid UTF-8 JSON ({exc})", fatal=True) from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", f"JSON header must be an object, got {type(header).__name__}", fatal=True)
    return header


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a header")


def _recv_into(sock: socket.socket, view: memoryview, deadline: float | None, started: bool,
               should_stop: Callable[[], bool] | None) -> int:
    """One ``recv_into``; returns bytes read (> 0). Polls ``should_stop`` and the deadline on socket timeouts."""
    while True:
        try:
            k = sock.recv_into(view, len(view))
        except socket.timeout:
            if should_stop is not None and should_stop():
                raise ConnectionClosed(started, "reading was stopped (shutting down)") from None
            if deadline is not None and time.monotonic() > deadline:
                raise ProtocolError("truncated", "incomplete message: it did not arrive completely within the "
                                    "message timeout (counted from its first byte)", fatal=True) from None
            continue
        if k == 0:
            raise ConnectionClosed(started, "connection closed in the middle of a message" if started
                                   else "connection closed")
        return k


def _recv_exact(sock: socket.socket, n: int, deadline: float | None, started: bool,
                should_stop: Callable[[], bool] | None = None) -> bytearray:
    """Read exactly ``n`` bytes, in pieces of at most READ_CHUNK: the buffer grows as bytes arrive, so a
    peer announcing a large size and sending little holds little memory."""
    buf = bytearray()
    chunk = bytearray(min(max(n, 1), READ_CHUNK))
    view = memoryview(chunk)
    while len(buf) < n:
        k = _recv_into(sock, view[:min(n - len(buf), READ_CHUNK)], deadline, started or bool(buf), should_stop)
        buf += view[:k]
    return buf


def read_prefix(sock: socket.socket, *, max_payload: int, message_timeout: float,
                should_stop: Callable[[], bool] | None = None,
                max_json: int = MAX_JSON_BYTES) -> tuple[int, int, int, float]:
    """Read and check a prefix; returns (type, JSON length, payload length, deadline).

    The deadline (monotonic s) is ``message_timeout`` after the message's *first* byte: a peer that sends
    part of a prefix and stalls is cut off (fatal ``truncated``) like one that stalls later.
    """
    prefix = bytearray(PREFIX.size)
    view = memoryview(prefix)
    got = _recv_into(sock, view, None, False, should_stop)  # idle wait: no deadline before the first byte
    deadline = time.monotonic() + message_timeout
    while got < PREFIX.size:
        got += _recv_into(sock, view[got:], deadline, True, should_stop)
    kind, json_len, payload_len = parse_prefix(prefix, max_payload, max_json)
    return kind, json_len, payload_len, deadline


def read_header(sock: socket.socket, *, max_payload: int, message_timeout: float = 10.0,
                should_stop: Callable[[], bool] | None = None, max_json: int = MAX_JSON_BYTES) -> Incoming:
    """Read a message's prefix and JSON header (its payload is left on the socket; see :func:`read_payload`)."""
    kind, json_len, payload_len, deadline = read_prefix(sock, max_payload=max_payload, message_timeout=message_timeout,
                                                        should_stop=should_stop, max_json=max_json)
    body = _recv_exact(sock, json_len, deadline, True, should_stop) if json_len else b""
    return Incoming(kind, parse_header(body), payload_len, deadline)


def read_payload(sock: socket.socket, message: Incoming, should_stop: Callable[[], bool] | None = None) -> bytearray:
    """The payload of a message read by :func:`read_header` (chunked; within the message's deadline)."""
    if not message.payload_len:
        return bytearray()
    return _recv_exact(sock, message.payload_len, message.deadline, True, should_stop)


def discard_payload(sock: socket.socket, message: Incoming, should_stop: Callable[[], bool] | None = None) -> None:
    """Read and forget the payload of a refused message (keeps the framing; holds at most READ_CHUNK bytes)."""
    left = message.payload_len
    chunk = memoryview(bytearray(min(max(left, 1), READ_CHUNK)))
    while left > 0:
        left -= _recv_into(sock, chunk[:min(left, READ_CHUNK)], message.deadline, True, should_stop)


def read_message(sock: socket.socket, *, max_payload: int, message_timeout: float = 10.0,
                 should_stop: Callable[[], bool] | None = None,
                 max_json: int = MAX_JSON_BYTES) -> tuple[int, dict[str, Any], bytearray]:
    """Read one message: (type, header dict, payload bytes).

    Raises :class:`ConnectionClosed` at end of stream, :class:`ProtocolError` (fatal) for a bad prefix,
    an oversized payload, an unreadable or too deeply nested JSON header, or a message not completed
    within ``message_timeout`` s of its first byte. The socket should have a short timeout (e.g. 0.25 s)
    so that ``should_stop`` is polled while idle.
    """
    message = read_header(sock, max_payload=max_payload, message_timeout=message_timeout, should_stop=should_stop,
                          max_json=max_json)
    return message.kind, message.header, read_payload(sock, message, should_stop)


def frame_index(header: dict[str, Any]) -> int | None:
    """The ``frame`` field: None when absent, else an integer >= 0 (ProtocolError otherwise)."""
    value = header.get("frame")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError("bad_frame", f"'frame' must be an integer >= 0, got {value!r}")
    return value


def frame_header(header: dict[str, Any], payload_len: int) -> tuple[tuple[int, int], np.dtype]:
    """Check a FRAME header against its announced payload length, before the payload is read.

    Returns ((rows, columns), dtype); a non-fatal ProtocolError names the first problem.
    """
    frame = frame_index(header)
    shape = header.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise ProtocolError("bad_shape", f"'shape' must be [rows, columns] of positive integers, got {shape!r}",
                            frame=frame)
    name = header.get("dtype")
    if not isinstance(name, str) or name not in FRAME_DTYPES:
        raise ProtocolError("bad_dtype", f"'dtype' must be one of {', '.join(FRAME_DTYPES)}, got {name!r}",
                            frame=frame)
    dtype = np.dtype(FRAME_DTYPES[name])
    expected = shape[0] * shape[1] * dtype.itemsize
    if payload_len != expected:
        raise ProtocolError("bad_size", f"payload of {payload_len} bytes does not match shape {shape} of {name} "
                            f"({expected} bytes)", frame=frame)
    return (shape[0], shape[1]), dtype


def decode_frame(header: dict[str, Any], payload: bytearray) -> np.ndarray:
    """The image of a FRAME message, checked against its ``shape`` and ``dtype`` (a view of ``payload``)."""
    shape, dtype = frame_header(header, len(payload))
    image = np.frombuffer(payload, dtype=dtype).reshape(shape)
    if dtype.kind == "f" and not np.isfinite(image).all():
        raise ProtocolError("bad_pixels", "NaN or inf pixels", frame=header.get("frame"))
    return image


def table_header(header: dict[str, Any], payload_len: int, kind: str = "SPOTS",
                 max_rows: int | None = None) -> tuple[list[str], int]:
    """Check a SPOTS / UPDATE header (columns, rows, announced payload length; at most ``max_rows`` rows).

    Returns (columns, rows); a non-fatal ProtocolError names the first problem.
    """
    frame = header.get("frame")
    frame = frame if isinstance(frame, int) and not isinstance(frame, bool) else None
    columns = header.get("columns")
    rows = header.get("rows")
    if (not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns)
            or len(set(columns)) != len(columns)):
        raise ProtocolError("bad_spots", f"{kind}: 'columns' must be a list of distinct names, got {columns!r}"[:300],
                            frame=frame)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise ProtocolError("bad_spots", f"{kind}: 'rows' must be an integer >= 0, got {rows!r}", frame=frame)
    if max_rows is not None and rows > max_rows:
        raise ProtocolError("too_many_rows", f"{kind}: {rows} rows in one message (at most {max_rows})", frame=frame)
    expected = rows * len(columns) * 8
    if payload_len != expected:
        raise ProtocolError("bad_size", f"{kind}: payload of {payload_len} bytes does not match {rows} rows x "
                            f"{len(columns)} float64 columns ({expected} bytes)", frame=frame)
    return list(columns), rows


def decode_table(header: dict[str, Any], payload: bytearray, kind: str = "SPOTS",
                 max_rows: int | None = None) -> tuple[list[str], np.ndarray]:
    """The (columns, float64 (rows, len(columns))) table of a SPOTS or UPDATE message."""
    columns, rows = table_header(header, len(payload), kind, max_rows)
    values = np.frombuffer(payload, dtype="<f8").reshape(rows, len(columns))
    return columns, values


def encode_table(values: np.ndarray) -> bytes:
    """A float64 table as little-endian row-major bytes."""
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


# ---------------------------------------------------------------------- the server's token
#: Name of a server's token file in :func:`runtime_dir`, per port.
TOKEN_FILE_PATTERN = "serve-{port}.token"


def runtime_dir() -> Path:
    """The per-user folder where ``edgetrack serve`` writes its token files (like Jupyter's runtime dir).

    Linux and other Unix: ``$XDG_DATA_HOME/edgetrack/runtime`` (default ``~/.local/share/edgetrack/runtime``);
    macOS: ``~/Library/Application Support/edgetrack/runtime``; Windows: ``%APPDATA%\\edgetrack\\runtime``.
    Read when called (never at import).
    """
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "edgetrack" / "runtime"


def default_token_path(port: int) -> Path:
    """Where a server on ``port`` writes its token by default (and where clients look for it)."""
    return runtime_dir() / TOKEN_FILE_PATTERN.format(port=int(port))


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` (one line) to ``path``, readable and writable by the user only (0600; the folder 0700
    when created), replacing an older file atomically. Raises OutputError naming the path."""
    from edgetrack.runtime.errors import OutputError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        try:
            os.write(fd, (token + "\n").encode("ascii"))
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)  # the umask cannot widen it, but be explicit
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write the server token file {path}: {exc.strerror or exc}") from None


def read_token_file(path: Path) -> str | None:
    """The token in ``path`` (None when the file does not exist or is empty)."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace").strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return text or None
