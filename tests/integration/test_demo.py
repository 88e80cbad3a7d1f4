"""``wirecat demo``: every step shown, in order, and nothing left listening."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time

import pytest

from tests.conftest import WIRECAT
from wirecat.apps.demo import Step, format_step, run_demo

pytestmark = pytest.mark.timeout(60)

# The calls a learner must see, in the order they happen.
STEPS_IN_ORDER = [
    r"SERVER  listener = socket\.socket\(",
    r"SERVER  listener\.setsockopt\(SOL_SOCKET, SO_REUSEADDR, 1\)",
    r"SERVER  listener\.bind\(",
    r"SERVER  listener\.listen\(",
    r"SERVER  conn, addr = listener\.accept\(\)",
    r"CLIENT  client = socket\.socket\(",
    r"CLIENT  client\.connect\(",
    r"SERVER  accept\(\) returned",
    r"CLIENT  client\.sendall\(",
    r"SERVER  recv\(\) returned",
    r"CLIENT  n = client\.send\(",
    r"SERVER  data = conn\.recv\(1024\)",
    r"CLIENT  client\.shutdown\(SHUT_WR\)",
    r"SERVER  conn\.close\(\)",
    r"CLIENT  data = client\.recv\(1024\)",
    r"CLIENT  client\.close\(\)",
    r"SERVER  listener\.close\(\)",
]


def run_demo_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WIRECAT, "demo", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_demo_shows_each_step_in_order() -> None:
    result = run_demo_cli()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    position = 0
    for pattern in STEPS_IN_ORDER:
        match = re.compile(pattern).search(out, position)
        assert match, f"{pattern!r} missing after position {position}:\n{out}"
        position = match.end()


def test_demo_numbers_steps_and_shows_real_values() -> None:
    out = run_demo_cli().stdout
    numbers = [int(n) for n in re.findall(r"^ ?(\d+) (?:SERVER|CLIENT|CHECK) ", out, re.M)]
    assert numbers == list(range(1, len(numbers) + 1))
    port = int(re.search(r"getsockname\(\) says 127\.0\.0\.1:(\d+)", out).group(1))
    assert port > 0
    assert f"client.connect(('127.0.0.1', {port}))" in out
    # Byte counts are the real ones, and recv sees end of stream as b''.
    assert "b'hello, server\\n' (14 bytes)" in out
    assert "b'' (0 bytes)" in out


def test_demo_teaches_the_right_lessons() -> None:
    out = run_demo_cli().stdout
    assert "not a limit on clients" in out  # listen(backlog)
    assert "recv needs a size" in out
    assert "send() may send only part" in out
    assert "sendall()" in out
    assert "end of stream" in out  # recv() == b""


def test_nothing_is_left_listening() -> None:
    out = run_demo_cli().stdout
    port = int(re.search(r"getsockname\(\) says 127\.0\.0\.1:(\d+)", out).group(1))
    with socket.socket() as probe:
        probe.settimeout(10)
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert "ECONNREFUSED" in out


def step_shapes(out: str) -> list[str]:
    """The step lines with numbers blanked, repeats of one call merged.

    Ports and descriptors differ between runs. A recv() may also, rarely,
    return part of what was sent and be followed by another recv(): that is
    the truth being shown, so consecutive identical calls count as one.
    """
    shapes: list[str] = []
    for line in out.splitlines():
        if re.match(r"^ ?\d+ (SERVER|CLIENT|CHECK) ", line):
            shape = re.sub(r"\d+", "N", line.split(None, 1)[1])
            if not shapes or shapes[-1] != shape:
                shapes.append(shape)
    return shapes


def test_output_order_is_the_same_every_run() -> None:
    first, second = run_demo_cli(), run_demo_cli()
    assert first.returncode == second.returncode == 0
    assert step_shapes(first.stdout) == step_shapes(second.stdout)
    assert len(step_shapes(first.stdout)) >= 20


def test_ipv6_variant() -> None:
    try:
        socket.socket(socket.AF_INET6).close()
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    result = run_demo_cli("-6")
    assert result.returncode == 0, result.stderr
    assert "AF_INET6" in result.stdout
    assert "[::1]:" in result.stdout


def test_library_call_leaves_no_thread_or_socket() -> None:
    before = {t.name for t in threading.enumerate()}
    steps: list[Step] = []
    result = run_demo(steps.append)
    assert tuple(steps) == result.steps
    assert result.client_bytes == len(b"hello, server\nfirst line\nsecond line\n")
    assert result.server_bytes > 0
    left = {t.name for t in threading.enumerate()} - before
    assert not {"wirecat-demo-server", "wirecat-demo-client"} & left
    assert format_step(steps[0]).startswith(" 1 SERVER  listener = socket.socket(AF_INET")
    with socket.socket() as probe:
        assert probe.connect_ex(result.address) != 0


# -- demo --step: a person at the prompts ------------------------------------------------------


def _spawn_step_demo():  # -> pexpect.spawn
    pexpect = pytest.importorskip("pexpect")
    return pexpect.spawn(WIRECAT, ["demo", "--step", "--interleaved"], timeout=10, encoding="utf-8")


@pytest.mark.parametrize(
    "step",
    [
        "server reuseaddr",  # a server step: the prompt used to be read in the server's thread
        "client connect",  # while the server thread blocks in accept()
        "server recv returned",  # after the server's recv() returned, before it is shown
        "check",  # the last prompt, with both threads done
    ],
)
def test_ctrl_c_at_a_step_prompt_ends_the_demo_at_once(step: str) -> None:
    """Ctrl-C at any prompt of `demo --step` exits 130 within a second (it took 10 s)."""
    import pexpect

    child = _spawn_step_demo()
    try:
        while True:
            child.expect(r"\[next: (.+?); Enter to go on\]")
            if child.match.group(1) == step:
                break
            child.sendline("")
        started = time.monotonic()
        child.sendintr()
        child.expect(pexpect.EOF, timeout=10)
        elapsed = time.monotonic() - started
    finally:
        child.close()
    assert child.exitstatus == 130, (child.exitstatus, child.signalstatus)
    assert elapsed < 1.0, f"Ctrl-C took {elapsed:.2f} s to end the demo"
    assert "Traceback" not in child.before


def test_a_long_pause_at_a_prompt_is_not_a_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    """A person may think longer than a turn's deadline: only a running step has one."""
    from wirecat.apps import demo

    monkeypatch.setattr(demo, "TURN_TIMEOUT", 0.2)
    thinking = threading.Event()  # never set: wait() below is a person's pause, not a sync

    def slow_reader(name: str) -> None:
        if name in ("server bind", "client connect", "server recv returned"):
            thinking.wait(0.5)  # longer than the deadline, at a server and at a client step

    result = demo.run_demo(before_step=slow_reader)
    assert result.steps[-1].side == "check"
    assert "ECONNREFUSED" in result.steps[-1].result


def test_an_exception_in_before_step_stops_both_sides() -> None:
    """What Ctrl-C does, in-process: the caller's exception comes out, no thread is left."""

    class Stop(Exception):
        pass

    def stop_at_recv(name: str) -> None:
        if name == "server recv returned":
            raise Stop

    before = set(threading.enumerate())
    started = time.monotonic()
    with pytest.raises(Stop):
        run_demo(before_step=stop_at_recv)
    assert time.monotonic() - started < 2.0
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("wirecat-demo")]
