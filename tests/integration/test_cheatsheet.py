"""The cheat sheet: every entry complete, every example runs and its asserts hold."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_wirecat
from wirecat.apps.demo import DEMO_BACKLOG, run_demo
from wirecat.cheatsheet import (
    CLIENT_STEPS,
    FIELDS,
    SERVER_STEPS,
    _entry,
    entries,
    explain_call,
    find,
    suggest,
)

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
    # issue 12: the options and calls a learner meets next
    "getsockopt",
    "getpeername",
    "SO_REUSEADDR",
    "SO_REUSEPORT",
    "TCP_NODELAY",
    "SO_KEEPALIVE",
    "SO_LINGER",
    "selectors",
    "splice",
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
        assert value or field in ("pitfalls", "see_also", "aliases", "trace"), f"{name}: empty {field}"
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


# -- finding what a learner types --------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "entry"),
    [
        ("SO_REUSEADDR", "SO_REUSEADDR"),
        ("so_reuseaddr", "SO_REUSEADDR"),
        ("socket.SO_REUSEADDR", "SO_REUSEADDR"),
        ("reuseaddr", "SO_REUSEADDR"),
        ("nodelay", "TCP_NODELAY"),
        ("Nagle", "TCP_NODELAY"),
        ("select", "selectors"),
        ("select.select", "selectors"),
        ("poll", "selectors"),
        ("selectors.DefaultSelector", "selectors"),
        ("accept4", "accept"),
        ("socket.socket", "socket"),
        ("sock.recv()", "recv"),
        ("conn.recv(1024)", "recv"),
        ("RECV", "recv"),
        ("send_all", "sendall"),
        ("gethostbyname", "getaddrinfo"),
        ("SO_ERROR", "getsockopt"),
        ("recvfrom_into", "recvfrom"),
        ("SHUT_WR", "shutdown"),
        ("timeout", "settimeout"),
        ("socket.timeout", "settimeout"),
        ("BlockingIOError", "setblocking"),
        ("non-blocking", "setblocking"),
        ("tcp", "SOCK_STREAM"),
        ("UDP", "SOCK_DGRAM"),
        ("unix", "AF_UNIX"),
        ("socket.AF_INET6", "AF_INET6"),
        ("os.splice", "splice"),
        ("makefile", "makefile"),
        ("socketpair", "socketpair"),
        ("create_server", "create_server"),
        ("socket.create_connection", "create_connection"),
    ],
)
def test_find_what_a_learner_types(typed: str, entry: str) -> None:
    found = find(typed)
    assert found is not None, f"{typed!r} finds nothing (suggests {suggest(typed)})"
    assert found.name == entry


def test_aliases_are_unambiguous() -> None:
    """An alias names one entry, and never another entry's name."""
    squash = {name.lower().replace("_", ""): name for name in NAMES}
    seen: dict[str, str] = {}
    for entry in entries():
        for alias in entry.aliases:
            key = alias.lower().replace("_", "").replace("-", "").replace(" ", "")
            assert key not in squash or squash[key] == entry.name, f"{alias!r} is {squash.get(key)}'s name"
            assert seen.setdefault(key, entry.name) == entry.name, f"{alias!r} names two entries"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("sendal", ["sendall"]),  # spelling
        ("recvmsg", ["recv"]),  # a name inside the word
        ("reuse", ["SO_REUSEADDR", "SO_REUSEPORT"]),  # the word inside names
        ("TIME_WAIT", ["SO_REUSEADDR"]),  # the text, not the names
        ("EADDRINUSE", ["SO_REUSEADDR", "bind"]),
        ("keepaliv", ["SO_KEEPALIVE"]),
        ("handshake", ["connect"]),
    ],
)
def test_suggest_is_smarter_than_the_nearest_spelling(typed: str, expected: list[str]) -> None:
    near = suggest(typed)
    assert set(expected) <= set(near), near
    assert len(near) <= 4


def test_suggest_never_offers_the_unrelated() -> None:
    """`explain SO_REUSEADDR` once answered "did you mean SOCK_STREAM?": now it is found, and
    what is suggested for a near miss shares something with it."""
    assert "SOCK_STREAM" not in suggest("SO_REUSEADR")
    assert suggest("SO_REUSEADR")[0] == "SO_REUSEADDR"
    assert suggest("xyzzy") == []


# -- what --trace=explain says for each form of a call -------------------------------------------


