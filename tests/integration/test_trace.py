"""``--trace``: what it prints, and that it is what the kernel saw (compared with strace)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import WIRECAT, recv_to_eof, require_peer, run_wirecat
from tests.integration.test_demo import run_demo_cli
from wirecat import trace

TIMEOUT = 10.0

pytestmark = pytest.mark.timeout(90)

#: Our trace's call names → the system call strace shows for them.
SYSCALL_OF = {
    "socket": "socket",
    "bind": "bind",
    "listen": "listen",
    "accept": "accept4",
    "connect": "connect",
    "connect_ex": "connect",
    "setsockopt": "setsockopt",
    "getsockopt": "getsockopt",
    "getsockname": "getsockname",
    "getpeername": "getpeername",
    "send": "sendto",
    "sendall": "sendto",
    "sendto": "sendto",
    "recv": "recvfrom",
    "recv_into": "recvfrom",
    "recvfrom": "recvfrom",
    "recvfrom_into": "recvfrom",
    "shutdown": "shutdown",
}

#: A trace line; a call on no descriptor (getaddrinfo) has no "fd N".
TRACE_LINE = re.compile(r"^trace \[\s*[\d.]+\] (?:fd (\d+)\s+)?(\w+)\((.*?)\)(?: -> (.*))?$")


def listener(host: str = "127.0.0.1") -> socket.socket:
    server = socket.create_server((host, 0))
    server.settimeout(TIMEOUT)
    return server


@contextmanager
def one_client_server(reply: bytes = b"") -> Iterator[int]:
    """A server in a thread for one client: reads to end of stream, sends ``reply``, closes."""
    with listener() as server:

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                while conn.recv(65536):
                    pass
                conn.sendall(reply)

        thread = threading.Thread(target=serve)
        thread.start()
        yield server.getsockname()[1]
        thread.join(TIMEOUT)


def trace_calls(stderr: str) -> dict[int, list[str]]:
    """fd → the system calls our trace reported on it, in order, repeats merged."""
    calls: dict[int, list[str]] = defaultdict(list)
    for line in stderr.splitlines():
        match = TRACE_LINE.match(line)
        if not match or match.group(1) is None:
            continue  # not a call on a socket
        fd, name, _, result = int(match.group(1)), match.group(2), match.group(3), match.group(4) or ""
        syscall = SYSCALL_OF.get(name)
        if syscall is None:
            continue
        if name == "socket" and match.group(3).startswith("fileno="):
            syscall = "getsockname"  # wrapping a descriptor: CPython checks it with getsockname()
        elif name in ("socket", "accept"):
            fd = int(result.split()[1].rstrip(","))  # "fd 5" / "fd 5, peer ...": the new descriptor
        if not calls[fd] or calls[fd][-1] != syscall:
            calls[fd].append(syscall)
    return dict(calls)


def strace_lines(path: Path) -> list[tuple[str, int | None, str, str]]:
    """(name, first argument as an fd or None, the whole line, the result) per call.

    A call that blocks in one thread while another runs is split by strace
    into ``name(3, <unfinished ...>`` and ``<... name resumed>...) = 4``;
    the two halves are joined here.
    """
    pending: dict[str, tuple[str, int | None, str]] = {}
    calls = []
    for line in path.read_text().splitlines():
        prefixed = re.match(r"^(\d+)\s+(.*)$", line)  # "1219  socket(...)" with -f
        pid, rest = (prefixed.group(1), prefixed.group(2)) if prefixed else ("", line)
        resumed = re.match(r"^<\.\.\. (\w+) resumed>(.*)$", rest)
        if resumed:
            if pid in pending:
                name, fd, head = pending.pop(pid)
                whole = head + resumed.group(2)
                calls.append((name, fd, whole, whole.rsplit("=", 1)[-1].strip()))
            continue
        match = re.match(r"^(\w+)\((\d+)?(.*)$", rest)
        if not match:
            continue
        name, fd = match.group(1), int(match.group(2)) if match.group(2) else None
        if rest.endswith("<unfinished ...>"):
            pending[pid] = (name, fd, rest)
            continue
        calls.append((name, fd, rest, rest.rsplit("=", 1)[-1].strip()))
    return calls


def strace_calls(path: Path) -> dict[int, list[str]]:
    """fd → network system calls strace saw on sockets of family AF_INET/AF_INET6."""
    ours: set[int] = set()
    calls: dict[int, list[str]] = defaultdict(list)
    for name, fd, line, result in strace_lines(path):
        first = result.split()[0] if result else ""
        if "EAGAIN" in result:
            continue  # "nothing now": the tracer does not report those
        if name == "socket":
            if re.search(r"socket\(AF_INET6?,", line) and first.isdigit():
                ours.add(int(first))
                calls[int(first)].append("socket")
            continue
        if name == "close":
            if fd is not None:
                ours.discard(fd)
            continue
        if fd is None or fd not in ours:
            continue
        if name in ("accept4", "accept"):
            if first.isdigit():
                ours.add(int(first))
                calls[int(first)].append("accept4")  # our trace files accept() under the new socket
            continue
        if not calls[fd] or calls[fd][-1] != name:
            calls[fd].append(name)
    return {fd: seq for fd, seq in calls.items() if seq}


class Captured:
    """All of a pipe's bytes, read as they come: a line can be waited for without losing the others."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.data = b""

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        import selectors
        import time

        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.stream, selectors.EVENT_READ)
            while not (match := regex.search(self.data.decode(errors="replace"))):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise TimeoutError(f"no {pattern!r} in {self.data!r}")
                chunk = os.read(self.stream.fileno(), 65536)
                if not chunk:
                    raise TimeoutError(f"EOF before {pattern!r}: {self.data!r}")
                self.data += chunk
        return match


