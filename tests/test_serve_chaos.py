"""``edgetrack serve`` under good, slow and hostile clients at once: the good ones get exactly the
tracks of an offline run, the server stays within its memory budget and keeps serving."""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.live.client import TrackClient
from edgetrack.runtime.live.protocol import PREFIX, Msg, default_token_path, encode, read_token_file
from edgetrack.runtime.live.serve import TrackServer
from edgetrack.runtime.stream.tracker import Tracker

POINT_COLUMNS = ["frame", "y", "x", "track_id", "mass", "size", "signal", "eccentricity"]


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "xdg"))


def _raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10.0)


def _send(sock: socket.socket, kind: int, header: dict, payload: bytes = b"") -> None:
    for part in encode(kind, header, payload):
        sock.sendall(part)


def _drain(sock: socket.socket, seconds: float) -> None:
    sock.settimeout(0.2)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end and sock.recv(1 << 16):
            pass
    except OSError:
        pass


def hostile_clients(port: int, token: str, movie: np.ndarray) -> list:
    """Each returns when done; none of them may disturb the good clients."""

    def slow_loris():
        socks = [_raw(port) for _ in range(6)]
        for s in socks:
            s.sendall(PREFIX.pack(b"ETRK", 1, Msg.HELLO, 2, 0)[:10])
        time.sleep(3)
        for s in socks:
            s.close()

    def garbage():
        for i in range(5):
            s = _raw(port)
            s.sendall(bytes(np.random.default_rng(i).integers(0, 256, 4096, dtype=np.uint8)))
            _drain(s, 1.0)
            s.close()

    def deep_json():
        s = _raw(port)
        body = b"[" * 2000 + b"]" * 2000
        s.sendall(PREFIX.pack(b"ETRK", 1, Msg.HELLO, len(body), 0) + body)
        _drain(s, 1.0)
        s.close()

    def wrong_token():
        for _ in range(5):
            s = _raw(port)
            _send(s, Msg.HELLO, {"token": "f" * 64})
            _drain(s, 0.5)
            s.close()

    def huge_announcement():
        s = _raw(port)
        _send(s, Msg.HELLO, {"token": token, "tracker": {"max_distance": 5.0}})
        body = b'{"frame":0,"shape":[4096,4096],"dtype":"uint32"}'
        s.sendall(PREFIX.pack(b"ETRK", 1, Msg.FRAME, len(body), 4096 * 4096 * 4) + body + bytes(1000))
        time.sleep(2.5)  # stalls in the middle of a 64 MiB payload: dropped after message_timeout
        s.close()

    def bad_frames():
        s = _raw(port)
        _send(s, Msg.HELLO, {"token": token, "tracker": {"max_distance": 5.0}})
        for t in (0, 0, 5000):
            _send(s, Msg.FRAME, {"frame": t, "shape": [128, 128], "dtype": "uint16"}, movie[0].tobytes())
        _send(s, Msg.FRAME, {"frame": 1, "shape": [128, 128], "dtype": "float32"},
              np.full((128, 128), np.nan, "<f4").tobytes())
        _send(s, Msg.SPOTS, {"frame": 2, "columns": ["y", "x"], "rows": 1}, np.ones(2).tobytes())
        _send(s, Msg.FRAME, {"frame": 1, "shape": [64, 64], "dtype": "uint16"}, bytes(8192))
        _send(s, Msg.END, {})
        _drain(s, 2.0)
        s.close()

    def resets():
        for _ in range(20):
            s = _raw(port)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()

    def never_reads():
        s = _raw(port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        _send(s, Msg.HELLO, {"token": token, "tracker": {"max_distance": 5.0}})
        try:
            for t, image in enumerate(movie):
                _send(s, Msg.FRAME, {"frame": t, "shape": [128, 128], "dtype": "uint16"}, image.tobytes())
        except OSError:
            pass
        time.sleep(3)
        s.close()

    return [slow_loris, garbage, deep_json, wrong_token, huge_announcement, bad_frames, resets, never_reads]


def test_good_slow_and_hostile_clients_at_once(small_movie, tmp_path):
    movie, _ = small_movie
    tracker = Tracker(max_distance=5.0)
    for image in movie:
        tracker.push(image)
    expected = tracker.finish()[POINT_COLUMNS]
    results: dict[str, pd.DataFrame] = {}
    failures: list[BaseException] = []

    def good(name: str, pause: float, slow_reader: bool):
        try:
            on_event = (lambda event: time.sleep(0.01)) if slow_reader else None
            with TrackClient(port, name=name, tracker={"max_distance": 5.0}, max_in_flight=8,
                             on_event=on_event) as client:
                for image in movie:
                    client.send_frame(image)
                    if pause:
                        time.sleep(pause)
                summary = client.end()
                assert summary["frames_dropped"] == 0 and summary["frames_tracked"] == len(movie), summary
                results[name] = client.tracks()
        except BaseException as exc:  # reported in the main thread
            failures.append(exc)

    with TrackServer(port=0, queue_frames=8, max_clients=8, message_timeout=1.0, auth_timeout=2.0, send_timeout=2.0,
                     max_memory_mib=256, out_dir=str(tmp_path / "out")) as server:
        port = server.address[1]
        token = read_token_file(default_token_path(port))
        threads = [threading.Thread(target=fn, daemon=True) for fn in hostile_clients(port, token, movie)]
        threads += [threading.Thread(target=good, args=(f"good{i}", 0.0, False), daemon=True) for i in range(2)]
        threads += [threading.Thread(target=good, args=("slow", 0.05, True), daemon=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert not any(thread.is_alive() for thread in threads)
        assert not failures, failures
        stats = server.budget.stats()
        with TrackClient(port, tracker={"max_distance": 5.0}) as after:  # still serving
            assert after.ready["session"] > 3
    assert set(results) == {"good0", "good1", "slow"}
    for name, tracks in results.items():
        pd.testing.assert_frame_equal(tracks[POINT_COLUMNS], expected, obj=name)
    assert stats["memory_peak_mib"] <= 256