@pytest.mark.parametrize(
    ("entry", "call", "says", "never"),
    [
        ("setblocking", "setblocking(True)", "Blocking again", "BlockingIOError"),
        ("setblocking", "setblocking(False)", "raise BlockingIOError", "Blocking again"),
        ("settimeout", "settimeout(None)", "No timeout", "give up"),
        ("settimeout", "settimeout(0.0)", "setblocking(False)", "None waits"),
        ("settimeout", "settimeout(5.0)", "give up after N seconds", "setblocking"),
        ("shutdown", "shutdown(SHUT_WR)", "sending side", "both directions"),
        ("shutdown", "shutdown(SHUT_RDWR)", "both directions", "we can still receive"),
        ("shutdown", "shutdown(SHUT_RD)", "receiving side is done", "FIN"),
        ("socket", "socket(AF_INET, SOCK_STREAM) -> fd 3", "no address yet", "Wrap"),
        ("socket", "socket(fileno=5) -> ok (checked with getsockname())", "Wrap", "no address yet"),
        ("setsockopt", "setsockopt(SOL_SOCKET, SO_REUSEADDR, 1) -> ok", "TIME_WAIT", "Nagle"),
        ("setsockopt", "setsockopt(IPPROTO_TCP, TCP_NODELAY, 1) -> ok", "Nagle off", "TIME_WAIT"),
        ("setsockopt", "setsockopt(SOL_SOCKET, SO_LINGER, on, 0 s) -> ok", "reset", "Nagle"),
        ("setsockopt", "setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1) -> ok", "probe", "Nagle"),
        ("getsockopt", "getsockopt(SOL_SOCKET, SO_ERROR) -> 0", "connected", "errno of what failed"),
        ("getsockopt", "getsockopt(SOL_SOCKET, SO_ERROR) -> 111 (ECONNREFUSED)", "what failed", "connected"),
        ("recv", "recv(65536) -> 0 bytes (end of stream)", "end of stream", "UP TO"),
        ("recv", "recv(65536) -> 5 bytes", "UP TO", "will send nothing more"),
        ("recv_into", "recv_into(262144) -> 0 bytes (end of stream)", "end of stream", "buffer you provide"),
        ("connect", "connect(127.0.0.1:80) -> EINPROGRESS", "handshake has started", "three-way"),
        ("connect", "connect(AF_UNSPEC) -> ok", "dissolves the connection", "three-way"),
        ("connect_ex", "connect_ex(127.0.0.1:1) -> ECONNREFUSED", "nothing listens", "instead of raising"),
        ("SOCK_DGRAM", "connect(127.0.0.1:53) -> ok", "sends nothing", "handshake"),
        ("SOCK_DGRAM", "send(3 bytes) -> 3 bytes", "never in part", "sendall"),
        ("SOCK_DGRAM", "recv(65536) -> 0 bytes (an empty datagram)", "not an end of stream", "peer closed"),
        ("bind", "bind(0.0.0.0:8000) -> ok", "Every interface", "port 0"),
        ("bind", "bind(/tmp/app.sock) -> ok", "path", "port 0"),
        ("bind", "bind(127.0.0.1:0) -> ok", "port 0 picks a free one", "Every interface"),
        (
            "getaddrinfo",
            "getaddrinfo('nowhere', 80, AF_UNSPEC) -> error EAI_NONAME",
            "No such name",
            "Resolve",
        ),
    ],
)
def test_trace_notes_fit_the_arguments(entry: str, call: str, says: str, never: str) -> None:
    note = explain_call(entry, call)
    assert says in note, note
    assert never not in note, note


def test_every_trace_note_is_a_valid_pattern_and_one_line() -> None:
    for entry in entries():
        for rule in entry.trace:
            re.compile(rule.match)
            assert rule.note, f"{entry.name}: {rule}"
            assert "\n" not in rule.note, f"{entry.name}: {rule}"


def test_calls_without_an_entry_get_no_note() -> None:
    assert explain_call("readv", "readv(fd 0, 1048576) -> 3 bytes") == ""
    assert explain_call("write", "write(fd 1, 3) -> 3 bytes") == ""


# -- explain and demo agree, and explain points only at what is installed ------------------------


def _code(text: str) -> str:
    """A call as code, whatever its receiver is called: ``listener.listen(5)`` → ``sock.listen(5)``."""
    return re.sub(r"^\w+\.", "sock.", text.split("#")[0].strip())


def test_the_demo_never_does_what_a_pitfall_calls_wrong() -> None:
    """The pitfalls once called `listen(5)` wrong while the demo used it.

    A pitfall whose wrong code is its right code too is about a misreading
    (`listen(5)  # 'at most 5 clients'`); the others name code not to write,
    and the demo must not write it.
    """
    wrong = {
        _code(p.mistake): f"{entry.name}: {p.mistake}"
        for entry in entries()
        for p in entry.pitfalls
        if _code(p.mistake) != _code(p.right)
    }
    steps = run_demo().steps
    assert any(_code(step.call) == f"sock.listen({DEMO_BACKLOG})" for step in steps)
    for step in steps:
        assert _code(step.call) not in wrong, (
            f"demo step {step.call!r} is the pitfall {wrong[_code(step.call)]}"
        )