def child_of(pid: int) -> int:
    """The one child process of ``pid`` (the program strace started)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def run_under_strace(
    argv: list[str], tmp_path: Path, **kwargs: object
) -> tuple[subprocess.Popen[bytes], Path]:
    strace = require_peer("strace")
    log = tmp_path / "strace.log"
    popen = subprocess.Popen(
        [strace, "-f", "-qq", "-e", "trace=network,close", "-o", str(log), *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,  # type: ignore[arg-type]
    )
    return popen, log


# -- what it prints ---------------------------------------------------------------------------


def test_connect_trace_narrates_each_call() -> None:
    with one_client_server(b"bye\n") as port:
        result = run_wirecat("connect", "--trace", "127.0.0.1", str(port), stdin=b"hello\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"bye\n"
    err = result.stderr.decode()
    lines = [line for line in err.splitlines() if line.startswith("trace ")]
    assert lines, err
    assert all(TRACE_LINE.match(line) for line in lines), lines
    text = "\n".join(lines)
    assert re.search(r"socket\(AF_INET, SOCK_STREAM\) -> fd \d+", text)
    assert re.search(rf"connect_ex\(127\.0\.0\.1:{port}\) -> (EINPROGRESS|0 \(connected\))", text)
    assert "shutdown(SHUT_WR)" in text
    assert re.search(r"(splice|sendfile|readv|write)\(.*\) -> 6 bytes", text)  # the data, however it moved
    assert "close()" in text


def test_trace_explain_adds_the_cheat_sheet_line() -> None:
    with listener() as server:
        port = server.getsockname()[1]
        thread = threading.Thread(target=lambda: server.accept()[0].close())
        thread.start()
        result = run_wirecat("connect", "--trace=explain", "127.0.0.1", str(port))
        thread.join(TIMEOUT)
    err = result.stderr.decode()
    assert "shutdown(SHUT_WR)    # End our sending side" in err
    assert re.search(r"socket\(AF_INET, SOCK_STREAM\) -> fd \d+    # Create an endpoint", err)


def test_trace_bytes_adds_a_hex_dump() -> None:
    with one_client_server() as port:
        result = run_wirecat("connect", "--trace=bytes", "127.0.0.1", str(port), stdin=b"hi\x00\xff\n")
    assert result.returncode == 0, result.stderr
    assert "00000000  68 69 00 ff 0a" in result.stderr.decode()
    assert "|hi...|" in result.stderr.decode()


def test_no_trace_without_the_flag() -> None:
    with listener() as server:
        port = server.getsockname()[1]
        thread = threading.Thread(target=lambda: server.accept()[0].close())
        thread.start()
        result = run_wirecat("connect", "127.0.0.1", str(port))
        thread.join(TIMEOUT)
    assert "trace " not in result.stderr.decode()


def test_tracing_off_makes_plain_sockets() -> None:
    """Costs nothing when off: wirecat's sockets are exactly socket.socket."""
    trace.disable()
    sock = trace.new_socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        assert type(sock) is socket.socket


