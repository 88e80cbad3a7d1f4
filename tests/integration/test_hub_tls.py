"""``listen -k --tls``: the keep-open hub over TLS (stdin to every client, every client to stdout).

Real certificates from ``trustme``; clients are Python ``ssl`` sockets (and
one ``wirecat connect --tls --pin`` with the printed pin). Every wait is on a
line the hub prints, with a bound: no sleeps.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest
import trustme

from tests.conftest import WIRECAT, Proc, random_payload, run_wirecat, sha256
from wirecat.testing import read_line_matching

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 20.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("hubtls")
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert, key, ca_file = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    client = ca.issue_cert("client.example")
    client_pem = directory / "client.pem"
    client_pem.write_bytes(client.private_key_and_cert_chain_pem.bytes())
    return {"cert": str(cert), "key": str(key), "ca": str(ca_file), "client": str(client_pem)}


def hub(spawn: Callable[..., Proc], files: dict[str, str], *args: str) -> tuple[Proc, int]:
    """A ``listen -k --tls -v`` whose stdin stays open for the test to write."""
    proc = spawn(
        WIRECAT,
        "listen",
        "-k",
        "--tls",
        "-v",
        "--cert",
        files["cert"],
        "--key",
        files["key"],
        *args,
        "127.0.0.1",
        "0",
    )
    return proc, proc.listening_port(TIMEOUT)


def until(proc: Proc, pattern: str) -> str:
    assert proc.popen.stderr is not None
    return read_line_matching(proc.popen.stderr, rf"^.*(?:{pattern}).*$", timeout=TIMEOUT).group(0)


def out_line(proc: Proc, pattern: str) -> str:
    assert proc.popen.stdout is not None
    return read_line_matching(proc.popen.stdout, pattern, timeout=TIMEOUT).group(0)


def client(port: int, files: dict[str, str], *, cert: str | None = None) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=files["ca"])
    if cert is not None:
        context.load_cert_chain(cert)
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return context.wrap_socket(raw, server_hostname="localhost")


def joined(proc: Proc, sock: ssl.SSLSocket) -> None:
    """Wait until the hub has finished ``sock``'s handshake (it is then in the broadcast)."""
    port = sock.getsockname()[1]
    until(proc, rf"TLS with 127\.0\.0\.1:{port}: TLSv1\.3")


