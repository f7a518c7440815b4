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

Authentication: each server makes a random token and writes it to a file only the user can read
(``serve-<port>.token`` in :func:`~edgetrack.runtime.live.protocol.runtime_dir`, or ``token_file``); the
first message of a connection must be a HELLO carrying it. Unauthenticated connections do not count
against ``max_clients``, have ``auth_timeout`` s to authenticate and are capped (``max_pending``), so
idle or half-sent sockets cannot lock real clients out; every message must arrive within
``message_timeout`` s of its first byte.

Sessions, back-pressure and failures:

- Each connection gets its own :class:`~edgetrack.runtime.stream.tracker.Tracker` (options from its HELLO
  over the server's defaults) fed through a :class:`~edgetrack.runtime.live.feeder.LiveTracker`: a reader
  thread receives and checks messages, a worker thread detects and links.
- At most ``queue_frames`` frames per client wait for the worker. A frame arriving when the queue is
  full is dropped (tail drop: the newest frame goes) and a DROPPED message says so at once; the
  tracker sees an empty frame there. Every accepted frame gets exactly one outcome: tracked (its
  UPDATE) or DROPPED (with a reason).
- Memory: limits are checked on the header, before a payload is read (rows per SPOTS, detections per
  frame, window, max_gap, max_distance, frame skips); payloads are read in 1 MiB pieces; a
  server-wide budget (``max_memory_mib``) counts the payloads held and an estimate of every tracker
  window (a message is reserved on arrival; when its frame is tracked, the reservation is exchanged
  for its window charge in one step, so the peak stays within the budget unless a frame's window
  estimate exceeds its reservation: frames of over ~9 spots per 1,000 pixels), and when it is full the server stops reading from clients (TCP back-pressure) for up to
  ``budget_wait`` s before it refuses a message with ERROR ``over_budget``.
- Bad input (wrong shape or dtype, payload size, NaN, frames out of order, unknown message) gets an
  ERROR naming the problem and the session goes on. A broken byte stream (bad magic, oversized or
  truncated message) gets a fatal ERROR; the session is then ended as if by END, the connection closed.
- Any other failure inside a session (a bug, ``MemoryError``, a full disk under ``out_dir``) ends that
  session alone: a fatal ERROR ``session_failed`` naming the stage and the cause, DROPPED for every
  frame not committed, ENDED, and the connection closes; its committed points are final and its file
  is completed. Other sessions and the server go on.
- A client that disappears: its queued frames are still tracked and its window committed; with
  ``out_dir`` every committed point of every session is also written to
  ``out_dir/<run>-session<NNNN>-<name>.csv`` (``<run>`` is unique per server run) and each ended
  session is listed in ``out_dir/<run>-sessions.csv``.
- Shutdown (SIGINT/SIGTERM to ``edgetrack serve``, :meth:`TrackServer.shutdown`, or a SHUTDOWN
  message) stops accepting, ends every session cleanly (queued frames tracked, remaining updates and
  ENDED sent) and closes the connections.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hmac
import io
import ipaddress
import itertools
import re
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.errors import ConfigError, EdgetrackError, InputError
from edgetrack.runtime.io.atomic import atomic_open
from edgetrack.runtime.live.feeder import LiveTracker, LiveTrackerFailed, describe_failure, window_bytes
from edgetrack.runtime.live.protocol import (ConnectionClosed, Incoming, Msg, ProtocolError, decode_frame, decode_table,
                                             default_token_path, discard_payload, encode_table, frame_header,
                                             frame_index, read_header, read_payload, read_token_file, send_message,
                                             table_header, write_token_file)
from edgetrack.runtime.stream.tracker import Tracker, TrackUpdate

#: Leading columns of every UPDATE table; the tracker's point columns (y, x, features) follow.
UPDATE_ID_COLUMNS = ("track_id", "parent_track_id", "det_id", "parent_det_id")
DROP_POLICY = "newest"
#: Columns of the ``<run>-sessions.csv`` index written with ``out_dir``.
INDEX_COLUMNS = ("run", "session", "name", "status", "file", "frames_received", "frames_tracked", "frames_committed",
                 "frames_dropped", "tracks", "started", "ended", "error")
_POLL_S = 0.25  # how often idle threads look at the shutdown flag
#: Working memory of spot detection per pixel, bytes (a float64 copy plus filter buffers; measured ~8 B/px).
DETECT_BYTES_PER_PIXEL = 12


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class ServeConfig(StageConfig):
    """Options of ``edgetrack serve``.

    host: loopback address to listen on (127.0.0.1, ::1 or localhost; nothing else is accepted).
    port: TCP port; 0 = any free port (see :attr:`TrackServer.address`).
    queue_frames: frames per client waiting to be tracked before new ones are dropped.
    max_clients: authenticated connections served at once; more are refused with an ERROR.
    max_pending: connections not yet authenticated at once (each has ``auth_timeout`` s).
    max_per_address: connections at once from one client address (authenticated or not).
    auth_timeout: seconds a new connection has to send a HELLO with the token.
    max_frame_mib: largest message payload accepted, MiB.
    max_rows: most rows in one SPOTS message, and most detections one FRAME may yield.
    max_pairs: most candidate pairs (detections within max_distance of each other) in one frame.
    largest_window: largest ``window`` a HELLO may ask for, frames.
    largest_gap: largest ``max_gap`` a HELLO may ask for, frames.
    max_skip: largest forward jump of the frame index in one message, frames.
    max_memory_mib: server-wide budget for received payloads and tracker windows, MiB; when it is
        full the server stops reading from clients, and refuses a message after ``budget_wait`` s.
    budget_wait: seconds a message may wait for room in the memory budget before it is refused.
    message_timeout: seconds a message may take to arrive completely, from its first byte (else: truncated).
    send_timeout: seconds a client may leave an outgoing message unread before it is dropped.
    allow_shutdown: whether a client's SHUTDOWN message (with the token) stops the server.
    out_dir: folder where each session's committed tracks are written as CSV (created if missing;
        None = not written).
    token_file: where the token is written (None = ``serve-<port>.token`` in the per-user runtime dir).
    tracker: default :class:`~edgetrack.runtime.stream.config.TrackerConfig` options of new sessions.
    detect: default :class:`~edgetrack.runtime.detect.config.DetectConfig` options of new sessions.
    """

    host: str = "127.0.0.1"
    port: int = 7878
    queue_frames: int = 8
    max_clients: int = 8
    max_pending: int = 16
    max_per_address: int = 24
    auth_timeout: float = 10.0
    max_frame_mib: float = 64.0
    max_rows: int = 100_000
    max_pairs: int = 5_000_000
    largest_window: int = 64
    largest_gap: int = 64
    max_skip: int = 1000
    max_memory_mib: float = 2048.0
    budget_wait: float = 30.0
    message_timeout: float = 10.0
    send_timeout: float = 30.0
    allow_shutdown: bool = False
    out_dir: str | None = None
    token_file: str | None = None
    tracker: dict = dataclasses.field(default_factory=dict)
    detect: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        require(_loopback(self.host), f"host must be a loopback address (127.0.0.1, ::1, localhost): the server "
                f"only listens locally, got {self.host!r}")
        require(_is_int(self.port) and 0 <= self.port <= 65535, f"port must be in 0..65535, got {self.port}")
        for name in ("queue_frames", "max_clients", "max_pending", "max_per_address", "max_rows", "max_pairs",
                     "largest_window", "largest_gap", "max_skip"):
            value = getattr(self, name)
            require(_is_int(value) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        require(0 < self.max_frame_mib <= 4096, f"max_frame_mib must be in (0, 4096], got {self.max_frame_mib}")
        require(0 < self.max_memory_mib <= 1 << 20, f"max_memory_mib must be in (0, 1048576], got {self.max_memory_mib}")
        require(self.max_frame_mib <= self.max_memory_mib, f"max_frame_mib ({self.max_frame_mib}) must not exceed "
                f"max_memory_mib ({self.max_memory_mib}): no frame could ever be accepted")
        for name in ("auth_timeout", "budget_wait", "message_timeout", "send_timeout"):
            value = getattr(self, name)
            require(isinstance(value, (int, float)) and 0 < value < 1e6, f"{name} must be > 0 s, got {value!r}")
        require(isinstance(self.tracker, dict) and isinstance(self.detect, dict), "tracker and detect must be dicts")
        tracker = Tracker(self.tracker, detect=self.detect)  # unknown or bad tracker options fail here
        _check_session_limits(self, tracker)

    @property
    def max_payload(self) -> int:
        return int(self.max_frame_mib * (1 << 20))

    @property
    def budget_bytes(self) -> int:
        return int(self.max_memory_mib * (1 << 20))

    def limits(self) -> dict[str, Any]:
        """The limits a client must respect (echoed in READY)."""
        return {"max_payload_bytes": self.max_payload, "max_rows": self.max_rows, "max_pairs": self.max_pairs,
                "largest_window": self.largest_window, "largest_gap": self.largest_gap,
                "max_skip": self.max_skip - 1, "message_timeout_s": self.message_timeout,
                "max_memory_mib": self.max_memory_mib}


def _check_session_limits(cfg: ServeConfig, tracker: Tracker) -> None:
    tc = tracker.config
    if tc.window > cfg.largest_window:
        raise ConfigError(f"window {tc.window} frames is above this server's limit of {cfg.largest_window} "
                          "(--largest-window)")
    if tc.max_gap > cfg.largest_gap:
        raise ConfigError(f"max_gap {tc.max_gap} frames is above this server's limit of {cfg.largest_gap} "
                          "(--largest-gap)")


class MemoryBudget:
    """Server-wide memory accounting, bytes. Readers :meth:`reserve` room for a payload before reading it
    (waiting while the budget is full: back-pressure); worker threads :meth:`adjust` it without waiting
    (so they never block, and whatever they hold is given back as they progress)."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.used = 0
        self.peak = 0
        self.waits = 0  # reservations that had to wait
        self.refused = 0
        self._cond = threading.Condition()

    def reserve(self, n: int, timeout: float, should_stop) -> bool:
        """Take ``n`` bytes, waiting up to ``timeout`` s for room; False when there was none in time."""
        if n <= 0:
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            if self.used + n > self.limit:
                self.waits += 1
            while self.used + n > self.limit:
                left = deadline - time.monotonic()
                if left <= 0 or should_stop():
                    self.refused += 1
                    return False
                self._cond.wait(min(left, _POLL_S))
            self.used += n
            self.peak = max(self.peak, self.used)
            return True

    def adjust(self, delta: int) -> None:
        """Add (or, negative, give back) ``delta`` bytes without waiting."""
        if not delta:
            return
        with self._cond:
            self.used = max(0, self.used + int(delta))
            self.peak = max(self.peak, self.used)
            if delta < 0:
                self._cond.notify_all()

    def release(self, n: int) -> None:
        self.adjust(-int(n))

    def stats(self) -> dict[str, float]:
        with self._cond:
            return {"memory_used_mib": round(self.used / (1 << 20), 3), "memory_peak_mib": round(self.peak / (1 << 20), 3),
                    "memory_limit_mib": round(self.limit / (1 << 20), 3), "budget_waits": self.waits,
                    "budget_refused": self.refused}


class _WriteFailed(Exception):
    """Writing a session's CSV failed (carries the stage name for the failure report)."""

    stage = "write"


class _Session:
    """One client's tracking session: a LiveTracker whose updates go back on the connection."""

    def __init__(self, conn: "_Connection", session_id: int, name: str, tracker: Tracker) -> None:
        server = conn.server
        cfg = server.config
        self.conn = conn
        self.id = session_id
        self.name = name
        self.tracker = tracker
        self.n_tracks = 0
        self.started = _now()
        self._file_ctx = None
        self._writer = None
        self._write_failed = False
        self.file_error: str | None = None
        self.path: Path | None = None
        self.failure_message: str | None = None
        self._checked_distance = False
        if cfg.out_dir is not None:
            from edgetrack.runtime.stream.writer import UpdateWriter

            safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40]
            self.path = Path(cfg.out_dir) / f"{server.run_id}-session{session_id:04d}{'-' + safe if safe else ''}.csv"
            self._file_ctx = atomic_open(self.path, "w", newline="")
            self._writer = UpdateWriter(self._file_ctx.__enter__(), chunk=2000)
        self.live = LiveTracker(tracker, queue_size=cfg.queue_frames, history=1, max_skip=cfg.max_skip,
                                max_rows=cfg.max_rows, max_pairs=cfg.max_pairs,
                                on_update=self._on_update, on_dropped=self._on_dropped, on_error=self._on_error,
                                on_failure=self._on_failure, on_memory=server.budget.adjust)

    def check_image(self, shape: tuple[int, int], frame: int | None) -> None:
        """max_distance must not exceed the frame (checked on the first FRAME of the session)."""
        if self._checked_distance:
            return
        distance = float(self.tracker.config.max_distance)
        if distance > max(shape):
            raise ProtocolError("bad_config", f"max_distance {distance:g} px is larger than the frame "
                                f"({shape[0]} x {shape[1]} px): send a HELLO with a smaller max_distance", frame=frame)
        self._checked_distance = True

    def _on_update(self, updates: list[TrackUpdate]) -> None:
        # sent first (what the client has is final), then written; a failed write fails the session
        for update in updates:
            if len(update):
                self.n_tracks = max(self.n_tracks, int(update.track_id.max()) + 1)
            ids = np.stack([update.track_id, update.parent_track_id, update.det_id, update.parent_det_id], axis=1)
            table = np.concatenate([ids.astype(np.float64), update.values], axis=1)
            columns = [*UPDATE_ID_COLUMNS, *update.columns]
            self.conn.send(Msg.UPDATE, {"frame": int(update.frame), "rows": int(len(update)), "columns": columns,
                                        "latest": int(self.tracker.frames_pushed - 1)},
                           encode_table(table))
        if self._writer is not None:
            try:
                self._writer.write(updates)  # on failure the writer keeps them pending for the final file
            except Exception as exc:
                if self._write_failed:  # the session is already failing: the final close retries them
                    return
                self._write_failed = True
                raise _WriteFailed(f"writing {self.path}: {describe_failure(exc)}") from exc

    def _on_dropped(self, frame: int, reason: str) -> None:
        self.conn.send(Msg.DROPPED, {"frame": frame, "dropped_total": self.live.frames_dropped, "reason": reason})

    def _on_error(self, frame: int, exc: Exception) -> None:
        code = "too_many_detections" if "spots (at most" in str(exc) or "pairs of its" in str(exc) else "tracking_failed"
        self.conn.send(Msg.ERROR, {"code": code, "message": str(exc), "frame": frame, "fatal": False})

    def _on_failure(self, stage: str, frame: int | None, exc: BaseException) -> None:
        self.conn.wake()  # the reader thread ends the session (it cannot be joined from here)

    def _close_file(self) -> None:
        """Complete the CSV (with any updates whose write failed) or, when that fails too, remove it."""
        if self._file_ctx is None:
            return
        ctx, self._file_ctx = self._file_ctx, None
        try:
            self._writer.close()  # writes what is pending, including updates whose write failed
        except Exception as exc:
            self.file_error = f"{self.path} could not be completed ({describe_failure(exc)}); it was removed"
            try:
                ctx.__exit__(type(exc), exc, exc.__traceback__)
            except Exception:
                pass
            self.path = None
            return
        try:
            ctx.__exit__(None, None, None)
        except Exception as exc:
            self.file_error = f"{self.path} could not be completed ({describe_failure(exc)})"
            self.path = None

    def finish(self, timeout: float | None) -> dict[str, Any]:
        """Track what is queued, commit the window, close the CSV; returns the ENDED counters."""
        try:
            self.live.finish(timeout)
        finally:
            if self.live.failure is None:
                self._close_file()
        return self.summary()

    def abort(self) -> dict[str, Any]:
        """After a failure: stop, report uncommitted frames dropped, complete the CSV; the ENDED counters."""
        try:
            self.live.abort(self.conn.server.shutdown_timeout)
        finally:
            self._close_file()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        stats = self.live.stats()
        failed = self.live.failure is not None
        return {"session": self.id, "name": self.name, "status": "failed" if failed else "ended",
                "frames_received": stats["received"], "frames_tracked": stats["tracked"],
                "frames_committed": stats["committed"], "frames_dropped": stats["dropped"], "errors": stats["errors"],
                "tracks": self.n_tracks, "file": str(self.path) if self.path is not None else None,
                "file_error": self.file_error, "error": self.failure_message, "started": self.started, "ended": _now()}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error_code(exc: InputError) -> str:
    text = str(exc)
    if "must increase" in text:
        return "out_of_order"
    if "skips" in text:
        return "frame_skip"
    if "may not change" in text or "present in earlier frames" in text:
        return "columns_changed"
    if "rows (at most" in text:
        return "too_many_rows"
    if "pairs of its" in text:
        return "too_dense"
    if "shape" in text:
        return "bad_shape"
    if "mix" in text:
        return "mixed_input"
    return "bad_input"


class _Connection:
    """A connected client: the reader thread, the current session, a lock for sending."""

    def __init__(self, server: "TrackServer", sock: socket.socket, conn_id: int, address: str) -> None:
        self.server = server
        self.sock = sock
        self.id = conn_id
        self.address = address
        self.accepted = time.monotonic()
        self.authenticated = False
        self.session: _Session | None = None
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
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

    def wake(self) -> None:
        self._wake.set()

    def _interrupted(self) -> bool:
        """Polled while reading: shutdown, a failed session, or the authentication deadline passed."""
        if self.server.stopping or self._wake.is_set():
            return True
        return not self.authenticated and time.monotonic() > self.accepted + self.server.config.auth_timeout

    # ------------------------------------------------------------------ reading
    def _run(self) -> None:
        cfg = self.server.config
        try:
            while not self.server.stopping:
                if self._failed_session():
                    break
                try:
                    message = read_header(self.sock, max_payload=cfg.max_payload,
                                          message_timeout=cfg.message_timeout, should_stop=self._interrupted)
                except ConnectionClosed as exc:
                    self._closed_while_reading(exc)
                    break
                except ProtocolError as exc:
                    self.error(exc.code, str(exc), exc.frame, fatal=True)
                    break
                except OSError:  # connection reset
                    self.gone = True
                    break
                try:
                    if not self._dispatch(message):
                        break
                except ConnectionClosed as exc:  # in the middle of a payload
                    self._closed_while_reading(exc)
                    break
                except OSError:
                    self.gone = True
                    break
                except ProtocolError as exc:
                    self.error(exc.code, str(exc), exc.frame, fatal=exc.fatal)
                    if exc.fatal:
                        break
                except LiveTrackerFailed:
                    self._failed_session()
                    break
                except InputError as exc:
                    self.error(_error_code(exc), str(exc), _frame_of(message.header))
                except EdgetrackError as exc:
                    self.error("bad_config" if isinstance(exc, ConfigError) else "bad_input", str(exc),
                               _frame_of(message.header))
                except Exception as exc:  # anything else: this session alone ends
                    self._fail_here("receive", _frame_of(message.header), exc)
                    break
            if self.server.stopping:
                self.error("shutting_down", "the server is shutting down; the session was ended", fatal=True)
        except Exception as exc:  # a bug in the loop itself: report it to this client, keep the server up
            self.error("internal_error", f"this connection failed: {describe_failure(exc)}", fatal=True)
        finally:
            try:
                self.end_session()
            except Exception as exc:
                self.error("internal_error", f"ending the session failed: {describe_failure(exc)}", fatal=True)
            self.close()
            self.server._forget(self)

    def _closed_while_reading(self, exc: ConnectionClosed) -> None:
        cfg = self.server.config
        if self._failed_session():
            return
        if not self.authenticated and not self.server.stopping and not self.gone and self._interrupted():
            self.error("unauthorized", f"no HELLO with this server's token within {cfg.auth_timeout:g} s "
                       "of connecting", fatal=True)
        elif exc.truncated and not self.server.stopping:
            self.error("truncated", f"{exc}: the partial message was discarded", fatal=True)

    def _fail_here(self, stage: str, frame: int | None, exc: BaseException) -> None:
        """An unexpected exception in this (the reader) thread: fail the session, or the connection without one."""
        if self.session is not None:
            self.session.live.fail(stage, frame, exc)
            self._failed_session()
        else:
            self.error("internal_error", f"{stage} failed: {describe_failure(exc)}; the connection is closed "
                       "(other clients are not affected)", frame, fatal=True)

    def _failed_session(self) -> bool:
        """If the session failed: ERROR (fatal), DROPPED for its uncommitted frames, ENDED; True."""
        session = self.session
        if session is None or session.live.failure is None:
            return False
        stage, frame, exc = session.live.failure
        where = f" at frame {frame}" if frame is not None else ""
        session.failure_message = (f"session {session.id} failed in stage {stage}{where}: {describe_failure(exc)}; "
                                   f"the {session.live.frames_committed} frames committed before are final")
        self.error("session_failed", session.failure_message + "; this connection is closed (other sessions go on)",
                   frame, fatal=True)
        self.session = None
        summary = session.abort()
        self.server._record(summary)  # the index lists the session before the client hears it ended
        self.send(Msg.ENDED, summary)
        return True

    def _dispatch(self, message: Incoming) -> bool:
        """Handle one message (its payload still on the socket); False ends the connection."""
        kind, header = message.kind, message.header
        if not self.authenticated:
            if kind != Msg.HELLO or message.payload_len:  # fatal: its payload is never read
                raise ProtocolError("unauthorized", "the first message must be a HELLO (no payload) with this "
                                    "server's token", fatal=True)
            self._authenticate(header)
        if kind == Msg.HELLO:
            if self.session is not None:
                raise ProtocolError("session_active", "HELLO while a session is active: send END first")
            self.start_session(header)
        elif kind == Msg.FRAME:
            self._receive_item(message, frame=True)
        elif kind == Msg.SPOTS:
            self._receive_item(message, frame=False)
        elif kind == Msg.END:
            discard_payload(self.sock, message, self._interrupted)
            if self.session is None:
                self.send(Msg.ENDED, {"session": None, "status": "ended", "frames_received": 0, "frames_tracked": 0,
                                      "frames_committed": 0, "frames_dropped": 0, "errors": 0, "tracks": 0,
                                      "file": None})
            else:
                self.end_session()
        elif kind == Msg.PING:
            discard_payload(self.sock, message, self._interrupted)
            stats = self.session.live.stats() if self.session is not None else {}
            self.send(Msg.PONG, {"session": self.session.id if self.session else None, **stats,
                                 **self.server.budget.stats()})
        elif kind == Msg.SHUTDOWN:
            discard_payload(self.sock, message, self._interrupted)
            if not self.server.config.allow_shutdown:
                raise ProtocolError("not_allowed", "this server does not accept SHUTDOWN messages (start it with "
                                    "--allow-remote-shutdown)")
            if not self.server.check_token(header.get("token")):
                raise ProtocolError("unauthorized", "SHUTDOWN must carry this server's token")
            self.server.request_shutdown()
            return False
        else:
            discard_payload(self.sock, message, self._interrupted)
            raise ProtocolError("unknown_type", f"unknown message type {kind}")
        return True

    def _authenticate(self, header: dict[str, Any]) -> None:
        server = self.server
        if not server.check_token(header.get("token")):
            where = server.token_path
            raise ProtocolError("unauthorized", "HELLO must carry this server's token in the field 'token' (it is "
                                f"in {where}, readable only by the user who started the server)"
                                if "token" not in header else "HELLO carries a wrong token", fatal=True)
        if not server._promote(self):
            raise ProtocolError("server_busy", f"the server already serves {server.config.max_clients} clients",
                                fatal=True)
        self.authenticated = True

    def _receive_item(self, message: Incoming, frame: bool) -> None:
        """Check a FRAME / SPOTS header, wait for room in the budget, read the payload, submit it."""
        cfg = self.server.config
        header = message.header
        try:
            index = frame_index(header)
            if frame:
                shape, _ = frame_header(header, message.payload_len)
            else:
                columns, rows = table_header(header, message.payload_len, "SPOTS", cfg.max_rows)
            session = self._ensure_session()
            if frame:
                session.check_image(shape, index)
        except BaseException:
            discard_payload(self.sock, message, self._interrupted)
            raise
        n = message.payload_len
        if frame:  # detection works on a float64 copy: its memory is reserved too, until the frame is tracked
            n += DETECT_BYTES_PER_PIXEL * shape[0] * shape[1]
        else:  # a table's rows enter the tracker's window as they are: that memory is reserved up front
            n = max(n, window_bytes(rows, len(columns), session.tracker.config.max_candidates))
        if n > self.server.budget.limit:
            discard_payload(self.sock, message, self._interrupted)
            raise ProtocolError("over_budget", f"this message needs {n / 2**20:.1f} MiB to be received and detected, "
                                f"more than the server's whole memory budget ({cfg.max_memory_mib:g} MiB, "
                                "--max-memory-mib)", frame=index)
        waited = time.monotonic()
        if not self.server.budget.reserve(n, cfg.budget_wait, lambda: self.server.stopping or self._wake.is_set()):
            discard_payload(self.sock, message, self._interrupted)
            if self.server.stopping or self._wake.is_set():
                return
            used = self.server.budget.stats()["memory_used_mib"]
            raise ProtocolError("over_budget", f"the server's memory budget ({cfg.max_memory_mib:g} MiB, "
                                f"{used:g} MiB held by queued frames and tracker windows) had no room for "
                                f"{budget_wait_text(cfg)}: this message of {n} bytes was refused", frame=index)
        message.deadline += time.monotonic() - waited  # waiting for the budget is not the client's delay
        release = (lambda: self.server.budget.release(n))
        try:
            payload = read_payload(self.sock, message, self._interrupted)
            if frame:
                item = decode_frame(header, payload)
            else:
                columns, values = decode_table(header, payload, "SPOTS", cfg.max_rows)
                item = pd.DataFrame(values, columns=columns, copy=False)
            del payload
        except BaseException:
            release()
            raise
        session.live.submit(item, frame=index, on_release=release, reserved=n)

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
        _check_session_limits(cfg, tracker)
        session_id = self.server._next_session()
        self.session = _Session(self, session_id, name, tracker)
        self.send(Msg.READY, {"session": session_id, "run": self.server.run_id, "protocol": 1,
                              "queue_frames": cfg.queue_frames, "drop_policy": DROP_POLICY,
                              "latency_frames": tracker.config.window - 1, "update_columns": list(UPDATE_ID_COLUMNS),
                              "limits": cfg.limits(), "tracker": tracker.config.to_dict(),
                              "detect": tracker.detect_config.to_dict()})

    def end_session(self) -> None:
        if self._failed_session():
            return
        session, self.session = self.session, None
        if session is None:
            return
        timeout = None if not self.server.stopping else self.server.shutdown_timeout
        summary = session.finish(timeout)
        if session.live.failure is not None:  # the final flush failed
            self.session = session
            self._failed_session()
            return
        self.server._record(summary)
        self.send(Msg.ENDED, summary)

    def close(self) -> None:
        with self._send_lock:
            self.gone = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def budget_wait_text(cfg: ServeConfig) -> str:
    return f"{cfg.budget_wait:g} s (--max-memory-mib)"


def _frame_of(header: dict[str, Any]) -> int | None:
    value = header.get("frame")
    return value if _is_int(value) else None


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


def _new_run_id() -> str:
    """A run id unique per server start: UTC time to the second plus 4 random hex digits."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"run{stamp}-{secrets.token_hex(2)}"


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
        self._listener: socket.socket | None = None
        self._connections: set[_Connection] = set()
        self._per_address: dict[str, int] = {}
        self._n_authenticated = 0
        self._lock = threading.Lock()
        self._index_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._sessions = itertools.count(1)
        self.shutdown_timeout = 10.0
        self.budget = MemoryBudget(self.config.budget_bytes)
        self.run_id = _new_run_id()
        self.token = secrets.token_hex(32)
        self.token_path: Path | None = None
        self.finished_sessions: list[dict[str, Any]] = []  # the ENDED summaries (most recent 1000)
        self._index_rows: list[dict[str, Any]] = []
        self.refused = {"server_busy": 0, "per_address": 0, "pending": 0}

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def address(self) -> tuple[str, int]:
        if self._listener is None:
            raise InputError("the server is not started")
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def index_path(self) -> Path | None:
        """``out_dir/<run>-sessions.csv``: one row per ended session of this run (None without out_dir)."""
        return None if self.config.out_dir is None else Path(self.config.out_dir) / f"{self.run_id}-sessions.csv"

    def check_token(self, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode("utf-8", "replace"),
                                                              self.token.encode("ascii"))

    def start(self, warm_up: bool = True) -> "TrackServer":
        """Create ``out_dir``, bind, write the token file, accept clients in a background thread; returns at once.

        warm_up: first track two small frames, so that the compiled kernels are loaded before the
        first client's frames arrive (otherwise its first frames may wait for them and be dropped).
        """
        cfg = self.config
        if cfg.out_dir is not None:
            try:
                Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"out_dir {cfg.out_dir} cannot be created: {exc.strerror or exc}") from None
            if not Path(cfg.out_dir).is_dir():
                raise ConfigError(f"out_dir {cfg.out_dir} is not a folder")
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
        port = listener.getsockname()[1]
        self.token_path = Path(cfg.token_file) if cfg.token_file else default_token_path(port)
        try:
            write_token_file(self.token_path, self.token)
        except EdgetrackError:
            listener.close()
            raise
        listener.listen(cfg.max_clients + cfg.max_pending + 4)
        listener.settimeout(_POLL_S)
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept, name="edgetrack-serve-accept", daemon=True)
        self._accept_thread.start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        cfg = self.config
        while not self.stopping:
            try:
                sock, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            sock.settimeout(_POLL_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            address = str(peer[0])
            conn = _Connection(self, sock, next(self._ids), address)
            with self._lock:
                pending = len(self._connections) - self._n_authenticated
                if self._per_address.get(address, 0) >= cfg.max_per_address:
                    refusal = ("per_address", f"{address} already has {cfg.max_per_address} connections "
                               "(--max-per-address)")
                elif pending >= cfg.max_pending:
                    refusal = ("pending", f"{pending} connections are waiting to authenticate (--max-pending); "
                               "try again shortly")
                else:
                    refusal = None
                    self._connections.add(conn)
                    self._per_address[address] = self._per_address.get(address, 0) + 1
            if refusal is not None:
                self.refused[refusal[0]] += 1
                conn.error("server_busy", refusal[1], fatal=True)
                conn.close()
                continue
            conn.thread.start()

    def _promote(self, conn: _Connection) -> bool:
        """Count a connection as an authenticated client; False when max_clients are already served."""
        with self._lock:
            if self._n_authenticated >= self.config.max_clients:
                self.refused["server_busy"] += 1
                return False
            self._n_authenticated += 1
            return True

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            if conn in self._connections:
                self._connections.discard(conn)
                left = self._per_address.get(conn.address, 1) - 1
                if left > 0:
                    self._per_address[conn.address] = left
                else:
                    self._per_address.pop(conn.address, None)
                if conn.authenticated:
                    self._n_authenticated -= 1

    def _next_session(self) -> int:
        return next(self._sessions)

    def _record(self, summary: dict[str, Any]) -> None:
        with self._lock:
            self.finished_sessions.append(summary)
            del self.finished_sessions[:-1000]
            if self.config.out_dir is None:
                return
            self._index_rows.append({"run": self.run_id, **{k: summary.get(k) for k in INDEX_COLUMNS if k != "run"}})
            rows = list(self._index_rows)
            path = self.index_path
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=INDEX_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        try:
            with self._index_lock, atomic_open(path, "w", newline="") as handle:
                handle.write(text.getvalue())
        except EdgetrackError:
            pass  # the session files themselves are complete; the index is rewritten at the next session end

    @property
    def n_clients(self) -> int:
        """Connections open now (authenticated or not)."""
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
        deadline = time.monotonic() + timeout + 2.0  # sessions finish within timeout, then send their last messages
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.thread.join(max(0.0, deadline - time.monotonic()))
        for conn in connections:  # stragglers (a client that stopped reading): cut them off
            if conn.thread.is_alive():
                conn.close()
                conn.thread.join(1.0)
        self._remove_token_file()
        self._stopped.set()

    def _remove_token_file(self) -> None:
        path = self.token_path
        if path is not None and read_token_file(path) == self.token:  # never remove another server's token
            try:
                path.unlink()
            except OSError:
                pass

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
