"""The Java client (examples/java/EdgetrackClient.java), compiled with the real JDK and run against a real
``edgetrack serve`` process; its tracks are compared with the Python TrackClient's on the same frames."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from servers import start_server
from conftest import make_walks
from edgetrack.runtime.errors import EdgetrackError
from edgetrack.runtime.live.client import TrackClient
from edgetrack.runtime.live.protocol import Msg, default_token_path, read_message

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "java" / "EdgetrackClient.java"
JAVAC, JAVA = shutil.which("javac"), shutil.which("java")
#: pandas 3 parses floats exactly by default (and deprecates the option); pandas 2 needs "round_trip" for that
EXACT_FLOATS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
QUEUE_FRAMES = 3  # small, so that --allow-drops really drops; still above the latency (window 3 - 1 = 2)

pytestmark = pytest.mark.skipif(JAVAC is None or JAVA is None,
                                reason="no JDK on PATH (javac and java are needed to compile and run the Java client)")


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory) -> Path:
    """The client compiled for Java 11 with every lint warning as an error."""
    out = tmp_path_factory.mktemp("java-classes")
    result = subprocess.run([JAVAC, "--release", "11", "-Xlint:all", "-Werror", "-d", str(out), str(SOURCE)],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """``edgetrack serve --port 0`` started as a user would; its port from --port-file, its token where it writes it."""
    home = tmp_path_factory.mktemp("serve")
    env = {**os.environ, "XDG_DATA_HOME": str(home / "xdg"), "APPDATA": str(home / "xdg")}  # never the real ~
    port_file = home / "port"
    proc, port = start_server(["--queue-frames", str(QUEUE_FRAMES), "--max-distance", "5", "--quiet"], port_file, env)
    try:
        with mock.patch.dict(os.environ, env):
            token_file = default_token_path(port)
        assert token_file.exists()
        yield SimpleNamespace(port=port, env=env, token_file=token_file)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def run_java(classes: Path, serve, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([JAVA, "-cp", str(classes), "EdgetrackClient", *args, "--port", str(serve.port)],
                          env=serve.env, check=False, capture_output=True, text=True, timeout=120)


def read_java_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, **EXACT_FLOATS)  # Java writes the text that reads back as the same double


def python_tracks(serve, send) -> pd.DataFrame:
    """The same session through the Python client, lossless as the Java client is by default."""
    with TrackClient(serve.port, name="python", tracker={"max_distance": 5.0}, token_file=serve.token_file) as client:
        client.max_in_flight = int(client.ready["queue_frames"])
        send(client)
        summary = client.end()
        assert summary["frames_dropped"] == 0
        return client.tracks()


@pytest.mark.parametrize(("dtype", "order"), [("uint16", "<"), ("float32", "<"), ("uint16", ">")])
def test_java_frames_match_python_client(java_classes, serve, small_movie, tmp_path, dtype, order):
    movie = small_movie[0].astype(dtype)  # 30 frames of 128 x 128 px
    raw = tmp_path / "movie.raw"
    movie.astype(movie.dtype.newbyteorder(order)).tofile(raw)  # ">": as ImageJ saves raw data by default
    out = tmp_path / "java.csv"
    # no --token-file: the Java client finds the token where the server wrote it, as TrackClient does
    result = run_java(java_classes, serve, str(raw), "--shape", "128x128", "--dtype", dtype, "--out", str(out),
                      *(["--big-endian"] if order == ">" else []))
    assert result.returncode == 0, result.stderr
    assert "sent 30 frames" in result.stderr and "lossless" in result.stderr
    assert "tracked 30, dropped 0 (DROPPED messages: 0)" in result.stderr

    def send(client):
        for image in movie:
            client.send_frame(image)

    expected = python_tracks(serve, send)
    java = read_java_csv(out)
    assert len(java) > 30 * 20 and java["track_id"].nunique() > 20
    pd.testing.assert_frame_equal(java, expected, check_exact=True)


def test_java_spots_match_python_client(java_classes, serve, tmp_path):
    walks = make_walks(n_tracks=15, n_frames=30, seed=2)
    walks["mass"] = 100.0 + np.arange(len(walks)) % 7
    spots_csv = tmp_path / "spots.csv"
    walks[["frame", "y", "x", "mass"]].to_csv(spots_csv, index=False)
    out = tmp_path / "java.csv"
    result = run_java(java_classes, serve, "--spots", str(spots_csv), "--out", str(out),
                      "--token-file", str(serve.token_file))
    assert result.returncode == 0, result.stderr

    def send(client):
        for frame, table in walks.groupby("frame"):
            client.send_spots(table[["y", "x", "mass"]], frame=int(frame))

    expected = python_tracks(serve, send)
    java = read_java_csv(out)
    assert list(java.columns) == ["frame", "y", "x", "track_id", "parent_track_id", "det_id", "parent_det_id", "mass"]
    assert len(java) == 15 * 30 and java["track_id"].nunique() == 15  # well-separated walks: every one found whole
    pd.testing.assert_frame_equal(java, expected, check_exact=True)


def test_java_allow_drops_counts_every_dropped_frame(java_classes, serve, small_movie, tmp_path):
    movie = np.concatenate([small_movie[0], small_movie[0][::-1]])  # 60 frames sent as fast as the JVM can
    raw = tmp_path / "movie.raw"
    movie.astype("<u2").tofile(raw)
    out = tmp_path / "java.csv"
    result = run_java(java_classes, serve, str(raw), "--shape", "128x128", "--out", str(out), "--allow-drops")
    assert result.returncode == 0, result.stderr
    found = re.search(r"tracked (\d+), dropped (\d+) \(DROPPED messages: (\d+)\)", result.stderr)
    assert found, result.stderr
    tracked, dropped, messages = map(int, found.groups())
    assert "drops allowed" in result.stderr
    assert dropped > 0, f"a queue of {QUEUE_FRAMES} frames kept up with 60 frames sent at once: {result.stderr}"
    assert messages == dropped and tracked + dropped == 60  # every frame has one outcome, every drop is reported
    listed = [int(v) for v in re.search(r"\(frames \[([\d, ]+)\]", result.stderr).group(1).split(",")]
    java = read_java_csv(out)
    assert not set(listed) & set(java["frame"])  # a dropped frame carries no points
    assert java["frame"].nunique() <= tracked


def test_java_errors_are_one_clear_line(java_classes, serve, tmp_path):
    raw = tmp_path / "movie.raw"
    np.zeros((2, 16, 16), "<u2").tofile(raw)
    wrong = tmp_path / "wrong.token"
    wrong.write_text("0" * 64 + "\n")
    refused = run_java(java_classes, serve, str(raw), "--shape", "16x16", "--token-file", str(wrong))
    assert refused.returncode == 1
    assert refused.stderr.strip() == "EdgetrackClient: error: unauthorized: HELLO carries a wrong token"
    missing = run_java(java_classes, serve, str(raw), "--shape", "16x16", "--token-file", str(tmp_path / "none"))
    assert missing.returncode == 1 and "no token was found in" in missing.stderr
    bad_shape = run_java(java_classes, serve, str(raw), "--shape", "15x16")
    assert bad_shape.returncode == 2
    assert bad_shape.stderr.strip() == (f"EdgetrackClient: error: {raw} has 1024 bytes: not a whole number of 15x16 "
                                        "uint16 frames (480 bytes each)")


#: A plugin's use of the library class: uint16 frames as short[] with ping and a listener, a refused HELLO,
#: then a second session on the same connection with float32 frames as float[].
LIBRARY_USE = """
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

