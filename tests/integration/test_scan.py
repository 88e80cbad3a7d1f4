"""``wirecat scan`` and ``wirecat -z``: open, closed and filtered ports on loopback.

Every port is made on the spot: a listener on port 0 is "open"; a port bound
then closed at once is "closed" (nothing listens there, so the kernel answers
RST); a listener whose accept queue is full is "filtered" (Linux drops the SYN).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import run_wirecat
from wirecat.apps.scan import PortState, scan_ports

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def open_port() -> Iterator[int]:
    """A port with a listener on 127.0.0.1."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def closed_port(host: str = "127.0.0.1") -> int:
    """A port that was just bound and closed: nothing listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def test_finds_the_open_port_among_closed_ones(open_port: int) -> None:
    closed = closed_port()
    result = run_wirecat("scan", "127.0.0.1", f"{closed},{open_port}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [f"127.0.0.1:{open_port} open"]
    assert result.stderr == b""  # closed ports only with -v


def test_no_open_port_exits_1_quietly() -> None:
    closed = closed_port()
    result = run_wirecat("scan", "127.0.0.1", str(closed))
    assert (result.returncode, result.stdout, result.stderr) == (1, b"", b"")


def test_verbose_shows_closed_ports_on_stderr(open_port: int) -> None:
    closed = closed_port()
    result = run_wirecat("scan", "-v", "127.0.0.1", f"{open_port},{closed}")
    assert result.returncode == 0
    assert result.stdout.decode().splitlines() == [f"127.0.0.1:{open_port} open"]
    err = result.stderr.decode()
    assert f"127.0.0.1:{closed} closed (connection refused)" in err
    assert "1 open, 1 closed, 0 filtered" in err


def test_ranges_and_lists_mixed(open_port: int) -> None:
    closed = closed_port()
    # A range around the open port plus a list item; the output is in port order.
    low = max(1, open_port - 2)
    spec = f"{closed},{low}-{open_port + 2}"
    result = run_wirecat("scan", "-v", "127.0.0.1", spec)
    assert result.returncode == 0
    assert f"127.0.0.1:{open_port} open" in result.stdout.decode().splitlines()
    reported = [
        int(line.split(":")[2].split()[0])
        for line in result.stderr.decode().splitlines()
        if line.startswith("wirecat: 127.0.0.1:")
    ]
    assert reported == sorted(reported)
    assert closed in reported


def test_ports_as_several_words_like_nc(open_port: int) -> None:
    closed = closed_port()
    result = run_wirecat("scan", "127.0.0.1", str(closed), str(open_port))
    assert result.returncode == 0
    assert result.stdout == f"127.0.0.1:{open_port} open\n".encode()


def test_netcat_spelling(open_port: int) -> None:
    result = run_wirecat("-z", "127.0.0.1", str(open_port))
    assert (result.returncode, result.stdout) == (0, f"127.0.0.1:{open_port} open\n".encode())
    closed = closed_port()
    result = run_wirecat("-zv", "127.0.0.1", str(closed))
    assert result.returncode == 1
    assert f"127.0.0.1:{closed} closed" in result.stderr.decode()


def test_netcat_spelling_with_timeout_glued(open_port: int) -> None:
    result = run_wirecat("-zvw1", "127.0.0.1", str(open_port))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("ports", ["99999", "80-20", "nosuchservice", "http-8000", "", "1,,2"])
def test_bad_port_list_is_a_usage_error(ports: str) -> None:
    result = run_wirecat("scan", "127.0.0.1", ports)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("wirecat: "), lines
    assert "Traceback" not in result.stderr.decode()


@pytest.mark.parametrize(
    "flags",
    [["-w", "0"], ["--concurrency", "0"], ["-4", "-6"], ["-u"]],
)
def test_bad_flags_are_usage_errors(flags: list[str], open_port: int) -> None:
    result = run_wirecat("scan", *flags, "127.0.0.1", str(open_port))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.decode().splitlines()) == 1


def test_unknown_host_exits_3() -> None:
    # .invalid never resolves (RFC 2606), so no query leaves the machine for an answer.
    result = run_wirecat("scan", "no-such-host.invalid", "80")
    assert result.returncode == 3
    assert result.stderr.decode().startswith("wirecat: unknown host")


def test_numeric_refuses_names() -> None:
    result = run_wirecat("scan", "-n", "localhost", "80")
    assert result.returncode == 2
    assert "-n" in result.stderr.decode()


def test_ipv6_loopback() -> None:
    try:
        listener = socket.socket(socket.AF_INET6)
        listener.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with listener:
        listener.listen()
        port = listener.getsockname()[1]
        result = run_wirecat("scan", "-6", "::1", f"{port},{closed_port('::1')}")
    assert (result.returncode, result.stdout) == (0, f"[::1]:{port} open\n".encode())


@pytest.mark.skipif(sys.platform != "linux", reason="Linux drops SYNs to a full accept queue")
def test_full_accept_queue_is_filtered() -> None:
    with socket.socket() as listener, socket.socket() as waiting:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # Linux queues one connection, then drops SYNs
        port = listener.getsockname()[1]
        waiting.settimeout(10)
        waiting.connect(("127.0.0.1", port))  # fills the queue; never accepted
        result = run_wirecat("scan", "-v", "-w", "0.3", "127.0.0.1", str(port))
    assert (result.returncode, result.stdout) == (1, b"")
    assert f"127.0.0.1:{port} filtered (no answer in 0.3 s)" in result.stderr.decode()


def test_library_results_in_port_order_with_small_concurrency(open_port: int) -> None:
    closed = [closed_port() for _ in range(5)]
    seen: list[int] = []
    result = scan_ports(
        "127.0.0.1", [*closed, open_port], concurrency=2, on_result=lambda r: seen.append(r.port)
    )
    ports = sorted({*closed, open_port})
    assert [r.port for r in result.results] == ports == seen
    assert result.open_ports == [open_port]
    assert result.count_of(PortState.CLOSED) == len(ports) - 1
    assert str(result.results[ports.index(open_port)]) == f"127.0.0.1:{open_port} open"


def test_open_port_is_closed_politely() -> None:
    # The scan's connection to an open port ends with FIN, not RST: the
    # server can still accept it and reads a clean end of stream.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert scan_ports("127.0.0.1", [port]).open_ports == [port]
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            assert conn.recv(1) == b""
