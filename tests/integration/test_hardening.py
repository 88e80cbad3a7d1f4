"""Regressions from the outside reliability and security run (issue 10).

Each test here failed on the code before its fix: an empty ``--allow`` that
let everyone in, relays and servers that ended cut-off streams with a clean
FIN, drip clients that held their slots for ever, and tracebacks or wrong
messages on bad input.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import run_wirecat
from tests.integration.test_connect import assert_one_error_line

# -- 1. an empty rule never means "everyone" -------------------------------------------------

#: Every command that takes --allow, each listening where a rule would matter.
_RULED_COMMANDS = [
    pytest.param(["listen", "0.0.0.0", "0", "--sh-exec", "cat"], id="listen-exec-public"),
    pytest.param(["listen", "-k", "0"], id="listen-k"),
    pytest.param(["listen", "-u", "0"], id="listen-udp"),
    pytest.param(["echo", "0"], id="echo"),
    pytest.param(["chat", "0"], id="chat"),
    pytest.param(["broker", "0"], id="broker"),
    pytest.param(["relay", "0", "127.0.0.1:9"], id="relay"),
    pytest.param(["relay", "udp:0", "udp:127.0.0.1:9"], id="relay-udp"),
]


@pytest.mark.parametrize("rule", ["", ",", " "])
@pytest.mark.parametrize("flag", ["--allow", "--deny"])
@pytest.mark.parametrize("argv", _RULED_COMMANDS)
def test_an_empty_rule_is_a_usage_error_before_listening(argv: list[str], flag: str, rule: str) -> None:
    # `--allow "$ALLOWED"` with the variable unset must not open the door.
    argv = [*argv[:-2], flag, rule, *argv[-2:]] if "--sh-exec" in argv else [*argv, flag, rule]
    result = run_wirecat(*argv, timeout=10)
    assert result.returncode == 2, result.stderr
    line = assert_one_error_line(result.stderr)
    assert f"empty {flag[2:]} rule" in line, line
    assert "listening" not in line


def test_a_public_exec_listener_with_only_deny_rules_is_refused() -> None:
    result = run_wirecat("listen", "0.0.0.0", "0", "--deny", "192.0.2.1", "--sh-exec", "cat", timeout=10)
    assert result.returncode == 2, result.stderr
    assert "--allow" in assert_one_error_line(result.stderr)


@pytest.mark.parametrize(
    "argv",
    [
        ["listen", "-k", "unix:@wirecat-test-rules"],
        ["echo", "unix:@wirecat-test-rules"],
        ["relay", "unix:@wirecat-test-rules", "127.0.0.1:9"],
    ],
)
def test_rules_on_a_unix_listener_are_refused(argv: list[str]) -> None:
    # Unix clients have no address: the rules could never match, and would admit everyone.
    result = run_wirecat(*argv, "--allow", "127.0.0.1", timeout=10)
    assert result.returncode == 2, result.stderr
    assert "Unix socket" in assert_one_error_line(result.stderr)


@pytest.mark.parametrize("allow", [[""], [","], ""])
def test_library_serve_and_relay_refuse_an_empty_rule(allow: list[str] | str) -> None:
    import wirecat

    async def handler(conn: wirecat.Connection) -> None:
        await conn.handle_frames(conn.write)

    async def main() -> None:
        with pytest.raises(ValueError, match="empty allow rule"):
            await wirecat.serve(handler, "127.0.0.1:0", allow=allow)
        with pytest.raises(ValueError, match="empty allow rule"):
            await wirecat.relay("127.0.0.1:0", "127.0.0.1:9", allow=allow)

    asyncio.run(main())


# -- 4. bad input: one line and a usage error, never a traceback -----------------------------

_LONG_LABEL = "a" * 64
_LONG_PATH = "/tmp/" + "a" * 120


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        pytest.param(["connect", _LONG_LABEL, "80"], "63", id="connect-long-label"),
        pytest.param(["connect", "-n", _LONG_LABEL, "80"], "63", id="connect-n-long-label"),
        pytest.param(["scan", _LONG_LABEL, "80"], "63", id="scan-long-label"),
        pytest.param(["connect", "-n", "localhost", "80"], "-n", id="connect-n-name"),
        pytest.param(["scan", "-n", "localhost", "80"], "-n", id="scan-n-name"),
        pytest.param(["connect", "a\x01b", "80"], "holds", id="control-char"),
        pytest.param(["connect", "[::1", "80"], "[::1]:PORT", id="half-bracket"),
        pytest.param(["connect", "-s", _LONG_LABEL, "127.0.0.1", "9"], "source", id="source-long"),
        pytest.param(["relay", "0", f"{_LONG_LABEL}:80"], "63", id="relay-target"),
        pytest.param(["listen", f"unix:{_LONG_PATH}"], "107", id="listen-unix-long"),
        pytest.param(["listen", "-k", f"unix:{_LONG_PATH}"], "107", id="listen-k-unix-long"),
        pytest.param(["echo", f"unix:{_LONG_PATH}"], "107", id="echo-unix-long"),
        pytest.param(["relay", f"unix:{_LONG_PATH}", "127.0.0.1:9"], "107", id="relay-unix-long"),
        pytest.param(["relay", "0", f"unix:{_LONG_PATH}"], "107", id="relay-target-unix-long"),
        pytest.param(["connect", f"unix:{_LONG_PATH}"], "107", id="connect-unix-long"),
        pytest.param(["connect", "-U", _LONG_PATH], "107", id="connect-U-long"),
        pytest.param(["connect", "unix:@" + "a" * 108], "107", id="connect-abstract-long"),
        pytest.param(["listen", "-u", f"unix:{_LONG_PATH}"], "107", id="listen-unix-dgram-long"),
    ],
)
def test_bad_hosts_and_paths_are_one_line_usage_errors(argv: list[str], named: str) -> None:
    result = run_wirecat(*argv, timeout=10)
    assert result.returncode == 2, result.stderr
    line = assert_one_error_line(result.stderr)
    assert named in line, line


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_async_peer_reset_keeps_the_os_error_as_its_cause(loop: str) -> None:
    import errno
    import socket
    import struct

    import wirecat
    from wirecat.errors import PeerReset

    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        loop_ = asyncio.get_running_loop()
        conn = await wirecat.connect(f"127.0.0.1:{listener.getsockname()[1]}")
        accepted, _ = await loop_.sock_accept(listener)
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        accepted.close()  # a reset
        listener.close()
        with pytest.raises(PeerReset) as caught:
            await asyncio.wait_for(conn.recv(), 10)
        conn.close()
        assert isinstance(caught.value.__cause__, OSError)
        assert caught.value.__cause__.errno == errno.ECONNRESET

    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
