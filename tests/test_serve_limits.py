"""``edgetrack serve``: limits, memory budget, authentication, outcomes of every frame, run-unique files,
and a fuzzer on the message parser."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgetrack.runtime.stream.tracker as tracker_module
from edgetrack.runtime.errors import ConfigError
from edgetrack.runtime.live.client import ServerError, TrackClient
from edgetrack.runtime.live.protocol import (PREFIX, ConnectionClosed, Msg, ProtocolError, default_token_path, encode,
                                             frame_header, parse_header, parse_prefix, read_message, read_token_file,
                                             table_header)
from edgetrack.runtime.live.serve import TrackServer


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "xdg"))


class Raw:
    """A bare socket speaking the byte layout of docs/serve-protocol.md."""

    def __init__(self, port: int, token: str | None = "auto", hello: dict | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        if token == "auto":
            token = read_token_file(default_token_path(port))
        if hello is not None:
            self.send(Msg.HELLO, {"token": token, **hello})
            kind, header, _ = self.read()
            assert kind == Msg.READY, header

    def send(self, kind: int, header: dict, payload: bytes = b"") -> None:
        for part in encode(kind, header, payload):
            self.sock.sendall(part)

    def read(self, timeout: float = 10.0):
        return read_message(self.sock, max_payload=1 << 30, message_timeout=timeout)

    def read_until(self, kind: int) -> list:
        out = []
        while True:
            message = self.read()
            out.append(message)
            if message[0] == kind:
                return out

    def eof(self, timeout: float) -> bool:
        """True if the server closes this connection within ``timeout`` s (messages before are skipped)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except (socket.timeout, TimeoutError):
            return False
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


def slow_detection(monkeypatch, seconds: float) -> None:
    real = tracker_module.detect_spots_array

    def detect(image, config):
        time.sleep(seconds)
        return real(image, config)

    monkeypatch.setattr(tracker_module, "detect_spots_array", detect)


# ---------------------------------------------------------------------- outcomes (issue item 4)
def test_every_accepted_frame_gets_one_outcome_including_drops_at_the_end(small_movie, monkeypatch):
    movie, _ = small_movie
    slow_detection(monkeypatch, 0.05)
    with TrackServer(port=0, queue_frames=1) as server:
        with TrackClient(server.address[1], tracker={"max_distance": 5.0}) as client:
            for image in movie[:12]:
                client.send_frame(image)  # far faster than 20 frames/s: most are dropped, the last ones too
            summary = client.end()
    dropped = set(client.dropped)
    tracked = {u.frame for u in client.updates} - dropped
    assert dropped and 11 in dropped, "the test needs drops at the end"
    assert [u.frame for u in client.updates] == list(range(12))  # one UPDATE per index, the dropped ones empty
    assert dropped | tracked == set(range(12)) and not dropped & tracked
    assert summary["frames_dropped"] == len(dropped) and summary["frames_tracked"] == len(tracked)
    assert summary["frames_received"] == 12


def test_frames_abandoned_at_a_shutdown_timeout_are_reported(small_movie, monkeypatch):
    movie, _ = small_movie
    slow_detection(monkeypatch, 0.3)
    server = TrackServer(port=0, queue_frames=16).start()
    client = TrackClient(server.address[1], tracker={"max_distance": 5.0})
    for image in movie[:12]:
        client.send_frame(image)
    assert client.ping()["received"] == 12
    server.shutdown(timeout=0.5)  # far too short to track 12 frames at 0.3 s each
    assert client.closed.wait(10)
    reasons = {d for d in client.dropped}
    tracked = {u.frame for u in client.updates} - reasons
    assert reasons and reasons | tracked == set(range(12)) and not reasons & tracked
    client.close()


