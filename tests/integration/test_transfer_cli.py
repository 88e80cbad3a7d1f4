"""``wirecat send`` / ``wirecat recv`` as users run them: exit codes, roles, -k, messages."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from blake3 import blake3

from tests.conftest import WIRECAT, run_wirecat
from wirecat.testing import read_line_matching


def listening_port(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stderr is not None
    return int(read_line_matching(proc.stderr, r"listening on .*:(\d+)$", timeout=10).group(1))


def test_send_then_recv_exit_0_with_a_summary(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "in" / "a.txt").write_bytes(b"alpha\n")
    (tmp_path / "in" / "b.bin").write_bytes(bytes(range(256)) * 100)
    recv = spawn(WIRECAT, "recv", "-v", "--dir", str(tmp_path / "out"), "0")
    port = listening_port(recv.popen)
    sent = run_wirecat(
        "send", "-v", str(tmp_path / "in" / "a.txt"), str(tmp_path / "in" / "b.bin"), f"127.0.0.1:{port}"
    )
    code, _, err = recv.finish()
    assert sent.returncode == 0, sent.stderr
    assert code == 0, err
    assert b"sent 2 files, 25.6 kB in" in sent.stderr
    assert b"all verified" in sent.stderr
    assert re.search(rb"received 2 files, 25.6 kB in [\d.]+ s, all verified", err)
    digest = blake3(b"alpha\n").hexdigest().encode()
    assert b"a.txt: ok, 6 B, blake3 " + digest in err
    assert (tmp_path / "out" / "b.bin").read_bytes() == bytes(range(256)) * 100


def test_reversed_roles(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    (tmp_path / "out").mkdir()
    send = spawn(WIRECAT, "send", "--listen", "0", str(tmp_path / "a.txt"))
    port = listening_port(send.popen)
    received = run_wirecat("recv", "--dir", str(tmp_path / "out"), f"127.0.0.1:{port}")
    code, _, err = send.finish()
    assert received.returncode == 0, received.stderr
    assert code == 0, err
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"alpha\n"


def test_refused_exists_is_exit_1_on_both_ends(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.txt").write_bytes(b"new")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_bytes(b"old")
    recv = spawn(WIRECAT, "recv", "--dir", str(tmp_path / "out"), "0")
    port = listening_port(recv.popen)
    sent = run_wirecat("send", str(tmp_path / "a.txt"), f"127.0.0.1:{port}")
    code, _, err = recv.finish()
    assert sent.returncode == 1
    assert code == 1
    assert b"wirecat: 1 of 1 not delivered: a.txt: refused: it exists" in sent.stderr
    assert b"sent 0 of 1 file" in sent.stderr
    assert b"Traceback" not in sent.stderr + err
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"old"


def test_keep_open_with_two_senders(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "out").mkdir()
    for name in ("one", "two"):
        (tmp_path / name).write_bytes(name.encode() * 100_000)
    recv = spawn(WIRECAT, "recv", "-k", "--max-conns", "2", "--dir", str(tmp_path / "out"), "0")
    port = listening_port(recv.popen)
    senders = [
        subprocess.Popen([WIRECAT, "send", str(tmp_path / name), f"127.0.0.1:{port}"], stderr=subprocess.PIPE)
        for name in ("one", "two")
    ]
    for sender in senders:
        _, err = sender.communicate(timeout=30)
        assert sender.returncode == 0, err
    for name in ("one", "two"):
        assert (tmp_path / "out" / name).read_bytes() == name.encode() * 100_000
    assert recv.popen.poll() is None  # still listening
    recv.popen.terminate()
    recv.finish()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send", "-u", "x", "127.0.0.1:9"], b"file transfer needs a stream, not UDP"),
        (["send", "--tls", "--plain", "x", "127.0.0.1:9"], b"--plain and --tls cannot go together"),
        (["send", "--pin", "sha256:" + "a" * 64, "x", "127.0.0.1:9"], b"--pin is for TLS: add --tls"),
        (["send", "--listen", "0", "--pin", "sha256:" + "a" * 64, "x"], b"--pin is for the connecting side"),
        (["recv", "--tls", "--cert", "c.pem", "127.0.0.1:9"], b"--cert is for the listening side"),
        (["send", "x"], b"send needs PATH... and then HOST:PORT"),
        (["recv"], b"recv needs one of PORT"),
        (["recv", "-k", "127.0.0.1:9"], b"-k applies to a listening recv"),
        (["recv", "--max-conns", "2", "0"], b"--max-conns applies with -k"),
        (["recv", "--max-size", "lots", "0"], b"bad size 'lots'"),
        (["recv", "--overwrite", "--rename", "0"], b"not allowed with argument"),
    ],
)
def test_usage_errors(args: list[str], message: bytes) -> None:
    result = run_wirecat(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.count(b"\n") == 1


def test_a_path_that_is_not_there_is_exit_9(tmp_path: Path) -> None:
    result = run_wirecat("send", str(tmp_path / "nope"), "127.0.0.1:9")
    assert result.returncode == 9
    assert b"cannot send" in result.stderr


def test_a_refused_connection_is_exit_4(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_wirecat("send", str(tmp_path / "a"), f"127.0.0.1:{port}")
    assert result.returncode == 4


def test_progress_on_a_pipe_only_when_asked(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a").write_bytes(b"a" * 1000)
    (tmp_path / "out").mkdir()
    recv = spawn(WIRECAT, "recv", "--progress", "--dir", str(tmp_path / "out"), "0")
    port = listening_port(recv.popen)
    sent = run_wirecat("send", str(tmp_path / "a"), f"127.0.0.1:{port}")
    _, _, err = recv.finish()
    assert re.search(rb"^a: 1\.0 kB of 1\.0 kB", err, re.M)
    assert not re.search(rb"^a: ", sent.stderr, re.M)  # no --progress, not a terminal


def test_send_does_not_import_asyncio_or_ssl(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from wirecat.cli import main\n"
        "try: main(['send', 'x', '127.0.0.1:9'])\n"
        "except SystemExit: pass\n"
        "print('asyncio' in sys.modules, 'ssl' in sys.modules, 'blake3' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # (blake3 too: the digest's extension loads when a file's data is hashed, not before)
    assert out.split()[-3:] == ["False", "False", "False"]


def other_side(err: bytes) -> list[str]:
    """The command the listener printed for the other side, as words."""
    line = re.search(rb"on the other side run: (.*)$", err, re.M)
    assert line is not None, err
    return line.group(1).decode().split()


def test_tls_recv_prints_the_command_and_it_works_as_printed(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "out").mkdir()
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 4000)
    recv = spawn(WIRECAT, "recv", "--tls", "--dir", str(tmp_path / "out"), "0")
    assert recv.popen.stderr is not None
    line = read_line_matching(recv.popen.stderr, r"on the other side run: (.*)$", timeout=20)
    words = line.group(1).split()
    assert words[:4] == ["wirecat", "send", "--tls", "--pin"]
    assert words[4].startswith("sha256:")
    assert words[5] == "FILE..."
    words[5] = str(payload)
    sent = subprocess.run([WIRECAT, *words[1:]], capture_output=True, timeout=30, check=False)
    code, _, err = recv.finish()
    assert sent.returncode == 0, sent.stderr
    assert code == 0, err
    assert (tmp_path / "out" / "payload.bin").read_bytes() == payload.read_bytes()


def test_tls_send_listen_prints_a_recv_command_that_works_as_printed(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "out").mkdir()
    (tmp_path / "a.txt").write_bytes(b"secret\n")
    send = spawn(WIRECAT, "send", "--tls", "--listen", "0", str(tmp_path / "a.txt"))
    assert send.popen.stderr is not None
    line = read_line_matching(send.popen.stderr, r"on the other side run: (.*)$", timeout=20)
    words = line.group(1).split()
    assert words[:4] == ["wirecat", "recv", "--tls", "--pin"]
    received = subprocess.run(
        [WIRECAT, *words[1:]], capture_output=True, timeout=30, check=False, cwd=tmp_path / "out"
    )
    code, _, err = send.finish()
    assert received.returncode == 0, received.stderr
    assert code == 0, err
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"secret\n"


def test_tls_a_wrong_pin_is_exit_13(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "out").mkdir()
    (tmp_path / "a").write_bytes(b"a")
    recv = spawn(WIRECAT, "recv", "--tls", "--dir", str(tmp_path / "out"), "0")
    assert recv.popen.stderr is not None
    port = int(read_line_matching(recv.popen.stderr, r"listening on .*:(\d+)$", timeout=20).group(1))
    sent = run_wirecat(
        "send", "--tls", "--pin", "sha256:" + "0" * 64, str(tmp_path / "a"), f"127.0.0.1:{port}"
    )
    assert sent.returncode == 13, sent.stderr
    assert b"is not the pinned one" in sent.stderr
    recv.finish()
    assert list((tmp_path / "out").iterdir()) == []


def test_tls_without_a_pin_names_the_one_to_give(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A one-transfer recv is gone after the failed handshake: the pin comes from that very one."""
    (tmp_path / "out").mkdir()
    (tmp_path / "a").write_bytes(b"a")
    recv = spawn(WIRECAT, "recv", "--tls", "--dir", str(tmp_path / "out"), "0")
    assert recv.popen.stderr is not None
    port = int(read_line_matching(recv.popen.stderr, r"listening on .*:(\d+)$", timeout=20).group(1))
    pin = read_line_matching(recv.popen.stderr, r"made for this run: (sha256:[0-9a-f]{64})$", timeout=20)
    sent = run_wirecat("send", "--tls", str(tmp_path / "a"), f"127.0.0.1:{port}")
    assert sent.returncode == 13, sent.stderr
    assert sent.stderr.decode().strip().splitlines()[-1] == (
        f"wirecat: self-signed certificate for 127.0.0.1:{port}: "
        f"to trust this one: --pin {pin.group(1)}, or --cafile FILE"
    )
    recv.finish()


