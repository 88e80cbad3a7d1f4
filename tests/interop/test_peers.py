"""wirecat against socat, ncat and OpenBSD nc, each in both roles.

What is checked, for each peer:

* byte streams both ways, with wirecat connecting to the peer's listener and
  the peer connecting to ``wirecat listen``, over TCP on 127.0.0.1 and ::1 and
  over Unix sockets; payloads with NUL, CRLF and invalid UTF-8, compared by
  SHA-256 (100 MiB on the ``slow`` cases, 1 MiB on the rest);
* a request/response exchange that relies on half-close: the client sends,
  shuts down its write side, and must still get the whole reply;
* UDP datagrams both ways, on IPv4 and IPv6.

What the peers cannot do, found while writing these (so not tested):
``nc -l`` and ``ncat -l`` exit as soon as the client half-closes, even with
stdin still open, and ``ncat --sh-exec`` drops its child's reply after a
half-close. So only socat serves the request/response case with wirecat as the
client; all three are clients against ``wirecat listen``.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import WIRECAT, Proc, random_payload, sha256
from tests.interop.peers import (
    PEERS,
    SOCAT_LINGER,
    Endpoint,
    Socat,
    file_sha256,
    read_exact,
    wait_for_listener,
)
from wirecat.testing import free_port, read_line_matching

Spawn = Callable[..., Proc]
Payloads = Callable[..., tuple[Path, str]]

MiB = 1 << 20
#: The size of the bulk cases: big enough to go through many socket and pipe
#: buffers, small enough to take a few seconds on a 2-core machine.
BIG = 100 * MiB
SMALL = 1 * MiB
#: One datagram: under any loopback MTU, so never fragmented.
DATAGRAM = 512
#: How late the server's reply comes after the client's FIN: longer than
#: socat's 0.5 s grace, which would drop it. This delay is the behaviour under
#: test (a slow server), not synchronisation.
LATE = 1.0
#: Bound on any one process's run; generous, as other test runs share the CPUs.
FINISH = 90.0

HOSTS = {"tcp4": "127.0.0.1", "tcp6": "::1"}
TRANSPORTS = ["tcp4", "tcp6", "unix"]


@pytest.fixture(scope="session")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> Payloads:
    """Payload files by (size, seed), made once per run: (path, SHA-256)."""
    folder = tmp_path_factory.mktemp("payloads")
    made: dict[tuple[int, int], tuple[Path, str]] = {}

    def make(size: int, seed: int = 1) -> tuple[Path, str]:
        if (size, seed) not in made:
            path = folder / f"payload-{size}-{seed}.bin"
            digest = hashlib.sha256()
            with open(path, "wb") as out:
                # Written in 8 MiB pieces, each starting with the tricky bytes,
                # so 100 MiB never sits in memory more than once.
                done = 0
                while done < size:
                    piece = random_payload(min(8 * MiB, size - done), seed=seed * 1000 + done // MiB)
                    out.write(piece)
                    digest.update(piece)
                    done += len(piece)
            made[size, seed] = (path, digest.hexdigest())
        return made[size, seed]

    return make


def peer_endpoint(transport: str, tmp_path: Path) -> Endpoint:
    """An address for a peer's listener (peers cannot report a port they picked)."""
    if transport == "unix":
        return Endpoint("unix", path=str(tmp_path / "peer.sock"))
    host = HOSTS[transport]
    return Endpoint("tcp", host, free_port(host))


def start_wirecat_listener(spawn: Spawn, ep: Endpoint, *flags: str, **pipes: object) -> tuple[Proc, Endpoint]:
    """Start ``wirecat listen`` on ``ep`` (port 0); return it and where it listens."""
    server = spawn(WIRECAT, "listen", *flags, *ep.wirecat_args(), **pipes)
    if ep.kind == "unix":
        assert server.popen.stderr is not None
        read_line_matching(server.popen.stderr, r"listening on ", timeout=10.0)
        return server, ep
    return server, ep.with_port(server.listening_port())


def wirecat_endpoint(transport: str, tmp_path: Path) -> Endpoint:
    """Where to start ``wirecat listen``: port 0, or a fresh socket path."""
    if transport == "unix":
        return Endpoint("unix", path=str(tmp_path / "wirecat.sock"))
    return Endpoint("tcp", HOSTS[transport], 0)