# ---------------------------------------------------------------------- limits (item 2, 12)
def test_limits_are_enforced_up_front_with_clear_errors(small_movie):
    movie, _ = small_movie
    with TrackServer(port=0, max_rows=1000, largest_window=16, largest_gap=8) as server:
        port = server.address[1]
        for options, text in (({"window": 10_000_000}, "window"), ({"window": 17}, "largest-window"),
                              ({"max_gap": 9}, "largest-gap"), ({"max_distance": 1e200}, "max_distance")):
            with pytest.raises(ConfigError, match=text):
                TrackClient(port, tracker=options)
        raw = Raw(port, hello={"tracker": {"max_distance": 4.0}})
        rows = 1_000_001  # 16 MB announced: refused on the header, the payload is skipped unread
        raw.send(Msg.SPOTS, {"frame": 0, "columns": ["y", "x"], "rows": rows}, bytes(rows * 16))
        raw.send(Msg.SPOTS, {"frame": 0, "columns": ["y", "x", "mass"], "rows": 2},
                 np.array([[1.0, 1.0, 5.0], [40.0, 40.0, 6.0]]).tobytes())
        raw.send(Msg.SPOTS, {"frame": 1, "columns": ["y", "x"], "rows": 2}, np.ones((2, 2)).tobytes())  # lost 'mass'
        raw.send(Msg.SPOTS, {"frame": 1, "columns": ["y", "x", "mass", "extra"], "rows": 1}, np.ones(4).tobytes())
        raw.send(Msg.SPOTS, {"frame": 5000, "columns": ["y", "x", "mass"], "rows": 1}, np.ones(3).tobytes())
        raw.send(Msg.SPOTS, {"frame": 1, "columns": ["y", "x", "mass"], "rows": 1}, np.ones(3).tobytes())
        raw.send(Msg.END, {})
        messages = raw.read_until(Msg.ENDED)
        errors = [h for k, h, _ in messages if k == Msg.ERROR]
        assert [e["code"] for e in errors] == ["too_many_rows", "columns_changed", "columns_changed", "frame_skip"]
        assert not any(e["fatal"] for e in errors)
        assert "mass" in errors[1]["message"] and "extra" in errors[2]["message"]
        assert messages[-1][1]["frames_committed"] == 2
        raw.close()


def test_deep_or_huge_json_is_rejected_cleanly():
    with pytest.raises(ProtocolError, match="nested"):
        parse_header(b'{"a":' * 5000 + b"1" + b"}" * 5000)
    with pytest.raises(ProtocolError, match="not valid"):
        parse_header(b'{"a": Infinity}')
    with TrackServer(port=0) as server:
        raw = Raw(server.address[1])
        body = b"[" * 100_000 + b"]" * 100_000  # would be a RecursionError inside json
        raw.sock.sendall(PREFIX.pack(b"ETRK", 1, Msg.HELLO, len(body), 0))
        with pytest.raises(ProtocolError):  # too large for a header (64 KiB): refused on the prefix
            raw.sock.sendall(body)
            kind, header, _ = raw.read()
            assert header["code"] in ("too_large", "bad_message") and header["fatal"]
            raise ProtocolError("ok", "ok")
        raw.close()
        raw = Raw(server.address[1])
        body = b"[" * 1000 + b"]" * 1000
        raw.sock.sendall(PREFIX.pack(b"ETRK", 1, Msg.HELLO, len(body), 0) + body)
        kind, header, _ = raw.read()
        assert kind == Msg.ERROR and header["code"] == "bad_message" and "nested" in header["message"]
        raw.close()
        with TrackClient(server.address[1]) as client:  # the server is unharmed
            assert client.ready["session"] >= 1


def test_payload_is_read_in_chunks_never_reserved_whole():
    a, b = socket.socketpair()
    a.settimeout(0.1)
    try:
        b.sendall(PREFIX.pack(b"ETRK", 1, Msg.FRAME, 2, 64 << 20) + b"{}" + b"0123456789")
        tracemalloc.start()
        with pytest.raises(ProtocolError, match="incomplete"):
            read_message(a, max_payload=64 << 20, message_timeout=0.5)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        a.close()
        b.close()
    assert peak < 4 << 20, f"{peak} bytes allocated for 10 bytes received"


def test_memory_budget_applies_back_pressure_then_refuses(small_movie, monkeypatch):
    # 32 KiB a frame + 192 KiB for its detection; no spots (the tracker window holds nothing)
    big = np.full((6, 128, 128), 100, np.uint16)
    slow_detection(monkeypatch, 0.2)
    # room for two frames: the reader waits for the workers (back-pressure), nothing is dropped or refused
    with TrackServer(port=0, queue_frames=16, max_frame_mib=0.1, max_memory_mib=0.5, budget_wait=30) as server:
        with TrackClient(server.address[1], tracker={"max_distance": 5.0}) as client:
            for image in big:
                client.send_frame(image)
            summary = client.end()
        stats = server.budget.stats()
    assert summary["frames_tracked"] == 6 and summary["frames_dropped"] == 0 and not client.errors
    assert stats["budget_waits"] >= 1 and stats["memory_peak_mib"] <= 0.5
    # the budget stays full longer than budget_wait: a clear refusal, the session goes on
    with TrackServer(port=0, queue_frames=16, max_frame_mib=0.1, max_memory_mib=0.5, budget_wait=0.05) as server:
        with TrackClient(server.address[1], tracker={"max_distance": 5.0}) as client:
            for image in big:
                client.send_frame(image)
            summary = client.end()
    codes = [e.code for e in client.errors]
    assert "over_budget" in codes and summary["frames_received"] == 6 - codes.count("over_budget")
    # a message that could never fit is refused at once
    with TrackServer(port=0, max_frame_mib=0.5, max_memory_mib=0.5) as server:
        with TrackClient(server.address[1], tracker={"max_distance": 5.0}) as client:
            client.send_frame(np.zeros((256, 256), np.uint16))  # 128 KiB + 768 KiB for detection
            summary = client.end()
    assert client.errors[0].code == "over_budget" and "whole memory budget" in client.errors[0].message


