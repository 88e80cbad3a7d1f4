"""Every script in examples/ runs and does what its docstring says."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import WIRECAT

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 10


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("server", ["tcp_server.py", "echo_server.py"])
def test_servers_answer_the_plain_socket_client(spawn, server: str) -> None:
    proc = spawn(sys.executable, str(EXAMPLES / server), "0")
    port = proc.listening_port()
    result = run_example("tcp_client.py", str(port), "hello", "second line")
    expected = "HELLO\nSECOND LINE\n" if server == "tcp_server.py" else "hello\nsecond line\n"
    assert (result.returncode, result.stdout) == (0, expected), result.stderr
    proc.popen.send_signal(signal.SIGINT)
    code, _, err = proc.finish(timeout=TIMEOUT)
    assert code == 0, err


def test_chat_client_against_wirecat_chat(spawn) -> None:
    server = spawn(WIRECAT, "chat", "0")
    port = server.listening_port()
    result = run_example("chat_client.py", str(port), "ada", "hi all")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("* welcome, user1")
    assert "* user1 is now ada" in lines
    assert "* here: ada" in lines
    assert lines[-1] == "* bye"
    server.popen.send_signal(signal.SIGTERM)
    assert server.finish(timeout=TIMEOUT)[0] == 0