def test_tls_with_a_ca_certificate(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "out").mkdir()
    (tmp_path / "a").write_bytes(b"via a CA")
    recv = spawn(
        WIRECAT, "recv", "--tls", "--cert", str(tmp_path / "server.pem"), "--dir", str(tmp_path / "out"), "0"
    )
    assert recv.popen.stderr is not None
    port = int(read_line_matching(recv.popen.stderr, r"listening on .*:(\d+)$", timeout=20).group(1))
    sent = run_wirecat(
        "send", "--tls", "--cafile", str(tmp_path / "ca.pem"), str(tmp_path / "a"), f"127.0.0.1:{port}"
    )
    code, _, err = recv.finish()
    assert sent.returncode == 0, sent.stderr
    assert code == 0, err
    assert (tmp_path / "out" / "a").read_bytes() == b"via a CA"


def test_a_killed_receiver_then_resume(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import time

    (tmp_path / "out").mkdir()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 96)
    part = tmp_path / "out" / ".big.bin.wirecat-part"
    recv = spawn(WIRECAT, "recv", "--dir", str(tmp_path / "out"), "0")
    port = listening_port(recv.popen)
    # -i: the sender's wait for a verdict is bounded if the kill comes between files
    send = spawn(WIRECAT, "send", "-i", "20", str(big), f"127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size > 0):  # bounded: the deadline
        assert time.monotonic() < deadline, "no part file appeared"
        assert recv.popen.poll() is None, "the receiver ended before it could be killed"
        time.sleep(0.001)  # pacing of a poll on a file, not synchronisation
    os.kill(recv.popen.pid, signal.SIGKILL)
    code, _, err = send.finish()
    assert code != 0, err  # the receiver never confirmed: send must not say 0
    recv.finish()
    held = part.stat().st_size
    recv = spawn(WIRECAT, "recv", "-v", "--dir", str(tmp_path / "out"), "0")
    port = listening_port(recv.popen)
    sent = run_wirecat("send", str(big), f"127.0.0.1:{port}")
    code, _, err = recv.finish()
    assert sent.returncode == 0, sent.stderr
    assert code == 0, err
    if held < big.stat().st_size:
        assert re.search(rb"resumed at \d+", err), err
    assert (tmp_path / "out" / "big.bin").read_bytes() == big.read_bytes()
    assert not part.exists()


def test_tls_keep_open_with_two_senders(spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "out").mkdir()
    for name in ("one", "two"):
        (tmp_path / name).write_bytes(name.encode() * 50_000)
    recv = spawn(WIRECAT, "recv", "-k", "--tls", "--dir", str(tmp_path / "out"), "0")
    assert recv.popen.stderr is not None
    words = (
        read_line_matching(recv.popen.stderr, r"on the other side run: (.*)$", timeout=20).group(1).split()
    )
    senders = [
        subprocess.Popen(
            [WIRECAT, *[str(tmp_path / name) if w == "FILE..." else w for w in words[1:]]],
            stderr=subprocess.PIPE,
        )
        for name in ("one", "two")
    ]
    for sender in senders:
        _, err = sender.communicate(timeout=30)
        assert sender.returncode == 0, err
    for name in ("one", "two"):
        assert (tmp_path / "out" / name).read_bytes() == name.encode() * 50_000
    recv.popen.terminate()
    recv.finish()