def test_scan_trace(spawn) -> None:
    with listener() as server:
        port = server.getsockname()[1]
        result = run_wirecat("scan", "--trace", "127.0.0.1", str(port))
    assert result.returncode == 0
    assert re.search(rf"connect_ex\(127\.0\.0\.1:{port}\)", result.stderr.decode())


def test_echo_trace_shows_the_server_side(spawn) -> None:
    server = spawn(WIRECAT, "echo", "--trace", "0")
    port = server.listening_port()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.sendall(b"ping")
        assert client.recv(4) == b"ping"
        client.shutdown(socket.SHUT_WR)
        assert client.recv(4) == b""
    server.popen.send_signal(signal.SIGTERM)
    code, _, err = server.finish(timeout=TIMEOUT)
    assert code == 0
    text = err.decode()
    assert re.search(r"accept\(\) -> fd \d+, peer 127\.0\.0\.1:\d+", text)
    assert re.search(r"recv(_into)?\(\d+\) -> 4 bytes", text)
    assert re.search(r"send\(4 bytes\) -> 4 bytes", text)
    assert re.search(r"recv(_into)?\(\d+\) -> 0 bytes \(end of stream\)", text)


def test_library_users_can_trace_their_own_socket() -> None:
    lines: list[str] = []
    tracer = trace.Tracer(write=lines.append, timestamps=False)
    a, b = socket.socketpair()
    with trace.wrap(a, tracer) as traced, b:
        traced_fd = traced.fileno()
        traced.sendall(b"hello")
        assert b.recv(5) == b"hello"
        b.sendall(b"back")
        assert traced.recv(1024) == b"back"
        traced.shutdown(socket.SHUT_WR)
    assert [line.split("  ", 1)[1] for line in lines] == [
        f"socket(fileno={traced_fd}) -> ok (checked with getsockname())",
        "sendall(5 bytes)",
        "recv(1024) -> 4 bytes",
        "shutdown(SHUT_WR)",
        "close()",
    ]


def test_traced_accept_returns_traced_sockets() -> None:
    lines: list[str] = []
    tracer = trace.Tracer(write=lines.append, timestamps=False)
    with trace.socket(tracer=tracer) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()):
            conn, _ = server.accept()
            with conn:
                assert isinstance(conn, trace.TracedSocket)
    names = [re.sub(r"^fd \d+\s+", "", line).split("(")[0] for line in lines]
    names = [name for name in names if name != "getsockname"]
    assert names[:4] == ["socket", "bind", "listen", "accept"]
    assert names.count("close") == 2


# -- what the kernel saw ----------------------------------------------------------------------


def compare(ours: dict[int, list[str]], kernel: dict[int, list[str]]) -> None:
    assert ours, "the trace reported no network call"
    assert ours == kernel, f"\ntrace:  {ours}\nstrace: {kernel}"


def test_connect_trace_matches_strace(tmp_path: Path) -> None:
    with one_client_server(b"reply\n") as port:
        popen, log = run_under_strace([WIRECAT, "connect", "--trace", "127.0.0.1", str(port)], tmp_path)
        out, err = popen.communicate(b"request\n", timeout=30)
    assert popen.returncode == 0, err
    assert out == b"reply\n"
    compare(trace_calls(err.decode()), strace_calls(log))