public final class LibraryUse {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]), rows = Integer.parseInt(args[2]), cols = Integer.parseInt(args[3]);
        ByteBuffer raw = ByteBuffer.wrap(Files.readAllBytes(Paths.get(args[1]))).order(ByteOrder.LITTLE_ENDIAN);
        int n = raw.capacity() / (2 * rows * cols);
        List<EdgetrackClient.Event> heard = new CopyOnWriteArrayList<>();
        EdgetrackClient.Options options = new EdgetrackClient.Options().port(port).name("library")
                .tracker("max_distance", 5.0).tracker("window", 3).listener(heard::add);
        try (EdgetrackClient client = EdgetrackClient.connect(options)) {
            short[] image = new short[rows * cols];
            for (int t = 0; t < n; t++) {
                raw.asShortBuffer().position(t * rows * cols).get(image);
                client.sendFrame(image, rows, cols);
                if (t == n / 2) {
                    System.out.println("ping received=" + client.ping().get("received"));
                }
            }
            Map<String, Object> first = client.end();
            System.out.println("ended committed=" + first.get("frames_committed") + " heard=" + heard.size()
                    + " in_flight=" + client.inFlight());
            client.writeTracksCsv(Paths.get(args[4]));
            try {
                client.restart("bad", Map.of("max_distance", -1.0), Map.of());
            } catch (EdgetrackClient.ServerException e) {
                System.out.println("refused " + e.code);
            }
            client.restart("float", Map.of("max_distance", 5.0), Map.of());
            float[] pixels = new float[rows * cols];
            for (int t = 0; t < n; t++) {
                for (int i = 0; i < pixels.length; i++) {
                    pixels[i] = Short.toUnsignedInt(raw.getShort(2 * (t * rows * cols + i)));
                }
                client.sendFrame(t, pixels, rows, cols);
            }
            System.out.println("ended committed=" + client.end().get("frames_committed"));
            client.writeTracksCsv(Paths.get(args[5]));  // both sessions' updates, in order
        }
    }
}
"""


def test_java_library_use_in_a_plugin(java_classes, serve, small_movie, tmp_path):
    source = tmp_path / "LibraryUse.java"
    source.write_text(LIBRARY_USE)
    compiled = subprocess.run([JAVAC, "--release", "11", "-Xlint:all", "-Werror", "-cp", str(java_classes), "-d",
                               str(tmp_path), str(source)], check=False, capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr
    movie = small_movie[0]
    movie.astype("<u2").tofile(tmp_path / "movie.raw")
    first, both = tmp_path / "first.csv", tmp_path / "both.csv"
    result = subprocess.run([JAVA, "-cp", os.pathsep.join([str(java_classes), str(tmp_path)]), "LibraryUse",
                             str(serve.port), str(tmp_path / "movie.raw"), "128", "128", str(first), str(both)],
                            check=False, env=serve.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ping received=") and 0 < int(lines[0].split("=")[1]) <= 30
    assert lines[1:] == ["ended committed=30 heard=30 in_flight=0", "refused bad_config", "ended committed=30"]

    def send(client):
        for image in movie:
            client.send_frame(image)

    expected = python_tracks(serve, send)
    pd.testing.assert_frame_equal(read_java_csv(first), expected, check_exact=True)
    # the float32 session restarts frame indices and track ids from 0 and finds the same tracks
    pd.testing.assert_frame_equal(read_java_csv(both), pd.concat([expected, expected], ignore_index=True),
                                  check_exact=True)


#: Reads one hex-encoded header per line, answers with the client's parse written back as JSON, or ERR.
JSON_CHECK = """
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

