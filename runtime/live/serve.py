"""``edgetrack serve``: live tracking for programs in other languages, over a localhost TCP socket.

Why plain TCP with a length-prefixed binary header (and not ZeroMQ or HTTP):

- No dependency on either side. ZeroMQ needs pyzmq here and a binding in every client (JeroMQ for
  Java, NetMQ for C#, a third-party toolkit for LabVIEW); a TCP socket is built into all of them,
  LabVIEW included (TCP Open/Write/Read).
- One persistent connection is one tracking session: frames arrive in order on it, updates go back
  on it as frames are committed, and the server knows at once when a client disappears (end of
  stream). HTTP would need polling or chunked streaming to return updates that become final later.
- A fixed 20-byte prefix (magic, version, type, JSON length, payload length) frames every message
  exactly; the bulk pixels travel as raw bytes (no base64, no copies), the few named fields as JSON.

The format is specified in ``docs/serve-protocol.md`` and implemented in
:mod:`edgetrack.runtime.live.protocol`; :mod:`edgetrack.runtime.live.client` is the Python client.

Sessions, back-pressure and failures:

- Each connection gets its own :class:`~edgetrack.runtime.stream.tracker.Tracker` (options from its HELLO
  over the server's defaults) fed through a :class:`~edgetrack.runtime.live.feeder.LiveTracker`: a reader
  thread receives and checks messages, a worker thread detects and links.
- At most ``queue_frames`` frames per client wait for the worker. A frame arriving when the queue is
  full is dropped (tail drop: the newest frame goes) and a DROPPED message says so at once; the
  tracker sees an empty frame there. Per client, memory is bounded by ``queue_frames + 2`` messages
  of at most ``max_frame_mib``, and at most ``max_clients`` clients are served.
- Bad input (wrong shape or dtype, payload size, NaN, frames out of order, unknown message) gets an
  ERROR naming the problem and the session goes on. A broken byte stream (bad magic, oversized or
  truncated message) gets a fatal ERROR; the session is then ended as if by END, the connection closed.
- A client that disappears: its queued frames are still tracked and its window committed; with
  ``out_dir`` every committed point of every session is also written to ``out_dir/<session>.csv``.
- Shutdown (SIGINT/SIGTERM to ``edgetrack serve``, :meth:`TrackServer.shutdown`, or a SHUTDOWN
  message) stops accepting, ends every session cleanly (queued frames tracked, remaining updates and
  ENDED sent) and closes the connections.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgetrack.runtime.io.atomic import atomic_open
from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.errors import ConfigError, EdgetrackError, InputError
from edgetrack.runtime.live.feeder import LiveTracker
from edgetrack.runtime.live.protocol import (ConnectionClosed, Msg, ProtocolError, decode_frame, decode_table, encode_table,
                             frame_index, read_message, send_message)
from edgetrack.runtime.stream.tracker import Tracker, TrackUpdate

#: Leading columns of every UPDATE table; the tracker's point columns (y, x, features) follow.
UPDATE_ID_COLUMNS = ("track_id", "parent_track_id", "det_id", "parent_det_id")
DROP_POLICY = "newest"
_POLL_S = 0.25  # how often idle threads look at the shutdown flag


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class ServeConfig(StageConfig):
    """Options of ``edgetrack serve``.

    host: loopback address to listen on (127.0.0.1, ::1 or localhost; nothing else is accepted).
    port: TCP port; 0 = any free port (see :attr:`TrackServer.address`).
    queue_frames: frames per client waiting to be tracked before new ones are dropped.
    max_clients: connections served at once; more are refused with an ERROR.
    max_frame_mib: largest message payload accepted, MiB.
    max_skip: largest forward jump of the frame index in one message, frames.
    message_timeout: seconds a started message may take to arrive completely (else: truncated).
    send_timeout: seconds a client may leave an outgoing message unread before it is dropped.
    allow_shutdown: whether a client's SHUTDOWN message stops the server.
    out_dir: folder where each session's committed tracks are written as CSV (None = not written).
    tracker: default :class:`~edgetrack.runtime.stream.config.TrackerConfig` options of new sessions.
    detect: default :class:`~edgetrack.runtime.detect.config.DetectConfig` options of new sessions.
    """

    host: str = "127.0.0.1"
    port: int = 7878
    queue_frames: int = 8
    max_clients: int = 8
    max_frame_mib: float = 64.0
    max_skip: int = 1000
    message_timeout: float = 10.0
    send_timeout: float = 30.0
    allow_shutdown: bool = True
    out_dir: str | None = None
    tracker: dict = dataclasses.field(default_factory=dict)
    detect: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        require(_loopback(self.host), f"host must be a loopback address (127.0.0.1, ::1, localhost): the server "
                f"only listens locally, got {self.host!r}")
        require(isinstance(self.port, int) and 0 <= self.port <= 65535, f"port must be in 0..65535, got {self.port}")
        require(isinstance(self.queue_frames, int) and self.queue_frames >= 1,
                f"queue_frames must be an integer >= 1, got {self.queue_frames}")
        require(isinstance(self.max_clients, int) and self.max_clients >= 1,
                f"max_clients must be an integer >= 1, got {self.max_clients}")
        require(0 < self.max_frame_mib <= 4096, f"max_frame_mib must be in (0, 4096], got {self.max_frame_mib}")
        require(isinstance(self.max_skip, int) and self.max_skip >= 1, f"max_skip must be >= 1, got {self.max_skip}")
        require(self.message_timeout > 0, f"message_timeout must be > 0 s, got {self.message_timeout}")
        require(self.send_timeout > 0, f"send_timeout must be > 0 s, got {self.send_timeout}")
        require(isinstance(self.tracker, dict) and isinstance(self.detect, dict), "tracker and detect must be dicts")
        Tracker(self.tracker, detect=self.detect)  # unknown or bad tracker options fail here

    @property
    def max_payload(self) -> int:
        return int(self.max_frame_mib * (1 << 20))


class _Session:
    """One client's tracking session: a LiveTracker whose updates go back on the connection."""

    def __init__(self, conn: "_Connection", session_id: int, name: str, tracker: Tracker) -> None:
        cfg = conn.server.config
        self.conn = conn
        self.id = session_id
        self.name = name
        self.tracker = tracker
        self.n_tracks = 0
        self._file_ctx = None
        self._writer = None
        self.path: Path | None = None
        if cfg.out_dir is not None:
            from edgetrack.runtime.stream.writer import UpdateWriter

            safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40]
            self.path = Path(cfg.out_dir) / f"session{session_id:04d}{'-' + safe if safe else ''}.csv"
            self._file_ctx = atomic_open(self.path, "w", newline="")
            self._writer = UpdateWriter(self._file_ctx.__enter__(), chunk=2000)
        self.live = LiveTracker(tracker, queue_size=cfg.queue_frames, history=1, max_skip=cfg.max_skip,
                                on_update=self._on_update, on_drop=self._on_drop, on_error=self._on_error)

    def _on_update(self, updates: list[TrackUpdate]) -> None:
        for update in updates:
            if len(update):
                self.n_tracks = max(self.n_tracks, int(update.track_id.max()) + 1)
            if self._writer is not None:
                self._writer.write([update])
            ids = np.stack([update.track_id, update.parent_track_id, update.det_id, update.parent_det_id], axis=1)
            table = np.concatenate([ids.astype(np.float64), update.values], axis=1)
            columns = [*UPDATE_ID_COLUMNS, *update.columns]
            self.conn.send(Msg.UPDATE, {"frame": int(update.frame), "rows": int(len(update)), "columns": columns,
                                        "latest": int(self.tracker.frames_pushed - 1)},
                           encode_table(table))

    def _on_drop(self, frame: int) -> None:
        self.conn.send(Msg.DROPPED, {"frame": frame, "dropped_total": self.live.frames_dropped})

    def _on_error(self, frame: int, exc: Exception) -> None:
        self.conn.send(Msg.ERROR, {"code": "tracking_failed", "message": str(exc), "frame": frame, "fatal": False})

    def finish(self, timeout: float | None) -> dict[str, Any]:
        """Track what is queued, commit the window, close the CSV; returns the ENDED counters."""
        try:
            self.live.finish(timeout)
        finally:
            if self._file_ctx is not None:
                self._writer.close()
                self._file_ctx.__exit__(None, None, None)
                self._file_ctx = None
        stats = self.live.stats()
        return {"session": self.id, "frames_received": stats["received"], "frames_committed": stats["committed"],
                "frames_dropped": stats["dropped"], "errors": stats["errors"], "tracks": self.n_tracks,
                "file": str(self.path) if self.path is not None else None}