@pytest.mark.parametrize("queue_size", [0, 4])
def test_budget_exchanges_a_reservation_for_its_window_charge_in_one_step(queue_size):
    """The budget used to charge a frame's window before its reservation was given back: for a moment it
    held both, and a full budget went over its limit. Now the two are one call. Here the window outlasts
    the movie (nothing leaves it) and each reservation equals its frame's window charge, so every frame is
    counted once, reserved or in the window, and the peak is exactly the sum of the frames."""
    from edgetrack.runtime.live.feeder import LiveTracker, window_bytes
    from edgetrack.runtime.live.serve import MemoryBudget
    from edgetrack.runtime.stream.tracker import Tracker

    budget = MemoryBudget(1 << 30)
    tracker = Tracker({"max_distance": 5.0, "window": 25, "max_gap": 1})
    live = LiveTracker(tracker, queue_size=queue_size, on_memory=budget.adjust)
    rng = np.random.default_rng(0)
    points = rng.uniform(10, 90, (40, 2))
    total = 0
    for frame in range(20):
        table = pd.DataFrame(points + rng.normal(0, 0.5, points.shape), columns=["y", "x"])
        n = window_bytes(len(table), 2, tracker.config.max_candidates)
        assert budget.reserve(n, 1.0, lambda: False)
        total += n
        assert live.submit(table, frame=frame, on_release=lambda n=n: budget.release(n), reserved=n)
        deadline = time.monotonic() + 10
        while live.frames_tracked < frame - 2 and time.monotonic() < deadline:  # keep the queue from filling
            time.sleep(0.002)
    live.finish()
    assert live.frames_tracked == 20
    assert budget.peak == total
    assert budget.used == 0


# ---------------------------------------------------------------------- authentication (item 3)
def test_token_file_is_private_and_required(tmp_path):
    with TrackServer(port=0, token_file=str(tmp_path / "tok" / "t.token")) as server:
        port = server.address[1]
        path = tmp_path / "tok" / "t.token"
        assert read_token_file(path) == server.token and len(server.token) == 64
        if os.name == "posix":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with pytest.raises(ServerError, match="token"):  # not in the default place: not found by itself
            TrackClient(port)
        with pytest.raises(ServerError, match="wrong token"):
            TrackClient(port, token="0" * 64)
        with TrackClient(port, token_file=path) as client:
            assert client.ready["session"] == 1
        raw = Raw(port)
        raw.send(Msg.FRAME, {"frame": 0, "shape": [2, 2], "dtype": "uint8"}, bytes(4))  # no HELLO first
        kind, header, _ = raw.read()
        assert header["code"] == "unauthorized" and header["fatal"]
        raw.close()
    assert not path.exists()  # removed at shutdown


def test_default_token_place_and_shutdown_rules(small_movie):
    with TrackServer(port=0) as server:
        port = server.address[1]
        assert default_token_path(port).exists()
        with TrackClient(port) as client:  # finds the token by itself
            client.shutdown_server()
            deadline = time.monotonic() + 5
            while not client.errors and time.monotonic() < deadline:
                time.sleep(0.02)
            assert client.errors[0].code == "not_allowed"  # off unless enabled
    with TrackServer(port=0, allow_shutdown=True) as server:
        raw = Raw(server.address[1], hello={})
        raw.send(Msg.SHUTDOWN, {})  # enabled, but without the token
        kind, header, _ = raw.read()
        assert header["code"] == "unauthorized"
        raw.send(Msg.SHUTDOWN, {"token": server.token})
        assert server.wait(15)
        raw.close()