def test_listen_trace_matches_strace(tmp_path: Path) -> None:
    popen, log = run_under_strace([WIRECAT, "listen", "--trace", "0"], tmp_path)
    stderr = Captured(popen.stderr)
    port = int(stderr.wait_for(r"listening on 127\.0\.0\.1:(\d+)$").group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.sendall(b"to the listener\n")
        client.shutdown(socket.SHUT_WR)
        assert popen.stdin is not None
        popen.stdin.write(b"from the listener\n")
        popen.stdin.close()
        popen.stdin = None  # EOF sent; communicate() must not flush it
        assert client.recv(100) == b"from the listener\n"
    out, err = popen.communicate(timeout=30)
    assert popen.returncode == 0, err
    assert out == b"to the listener\n"
    compare(trace_calls((stderr.data + err).decode()), strace_calls(log))


def test_echo_trace_matches_strace(tmp_path: Path) -> None:
    popen, log = run_under_strace([WIRECAT, "echo", "--trace", "0"], tmp_path)
    stderr = Captured(popen.stderr)
    port = int(stderr.wait_for(r"listening on 127\.0\.0\.1:(\d+)$").group(1))
    for message in (b"one", b"two"):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.sendall(message)
            assert client.recv(10) == message
            client.shutdown(socket.SHUT_WR)
            assert client.recv(10) == b""
    traced_pid = child_of(popen.pid)
    os.kill(traced_pid, signal.SIGTERM)  # to wirecat itself, not to strace
    _, err = popen.communicate(timeout=30)
    assert popen.returncode == 0, err
    compare(trace_calls((stderr.data + err).decode()), strace_calls(log))


def test_demo_step_pauses_in_a_terminal() -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(WIRECAT, ["demo", "--step", "--interleaved"], timeout=TIMEOUT, encoding="utf-8")
    try:
        child.expect(r"\[next: server socket; Enter to go on\]")
        assert "socket.socket(" not in child.before  # nothing ran before Enter
        child.sendline("")
        child.expect(r"listener = socket\.socket\(AF_INET, SOCK_STREAM\)")
        child.expect(r"\[next: server reuseaddr; Enter to go on\]")
        child.sendline("")
        child.expect(r"listener\.setsockopt\(SOL_SOCKET, SO_REUSEADDR, 1\)")
        child.sendeof()  # end of input: the rest runs without pauses
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_demo_step_without_a_terminal_runs_through() -> None:
    result = run_demo_cli("--step")
    assert result.returncode == 0
    assert "needs a terminal" in result.stderr
    assert "listener.close()" in result.stdout


def test_demo_two_columns_when_wide() -> None:
    result = run_demo_cli("--columns")
    assert result.returncode == 0
    client_lines = [line for line in result.stdout.splitlines() if re.match(r"^\s{40,}\s?\d+ CLIENT ", line)]
    server_lines = [line for line in result.stdout.splitlines() if re.match(r"^\s?\d+ SERVER ", line)]
    assert client_lines
    assert server_lines


def test_python_m_wirecat_trace_flag_is_listed_in_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wirecat", "connect", "--help"], capture_output=True, text=True, check=False
    )
    assert "--trace" in out.stdout


# -- issue 12: the notes fit the call, the labels fit the descriptor, nothing is missed --------


def test_trace_explain_notes_fit_each_calls_arguments() -> None:
    """setblocking(True) was annotated with what setblocking(False) does."""
    with listener() as server:
        port = server.getsockname()[1]
        thread = threading.Thread(target=lambda: server.accept()[0].close())
        thread.start()
        result = run_wirecat("connect", "--trace=explain", "127.0.0.1", str(port))
        thread.join(TIMEOUT)
    notes = {}
    for line in result.stderr.decode().splitlines():
        call, _, note = line.partition("    # ")
        notes.setdefault(re.sub(r"^trace \[\s*[\d.]+\] (fd \d+\s+)?", "", call), note)
    assert "Blocking again" in notes["setblocking(True)"]
    assert "BlockingIOError" not in notes["setblocking(True)"]
    assert "BlockingIOError" in notes["setblocking(False)"]
    assert "Nagle off" in notes["setsockopt(IPPROTO_TCP, TCP_NODELAY, 1) -> ok"]
    assert "connected" in notes["getsockopt(SOL_SOCKET, SO_ERROR) -> 0"]
    assert "other end" in notes[f"getpeername() -> 127.0.0.1:{port}"]


