"""``--exec`` and ``--sh-exec``: a program behind a socket, both ways, safely."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import WIRECAT, random_payload, run_wirecat, sha256
from wirecat.testing import read_line_matching

TIMEOUT = 20.0

pytestmark = pytest.mark.timeout(120)

#: Reads all of stdin, then answers: only works if the peer's EOF reaches the program.
READ_ALL_THEN_ANSWER = (
    "import sys, hashlib; data = sys.stdin.buffer.read(); "
    "digest = hashlib.sha256(data).hexdigest().encode(); "
    "sys.stdout.buffer.write(b'%d bytes, sha %s' % (len(data), digest))"
)


def client(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request``, half-close, return everything until the server closes."""
    with client(port) as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(request), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        data = bytearray()
        while chunk := sock.recv(1 << 20):
            data += chunk
        sender.join(TIMEOUT)
    return bytes(data)


def test_exec_cat_is_an_echo_server(spawn) -> None:
    server = spawn(WIRECAT, "listen", "0", "--exec", "cat")
    payload = random_payload(8 << 20, seed=41)
    assert sha256(exchange(server.listening_port(), payload)) == sha256(payload)
    code, _, err = server.finish(timeout=TIMEOUT)
    assert code == 0, err


def test_a_program_that_reads_to_eof_then_answers(spawn) -> None:
    """Needs half-close both ways: the peer's FIN closes the program's stdin; its exit sends ours."""
    server = spawn(WIRECAT, "listen", "0", "--exec", sys.executable, "-c", READ_ALL_THEN_ANSWER)
    payload = random_payload(3 << 20, seed=42)
    answer = exchange(server.listening_port(), payload)
    assert answer == b"%d bytes, sha %s" % (len(payload), sha256(payload).encode())
    assert server.finish(timeout=TIMEOUT)[0] == 0


def test_sh_exec_runs_a_pipeline(spawn) -> None:
    server = spawn(WIRECAT, "listen", "0", "--sh-exec", "tr a-z A-Z | rev")
    assert exchange(server.listening_port(), b"hello pipe\n") == b"EPIP OLLEH\n"
    assert server.finish(timeout=TIMEOUT)[0] == 0


def test_exec_needs_no_shell(spawn) -> None:
    """Arguments reach the program as they are: no shell expands them."""
    server = spawn(WIRECAT, "listen", "0", "--exec", "echo", "$HOME", "*", "a;b")
    assert exchange(server.listening_port(), b"") == b"$HOME * a;b\n"
    assert server.finish(timeout=TIMEOUT)[0] == 0


def test_the_peer_is_in_the_programs_environment(spawn) -> None:
    script = 'echo "$WIRECAT_PEER_ADDR $WIRECAT_PEER_PORT $WIRECAT_LOCAL_ADDR $WIRECAT_LOCAL_PORT"'
    server = spawn(WIRECAT, "listen", "0", "--sh-exec", script)
    port = server.listening_port()
    with client(port) as sock:
        local_port = sock.getsockname()[1]
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(100):
            data += chunk
    assert data.decode().split() == ["127.0.0.1", str(local_port), "127.0.0.1", str(port)]
    assert server.finish(timeout=TIMEOUT)[0] == 0


def test_exec_stderr_goes_to_the_peer_only_when_asked(spawn) -> None:
    script = "echo out; echo err >&2"
    server = spawn(WIRECAT, "listen", "0", "--sh-exec", script)
    assert exchange(server.listening_port(), b"") == b"out\n"
    code, _, err = server.finish(timeout=TIMEOUT)
    assert code == 0
    assert b"err\n" in err  # stayed on wirecat's stderr
    server = spawn(WIRECAT, "listen", "0", "--exec-stderr", "--sh-exec", script)
    assert sorted(exchange(server.listening_port(), b"").split()) == [b"err", b"out"]
    assert server.finish(timeout=TIMEOUT)[0] == 0


def test_output_is_not_lost_when_the_program_ignores_its_input(spawn) -> None:
    """The program never reads stdin (and exits): the peer still gets all its output."""
    server = spawn(WIRECAT, "listen", "0", "--sh-exec", "head -c 100000 /dev/zero")
    assert exchange(server.listening_port(), random_payload(4 << 20, seed=43)) == bytes(100000)
    assert server.finish(timeout=TIMEOUT)[0] == 0