def _error_code(exc: InputError) -> str:
    text = str(exc)
    if "must increase" in text:
        return "out_of_order"
    if "skips" in text:
        return "frame_skip"
    if "shape" in text:
        return "bad_shape"
    if "mix" in text:
        return "mixed_input"
    return "bad_input"


class _Connection:
    """A connected client: the reader thread, the current session, a lock for sending."""

    def __init__(self, server: "TrackServer", sock: socket.socket, conn_id: int) -> None:
        self.server = server
        self.sock = sock
        self.id = conn_id
        self.session: _Session | None = None
        self._send_lock = threading.Lock()
        self.gone = False  # the client stopped reading or closed the connection
        self.thread = threading.Thread(target=self._run, name=f"edgetrack-serve-{conn_id}", daemon=True)

    # ------------------------------------------------------------------ sending
    def send(self, kind: Msg, header: dict[str, Any], payload: bytes = b"") -> bool:
        """Send a message; False (and the client marked gone) when it cannot be delivered."""
        with self._send_lock:
            if self.gone:
                return False
            try:
                send_message(self.sock, kind, header, payload, timeout=self.server.config.send_timeout)
                return True
            except OSError:  # closed, reset, or not read for send_timeout s: stop serving this client
                self.gone = True
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)  # the reader thread sees the end and ends the session
                except OSError:
                    pass
                return False

    def error(self, code: str, message: str, frame: int | None = None, fatal: bool = False) -> None:
        self.send(Msg.ERROR, {"code": code, "message": message, "frame": frame, "fatal": fatal})

    # ------------------------------------------------------------------ reading
    def _run(self) -> None:
        cfg = self.server.config
        try:
            while not self.server.stopping:
                try:
                    kind, header, payload = read_message(self.sock, max_payload=cfg.max_payload,
                                                         message_timeout=cfg.message_timeout,
                                                         should_stop=lambda: self.server.stopping)
                except ConnectionClosed as exc:
                    if exc.truncated and not self.server.stopping:
                        self.error("truncated", f"{exc}: the partial message was discarded", fatal=True)
                    break
                except ProtocolError as exc:
                    self.error(exc.code, str(exc), exc.frame, fatal=True)
                    break
                except OSError:  # connection reset
                    self.gone = True
                    break
                try:
                    if not self._dispatch(kind, header, payload):
                        break
                except ProtocolError as exc:
                    self.error(exc.code, str(exc), exc.frame, fatal=exc.fatal)
                    if exc.fatal:
                        break
                except InputError as exc:
                    self.error(_error_code(exc), str(exc), header.get("frame"))
                except EdgetrackError as exc:
                    self.error("bad_config" if isinstance(exc, ConfigError) else "bad_input", str(exc),
                               header.get("frame"))
            if self.server.stopping:
                self.error("shutting_down", "the server is shutting down; the session was ended", fatal=True)
        finally:
            self.end_session()
            self.close()
            self.server._forget(self)

    def _dispatch(self, kind: int, header: dict[str, Any], payload: bytearray) -> bool:
        """Handle one message; False ends the connection."""
        if kind == Msg.HELLO:
            if self.session is not None:
                raise ProtocolError("session_active", "HELLO while a session is active: send END first")
            self.start_session(header)
        elif kind == Msg.FRAME:
            image = decode_frame(header, payload)
            self._ensure_session().live.submit(image, frame=frame_index(header))
        elif kind == Msg.SPOTS:
            frame = frame_index(header)
            columns, values = decode_table(header, payload)
            table = pd.DataFrame(values, columns=columns)
            self._ensure_session().live.submit(table, frame=frame)
        elif kind == Msg.END:
            if self.session is None:
                self.send(Msg.ENDED, {"session": None, "frames_received": 0, "frames_committed": 0,
                                      "frames_dropped": 0, "errors": 0, "tracks": 0, "file": None})
            else:
                self.end_session()
        elif kind == Msg.PING:
            stats = self.session.live.stats() if self.session is not None else {}
            self.send(Msg.PONG, {"session": self.session.id if self.session else None, **stats})
        elif kind == Msg.SHUTDOWN:
            if not self.server.config.allow_shutdown:
                raise ProtocolError("not_allowed", "this server does not accept SHUTDOWN messages")
            self.server.request_shutdown()
            return False
        else:
            raise ProtocolError("unknown_type", f"unknown message type {kind}")
        return True

    # ------------------------------------------------------------------ sessions
    def _ensure_session(self) -> _Session:
        if self.session is None:
            self.start_session({})
        assert self.session is not None
        return self.session

    def start_session(self, header: dict[str, Any]) -> None:
        cfg = self.server.config
        tracker_options = header.get("tracker") or {}
        detect_options = header.get("detect") or {}
        name = header.get("name") or ""
        if not isinstance(tracker_options, dict) or not isinstance(detect_options, dict) or not isinstance(name, str):
            raise ProtocolError("bad_config", "HELLO: 'tracker' and 'detect' must be objects, 'name' a string")
        # the updates leave on the socket (and to the CSV): the tracker keeps no history (flat memory)
        tracker = Tracker({**cfg.tracker, **tracker_options, "keep_results": False},
                          detect={**cfg.detect, **detect_options})
        session_id = self.server._next_session()
        self.session = _Session(self, session_id, name, tracker)
        self.send(Msg.READY, {"session": session_id, "protocol": 1, "queue_frames": cfg.queue_frames,
                              "drop_policy": DROP_POLICY, "latency_frames": tracker.config.window - 1,
                              "update_columns": list(UPDATE_ID_COLUMNS),
                              "tracker": tracker.config.to_dict(), "detect": tracker.detect_config.to_dict()})

    def end_session(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        timeout = None if not self.server.stopping else self.server.shutdown_timeout
        summary = session.finish(timeout)
        self.send(Msg.ENDED, summary)
        self.server._record(summary)

    def close(self) -> None:
        with self._send_lock:
            self.gone = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _warm_up(cfg: ServeConfig) -> None:
    """Track a few small frames with moving spots: loads every compiled kernel (detection, candidate
    graph, scoring, linking) before the first client's frames arrive."""
    rng = np.random.default_rng(0)
    tracker = Tracker(cfg.tracker, detect=cfg.detect)
    yy, xx = np.mgrid[0:64, 0:64]
    for t in range(tracker.config.window + 2):
        image = np.full((64, 64), 100.0)
        for cy, cx in ((16.0, 16.0), (40.0, 20.0), (30.0, 45.0)):
            image += 600.0 * np.exp(-((yy - cy - 0.4 * t) ** 2 + (xx - cx + 0.3 * t) ** 2) / (2 * 1.5 ** 2))
        tracker.push(rng.poisson(image).astype(np.uint16))
    tracker.flush()


class TrackServer:
    """The ``edgetrack serve`` server; use :meth:`start` (background) or :meth:`serve_forever`.

    >>> with TrackServer(port=0) as server:          # doctest: +SKIP
    ...     host, port = server.address
    """

    def __init__(self, config: ServeConfig | dict | None = None, **options: Any) -> None:
        if isinstance(config, ServeConfig):
            self.config = config.replace(**options) if options else config
        else:
            self.config = ServeConfig.from_dict(config or {}, **options)
        if self.config.out_dir is not None and not Path(self.config.out_dir).is_dir():
            raise ConfigError(f"out_dir {self.config.out_dir} is not an existing folder")
        self._listener: socket.socket | None = None
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._sessions = itertools.count(1)
        self.shutdown_timeout = 10.0
        self.finished_sessions: list[dict[str, Any]] = []  # the ENDED summaries (most recent 1000)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def address(self) -> tuple[str, int]:
        if self._listener is None:
            raise InputError("the server is not started")
        host, port = self._listener.getsockname()[:2]
        return host, port

    def start(self, warm_up: bool = True) -> "TrackServer":
        """Bind, listen and accept clients in a background thread; returns at once.

        warm_up: first track two small frames, so that the compiled kernels are loaded before the
        first client's frames arrive (otherwise its first frames may wait for them and be dropped).
        """
        cfg = self.config
        if warm_up:
            _warm_up(cfg)
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        host = "127.0.0.1" if cfg.host == "localhost" else cfg.host
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.bind((host, cfg.port))
        except OSError as exc:
            listener.close()
            raise ConfigError(f"cannot listen on {host}:{cfg.port}: {exc.strerror or exc}") from None
        listener.listen(cfg.max_clients + 4)
        listener.settimeout(_POLL_S)
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept, name="edgetrack-serve-accept", daemon=True)
        self._accept_thread.start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while not self.stopping:
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            sock.settimeout(_POLL_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock, next(self._ids))
            with self._lock:
                busy = len(self._connections) >= self.config.max_clients
                if not busy:
                    self._connections.add(conn)
            if busy:
                conn.error("server_busy", f"the server already serves {self.config.max_clients} clients", fatal=True)
                conn.close()
                continue
            conn.thread.start()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _next_session(self) -> int:
        return next(self._sessions)

    def _record(self, summary: dict[str, Any]) -> None:
        with self._lock:
            self.finished_sessions.append(summary)
            del self.finished_sessions[:-1000]

    @property
    def n_clients(self) -> int:
        with self._lock:
            return len(self._connections)

    def request_shutdown(self) -> None:
        """Ask for a shutdown from any thread (a signal handler, a client message); returns at once."""
        if not self._stopping.is_set():
            self._stopping.set()
            threading.Thread(target=self.shutdown, name="edgetrack-serve-shutdown", daemon=True).start()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop accepting, end every session cleanly and close the connections (at most ~``timeout`` s)."""
        self.shutdown_timeout = timeout
        self._stopping.set()
        if self._accept_thread is not None and self._accept_thread is not threading.current_thread():
            self._accept_thread.join(timeout)
        if self._listener is not None:
            self._listener.close()
        deadline = time.monotonic() + timeout
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.thread.join(max(0.0, deadline - time.monotonic()))
        for conn in connections:  # stragglers (a client that stopped reading): cut them off
            if conn.thread.is_alive():
                conn.close()
                conn.thread.join(1.0)
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has shut down; True if it has."""
        return self._stopped.wait(timeout)

    def serve_forever(self) -> None:
        """Start (if needed) and block until :meth:`request_shutdown` or :meth:`shutdown` completes."""
        if self._listener is None:
            self.start()
        while not self._stopped.wait(_POLL_S):
            pass

    def __enter__(self) -> "TrackServer":
        if self._listener is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stopping.is_set():  # a shutdown is already under way (signal, SHUTDOWN message)
            self.wait(self.shutdown_timeout + 5.0)
        else:
            self.shutdown()