public final class JsonCheck {
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            byte[] body = new byte[line.length() / 2];
            for (int i = 0; i < body.length; i++) {
                body[i] = (byte) Integer.parseInt(line.substring(2 * i, 2 * i + 2), 16);
            }
            try {
                out.println(EdgetrackClient.Json.write(EdgetrackClient.Json.parseObject(body)));
            } catch (IllegalArgumentException e) {
                out.println("ERR " + e.getMessage());
            }
        }
    }
}
"""
JSON_VALID = [b"", b"{}", b' \t\r\n{ "a" : [ ] , "b":{ } } ', b'{"frame":12,"rows":0,"latest":-1}',
              b'{"x":-0.0,"y":1e5,"z":1.5E-3,"w":-12.25e+2,"big":9007199254740993,"neg":-9223372036854775808}',
              b'{"s":"q\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00 raw \xc3\xa9"}',
              b'{"t":true,"f":false,"n":null,"l":[1,[2,[3,{"d":[]}]]],"dup":1,"dup":2}',
              b'{"limits":' + b"[" * 15 + b"]" * 15 + b"}"]  # 16 levels: the deepest allowed
JSON_INVALID = [b"[]", b'"s"', b"{", b'{"a":1,}', b'{"a":01}', b'{"a":NaN}', b'{"a":Infinity}', b"{'a':1}",
                b'{"a":1} x', b'{"a":"\x01"}', b'{"a":"\\x"}', b'{"a":1.}', b'{"a":.5}', b'{"a":+1}', b'{"a":tru}',
                b'{"a":"\xff"}', b'{"a":1e999}', b'{"a":99999999999999999999}', b'{"a" 1}', b'{1:2}',
                b'{"limits":' + b"[" * 16 + b"]" * 16 + b"}"]


def test_java_json_parser_agrees_with_python_and_refuses_the_rest(java_classes, tmp_path):
    source = tmp_path / "JsonCheck.java"
    source.write_text(JSON_CHECK)
    compiled = subprocess.run([JAVAC, "--release", "11", "-cp", str(java_classes), "-d", str(tmp_path), str(source)],
                              check=False, capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr
    result = subprocess.run([JAVA, "-cp", os.pathsep.join([str(java_classes), str(tmp_path)]), "JsonCheck"],
                            input="".join(c.hex() + "\n" for c in JSON_VALID + JSON_INVALID), check=False,
                            capture_output=True, text=True, encoding="utf-8", timeout=60)
    assert result.returncode == 0, result.stderr
    answers = result.stdout.splitlines()
    assert len(answers) == len(JSON_VALID) + len(JSON_INVALID)
    for body, answer in zip(JSON_VALID, answers):
        assert json.loads(answer) == (json.loads(body) if body else {}), (body, answer)
    for body, answer in zip(JSON_INVALID, answers[len(JSON_VALID):]):
        assert answer.startswith("ERR "), (body, answer)


def crafted(kind: int, body: bytes, payload_len: int | None = None, payload: bytes = b"", magic: bytes = b"ETRK") -> bytes:
    """One server message built byte by byte (a wrong length, magic or header is the point)."""
    size = len(payload) if payload_len is None else payload_len
    return struct.pack("<4sHHIQ", magic, 1, kind, len(body), size) + body + payload


READY_OK = crafted(Msg.READY, b'{"session":1,"protocol":1,"queue_frames":8,"latency_frames":2}')
HOSTILE = {  # what a broken or hostile server sends, and what the Java client must say about it
    "huge_payload": ([crafted(Msg.READY, b"{}", payload_len=1 << 40)], "too_large: payload of 1099511627776 bytes"),
    "deep_json": ([crafted(Msg.READY, b'{"limits":' + b"[" * 16 + b"]" * 16 + b"}")], "nested more than 16 levels deep"),
    "nan_in_json": ([crafted(Msg.READY, b'{"queue_frames":NaN}')], "bad_message: JSON header: unexpected character"),
    "bad_magic": ([crafted(Msg.READY, b"{}", magic=b"HTTP")], "bad_message: bad magic"),
    "update_size": ([READY_OK, crafted(Msg.UPDATE, b'{"frame":0,"rows":3,"columns":["track_id","y","x"]}',
                                       payload=bytes(8))],
                    "malformed UPDATE message (payload of 8 bytes does not match 3 rows x 3 float64 columns)"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_java_refuses_what_breaks_its_limits(java_classes, tmp_path, case):
    replies, said = HOSTILE[case]
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)

    def serve_one() -> None:  # answers HELLO, then the first FRAME, with the crafted messages; reads until closed
        conn, _ = listener.accept()
        with conn:
            pending = list(replies)
            try:
                while True:
                    kind, _, _ = read_message(conn, max_payload=1 << 24, message_timeout=30)
                    if kind in (Msg.HELLO, Msg.FRAME) and pending:
                        conn.sendall(pending.pop(0))
            except (OSError, EdgetrackError):  # the client closed the connection: done
                return

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    raw, token = tmp_path / "movie.raw", tmp_path / "token"
    np.zeros((4, 16, 16), "<u2").tofile(raw)
    token.write_text("f" * 64)
    fake = SimpleNamespace(port=listener.getsockname()[1], env=dict(os.environ))
    result = run_java(java_classes, fake, str(raw), "--shape", "16x16", "--token-file", str(token))
    listener.close()
    thread.join(10)
    assert result.returncode == 1, result.stderr
    assert "the server sent a" in result.stderr and said in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