def test_trace_labels_each_call_with_its_own_descriptor() -> None:
    """--trace=bytes labelled a write to the socket with stdin's fd 0."""
    with one_client_server() as port:
        result = run_wirecat("connect", "--trace=bytes", "127.0.0.1", str(port), stdin=b"hello\n")
    assert result.returncode == 0, result.stderr
    calls = [TRACE_LINE.match(line) for line in result.stderr.decode().splitlines()]
    moves = [m for m in calls if m and m.group(2) in ("readv", "write")]
    assert {m.group(2) for m in moves} == {"readv", "write"}, moves
    for m in moves:
        # readv(fd N, size) and write(fd N, count): the label is that N.
        assert m.group(3).startswith(f"fd {m.group(1)},"), m.group(0)
    socket_fd = next(m.group(1) for m in calls if m and m.group(2) == "socket")
    assert any(m.group(2) == "write" and m.group(1) == socket_fd for m in moves)


def test_trace_shows_getaddrinfo_for_a_host_name() -> None:
    """The name lookup is a real call: `localhost` comes from /etc/hosts, no DNS."""
    with one_client_server(b"ok\n") as port:
        result = run_wirecat("connect", "--trace=explain", "localhost", str(port), stdin=b"x\n")
    assert result.returncode == 0, result.stderr
    err = result.stderr.decode()
    line = re.search(rf"^trace \[\s*[\d.]+\] getaddrinfo\('localhost', {port}, .*$", err, re.M)
    assert line, err
    assert f"127.0.0.1:{port}" in line.group(0).split(" -> ", 1)[1]
    assert "# Resolve a host and port" in line.group(0)
    # Before any socket is made for it.
    assert err.index("getaddrinfo(") < err.index("socket(AF_")


