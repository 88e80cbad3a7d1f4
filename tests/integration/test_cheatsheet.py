"""The cheat sheet: every entry complete, every example runs and its asserts hold."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import run_wirecat
from wirecat.cheatsheet import CLIENT_STEPS, FIELDS, SERVER_STEPS, entries, find, suggest

#: What the issue asks the sheet to cover, at least.
REQUIRED = [
    "socket",
    "bind",
    "listen",
    "accept",
    "connect",
    "connect_ex",
    "send",
    "sendall",
    "sendto",
    "recv",
    "recv_into",
    "recvfrom",
    "shutdown",
    "close",
    "setsockopt",
    "settimeout",
    "setblocking",
    "getaddrinfo",
    "create_connection",
    "create_server",
    "makefile",
    "sendfile",
    "socketpair",
    "AF_INET",
    "AF_INET6",
    "AF_UNIX",
    "SOCK_STREAM",
    "SOCK_DGRAM",
]

NAMES = [entry.name for entry in entries()]


def test_every_required_entry_is_there() -> None:
    assert set(REQUIRED) <= set(NAMES)
    assert len(NAMES) == len(set(NAMES))


@pytest.mark.parametrize("name", NAMES)
def test_every_entry_has_every_field(name: str) -> None:
    entry = find(name)
    assert entry is not None
    for field in FIELDS:
        value = getattr(entry, field)
        assert value or field in ("pitfalls", "see_also"), f"{name}: empty {field}"
    assert "\n" not in entry.summary
    for other in entry.see_also:
        assert find(other) is not None, f"{name}: see_also names unknown {other!r}"


def test_setsockopt_covers_the_three_options() -> None:
    entry = find("setsockopt")
    assert entry is not None
    for option in ("SO_REUSEADDR", "TCP_NODELAY", "SO_KEEPALIVE"):
        assert option in entry.explanation
        assert option in entry.example


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", NAMES)
def test_every_example_runs(name: str) -> None:
    """Each example runs on its own, as a learner would paste it, and its asserts hold."""
    entry = find(name)
    assert entry is not None
    assert "assert" in entry.example, f"{name}: an example must check what it claims"
    result = subprocess.run(
        [sys.executable, "-c", entry.example], capture_output=True, text=True, timeout=25, check=False
    )
    assert result.returncode == 0, f"{name} example failed:\n{result.stderr}"


def test_examples_only_touch_loopback() -> None:
    for entry in entries():
        for word in ("example.com", "0.0.0.0", "8.8.8.8"):
            assert word not in entry.example, f"{entry.name}: example leaves loopback"


def test_the_seeds_mistakes_are_corrected() -> None:
    """The seed says recv() takes no size and listen(5) means five clients: we say otherwise."""
    recv = find("recv")
    listen = find("listen")
    send = find("send")
    assert recv is not None
    assert listen is not None
    assert send is not None
    assert any(p.mistake == "data = sock.recv()" for p in recv.pitfalls)
    assert "not how many clients" in listen.explanation
    assert "sendall" in send.summary


def test_find_accepts_spellings_and_suggest_finds_near_names() -> None:
    assert find("sock.recv()") is find("RECV") is find("recv")
    assert find("socket.socket") is find("socket")
    assert "recv_into" in suggest("recv_int")
    assert suggest("sendal")[0] == "sendall"


def test_steps_name_real_entries() -> None:
    for _, call, _ in SERVER_STEPS + CLIENT_STEPS:
        assert find(call) is not None


# -- wirecat explain --------------------------------------------------------------------------


def test_explain_lists_every_entry_one_line_each() -> None:
    result = run_wirecat("explain")
    assert result.returncode == 0
    text = result.stdout.decode()
    for name in NAMES:
        assert f"  {name} " in text


def test_explain_one_entry() -> None:
    result = run_wirecat("explain", "recv")
    text = result.stdout.decode()
    assert result.returncode == 0
    assert text.startswith("recv: ")
    assert "sock.recv(4096)" in text
    assert "example (run by wirecat's tests)" in text


@pytest.mark.parametrize("fmt", ["text", "markdown", "yaml", "json"])
@pytest.mark.parametrize("what", [[], ["sendall"], ["--pitfalls"], ["--server"], ["--client"]])
def test_explain_every_format(fmt: str, what: list[str]) -> None:
    result = run_wirecat("explain", *what, "--format", fmt)
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    if fmt == "json":
        data = json.loads(text)
    elif fmt == "yaml":
        data = yaml.safe_load(text)
    else:
        data = text
    assert data
    if what == ["sendall"] and fmt in ("json", "yaml"):
        assert set(data) == set(FIELDS)
        assert data["name"] == "sendall"
    if what == ["--server"] and fmt in ("json", "yaml"):
        assert [step["call"] for step in data] == [call for _, call, _ in SERVER_STEPS]
    if what == ["--pitfalls"] and fmt == "markdown":
        assert "| `recv` | `data = sock.recv()` |" in text


def test_explain_server_steps_in_order() -> None:
    text = run_wirecat("explain", "--server").stdout.decode()
    order = [text.index(f"{call}()") for call in ("socket", "bind", "listen", "accept", "recv", "close")]
    assert order == sorted(order)


def test_explain_unknown_name_suggests_the_nearest() -> None:
    result = run_wirecat("explain", "sendal")
    assert result.returncode == 2
    assert result.stderr.decode().startswith("wirecat: no entry for 'sendal': did you mean sendall")