def test_half_sent_prefixes_cannot_lock_out_real_clients(small_movie):
    movie, _ = small_movie
    with TrackServer(port=0, max_clients=8, message_timeout=1.0, auth_timeout=3.0) as server:
        port = server.address[1]
        hostile = [Raw(port) for _ in range(8)]
        for raw in hostile:
            raw.sock.sendall(PREFIX.pack(b"ETRK", 1, Msg.HELLO, 2, 0)[:10])  # 10 of 20 bytes, then silence
        idle = Raw(port)  # connects and never sends anything
        start = time.monotonic()
        with TrackClient(port, tracker={"max_distance": 5.0}, max_in_flight=8) as client:
            for image in movie[:6]:
                client.send_frame(image)
            assert client.end()["frames_committed"] == 6
        assert all(raw.eof(5.0) for raw in hostile)  # dropped after message_timeout from the first byte
        assert time.monotonic() - start < 4.0
        assert idle.eof(5.0)  # dropped after auth_timeout
        for raw in [*hostile, idle]:
            raw.close()


def test_connections_per_address_are_capped():
    with TrackServer(port=0, max_per_address=3) as server:
        port = server.address[1]
        held = [Raw(port) for _ in range(3)]
        time.sleep(0.3)
        extra = Raw(port)
        kind, header, _ = extra.read()
        assert header["code"] == "server_busy" and "3 connections" in header["message"]
        for raw in [*held, extra]:
            raw.close()
        deadline = time.monotonic() + 5
        while server.n_clients and time.monotonic() < deadline:
            time.sleep(0.05)
        with TrackClient(port) as client:  # room again
            assert client.ready["session"] == 1


def test_client_refuses_an_absurd_payload_from_a_fake_server():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def fake_server() -> None:
        conn, _ = listener.accept()
        read_message(conn, max_payload=0, message_timeout=5)  # the HELLO
        for part in encode(Msg.READY, {"session": 1, "latency_frames": 2, "queue_frames": 8}):
            conn.sendall(part)
        conn.sendall(PREFIX.pack(b"ETRK", 1, Msg.UPDATE, 2, 16 << 30) + b"{}")  # announces 16 GiB
        time.sleep(3)
        conn.close()

    thread = threading.Thread(target=fake_server, daemon=True)
    thread.start()
    tracemalloc.start()
    client = TrackClient(port, token="x")
    assert client.closed.wait(2.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "too_large" in client.failure and peak < 64 << 20
    client.close()
    listener.close()


# ---------------------------------------------------------------------- run-unique files (item 5, 12)
def test_restarting_with_the_same_out_dir_keeps_every_session(small_movie, tmp_path):
    movie, _ = small_movie
    out = tmp_path / "does" / "not" / "exist"
    files = []
    for _ in range(2):
        with TrackServer(port=0, out_dir=str(out)) as server:
            with TrackClient(server.address[1], name="cam", tracker={"max_distance": 5.0}, max_in_flight=8) as c:
                for image in movie[:5]:
                    c.send_frame(image)
                files.append(c.end()["file"])
            index = pd.read_csv(server.index_path)
            assert index["file"].tolist() == [files[-1]] and index["run"].tolist() == [server.run_id]
    assert len(set(files)) == 2 and all(os.path.exists(f) for f in files)
    a, b = (open(f, "rb").read() for f in files)
    assert a == b  # byte-identical results across runs
    assert len(list(out.glob("*-sessions.csv"))) == 2


# ---------------------------------------------------------------------- fuzzer
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=200))
def test_parser_fuzz_raw_bytes(data):
    """Whatever bytes arrive, the reader raises only ProtocolError / ConnectionClosed (never a bare traceback)."""
    a, b = socket.socketpair()
    a.settimeout(0.05)
    try:
        b.sendall(data)
        b.shutdown(socket.SHUT_WR)
        while True:
            try:
                kind, header, payload = read_message(a, max_payload=1 << 16, message_timeout=0.2)
            except (ProtocolError, ConnectionClosed):
                break
            assert isinstance(header, dict) and isinstance(kind, int)
    finally:
        a.close()
        b.close()


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6),
                                                                                              children, max_size=4),
                           max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["frame", "shape", "dtype", "columns", "rows", "x"]), json_values, max_size=5),
       st.integers(min_value=0, max_value=1 << 20), st.binary(max_size=64))
def test_parser_fuzz_headers(header, payload_len, noise):
    """Header checks answer every JSON shape with a ProtocolError (or accept it), and garbage bodies too."""
    body = json.dumps(header).encode()
    assert parse_header(body) == header
    for check in (lambda: frame_header(header, payload_len), lambda: table_header(header, payload_len, max_rows=1000)):
        try:
            check()
        except ProtocolError as exc:
            assert exc.code and str(exc)
    try:
        parse_header(noise)
    except ProtocolError as exc:
        assert exc.fatal
    try:
        parse_prefix(noise[:20].ljust(20, b"\0"), max_payload=1 << 20)
    except ProtocolError as exc:
        assert exc.fatal