def test_trace_shows_a_failed_lookup_by_its_eai_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup that fails is shown with getaddrinfo's own error name (a stand-in resolver: no DNS)."""
    from wirecat.errors import ResolveError
    from wirecat.resolve import resolve

    def no_such_name(*args: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    lines: list[str] = []
    trace.enable(trace.Tracer("explain", lines.append, timestamps=False))
    try:
        with pytest.raises(ResolveError):
            resolve("nowhere.test", 80)
    finally:
        trace.disable()
    assert lines == [
        "getaddrinfo('nowhere.test', 80, AF_UNSPEC, SOCK_STREAM) -> error EAI_NONAME"
        "    # No such name (or no address of the family asked for)."
    ]


@pytest.mark.parametrize(("typed", "suggested"), [("byts", "--trace=bytes"), ("xyz", None)])
def test_bad_trace_mode_suggests_only_what_help_lists(typed: str, suggested: str | None) -> None:
    """--trace=byts suggested --trace=calls, which --help never lists."""
    top_help = run_wirecat("--help").stdout.decode()
    modes = re.search(r"--trace\[=([\w|]+)\]", top_help)
    assert modes, top_help
    listed = {"--trace", *(f"--trace={mode}" for mode in modes.group(1).split("|"))}
    result = run_wirecat("connect", f"--trace={typed}", "127.0.0.1", "1")
    assert result.returncode == 2
    hint = result.stderr.decode().split(": ", 2)[2]
    if suggested:
        assert f"did you mean {suggested}?" in hint
    offered = set(re.findall(r"--trace(?:=\w+)?", hint))
    assert offered, hint
    assert offered <= listed, hint


def test_trace_shows_an_event_loops_nonblocking_connect(spawn) -> None:
    """The relay's connect() to its target (EINPROGRESS, on the event loop) was missing,
    and its copying path reported each recv_into/send twice."""
    with one_client_server(b"reply\n") as target_port:
        relay = spawn(WIRECAT, "relay", "--trace=bytes", "0", f"127.0.0.1:{target_port}")
        port = relay.listening_port()
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.sendall(b"request\n")
            client.shutdown(socket.SHUT_WR)
            assert recv_to_eof(client) == b"reply\n"
        relay.popen.send_signal(signal.SIGTERM)
        _, _, err = relay.finish(timeout=TIMEOUT)
    text = err.decode()
    assert re.search(rf"connect\(127\.0\.0\.1:{target_port}\) -> EINPROGRESS", text), text
    assert "-> pipe" not in text  # no splice while the bytes are shown: no line about one
    assert "pipe ->" not in text
    assert len(re.findall(r"recv_into\(\d+\) -> 8 bytes", text)) == 1, text  # b"request\n", once
    assert len(re.findall(r"send\(8 bytes\) -> 8 bytes", text)) == 1, text


def test_udp_trace_explains_datagram_calls(tmp_path: Path) -> None:
    """A UDP connect() is no handshake and a send() is never partial: the notes say so."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(TIMEOUT)
        port = receiver.getsockname()[1]
        # The session ends by itself at end of stdin, after its trace lines
        # are written (killing it once the datagram arrived raced the send's line).
        done = subprocess.run(
            [WIRECAT, "connect", "-u", "--trace=explain", "127.0.0.1", str(port)],
            input=b"ping\n",
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            timeout=TIMEOUT,
        )
        assert receiver.recv(100) == b"ping\n"
    assert done.returncode == 0, done.stderr
    err = done.stderr
    text = err.decode()
    assert re.search(
        r"connect\(127\.0\.0\.1:\d+\) -> ok    # A datagram socket's connect\(\) sends nothing", text
    )
    assert re.search(r"send\(5 bytes\) -> 5 bytes    # One datagram: sent whole", text)
    assert "three-way handshake" not in text


def test_traced_connect_reports_einprogress() -> None:
    lines: list[str] = []
    tracer = trace.Tracer(write=lines.append, timestamps=False)
    with listener() as server, trace.socket(tracer=tracer) as client:
        client.setblocking(False)
        with pytest.raises(BlockingIOError):
            client.connect(server.getsockname())
    assert any(re.search(r"connect\(127\.0\.0\.1:\d+\) -> EINPROGRESS$", line) for line in lines), lines


def test_traced_socket_names_options_and_decodes_their_structs() -> None:
    import struct

    lines: list[str] = []
    tracer = trace.Tracer(write=lines.append, timestamps=False)
    with trace.socket(tracer=tracer) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    assert any("setsockopt(SOL_SOCKET, SO_LINGER, on, 0 s) -> ok" in line for line in lines), lines
    assert any("setsockopt(SOL_SOCKET, SO_REUSEPORT, 1) -> ok" in line for line in lines), lines


def test_library_resolve_is_traced() -> None:
    from wirecat.resolve import resolve

    lines: list[str] = []
    trace.enable(trace.Tracer(write=lines.append, timestamps=False))
    try:
        resolve("127.0.0.1", 80)
    finally:
        trace.disable()
    assert lines == ["getaddrinfo('127.0.0.1', 80, AF_UNSPEC, SOCK_STREAM) -> 127.0.0.1:80"]


def test_trace_shows_both_splices_through_the_private_pipe(tmp_path: Path) -> None:
    """socket → file goes socket → our pipe → file: two splice() calls, and the trace showed one."""
    with listener() as server:
        port = server.getsockname()[1]

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"to a file\n")
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(100):
                    pass

        thread = threading.Thread(target=serve)
        thread.start()
        out = tmp_path / "out"
        with out.open("wb") as sink:
            result = subprocess.run(
                [WIRECAT, "connect", "--trace", "127.0.0.1", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.PIPE,
                timeout=30,
                check=False,
            )
        thread.join(TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == b"to a file\n"
    err = result.stderr.decode()
    into = re.search(r"fd (\d+)  splice\(fd \1 -> pipe, \d+\) -> 10 bytes", err)
    out_of = re.search(r"fd 1  splice\(pipe -> fd 1, 10\) -> 10 bytes", err)
    assert into, err
    assert out_of, err
    assert into.start() < out_of.start()
