"""``edgetrack serve`` end to end on loopback: real client and server processes, protocol abuse, shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from servers import start_server

from edgetrack.runtime.errors import ConfigError
from edgetrack.runtime.live.serve import ServeConfig, TrackServer
from edgetrack.runtime.live.client import Dropped, RemoteUpdate, TrackClient
from edgetrack.runtime.live.protocol import PREFIX, Msg, default_token_path, read_message, read_token_file
from edgetrack.runtime.stream.tracker import Tracker

ROOT = Path(__file__).resolve().parents[1]
POINT_COLUMNS = ["frame", "y", "x", "track_id", "mass", "size", "signal", "eccentricity"]


def direct_tracks(movie, **options) -> pd.DataFrame:
    tracker = Tracker(**options)
    for image in movie:
        tracker.push(image)
    return tracker.finish()


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path, monkeypatch):
    """Token files go to a per-test folder, never to the real ~/.local/share."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "xdg"))


@pytest.fixture()
def server(tmp_path):
    with TrackServer(port=0, queue_frames=64, message_timeout=1.0, out_dir=str(tmp_path)) as srv:
        yield srv


class RawClient:
    """A hand-written client speaking the byte layout of docs/serve-protocol.md (no edgetrack client code)."""

    def __init__(self, port: int, hello: dict | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        self.token = read_token_file(default_token_path(port))  # where a local server writes it
        if hello is not None:  # authenticate as a real client would (the token is required in HELLO)
            self.send(1, {"token": self.token, **hello})
            kind, header, _ = self.read()
            assert kind == Msg.READY, header

    def send(self, kind: int, header: dict, payload: bytes = b"", version: int = 1, magic: bytes = b"ETRK") -> None:
        body = json.dumps(header).encode()
        self.sock.sendall(struct.pack("<4sHHIQ", magic, version, kind, len(body), len(payload)) + body + payload)

    def frame(self, index: int, image: np.ndarray) -> None:
        self.send(2, {"frame": index, "shape": list(image.shape), "dtype": image.dtype.name}, image.tobytes())

    def read(self) -> tuple[int, dict, bytes]:
        return read_message(self.sock, max_payload=1 << 30, message_timeout=10.0)

    def read_until(self, kind: int) -> list[tuple[int, dict, bytes]]:
        messages = []
        while True:
            message = self.read()
            messages.append(message)
            if message[0] == kind:
                return messages

    def close(self) -> None:
        self.sock.close()


def test_matches_direct_tracking_and_writes_session_file(server, small_movie, tmp_path):
    movie, _ = small_movie
    with TrackClient(server.address[1], name="cam 1", tracker={"max_distance": 5.0}) as client:
        assert client.ready["drop_policy"] == "newest" and client.ready["latency_frames"] == 2
        assert client.ready["tracker"]["keep_results"] is False  # sessions keep no history: flat memory
        for image in movie:
            client.send_frame(image)
        summary = client.end()
        tracks = client.tracks()
    expected = direct_tracks(movie, max_distance=5.0)
    assert summary["frames_committed"] == len(movie) and summary["frames_dropped"] == 0
    pd.testing.assert_frame_equal(tracks[POINT_COLUMNS], expected[POINT_COLUMNS])
    assert (tracks["parent_track_id"] == -1).all()
    linked = tracks[tracks["parent_det_id"] >= 0]
    assert len(linked) > len(tracks) // 2
    written = pd.read_csv(summary["file"])
    assert Path(summary["file"]).name == f"{server.run_id}-session0001-cam_1.csv"
    np.testing.assert_allclose(written[["y", "x"]], expected[["y", "x"]], atol=1e-4)


def test_spots_stream_and_restart(server):
    rng = np.random.default_rng(0)
    pos = rng.uniform(10, 190, (15, 2))
    walks = []
    for t in range(12):
        pos = pos + rng.normal(0, 0.4, pos.shape)
        walks.append(pd.DataFrame({"y": pos[:, 0], "x": pos[:, 1], "mass": 100.0 + t}))
    with TrackClient(server.address[1], tracker={"max_distance": 4.0, "window": 2}) as client:
        for table in walks:
            client.send_spots(table)
        assert client.end()["frames_committed"] == 12
        tracks = client.tracks()
        assert tracks["track_id"].nunique() == 15 and len(tracks) == 15 * 12
        # a second session on the same connection starts from frame 0 with fresh track ids
        client.restart(tracker={"max_distance": 4.0})
        client.send_spots(walks[0])
        assert client.end()["frames_committed"] == 1
        assert client.updates[-1].frame == 0 and client.updates[-1].values[:, 0].max() == 14


def test_bad_frames_get_errors_and_the_session_goes_on(server, small_movie):
    movie, _ = small_movie
    raw = RawClient(server.address[1], hello={})
    raw.frame(0, movie[0])
    raw.frame(1, movie[1].astype(np.int8))  # unsupported dtype
    raw.frame(1, movie[1][:50])  # wrong shape
    raw.send(2, {"frame": 1, "shape": [128, 128], "dtype": "uint16"}, movie[1].tobytes()[:-2])  # size mismatch
    raw.frame(1, movie[1])
    raw.frame(1, movie[2])  # out of order (repeated index)
    raw.send(2, {"frame": 2, "shape": [128, 128], "dtype": "float32"}, np.full((128, 128), np.nan, "<f4").tobytes())
    raw.send(42, {})  # unknown message type
    raw.frame(2, movie[2])
    raw.frame(3, movie[3])
    raw.send(4, {})  # END
    messages = raw.read_until(Msg.ENDED)
    raw.close()
    errors = [h for k, h, _ in messages if k == Msg.ERROR]
    assert [e["code"] for e in errors] == ["bad_dtype", "bad_shape", "bad_size", "out_of_order", "bad_pixels",
                                           "unknown_type"]
    assert not any(e["fatal"] for e in errors)
    assert all(e["message"] for e in errors)
    assert [h["frame"] for k, h, _ in messages if k == Msg.UPDATE] == [0, 1, 2, 3]
    assert messages[-1][1]["frames_committed"] == 4


def test_truncated_message_and_vanishing_client_do_not_disturb_others(server, small_movie, tmp_path):
    movie, _ = small_movie
    other = TrackClient(server.address[1], name="other", tracker={"max_distance": 5.0})
    # client A: two good frames, then half a frame, then it closes its sending side
    a = RawClient(server.address[1], hello={"name": "truncated"})
    a.frame(0, movie[0])
    a.frame(1, movie[1])
    body = json.dumps({"frame": 2, "shape": [128, 128], "dtype": "uint16"}).encode()
    a.sock.sendall(PREFIX.pack(b"ETRK", 1, 2, len(body), movie[2].nbytes) + body + movie[2].tobytes()[:1000])
    a.sock.shutdown(socket.SHUT_WR)
    messages = a.read_until(Msg.ENDED)
    a.close()
    errors = [h for k, h, _ in messages if k == Msg.ERROR]
    assert errors[-1]["code"] == "truncated" and errors[-1]["fatal"]
    assert [h["frame"] for k, h, _ in messages if k == Msg.UPDATE] == [0, 1]  # nothing committed was lost
    # client B sends frames and vanishes without a word
    b = RawClient(server.address[1], hello={"name": "vanished"})
    for t in range(5):
        b.frame(t, movie[t])
    time.sleep(0.2)
    b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not a clean close
    b.close()
    # the other client is served throughout
    for image in movie[:10]:
        other.send_frame(image)
    assert other.end()["frames_committed"] == 10
    other.close()
    deadline = time.monotonic() + 10
    while len(server.finished_sessions) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    by_name = {s["name"]: s for s in server.finished_sessions}
    assert by_name["vanished"]["frames_committed"] == 5  # its window was committed and written
    written = pd.read_csv(by_name["vanished"]["file"])
    assert sorted(written["frame"].unique()) == [0, 1, 2, 3, 4]


def test_broken_framing_is_fatal(server):
    raw = RawClient(server.address[1])
    raw.send(1, {}, magic=b"HTTP")
    kind, header, _ = raw.read()
    assert kind == Msg.ERROR and header["code"] == "bad_message" and header["fatal"]
    raw.close()
    raw = RawClient(server.address[1])
    raw.sock.sendall(PREFIX.pack(b"ETRK", 1, 2, 2, 1 << 40) + b"{}")  # absurd payload length
    kind, header, _ = raw.read()
    assert header["code"] == "too_large" and header["fatal"]
    raw.close()
    raw = RawClient(server.address[1])  # a prefix, then silence: cut off after message_timeout (1 s)
    raw.sock.sendall(PREFIX.pack(b"ETRK", 1, 2, 10, 0))
    start = time.monotonic()
    kind, header, _ = raw.read()
    assert header["code"] == "truncated" and 0.5 < time.monotonic() - start < 5
    raw.close()


def test_back_pressure_drops_newest_and_flow_control_avoids_drops(small_movie):
    movie, _ = small_movie
    big = np.tile(movie, (2, 4, 4))  # 60 frames of 512 x 512: they arrive far faster than they are tracked
    with TrackServer(port=0, queue_frames=2) as srv:
        with TrackClient(srv.address[1], tracker={"max_distance": 5.0}) as client:
            for image in big:
                client.send_frame(image)
            summary = client.end()
            events = client.poll()
        dropped = [e.frame for e in events if isinstance(e, Dropped)]
        assert summary["frames_dropped"] == len(dropped) > 0
        assert summary["frames_received"] == len(big)
        committed = [e.frame for e in events if isinstance(e, RemoteUpdate)]
        assert committed == list(range(len(committed)))  # dropped frames are committed as empty frames
        assert all(len(e) == 0 for e in events if isinstance(e, RemoteUpdate) and e.frame in dropped)
    with TrackServer(port=0, queue_frames=3) as srv:
        for _ in range(3):
            with TrackClient(srv.address[1], tracker={"max_distance": 5.0}, max_in_flight=3) as client:
                for image in movie:
                    client.send_frame(image)
                    assert client.in_flight <= 3
                summary = client.end()
            assert summary["frames_dropped"] == 0 and summary["frames_committed"] == len(movie)
        with pytest.raises(Exception, match="max_in_flight"):
            TrackClient(srv.address[1], max_in_flight=2)


def test_config_errors_busy_and_shutdown_message(small_movie):
    movie, _ = small_movie
    with pytest.raises(ConfigError, match="loopback"):
        ServeConfig(host="0.0.0.0")
    with pytest.raises(ConfigError, match="unknown option"):
        ServeConfig(tracker={"max_distanse": 3})
    srv = TrackServer(port=0, max_clients=2, allow_shutdown=True).start()
    try:
        with pytest.raises(ConfigError, match="unknown option"):
            TrackClient(srv.address[1], tracker={"windoww": 3})
        deadline = time.monotonic() + 5
        while srv.n_clients and time.monotonic() < deadline:  # the refused client's connection is closed
            time.sleep(0.02)
        first = TrackClient(srv.address[1])
        second = TrackClient(srv.address[1])
        third = RawClient(srv.address[1])  # connected, but a client only once authenticated
        third.send(1, {"token": third.token})
        kind, header, _ = third.read()
        assert header["code"] == "server_busy"
        third.close()
        for image in movie[:4]:
            first.send_frame(image)
        assert first.ping()["received"] == 4  # the server has read them (PONG follows in order)
        second.shutdown_server()
        assert srv.wait(15.0)
        assert first.closed.wait(5.0)
        codes = [e.code for e in first.errors]
        assert "shutting_down" in codes
        assert [u.frame for u in first.updates] == [0, 1, 2, 3]  # its session was ended cleanly first
        first.close()
        second.close()
    finally:
        srv.shutdown()


def test_cli_server_process_with_sigterm(tmp_path, small_movie):
    movie, _ = small_movie
    port_file = tmp_path / "port"
    proc, port = start_server(["--out-dir", str(tmp_path / "new" / "out"), "--max-distance", "5"], port_file,
                              os.environ.copy(), stdout=subprocess.PIPE)
    try:
        client = TrackClient(port, name="sig")
        for image in movie[:8]:
            client.send_frame(image)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM if os.name != "nt" else signal.CTRL_BREAK_EVENT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped after 1 session(s), 8 frames committed" in err
        assert client.closed.wait(5.0)
        assert [u.frame for u in client.updates] == list(range(8))
        client.close()
        out = tmp_path / "new" / "out"  # --out-dir is created when missing
        (written,) = out.glob("run*-session0001-sig.csv")
        assert len(pd.read_csv(written)["frame"].unique()) == 8
        index = pd.read_csv(next(out.glob("run*-sessions.csv")))
        assert index["file"].tolist() == [str(written)] and index["status"].tolist() == ["ended"]
        assert not default_token_path(port).exists()  # removed at shutdown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_example_client_process_against_server(server, small_movie, tmp_path):
    movie, _ = small_movie
    np.save(tmp_path / "movie.npy", movie)
    out = tmp_path / "tracks.csv"
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "serve_client.py"), str(tmp_path / "movie.npy"),
                             "--port", str(server.address[1]), "--out", str(out)],  # lossless by default
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    tracks = pd.read_csv(out)
    expected = direct_tracks(movie, max_distance=5.0)
    pd.testing.assert_frame_equal(tracks[POINT_COLUMNS], expected[POINT_COLUMNS], check_exact=False, rtol=1e-9)
    assert "dropped 0" in result.stderr and "lossless" in result.stderr