def test_no_example_does_what_a_pitfall_calls_wrong() -> None:
    """settimeout(5) was a pitfall's wrong code while the examples used it."""
    wrong = {
        _code(p.mistake): f"{entry.name}: {p.mistake}"
        for entry in entries()
        for p in entry.pitfalls
        if _code(p.mistake) != _code(p.right)
    }
    for entry in entries():
        for line in entry.example.splitlines():
            assert _code(line) not in wrong, (
                f"{entry.name}'s example: {line.strip()!r} is {wrong[_code(line)]}"
            )


@pytest.mark.parametrize("side", ["server", "client"])
def test_explain_steps_are_the_demos_calls_in_order(side: str) -> None:
    """`explain --server` listed SO_REUSEADDR, which the demo skipped: each listed step is a
    call the demo's side makes, in the same order."""
    calls = [step.call for step in run_demo().steps if step.side == side]
    position = 0
    for _, name, _ in SERVER_STEPS if side == "server" else CLIENT_STEPS:
        found = next((i for i in range(position, len(calls)) if re.search(rf"\b{name}\b", calls[i])), None)
        assert found is not None, f"{side} step {name!r} not in the demo after {calls[position - 1]!r}"
        position = found + 1


def _installed_files() -> set[str]:
    root = resources.files("wirecat")
    return {str(path.relative_to(str(root))) for path in Path(str(root)).rglob("*") if path.is_file()}


@pytest.mark.parametrize("what", [["--server"], ["--client"], ["--all"], ["--pitfalls"], []])
def test_explain_points_only_at_what_is_installed(what: list[str]) -> None:
    """`explain --server` pointed to examples/tcp_server.py, which a package install does not have."""
    text = run_wirecat("explain", *what).stdout.decode()
    installed = _installed_files()
    for path in re.findall(r"[\w./-]+\.(?:py|yaml)\b", text):
        assert path.removeprefix("wirecat/") in installed, f"explain mentions {path}, not installed"
    if what in (["--server"], ["--client"]):
        assert "wirecat demo" in text


# -- wirecat explain: coverage, --all --------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "heading"),
    [
        ("SO_REUSEADDR", "SO_REUSEADDR: "),
        ("so_reuseaddr", "SO_REUSEADDR: "),
        ("select", "(select is explained under selectors)\n\nselectors: "),
        ("socket.socket", "socket: "),
        ("accept4", "(accept4 is explained under accept)\n\naccept: "),
        ("getaddrinfo", "getaddrinfo: "),
        ("settimeout", "settimeout: "),
    ],
)
def test_explain_covers_what_a_learner_meets(typed: str, heading: str) -> None:
    result = run_wirecat("explain", typed)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith(heading)


def test_explain_unknown_name_suggests_several() -> None:
    result = run_wirecat("explain", "reuse")
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.startswith("wirecat: no entry for 'reuse': did you mean ")
    assert "SO_REUSEADDR" in err
    assert "SO_REUSEPORT" in err


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_explain_all_is_the_whole_sheet_with_every_field(fmt: str) -> None:
    result = run_wirecat("explain", "--all", "--format", fmt)
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    data = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
    assert isinstance(data, list)  # the seed's layout: a YAML list of entries
    assert [item["name"] for item in data] == NAMES
    for item in data:
        assert list(item) == list(FIELDS)
    # Read back as the sheet is read: the same entries, nothing lost.
    assert tuple(_entry(item) for item in data) == entries()


def test_explain_all_as_text_has_every_entry_in_full() -> None:
    text = run_wirecat("explain", "--all").stdout.decode()
    for name in NAMES:
        assert re.search(rf"^{re.escape(name)}: ", text, re.M), name
    assert text.count("example (run by wirecat's tests):") == len(NAMES)


def test_explain_all_takes_no_name() -> None:
    result = run_wirecat("explain", "--all", "recv")
    assert result.returncode == 2


def test_the_corrections_issue_12_asks_for() -> None:
    """The facts a learner gets wrong most, as the sheet states them."""
    text = {entry.name: " ".join(entry.explanation.split()) for entry in entries()}
    assert "not how many clients" in text["listen"]
    assert "O_NONBLOCK" in text["settimeout"]
    assert "non-blocking" in text["settimeout"]
    assert "TIME_WAIT" in text["SO_REUSEADDR"]
    assert "sendall" in find("send").summary  # type: ignore[union-attr]
    assert "UP TO" in find("recv").summary  # type: ignore[union-attr]
    assert "resets the connection" in text["close"]  # unread bytes: RST, not FIN