def test_keep_open_runs_a_program_per_connection_in_parallel(spawn) -> None:
    # Each program waits for its client's line before answering: all 20 run at once.
    server = spawn(WIRECAT, "listen", "-k", "0", "-v", "--sh-exec", 'read line; echo "$line from $$"')
    port = server.listening_port()
    socks = [client(port) for _ in range(20)]
    for number, sock in enumerate(socks):
        sock.sendall(b"client %d\n" % number)
        sock.shutdown(socket.SHUT_WR)
    pids = set()
    for number, sock in enumerate(socks):
        data = b""
        while chunk := sock.recv(100):
            data += chunk
        words = data.split()
        assert words[:2] == [b"client", str(number).encode()]
        pids.add(words[-1])
        sock.close()
    assert len(pids) == 20  # one process each
    server.popen.send_signal(signal.SIGTERM)
    _, _, err = server.finish(timeout=TIMEOUT)
    assert b"exited with status 0" in err


def test_keep_open_max_conns_refuses_politely(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-k", "0", "-v", "--max-conns", "1", "--exec", "cat")
    port = server.listening_port()
    with client(port) as first:
        first.sendall(b"x")
        assert first.recv(1) == b"x"  # its program is running
        with client(port) as second:
            assert second.recv(10) == b""
    server.popen.send_signal(signal.SIGTERM)
    _, _, err = server.finish(timeout=TIMEOUT)
    assert b"refused 127.0.0.1" in err


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_refused_on_a_public_listener_without_allow(host: str) -> None:
    result = run_wirecat("listen", host, "0", "--exec", "cat")
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1
    assert "refusing to run a program for anyone" in lines[0]
    assert "--allow" in lines[0]


def test_a_public_listener_with_allow_is_fine(spawn) -> None:
    server = spawn(WIRECAT, "listen", "0.0.0.0", "0", "--allow", "127.0.0.1", "--exec", "cat")
    assert exchange(server.listening_port(), b"allowed\n") == b"allowed\n"
    assert server.finish(timeout=TIMEOUT)[0] == 0


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        # A program that is not there or cannot be run: a bad local resource (exit 9,
        # as the README's table and `wirecat --help` say), not a usage error.
        (
            ["--exec", "no-such-program-here"],
            9,
            "wirecat: program 'no-such-program-here' not found: give a full path, or check PATH",
        ),
        (
            ["--exec", "/etc/passwd"],
            9,
            "wirecat: cannot run '/etc/passwd': it is not an executable file: check its permissions",
        ),
        (["--exec", "/etc"], 9, "wirecat: cannot run '/etc': it is a directory: give the program inside it"),
        # A command line that names no program at all is a usage error.
        (["--exec"], 2, "wirecat: --exec needs a program: e.g. --exec /bin/cat (it must come last)"),
        (["--sh-exec", " "], 2, 'wirecat: --sh-exec needs a command: e.g. --sh-exec "tr a-z A-Z"'),
    ],
)
@pytest.mark.parametrize("command", [["listen", "0"], ["connect", "127.0.0.1", "9"]])
def test_a_program_that_cannot_run_is_refused_before_any_socket(
    command: list[str], args: list[str], code: int, line: str
) -> None:
    result = run_wirecat(*command, *args)
    assert (result.returncode, result.stderr.decode()) == (code, line + "\n")


def test_connect_exec_exits_with_the_programs_status(spawn) -> None:
    server = spawn(WIRECAT, "listen", "0")
    port = server.listening_port()
    assert server.popen.stdin is not None
    server.popen.stdin.write(b"question\n")  # the listener sends it once the client is in
    server.popen.stdin.close()
    result = run_wirecat(
        "connect", "127.0.0.1", str(port), "--sh-exec", 'read q; echo "answer to $q"; exit 7'
    )
    assert result.returncode == 7
    _, out, _ = server.finish(timeout=TIMEOUT)
    assert out == b"answer to question\n"


def test_exec_arguments_are_not_wirecat_flags(spawn) -> None:
    """Everything after --exec is the program's: -c, -k, --trace are not wirecat's."""
    server = spawn(WIRECAT, "listen", "0", "--exec", "grep", "-c", "--", "-k")
    assert exchange(server.listening_port(), b"-k\nno\n-k\n") == b"2\n"
    assert server.finish(timeout=TIMEOUT)[0] == 0


def test_ncat_style_e_is_pointed_to_exec() -> None:
    result = run_wirecat("-l", "-p", "0", "-e", "/bin/cat")
    assert result.returncode == 2
    assert b"--exec" in result.stderr


