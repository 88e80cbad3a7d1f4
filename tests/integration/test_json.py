"""``--json``: every event every command emits is one line of JSON that the schema accepts.

The schema is ``docs/events.schema.json``. Each scenario runs the installed
CLI with ``--json`` (and ``-v``, so that every kind of event shows), takes
its stderr line by line, and validates each line; it also checks that the
events the scenario must produce are there.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import WIRECAT
from tests.integration.test_connect import TIMEOUT, Peer, serve_reply_after_eof
from tests.integration.test_relay import Target, echo
from wirecat import events as ev
from wirecat.testing import read_line_matching

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "events.schema.json").read_text())


@pytest.fixture(scope="module")
def validator() -> object:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


def parse(stderr: bytes, validator: object) -> list[dict[str, object]]:
    """Every stderr line as a validated event (a line that is not one fails the test)."""
    records = []
    for line in stderr.decode().splitlines():
        record = json.loads(line)
        validator.validate(record)  # type: ignore[attr-defined]
        records.append(record)
    return records


def kinds(records: list[dict[str, object]]) -> set[object]:
    return {r["event"] for r in records}


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [WIRECAT, "--json", *args], input=stdin, capture_output=True, timeout=TIMEOUT, check=False
    )


def listening_port(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stderr is not None
    match = read_line_matching(proc.stderr, r'"event": "listening"', timeout=TIMEOUT)
    return int(json.loads(match.string)["addresses"][0].rsplit(":", 1)[1])


@pytest.fixture
def server() -> Iterator[object]:
    """Start ``wirecat --json -v ARGS``; stop it with SIGTERM; give back (port, all its stderr events)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], int]:
        proc = subprocess.Popen(
            [WIRECAT, "--json", "-v", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started.append(proc)
        return proc, listening_port(proc)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=TIMEOUT)


def stop(proc: subprocess.Popen[bytes], validator: object) -> list[dict[str, object]]:
    """SIGTERM, then the events after the listening one, validated."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=TIMEOUT)
    return parse(err, validator)


def test_every_event_kind_is_in_the_schema(validator: object) -> None:
    samples: list[ev.Event] = [
        ev.Listening(("127.0.0.1:1",), "server"),
        ev.Accepted("127.0.0.1:2", "127.0.0.1:1", 1, "server"),
        ev.Refused("127.0.0.1:2", "full", "at the limit of 1 connection", "server"),
        ev.Connecting("127.0.0.1:1", "dial"),
        ev.AttemptFailed("127.0.0.1:1", "connection refused", "dial"),
        ev.Connected("127.0.0.1:1", "127.0.0.1:2", "dial"),
        ev.Closed("127.0.0.1:2", 1, 2, 0.5, "both sides closed", first="we", origin="session"),
        ev.ShutDown(1, 0, 10.0, "cli"),
        ev.Failed("connection refused by 127.0.0.1:1", 4, "cli"),
        ev.Note("end of stdin", "info", "hub"),
        ev.Trace("fd 3  close()"),
    ]
    assert {type(e) for e in samples} == set(ev.Event.__args__)  # every kind, none forgotten
    for event in samples:
        validator.validate(ev.to_json(event, time=1.0))  # type: ignore[attr-defined]


def test_connect(validator: object) -> None:
    with Peer(serve_reply_after_eof(b"reply\n")) as peer:
        result = run("-v", "connect", "127.0.0.1", str(peer.port), stdin=b"q")
    assert result.returncode == 0
    assert result.stdout == b"reply\n"
    records = parse(result.stderr, validator)
    assert {"connecting", "connected", "closed"} <= kinds(records)
    closed = next(r for r in records if r["event"] == "closed")
    assert (closed["sent"], closed["received"], closed["cut"]) == (1, 6, False)


def test_connect_refused_is_an_error_event(validator: object) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = run("connect", "127.0.0.1", str(port))
    assert result.returncode == 4
    (record,) = parse(result.stderr, validator)
    assert (record["event"], record["exit_code"]) == ("error", 4)


@pytest.mark.parametrize(
    "argv",
    [["connect", "--frobnicate", "x"], ["listen", "70000"], ["explain", "nosuch"], ["scan", "a..b", "1"]],
)
def test_usage_errors_are_error_events(validator: object, argv: list[str]) -> None:
    result = run(*argv)
    assert result.returncode == 2
    (record,) = parse(result.stderr, validator)
    assert record["event"] == "error"


def test_trace_lines_are_trace_events(validator: object) -> None:
    with Peer(serve_reply_after_eof(b"r")) as peer:
        result = run("--trace", "connect", "127.0.0.1", str(peer.port), stdin=b"q")
    assert result.returncode == 0
    assert "trace" in kinds(parse(result.stderr, validator))


def test_listen_one_client(validator: object, server) -> None:
    proc, port = server("listen", "0")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"hello")
        sock.shutdown(socket.SHUT_WR)
        assert proc.stdin is not None
        proc.stdin.close()
        proc.stdin = None  # (end of input sent: nothing left for communicate() to flush)
        assert sock.recv(10) == b""
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0
    assert {"accepted", "closed"} <= kinds(parse(err, validator))


def test_listen_keep_open_and_a_refusal(validator: object, server) -> None:
    proc, port = server("listen", "-k", "--max-conns", "1", "0")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as first:
        first.sendall(b"in\n")
        assert proc.stdout is not None
        read_line_matching(proc.stdout, "in")
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as second:
            second.recv(1)  # closed at once: refused
        records = stop(proc, validator)
    assert {"accepted", "refused", "closed", "note"} <= kinds(records)
    assert any(r["event"] == "closed" and r["cut"] for r in records)  # cut off by the signal


def test_listen_udp(validator: object, server) -> None:
    proc, port = server("listen", "-u", "0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"datagram\n", ("127.0.0.1", port))
        assert proc.stdout is not None
        read_line_matching(proc.stdout, "datagram")
    assert "note" in kinds(stop(proc, validator))


def test_exec(validator: object, server) -> None:
    proc, port = server("listen", "-k", "0", "--exec", "cat")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"ping")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(10) == b"ping"
        assert sock.recv(10) == b""
    records = stop(proc, validator)
    assert {"accepted", "closed"} <= kinds(records)


@pytest.mark.parametrize("command", [["echo", "--lines"], ["chat"], ["broker"]])
def test_servers(validator: object, server, command: list[str]) -> None:
    proc, port = server(*command, "0")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"hello\n")
        if command[0] != "broker":
            sock.recv(100)
    records = stop(proc, validator)
    assert {"accepted", "closed", "shutdown"} <= kinds(records)


def test_relay(validator: object, server) -> None:
    target = Target(echo)
    address = target.address
    proc, port = server("relay", "0", address)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"through")
        assert sock.recv(7) == b"through"
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(7) == b""
    records = stop(proc, validator)
    target.close()
    assert {"accepted", "closed", "shutdown"} <= kinds(records)
    closed = next(r for r in records if r["event"] == "closed")
    assert (closed["sent"], closed["received"], closed["target"]) == (7, 7, address)


def test_relay_udp(validator: object, server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
        target.bind(("127.0.0.1", 0))
        proc, port = server("relay", "udp:0", f"udp:127.0.0.1:{target.getsockname()[1]}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"x", ("127.0.0.1", port))
            target.settimeout(TIMEOUT)
            assert target.recvfrom(10)[0] == b"x"
        assert "note" in kinds(stop(proc, validator))


def test_scan(validator: object) -> None:
    with socket.create_server(("127.0.0.1", 0)) as open_port:
        result = run("-v", "scan", "127.0.0.1", str(open_port.getsockname()[1]))
    assert result.returncode == 0
    parse(result.stderr, validator)  # every line an event


@pytest.mark.parametrize("argv", [["demo"], ["explain", "recv"]])
def test_teacher_commands_keep_stderr_for_events(validator: object, argv: list[str]) -> None:
    result = run(*argv)
    assert result.returncode == 0
    assert result.stdout  # the lesson itself is on stdout
    parse(result.stderr, validator)


def test_log_json_writes_a_file_beside_the_text(tmp_path: Path, validator: object) -> None:
    log = tmp_path / "events.jsonl"
    with Peer(serve_reply_after_eof(b"r")) as peer:
        result = subprocess.run(
            [WIRECAT, "--log-json", str(log), "-v", "connect", "127.0.0.1", str(peer.port)],
            input=b"q",
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    assert result.returncode == 0
    assert result.stderr.startswith(b"wirecat: ")  # the text stays the default on stderr
    records = parse(log.read_bytes(), validator)
    assert {"connecting", "connected", "closed"} <= kinds(records)
