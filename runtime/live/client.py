"""Python client of ``edgetrack serve`` (the protocol: ``docs/serve-protocol.md``).

>>> with TrackClient(port=7878, tracker={"max_distance": 5.0}) as client:   # doctest: +SKIP
...     for image in camera:
...         client.send_frame(image)                 # returns at once
...         for event in client.poll():              # updates committed so far, drops, errors
...             if isinstance(event, RemoteUpdate):
...                 use(event.to_dataframe())
...     summary = client.end()                       # commit the rest; the last updates arrive
...     tracks = client.tracks()                     # every committed point received

A receiver thread reads the server's messages as they come; they are handed over by :meth:`poll`
(or to ``on_event`` in the receiver thread, if given). Only numpy and pandas are needed.

The server's token is found by itself: a server on this computer writes it to ``serve-<port>.token``
in the per-user runtime folder (:func:`~edgetrack.runtime.live.protocol.default_token_path`), and
the client reads it from there unless ``token`` or ``token_file`` is given. What the server sends is
checked against the client's own limits (``max_message_mib``), so a misbehaving server cannot make
it allocate without bound.
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import socket
import threading
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import ConfigError, EdgetrackError, InputError
from pathlib import Path

from edgetrack.runtime.live.protocol import (FRAME_DTYPES, ConnectionClosed, Msg, ProtocolError, decode_table,
                                             default_token_path, encode_table, read_message, read_token_file,
                                             send_message)

#: ERROR codes that answer a request of the calling thread (HELLO, PING, END) and end the wait for it.
_REFUSALS = ("bad_config", "session_active", "not_allowed", "server_busy", "unauthorized", "internal_error",
             "session_failed")


@dataclasses.dataclass
class RemoteUpdate:
    """A committed frame: ``values`` float64 (rows, len(columns)); ``received``: perf_counter() at arrival."""

    frame: int
    columns: tuple[str, ...]
    values: np.ndarray
    received: float

    def __len__(self) -> int:
        return self.values.shape[0]

    def to_dataframe(self) -> pd.DataFrame:
        """frame, y, x, track_id, parent_track_id, det_id, parent_det_id, then the features."""
        data: dict[str, np.ndarray] = {"frame": np.full(len(self), self.frame, np.int64)}
        cols = {name: self.values[:, j] for j, name in enumerate(self.columns)}
        for name in ("y", "x", "track_id", "parent_track_id", "det_id", "parent_det_id"):
            if name in cols:
                data[name] = cols[name] if name in ("y", "x") else cols[name].astype(np.int64)
        for name, value in cols.items():
            if name not in data:
                data[name] = value
        return pd.DataFrame(data)


@dataclasses.dataclass
class Dropped:
    """The server did not track this frame; ``total`` drops in this session; ``reason``: queue_full,
    tracking_failed, too_many_detections, abandoned (shutdown timeout) or failed (the session failed)."""

    frame: int
    total: int
    reason: str = "queue_full"


@dataclasses.dataclass
class RemoteError:
    """An ERROR from the server. ``fatal``: the connection is being closed."""

    code: str
    message: str
    frame: int | None
    fatal: bool


class ServerError(EdgetrackError):
    """The server refused a request (its ERROR message is the text)."""


class TrackClient:
    """One connection, one tracking session on an ``edgetrack serve`` server.

    tracker / detect: session options (:class:`~edgetrack.runtime.stream.config.TrackerConfig`,
    :class:`~edgetrack.runtime.detect.config.DetectConfig` keys) sent in the HELLO; the server's defaults
    fill the rest. keep: keep every update for :meth:`tracks` (turn off for endless streams).
    on_event: called in the receiver thread with each RemoteUpdate / Dropped / RemoteError instead of
    queueing it for :meth:`poll`.
    max_in_flight: lossless flow control: :meth:`send_frame` / :meth:`send_spots` wait while this many
    sent frames are neither committed nor dropped nor rejected (None = never wait; frames beyond the
    server's queue are then dropped). It must exceed the session's latency (``window - 1`` frames);
    ``queue_frames`` (from :attr:`ready`) never overflows the server's queue and keeps it busy.
    token: the server's token (None = read it from ``token_file``).
    token_file: where to read the token (None = the default place for ``port``, see
        :func:`~edgetrack.runtime.live.protocol.default_token_path`).
    max_message_mib: largest payload accepted from the server, MiB (a larger announcement closes the
        connection with :attr:`failure` set).
    """

    def __init__(self, port: int = 7878, host: str = "127.0.0.1", *, name: str = "",
                 tracker: dict | None = None, detect: dict | None = None, timeout: float = 30.0,
                 keep: bool = True, on_event: Callable[[Any], None] | None = None,
                 max_in_flight: int | None = None, token: str | None = None,
                 token_file: str | Path | None = None, max_message_mib: float = 256.0) -> None:
        if not 0 < max_message_mib <= 4096:
            raise InputError(f"max_message_mib must be in (0, 4096], got {max_message_mib}")
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.max_payload = int(max_message_mib * (1 << 20))
        self.token_file = Path(token_file) if token_file is not None else default_token_path(port)
        self.token = token if token is not None else read_token_file(self.token_file)
        self.failure: str | None = None  # why the receiver stopped, when it was not a normal close
        self._flow = threading.Condition()
        self._pending: collections.deque[int] = collections.deque()  # sent, not yet committed
        self._settled: set[int] = set()  # pending frames dropped or rejected
        self._committed_upto = -1
        self.keep = keep
        self._on_event = on_event
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ConnectionError(f"cannot connect to edgetrack serve at {host}:{port}: {exc.strerror or exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(0.25)
        self._send_lock = threading.Lock()
        self._inbox: queue.Queue = queue.Queue()
        self._control: queue.Queue = queue.Queue()  # READY, ENDED, PONG and refusals, for the calling thread
        self._closing = False
        self.closed = threading.Event()
        self.updates: list[RemoteUpdate] = []
        self.dropped: list[int] = []
        self.errors: list[RemoteError] = []
        self.next_frame = 0
        self.ready: dict[str, Any] = {}
        self._receiver = threading.Thread(target=self._receive, name="edgetrack-client", daemon=True)
        self._receiver.start()
        try:
            self.ready = self._hello(name, tracker or {}, detect or {})
        except BaseException:
            self.close()
            raise
        self._check_flow()

    def _check_flow(self) -> None:
        latency = int(self.ready.get("latency_frames", 0))
        if self.max_in_flight is not None and self.max_in_flight <= latency:
            self.close()
            raise InputError(f"max_in_flight must exceed the session latency of {latency} frames, "
                             f"got {self.max_in_flight}")

    @property
    def in_flight(self) -> int:
        """Frames sent that are not yet committed, dropped or rejected."""
        with self._flow:
            return len(self._pending) - len(self._settled)

    def _wait_for_room(self) -> None:
        if self.max_in_flight is None:
            return
        deadline = time.monotonic() + self.timeout
        with self._flow:
            while len(self._pending) - len(self._settled) >= self.max_in_flight:
                if self.closed.is_set():
                    raise ConnectionError(self._closed_reason())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no frame was committed within {self.timeout} s (max_in_flight "
                                       f"{self.max_in_flight})")
                self._flow.wait(min(left, 0.25))

    def _send_item(self, kind: Msg, index: int, header: dict[str, Any], payload: bytes | memoryview) -> None:
        """Send one frame or SPOTS message, registered as in flight *before* it goes out: the server's
        answer (an ERROR or DROPPED for it) can arrive before ``sendall`` returns."""
        with self._flow:
            self._pending.append(index)
        try:
            self._send(kind, header, payload)
        except BaseException:
            with self._flow:
                self._pending.remove(index)  # it never left: nothing will settle it
            raise
        self.next_frame = index + 1

    # ------------------------------------------------------------------ sending
    def _send(self, kind: Msg, header: dict[str, Any], payload: bytes | memoryview = b"") -> None:
        if self.closed.is_set():
            raise ConnectionError("the connection to the server is closed")
        with self._send_lock:
            try:
                send_message(self.sock, kind, header, payload, timeout=self.timeout)
            except OSError as exc:
                raise ConnectionError(f"sending to the server failed: {exc}") from None

    def _closed_reason(self) -> str:
        fatal = [e for e in self.errors if e.fatal]
        if fatal:
            return f"the server closed the connection ({fatal[-1].code}: {fatal[-1].message})"
        if self.failure:
            return f"the connection was closed: {self.failure}"
        return "the server closed the connection"

    def _wait_control(self, expected: Msg) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                kind, header = self._control.get(timeout=max(0.0, min(0.25, deadline - time.monotonic())))
            except queue.Empty:
                if self.closed.is_set():
                    raise ConnectionError(self._closed_reason()) from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {expected.name} from the server within {self.timeout} s") from None
                continue
            if kind == expected:
                return header
            if kind == Msg.ERROR:
                message = str(header.get("message", ""))
                if header.get("code") == "bad_config":
                    raise ConfigError(message)
                if header.get("code") == "unauthorized" and self.token is None:
                    message += f" (no token was found in {self.token_file}: is the server on this port, " \
                               "started by this user? pass token= or token_file=)"
                raise ServerError(f"{header.get('code')}: {message}")

    def _hello(self, name: str, tracker: dict, detect: dict) -> dict[str, Any]:
        hello: dict[str, Any] = {"name": name, "tracker": tracker, "detect": detect}
        if self.token is not None:
            hello["token"] = self.token
        self._send(Msg.HELLO, hello)
        return self._wait_control(Msg.READY)

    def send_frame(self, image: np.ndarray, frame: int | None = None) -> int:
        """Send a 2-D image (uint8/16/32, int16/32, float32/64); returns its frame index. Does not wait."""
        image = np.asarray(image)
        if image.ndim != 2:
            raise InputError(f"frame must be a 2-D image, got shape {image.shape}")
        if image.dtype.name not in FRAME_DTYPES:
            raise InputError(f"dtype {image.dtype} cannot be sent (use one of {', '.join(FRAME_DTYPES)})")
        little = image.dtype.newbyteorder("<")
        image = np.ascontiguousarray(image, dtype=little)
        index = self.next_frame if frame is None else int(frame)
        self._wait_for_room()
        self._send_item(Msg.FRAME, index, {"frame": index, "shape": list(image.shape), "dtype": image.dtype.name},
                        image.data.cast("B"))
        return index

    def send_spots(self, spots: pd.DataFrame | np.ndarray, frame: int | None = None,
                   columns: list[str] | None = None) -> int:
        """Send the detections of one frame (``y, x`` [+ numeric features]); returns its frame index."""
        if isinstance(spots, pd.DataFrame):
            names = [c for c in spots.columns if c not in ("frame", "track_id", "particle")]
            values = spots[names].to_numpy(dtype=np.float64)
        else:
            values = np.asarray(spots, dtype=np.float64)
            names = list(columns or ["y", "x"])
            if values.ndim != 2 or values.shape[1] != len(names):
                raise InputError(f"spots of shape {values.shape} do not match columns {names}")
        index = self.next_frame if frame is None else int(frame)
        self._wait_for_room()
        self._send_item(Msg.SPOTS, index, {"frame": index, "columns": [str(c) for c in names],
                                           "rows": int(values.shape[0])}, encode_table(values))
        return index

    def ping(self) -> dict[str, Any]:
        """Round trip; returns the session's counters (received, dropped, tracked, committed, queued)."""
        self._send(Msg.PING, {})
        return self._wait_control(Msg.PONG)

    def end(self) -> dict[str, Any]:
        """End the stream: the server commits every frame; returns its summary once all updates are in."""
        self._send(Msg.END, {})
        return self._wait_control(Msg.ENDED)

    def restart(self, name: str = "", tracker: dict | None = None, detect: dict | None = None) -> dict[str, Any]:
        """Start a new session on the same connection (after :meth:`end`)."""
        self.next_frame = 0
        with self._flow:
            self._pending.clear()
            self._settled.clear()
            self._committed_upto = -1
        self.ready = self._hello(name, tracker or {}, detect or {})
        self._check_flow()
        return self.ready

    def shutdown_server(self) -> None:
        """Ask the server to stop (it ends every session cleanly; it must allow remote shutdown)."""
        self._send(Msg.SHUTDOWN, {"token": self.token} if self.token is not None else {})

    # ------------------------------------------------------------------ receiving
    def _receive(self) -> None:
        try:
            while True:
                try:
                    kind, header, payload = read_message(self.sock, max_payload=self.max_payload,
                                                         message_timeout=self.timeout,
                                                         should_stop=lambda: self._closing)
                except ConnectionClosed as exc:
                    if exc.truncated and not self._closing:
                        self.failure = str(exc)
                    return
                except ProtocolError as exc:
                    self.failure = f"the server sent a message this client refuses ({exc.code}: {exc})"
                    return
                except OSError as exc:
                    if not self._closing:
                        self.failure = f"connection error: {exc}"
                    return
                try:
                    self._handle(kind, header, payload)
                except (ProtocolError, KeyError, TypeError, ValueError) as exc:
                    self.failure = f"the server sent a malformed {Msg(kind).name if kind in iter(Msg) else kind} " \
                                   f"message ({exc})"
                    return
        finally:
            self.closed.set()

    def _handle(self, kind: int, header: dict[str, Any], payload: bytearray) -> None:
        now = time.perf_counter()
        if kind == Msg.UPDATE:
            columns, values = decode_table(header, payload, "UPDATE")
            self._emit(RemoteUpdate(_int(header, "frame"), tuple(columns), values.copy(), now))
        elif kind == Msg.DROPPED:
            self._emit(Dropped(_int(header, "frame"), int(header.get("dropped_total", 0)),
                               str(header.get("reason", "queue_full"))))
        elif kind == Msg.ERROR:
            frame = header.get("frame")
            err = RemoteError(str(header.get("code")), str(header.get("message")),
                              frame if isinstance(frame, int) and not isinstance(frame, bool) else None,
                              bool(header.get("fatal")))
            self._emit(err)
            if err.code in _REFUSALS or err.fatal:
                self._control.put((Msg.ERROR, header))
        elif kind in (Msg.READY, Msg.ENDED, Msg.PONG):
            self._control.put((Msg(kind), header))

    def _settle(self, event: Any) -> None:
        with self._flow:
            if isinstance(event, RemoteUpdate):
                self._committed_upto = max(self._committed_upto, event.frame)
                while self._pending and self._pending[0] <= self._committed_upto:
                    self._settled.discard(self._pending.popleft())
            elif event.frame is not None and event.frame > self._committed_upto and event.frame in self._pending:
                self._settled.add(event.frame)
            self._flow.notify_all()

    def _emit(self, event: Any) -> None:
        if isinstance(event, (RemoteUpdate, Dropped)) or (isinstance(event, RemoteError) and event.frame is not None):
            self._settle(event)
        if isinstance(event, RemoteUpdate):
            if self.keep:
                self.updates.append(event)
        elif isinstance(event, Dropped):
            self.dropped.append(event.frame)
        elif isinstance(event, RemoteError):
            self.errors.append(event)
        if self._on_event is not None:
            self._on_event(event)
        else:
            self._inbox.put(event)

    def poll(self, timeout: float = 0.0) -> list[Any]:
        """Events received since the last poll (RemoteUpdate, Dropped, RemoteError), waiting up to ``timeout`` s
        for the first one."""
        events = []
        try:
            events.append(self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait())
        except queue.Empty:
            return events
        while True:
            try:
                events.append(self._inbox.get_nowait())
            except queue.Empty:
                return events

    def tracks(self) -> pd.DataFrame:
        """Every committed point received so far (needs ``keep=True``), sorted by frame."""
        if not self.updates:
            return pd.DataFrame({c: np.zeros(0, np.int64 if c not in ("y", "x") else np.float64)
                                 for c in ("frame", "y", "x", "track_id")})
        return pd.concat([u.to_dataframe() for u in self.updates], ignore_index=True)

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Close the connection (the server then commits and ends the session on its side)."""
        self._closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._receiver.join(2.0)
        self.sock.close()
        self.closed.set()

    def __enter__(self) -> "TrackClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _int(header: dict[str, Any], key: str) -> int:
    value = header[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"'{key}' must be an integer, got {value!r}")
    return value