def test_an_idle_timeout_ends_the_program_and_closes_the_connection(spawn) -> None:
    """-i ends a session early: the program is stopped and the client sees the end at once."""
    server = spawn(WIRECAT, "listen", "-k", "0", "-i", "0.5", "-v", "--exec", "cat")
    port = server.listening_port()
    for _ in range(2):  # the server goes on serving after each one
        with client(port) as sock:
            sock.sendall(b"then silence\n")
            assert sock.recv(100) == b"then silence\n"
            started = time.monotonic()
            with pytest.raises(ConnectionResetError):  # cut off at once, and reset: never a clean end
                sock.recv(100)
            assert time.monotonic() - started < 8
    server.popen.send_signal(signal.SIGTERM)
    _, _, err = server.finish(timeout=TIMEOUT)
    assert err.count(b"no data either way for 0.5 s") == 2
    assert b"exited with status -15" in err  # cat was stopped, not left behind


def test_an_early_end_stops_what_the_program_started_too(spawn) -> None:
    """-i under ``--sh-exec "cat | cat"``: the whole pipeline is stopped, so the session ends at once.

    Stopping only the shell left the two cats holding the program's pipes; the
    session then waited 10 s for its pumps and closed descriptors under them.
    """
    server = spawn(WIRECAT, "listen", "-k", "0", "-i", "0.5", "-v", "--sh-exec", "cat | cat")
    port = server.listening_port()
    with client(port) as sock:
        sock.sendall(b"through two cats\n")
        assert sock.recv(100) == b"through two cats\n"
        with pytest.raises(ConnectionResetError):  # cut off by -i: a reset
            sock.recv(100)
    assert server.popen.stderr is not None
    done = read_line_matching(server.popen.stderr, r"done: .* in ([\d.]+) s; no data either way for 0\.5 s")
    assert float(done.group(1)) < 3.0
    server.popen.send_signal(signal.SIGTERM)
    assert server.finish(timeout=TIMEOUT)[0] == 128 + signal.SIGTERM


def test_sigterm_ends_a_keep_open_exec_server_with_clients_at_once(spawn) -> None:
    """Connected clients do not hold a stopping server (it used to wait 5 s for each in turn)."""
    server = spawn(WIRECAT, "listen", "-k", "0", "--exec", "cat")
    port = server.listening_port()
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(client(port)) for _ in range(3)]
        for sock in clients:
            sock.sendall(b"ping\n")
            assert sock.recv(100) == b"ping\n"
        started = time.monotonic()
        server.popen.send_signal(signal.SIGTERM)
        code, _, _ = server.finish(timeout=TIMEOUT)
        assert time.monotonic() - started < 3.0
        assert code == 128 + signal.SIGTERM
        for sock in clients:
            with contextlib.suppress(ConnectionResetError):  # ended either way: that is the point
                assert sock.recv(100) == b""


def test_running_out_of_descriptors_leaks_none(tmp_path) -> None:
    """When the second pipe cannot be made (EMFILE), the first is closed and the error is one line."""
    script = tmp_path / "pressure.py"
    script.write_text(
        "import os, resource, socket\n"
        "from wirecat.apps.program import Program, run_program\n"
        "from wirecat.errors import ProgramError\n"
        "a, b = socket.socketpair(); b.close()\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "used = {int(f) for f in os.listdir('/proc/self/fd')}\n"
        "free = [n for n in range(1024) if n not in used]\n"
        "for k in range(1, 4):\n"
        "    before = set(os.listdir('/proc/self/fd'))\n"
        "    resource.setrlimit(resource.RLIMIT_NOFILE, (free[k], hard))\n"
        "    try:\n"
        "        run_program(a, Program(('/bin/cat',)), peer='test')\n"
        "        print('ran')\n"
        "    except ProgramError as exc:\n"
        "        print(exc.message)\n"
        "    finally:\n"
        "        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))\n"
        "    print('leaked', len(set(os.listdir('/proc/self/fd')) - before))\n"
    )
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "cannot run /bin/cat: too many open files" in lines
    assert [line for line in lines if line.startswith("leaked")] == ["leaked 0"] * 3


def test_a_hang_up_stops_the_program_too(spawn) -> None:
    """SIGHUP (terminal closed) unwinds like SIGTERM: the program, in its own group, is stopped."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        wirecat = spawn(WIRECAT, "connect", "127.0.0.1", str(port), "--sh-exec", "echo $$; exec sleep 30")
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            pid = int(conn.recv(100).split()[0])
            wirecat.popen.send_signal(signal.SIGHUP)
            code, _, err = wirecat.finish(timeout=TIMEOUT)
    assert code == 128 + signal.SIGHUP, err
    assert _exits_within(pid, TIMEOUT), f"pid {pid} (sleep 30) outlived wirecat's hang-up"


def _exits_within(pid: int, seconds: float) -> bool:
    """Wait for process ``pid`` (not our child) to end: a pidfd becomes readable when it does."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # gone already
    try:
        return bool(select.select([pidfd], [], [], seconds)[0])
    finally:
        os.close(pidfd)