# --- byte streams ---------------------------------------------------------------


def _transfer_params() -> Iterator[object]:
    for peer in PEERS:
        for transport in TRANSPORTS:
            for role in ("connect", "listen"):
                for direction in ("sends", "receives"):
                    yield pytest.param(
                        peer, transport, role, direction, SMALL, id=f"{peer}-{transport}-{role}-{direction}"
                    )
    # The bulk cases: one each way through wirecat, and both of wirecat's roles.
    for peer in PEERS:
        for role, direction in (("connect", "sends"), ("listen", "receives")):
            yield pytest.param(
                peer,
                "tcp4",
                role,
                direction,
                BIG,
                marks=pytest.mark.slow,
                id=f"{peer}-tcp4-{role}-{direction}-100MiB",
            )


@pytest.mark.parametrize(("peer_name", "transport", "role", "direction", "size"), list(_transfer_params()))
def test_stream_transfer(
    spawn: Spawn,
    payloads: Payloads,
    tmp_path: Path,
    peer_name: str,
    transport: str,
    role: str,
    direction: str,
    size: int,
) -> None:
    """wirecat in ``role`` ``direction`` a payload to/from the peer; it arrives intact.

    The receiving side of each pair is told not to send (wirecat
    ``--recv-only``, ``nc -d``, ``ncat --recv-only``, ``socat -u``): nc and
    ncat quit when the other side half-closes, so a receiver that sent FIN at
    once (its stdin being empty) would cut the sender off.
    """
    peer = PEERS[peer_name]
    source, digest = payloads(size)
    received = tmp_path / "received.bin"
    wirecat_sends = direction == "sends"
    peer_mode = "recv" if wirecat_sends else "send"
    wirecat_flags = [] if wirecat_sends else ["--recv-only"]
    with open(source, "rb") as data, open(received, "wb") as sink:
        # The sender reads the payload file; the receiver writes the sink file.
        sender_io = {"stdin": data, "stdout": subprocess.PIPE}
        receiver_io = {"stdin": subprocess.DEVNULL, "stdout": sink}
        wirecat_io, peer_io = (sender_io, receiver_io) if wirecat_sends else (receiver_io, sender_io)
        if role == "connect":
            ep = peer_endpoint(transport, tmp_path)
            other = spawn(*peer.listen_argv(ep, peer_mode), **peer_io)
            wait_for_listener(ep)
            ours = spawn(WIRECAT, "connect", *wirecat_flags, *ep.wirecat_args(), **wirecat_io)
        else:
            ours, ep = start_wirecat_listener(
                spawn, wirecat_endpoint(transport, tmp_path), *wirecat_flags, **wirecat_io
            )
            other = spawn(*peer.connect_argv(ep, peer_mode), **peer_io)
        code, out, err = ours.finish(timeout=FINISH)
        peer_code, peer_out, peer_err = other.finish(timeout=FINISH)
    # The sender's stdout is a pipe: nothing came back on it.
    assert code == 0, err
    assert (out or b"") == (peer_out or b"") == b""
    assert peer_code == 0, peer_err
    assert received.stat().st_size == size
    assert file_sha256(received) == digest


