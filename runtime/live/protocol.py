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

import enum
import json
import socket
import struct
import time
from typing import Any

import numpy as np

from edgetrack.runtime.errors import EdgetrackError

MAGIC = b"ETRK"
VERSION = 1
PREFIX = struct.Struct("<4sHHIQ")  # magic, version, type, json length, payload length
MAX_JSON_BYTES = 1 << 20

#: Pixel types a FRAME may carry (the JSON ``dtype`` field; little-endian).
FRAME_DTYPES = {"uint8": "<u1", "uint16": "<u2", "int16": "<i2", "uint32": "<u4", "int32": "<i4",
                "float32": "<f4", "float64": "<f8"}


class Msg(enum.IntEnum):
    """Message types. Client to server below 64, server to client from 64."""

    HELLO = 1  # start a session: {"name", "tracker": {...}, "detect": {...}}
    FRAME = 2  # {"frame", "shape": [H, W], "dtype"}; payload H*W pixels
    SPOTS = 3  # {"frame", "columns": [...], "rows"}; payload rows*len(columns) float64
    END = 4  # end of the stream: commit everything, reply ENDED
    PING = 5  # reply PONG
    SHUTDOWN = 6  # ask the server to stop (every session is ended cleanly)
    READY = 64  # session started: {"session", "protocol", "queue_frames", "drop_policy", "tracker", "detect"}
    UPDATE = 65  # committed frame: {"frame", "rows", "columns"}; payload rows*len(columns) float64
    DROPPED = 66  # {"frame", "dropped_total"}: that frame was not tracked (queue full)
    ERROR = 67  # {"code", "message", "frame", "fatal"}
    ENDED = 68  # {"frames_received", "frames_committed", "frames_dropped", "tracks"}
    PONG = 69  # {"session", "queued", ...counters}


class ProtocolError(EdgetrackError):
    """A message that breaks the protocol. ``fatal`` ones end the connection (the byte stream is lost)."""

    def __init__(self, code: str, message: str, *, fatal: bool = False, frame: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal
        self.frame = frame


class ConnectionClosed(EdgetrackError):
    """The peer closed the connection (``truncated``: in the middle of a message)."""

    def __init__(self, truncated: bool, message: str) -> None:
        super().__init__(message)
        self.truncated = truncated


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


def _recv_exact(sock: socket.socket, n: int, deadline: float | None, started: bool,
                should_stop=None) -> bytearray:
    """Read exactly ``n`` bytes; ``deadline`` (monotonic s) bounds the wait once a message has started."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:], min(n - got, 1 << 22))
        except socket.timeout:
            if should_stop is not None and should_stop():
                raise ConnectionClosed(started or got > 0, "server shutting down") from None
            if deadline is not None and (started or got > 0) and time.monotonic() > deadline:
                raise ProtocolError("truncated", f"incomplete message: {got} of {n} bytes arrived before the "
                                    "timeout", fatal=True) from None
            continue
        if k == 0:
            raise ConnectionClosed(started or got > 0,
                                   "connection closed in the middle of a message" if started or got else "connection closed")
        got += k
    return buf


def read_message(sock: socket.socket, *, max_payload: int, message_timeout: float = 10.0,
                 should_stop=None) -> tuple[int, dict[str, Any], bytearray]:
    """Read one message: (type, header dict, payload bytes).

    Raises :class:`ConnectionClosed` at end of stream, :class:`ProtocolError` (fatal) for a bad prefix,
    an oversized payload, unreadable JSON, or a message not completed within ``message_timeout`` s.
    The socket should have a short timeout (e.g. 0.5 s) so that ``should_stop`` is polled while idle.
    """
    prefix = _recv_exact(sock, PREFIX.size, None, False, should_stop)
    deadline = time.monotonic() + message_timeout
    magic, version, kind, json_len, payload_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("bad_message", f"bad magic {bytes(magic)!r} (expected {MAGIC!r}): not an edgetrack "
                            "message, or the stream lost its framing", fatal=True)
    if version != VERSION:
        raise ProtocolError("bad_version", f"protocol version {version} not supported (this server speaks {VERSION})",
                            fatal=True)
    if json_len > MAX_JSON_BYTES:
        raise ProtocolError("too_large", f"JSON header of {json_len} bytes (at most {MAX_JSON_BYTES})", fatal=True)
    if payload_len > max_payload:
        raise ProtocolError("too_large", f"payload of {payload_len} bytes (at most {max_payload}; raise "
                            "--max-frame-mib on the server)", fatal=True)
    body = _recv_exact(sock, json_len, deadline, True, should_stop) if json_len else bytearray(b"{}")
    try:
        header = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("bad_message", f"JSON header is not valid UTF-8 JSON ({exc})", fatal=True) from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", "JSON header must be an object", fatal=True)
    payload = _recv_exact(sock, payload_len, deadline, True, should_stop) if payload_len else bytearray()
    return kind, header, payload


def frame_index(header: dict[str, Any]) -> int | None:
    """The ``frame`` field: None when absent, else an integer >= 0 (ProtocolError otherwise)."""
    value = header.get("frame")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError("bad_frame", f"'frame' must be an integer >= 0, got {value!r}")
    return value


def decode_frame(header: dict[str, Any], payload: bytearray) -> np.ndarray:
    """The image of a FRAME message, checked against its ``shape`` and ``dtype`` (a view of ``payload``)."""
    frame = frame_index(header)
    shape = header.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise ProtocolError("bad_shape", f"'shape' must be [rows, columns] of positive integers, got {shape!r}",
                            frame=frame)
    name = header.get("dtype")
    if name not in FRAME_DTYPES:
        raise ProtocolError("bad_dtype", f"'dtype' must be one of {', '.join(FRAME_DTYPES)}, got {name!r}",
                            frame=frame)
    dtype = np.dtype(FRAME_DTYPES[name])
    expected = shape[0] * shape[1] * dtype.itemsize
    if len(payload) != expected:
        raise ProtocolError("bad_size", f"payload of {len(payload)} bytes does not match shape {shape} of {name} "
                            f"({expected} bytes)", frame=frame)
    image = np.frombuffer(payload, dtype=dtype).reshape(shape)
    if dtype.kind == "f" and not np.isfinite(image).all():
        raise ProtocolError("bad_pixels", "NaN or inf pixels", frame=frame)
    return image


def decode_table(header: dict[str, Any], payload: bytearray, kind: str = "SPOTS") -> tuple[list[str], np.ndarray]:
    """The (columns, float64 (rows, len(columns))) table of a SPOTS or UPDATE message."""
    frame = header.get("frame")
    columns = header.get("columns")
    rows = header.get("rows")
    if (not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns)
            or len(set(columns)) != len(columns)):
        raise ProtocolError("bad_spots", f"{kind}: 'columns' must be a list of distinct names, got {columns!r}",
                            frame=frame)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise ProtocolError("bad_spots", f"{kind}: 'rows' must be an integer >= 0, got {rows!r}", frame=frame)
    expected = rows * len(columns) * 8
    if len(payload) != expected:
        raise ProtocolError("bad_size", f"{kind}: payload of {len(payload)} bytes does not match {rows} rows x "
                            f"{len(columns)} float64 columns ({expected} bytes)", frame=frame)
    values = np.frombuffer(payload, dtype="<f8").reshape(rows, len(columns))
    return list(columns), values


def encode_table(values: np.ndarray) -> bytes:
    """A float64 table as little-endian row-major bytes."""
    return np.ascontiguousarray(values, dtype="<f8").tobytes()
