"""The one binder: every server listens on loopback by default, in the family asked for.

``wirecat echo -6 0`` and ``wirecat relay -6 0 127.0.0.1:9`` used to fail
("'127.0.0.1' has no IPv6 address", exit 3) while ``listen -6 0`` listened on
``[::1]``: the default host and the ``-6`` rule lived in four places.
"""

from __future__ import annotations

import asyncio
import signal
import socket

import pytest

from tests.conftest import WIRECAT
from tests.integration.test_connect import TIMEOUT
from wirecat.testing import read_line_matching

SERVERS = [
    pytest.param(["listen", "-6", "0"], id="listen"),
    pytest.param(["listen", "-6", "-k", "0"], id="listen-k"),
    pytest.param(["listen", "-6", "0", "--exec", "cat"], id="listen-exec"),
    pytest.param(["echo", "-6", "0"], id="echo"),
    pytest.param(["chat", "-6", "0"], id="chat"),
    pytest.param(["broker", "-6", "0"], id="broker"),
    pytest.param(["relay", "-6", "0", "127.0.0.1:9"], id="relay"),
]


@pytest.mark.parametrize("argv", SERVERS)
def test_minus_6_listens_on_ipv6_loopback(spawn, argv: list[str]) -> None:
    server = spawn(WIRECAT, *argv)
    assert server.popen.stderr is not None
    match = read_line_matching(server.popen.stderr, r"listening on \[::1\]:(\d+)$", timeout=TIMEOUT)
    with socket.create_connection(("::1", int(match.group(1))), timeout=TIMEOUT):
        pass  # it accepts on ::1
    server.popen.send_signal(signal.SIGTERM)
    server.popen.wait(TIMEOUT)


@pytest.mark.parametrize("argv", [["listen", "-6", "-u", "0"], ["relay", "-6", "udp:0", "udp:127.0.0.1:9"]])
def test_minus_6_udp_listens_on_ipv6_loopback(spawn, argv: list[str]) -> None:
    server = spawn(WIRECAT, *argv)
    assert server.popen.stderr is not None
    assert read_line_matching(server.popen.stderr, r"listening on \[::1\]:(\d+)$", timeout=TIMEOUT)
    server.popen.send_signal(signal.SIGTERM)
    server.popen.wait(TIMEOUT)


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")])
def test_the_library_listens_on_loopback_in_the_family_given(family: socket.AddressFamily, host: str) -> None:
    import wirecat

    async def handler(conn: wirecat.Connection) -> None:
        await conn.handle_frames(conn.write)

    async def main() -> None:
        server = await wirecat.serve(handler, 0, family=family)
        assert server.address.startswith(f"[{host}]:" if ":" in host else f"{host}:")
        relay = await wirecat.relay(0, server.address, family=family)
        assert relay.address.startswith(f"[{host}]:" if ":" in host else f"{host}:")
        await relay.shutdown()
        await server.shutdown()

    asyncio.run(main())