# --- request and response over a half-closed connection --------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wirecat_client_gets_late_reply_after_half_close(
    spawn: Spawn, payloads: Payloads, tmp_path: Path, transport: str
) -> None:
    """wirecat connect sends, half-closes, and waits for a reply that comes late.

    The server (socat running a script) reads until EOF, so it answers only
    if the FIN arrived; it answers with the request's SHA-256, so the whole
    request must have arrived; and it adds a line after a pause longer than
    socat's or ``nc -q 1``'s grace timer, which wirecat must not have.
    """
    socat = PEERS["socat"]
    assert isinstance(socat, Socat)
    request, digest = payloads(SMALL, seed=3)
    script = tmp_path / "server.sh"
    script.write_text(f"sha256sum\nsleep {LATE}\necho done\n")
    ep = peer_endpoint(transport, tmp_path)
    server = spawn(
        socat.program(),
        "-t",
        SOCAT_LINGER,
        socat.listen_address(ep),
        f"SYSTEM:sh {script}",
        stdin=subprocess.DEVNULL,
    )
    wait_for_listener(ep)
    with open(request, "rb") as data:
        started = time.monotonic()
        client = spawn(WIRECAT, "connect", *ep.wirecat_args(), stdin=data)
        code, out, err = client.finish(timeout=FINISH)
    took = time.monotonic() - started
    assert (code, out) == (0, f"{digest}  -\ndone\n".encode()), err
    assert took >= LATE  # the reply really was late: the case tested what it says
    server_code, _, server_err = server.finish(timeout=FINISH)
    assert server_code == 0, server_err


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("peer_name", list(PEERS))
def test_peer_client_gets_reply_after_half_close(
    spawn: Spawn, payloads: Payloads, tmp_path: Path, peer_name: str, transport: str
) -> None:
    """A peer sends a request and half-closes; wirecat listen replies only then.

    The reply is written to wirecat's stdin once the whole request came out of
    its stdout, so it travels over a connection the client has already
    half-closed (or is about to).
    """
    peer = PEERS[peer_name]
    request, digest = payloads(SMALL, seed=3)
    reply = random_payload(SMALL, seed=4)
    reply_file = tmp_path / "reply.bin"
    server, ep = start_wirecat_listener(spawn, wirecat_endpoint(transport, tmp_path))
    assert server.popen.stdin is not None
    assert server.popen.stdout is not None
    with open(request, "rb") as data, open(reply_file, "wb") as sink:
        client = spawn(*peer.connect_argv(ep, "duplex"), stdin=data, stdout=sink)
        got = read_exact(server.popen.stdout, SMALL, timeout=FINISH)
        assert sha256(got) == digest
        server.popen.stdin.write(reply)
        server.popen.stdin.close()
        code, rest, err = server.finish(timeout=FINISH)
        client_code, _, client_err = client.finish(timeout=FINISH)
    # wirecat ends only once the client's FIN came, and printed nothing more.
    assert (code, rest) == (0, b""), err
    assert client_code == 0, client_err
    assert file_sha256(reply_file) == sha256(reply)


# --- UDP ------------------------------------------------------------------------------


def _exchange_datagrams(client: Proc, server: Proc) -> None:
    """One datagram from client to server, then one back; both arrive whole."""
    request = random_payload(DATAGRAM, seed=5)
    reply = random_payload(DATAGRAM, seed=6)
    assert client.popen.stdin is not None
    assert client.popen.stdout is not None
    assert server.popen.stdin is not None
    assert server.popen.stdout is not None
    client.popen.stdin.write(request)
    client.popen.stdin.flush()
    assert read_exact(server.popen.stdout, DATAGRAM) == request
    server.popen.stdin.write(reply)
    server.popen.stdin.flush()
    assert read_exact(client.popen.stdout, DATAGRAM) == reply


@pytest.mark.parametrize("host", list(HOSTS.values()), ids=list(HOSTS))
@pytest.mark.parametrize("peer_name", list(PEERS))
def test_udp_wirecat_connect_to_peer(spawn: Spawn, peer_name: str, host: str) -> None:
    """wirecat connect -u sends a datagram to a peer's UDP listener and gets its reply."""
    peer = PEERS[peer_name]
    ep = Endpoint("udp", host, free_port(host, udp=True))
    server = spawn(*peer.listen_argv(ep, "duplex"))
    wait_for_listener(ep)
    client = spawn(WIRECAT, "connect", *ep.wirecat_args())
    _exchange_datagrams(client, server)
    # End of stdin ends a UDP client (no --wait-reply): exit 0, nothing more printed.
    code, out, err = client.finish(b"", timeout=FINISH)
    assert (code, out) == (0, b""), err


@pytest.mark.parametrize("host", list(HOSTS.values()), ids=list(HOSTS))
@pytest.mark.parametrize("peer_name", list(PEERS))
def test_udp_peer_to_wirecat_listen(spawn: Spawn, peer_name: str, host: str) -> None:
    """A peer's UDP client sends to wirecat listen -u, which replies to it."""
    peer = PEERS[peer_name]
    server, ep = start_wirecat_listener(spawn, Endpoint("udp", host, 0))
    client = spawn(*peer.connect_argv(ep, "duplex"))
    _exchange_datagrams(client, server)