def read_exactly(sock: ssl.SSLSocket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def stop(proc: Proc) -> str:
    """End the hub (SIGINT, as Ctrl-C) and return the rest of its stderr."""
    proc.popen.send_signal(signal.SIGINT)
    if proc.popen.stdin is not None and proc.popen.stdin.closed:
        proc.popen.stdin = None  # (communicate() would flush it)
    _, err = proc.popen.communicate(timeout=TIMEOUT)
    text = err.decode()
    assert "Traceback" not in text
    return text


def test_two_tls_clients_get_the_broadcast_and_reach_stdout(
    spawn: Callable[..., Proc], files: dict[str, str]
) -> None:
    proc, port = hub(spawn, files)
    assert proc.popen.stdin is not None
    with client(port, files) as one, client(port, files) as two:
        joined(proc, one)
        joined(proc, two)
        proc.popen.stdin.write(b"to everyone\n")
        proc.popen.stdin.flush()
        assert read_exactly(one, 12) == b"to everyone\n"
        assert read_exactly(two, 12) == b"to everyone\n"
        one.sendall(b"from one\n")
        assert out_line(proc, r"from one") == "from one"
        two.sendall(b"from two\n")
        assert out_line(proc, r"from two") == "from two"
        # End of stdin: each client gets close_notify (TLS's FIN), and can still talk.
        proc.popen.stdin.close()
        assert one.recv(100) == b""
        assert two.recv(100) == b""
        one.sendall(b"after the end\n")
        assert out_line(proc, r"after the end") == "after the end"
        one.unwrap().close()
        until(proc, r"gone \(client closed\)")
    stop(proc)


def test_the_printed_pin_command_works_against_the_hub(spawn: Callable[..., Proc]) -> None:
    proc = spawn(WIRECAT, "listen", "-k", "--tls", "127.0.0.1", "0")
    assert proc.popen.stderr is not None
    pin = read_line_matching(proc.popen.stderr, r"sha256:[0-9a-f]{64}$", timeout=TIMEOUT).group(0)
    port = proc.listening_port(TIMEOUT)
    done = run_wirecat("connect", "--tls", "--pin", pin, "127.0.0.1", str(port), stdin=b"pinned\n")
    assert done.returncode == 0, done.stderr
    assert out_line(proc, r"pinned") == "pinned"
    stop(proc)


def test_a_plain_client_is_one_line_and_the_hub_serves_on(
    spawn: Callable[..., Proc], files: dict[str, str]
) -> None:
    proc, port = hub(spawn, files)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as plain:
        plain.sendall(b"hello, plain\n")
        line = until(proc, r"^wirecat: 127\.0\.0\.1:\d+ did not speak TLS")
        assert line.endswith("is it a plain TCP client?")
    with client(port, files) as good:
        joined(proc, good)
        good.sendall(b"still served\n")
        assert out_line(proc, r"still served") == "still served"
        good.unwrap().close()
    rest = stop(proc)
    assert "did not speak TLS" not in rest  # said once


def test_a_stalled_handshake_is_cut_without_blocking_a_good_client(
    spawn: Callable[..., Proc], files: dict[str, str]
) -> None:
    proc, port = hub(spawn, files, "--handshake-timeout", "2")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as stalled:
        stalled_port = stalled.getsockname()[1]
        until(proc, rf"connection from 127\.0\.0\.1:{stalled_port}")
        # The stalled client holds no one up: a good one is served meanwhile.
        with client(port, files) as good:
            joined(proc, good)
            good.sendall(b"not blocked\n")
            assert out_line(proc, r"not blocked") == "not blocked"
            line = until(proc, rf"no TLS handshake with 127\.0\.0\.1:{stalled_port} within 2 s")
            assert line.startswith("wirecat: ")
            try:
                assert stalled.recv(100) == b""
            except ConnectionResetError:
                pass  # cut off: a reset
            good.sendall(b"and after\n")
            assert out_line(proc, r"and after") == "and after"
            good.unwrap().close()
    stop(proc)


def test_mutual_tls_refuses_a_client_without_a_certificate(
    spawn: Callable[..., Proc], files: dict[str, str]
) -> None:
    proc, port = hub(spawn, files, "--client-ca", files["ca"])
    # TLS 1.3: the client's handshake is done before the server judges it;
    # the refusal comes as an alert on the first read.
    with client(port, files) as anonymous:
        anonymous.sendall(b"let me in\n")
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            read_exactly(anonymous, 1)
    until(proc, r"^wirecat: 127\.0\.0\.1:\d+ presented no client certificate, and one is required$")
    with client(port, files, cert=files["client"]) as admitted:
        until(proc, r"TLS with 127\.0\.0\.1:\d+: TLSv1\.3 .*peer certificate ")
        admitted.sendall(b"certified\n")
        assert out_line(proc, r"certified") == "certified"
        admitted.unwrap().close()
    rest = stop(proc)
    assert "let me in" not in rest


def test_close_notify_is_an_end_and_a_bare_fin_a_possible_truncation(
    spawn: Callable[..., Proc], files: dict[str, str]
) -> None:
    proc, port = hub(spawn, files)
    with client(port, files) as polite:
        joined(proc, polite)
        polite.sendall(b"polite\n")
        assert out_line(proc, r"polite") == "polite"
        polite.unwrap().close()
        until(proc, r"127\.0\.0\.1:\d+ gone \(client closed\)")
    with client(port, files) as rude:
        joined(proc, rude)
        rude_port = rude.getsockname()[1]
        rude.sendall(b"rude\n")
        assert out_line(proc, r"rude") == "rude"
        raw = socket.socket(fileno=os.dup(rude.fileno()))
        raw.shutdown(socket.SHUT_WR)  # a FIN with no close_notify before it
        raw.close()
        line = until(proc, rf"127\.0\.0\.1:{rude_port} ended the stream without TLS close_notify")
        assert "cut short" in line
        until(proc, rf"127\.0\.0\.1:{rude_port} gone \(no TLS close_notify: possibly truncated\)")
    stop(proc)


def test_plain_hub_does_not_load_ssl() -> None:
    """Plain ``listen -k`` stays as it was: no ssl import (``-w`` with no client ends it)."""
    code = (
        "import sys\n"
        "from wirecat.cli import main\n"
        "try: main(['listen', '-k', '-w', '0.1', '127.0.0.1', '0'])\n"
        "except SystemExit: pass\n"
        "print('ssl' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert "no client connected" in done.stderr
    assert done.stdout.split()[-1] == "False"


def test_a_large_broadcast_reaches_a_slow_and_a_fast_client_whole(
    spawn: Callable[..., Proc], files: dict[str, str]
) -> None:
    """8 MB through the bounded queues and queued ciphertext; the slow reader holds stdin, loses nothing."""
    payload = random_payload(8 << 20, seed=13)
    proc, port = hub(spawn, files)
    assert proc.popen.stdin is not None
    with client(port, files) as fast, client(port, files) as slow:
        joined(proc, fast)
        joined(proc, slow)
        got: dict[str, bytes] = {}

        def drain(name: str, sock: ssl.SSLSocket, chunk: int) -> None:
            got[name] = recv_to_close_notify(sock, chunk)

        threads = [
            threading.Thread(target=drain, args=("fast", fast, 1 << 16)),
            threading.Thread(target=drain, args=("slow", slow, 1 << 10)),
        ]
        for thread in threads:
            thread.start()
        proc.popen.stdin.write(payload)
        proc.popen.stdin.close()
        for thread in threads:
            thread.join(TIMEOUT)
        assert sha256(got["fast"]) == sha256(payload)
        assert sha256(got["slow"]) == sha256(payload)
    stop(proc)


def recv_to_close_notify(sock: ssl.SSLSocket, chunk: int) -> bytes:
    parts = []
    while True:
        data = sock.recv(chunk)
        if not data:
            return b"".join(parts)
        parts.append(data)
