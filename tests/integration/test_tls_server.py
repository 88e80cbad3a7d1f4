"""TLS on the asyncio library: ``serve(tls=...)`` and ``connect(tls=...)``, under both event loops.

Real certificates from ``trustme`` (a CA made for the test run), loopback
only. Each test also checks that the loop's exception handler was never
called: asyncio and uvloop route what they cannot place ("Exception in
callback", "SSL handshake failed") through it, and a failed handshake must be
our one line instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme

import wirecat
from wirecat import events, tls
from wirecat.errors import (
    CertificateError,
    HandshakeTimeout,
    TLSError,
    TLSTruncated,
    UsageError,
    WirecatError,
)
from wirecat.events import Note
from wirecat.stream import Connection

T = TypeVar("T")
TIMEOUT = 10.0

pytestmark = pytest.mark.timeout(60)


class Certs:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate, as files."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        client = self.ca.issue_cert("client@example.com", common_name="test client")
        stranger = self.other_ca.issue_cert("stranger@example.com", common_name="stranger")
        self.ca_file = str(directory / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.server_cert = str(directory / "server.pem")
        self.server_key = str(directory / "server.key")
        server.cert_chain_pems[0].write_to_path(self.server_cert)
        server.private_key_pem.write_to_path(self.server_key)
        self.server_der = ssl.PEM_cert_to_DER_cert(server.cert_chain_pems[0].bytes().decode())
        self.client_cert = str(directory / "client.pem")
        client.private_key_and_cert_chain_pem.write_to_path(self.client_cert)
        self.stranger_cert = str(directory / "stranger.pem")
        stranger.private_key_and_cert_chain_pem.write_to_path(self.stranger_cert)

    def server_tls(self, *, mutual: bool = False) -> tls.ServerTLS:
        context = tls.server_context(
            cert=self.server_cert, key=self.server_key, client_ca=self.ca_file if mutual else None
        )
        return tls.ServerTLS(context, tls.fingerprint(self.server_der), mutual=mutual)

    def client_tls(self, cert: str | None = None, **kwargs: Any) -> tls.ClientTLS:
        return tls.ClientTLS(tls.client_context(cafile=self.ca_file, cert=cert, **kwargs))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine on the loop under test; fail if the loop's exception handler was called."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def _run(coro: Coroutine[Any, Any, T]) -> T:
        handled: list[dict[str, Any]] = []
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.get_loop().set_exception_handler(lambda loop, context: handled.append(context))
            result = runner.run(coro)
        assert handled == [], handled
        return result

    return _run


class Watched(list[T]):
    """A list that can be waited on: ``await items.until(predicate)``, with a deadline.

    Appended to from the loop's thread (events, handlers) or another
    (a client thread); each append wakes the waiters, no polling.
    """

    def __init__(self) -> None:
        super().__init__()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def append(self, item: T) -> None:
        super().append(item)
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(lambda f=future: f.done() or f.set_result(None))

    async def until(self, predicate: Callable[[Watched[T]], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(TIMEOUT):
                while not predicate(self):
                    future: asyncio.Future[None] = loop.create_future()
                    self._waiters.append((loop, future))
                    await future
        except TimeoutError:
            pytest.fail(f"waited {TIMEOUT} s for {what}; have {list(self)}")


@pytest.fixture
def notes() -> Iterator[Watched[Note]]:
    """The notes the server emits during the test."""
    seen: Watched[Note] = Watched()

    def keep(event: events.Event) -> None:
        if isinstance(event, Note):
            seen.append(event)

    unsubscribe = events.subscribe(keep)
    yield seen
    unsubscribe()


async def echo(conn: Connection) -> None:
    async for frame in conn:
        await conn.send(frame)


def warnings_in(notes: Watched[Note]) -> list[str]:
    return [note.text for note in notes if note.level == "warning"]


async def echo_once(address: str, **kwargs: Any) -> Connection:
    """Connect with ``kwargs``, echo one message, close; the (closed) connection."""
    async with wirecat.connect(address, **kwargs) as conn:
        await conn.send(b"ping")
        assert await conn.recv() == b"ping"
    return conn


# -- verification, names, pins --------------------------------------------------------------------


def test_tls_echo_with_a_verified_server(run, certs: Certs) -> None:
    seen: list[tuple[Any, ...]] = []

    async def handler(conn: Connection) -> None:
        seen.append((conn.tls_version, conn.peer_certificate))
        await echo(conn)

    async def main() -> None:
        async with await wirecat.serve(handler, "127.0.0.1:0", tls=certs.server_tls()) as server:
            for client_tls in (certs.client_tls(), certs.client_tls().context):
                async with wirecat.connect(server.address, tls=client_tls) as conn:
                    await conn.send(b"hello \x00 world")
                    assert await conn.recv() == b"hello \x00 world"
                    assert conn.tls_version == "TLSv1.3"
                    assert conn.cipher
                    assert conn.alpn is None
                    assert conn.peer_certificate == certs.server_der

    run(main())
    # The server gets no client certificate unless it asks for one (mutual TLS).
    assert seen == [("TLSv1.3", None), ("TLSv1.3", None)]


def test_plain_connections_have_no_tls_details(run) -> None:
    async def main() -> None:
        async with (
            await wirecat.serve(echo, "127.0.0.1:0") as server,
            wirecat.connect(server.address) as conn,
        ):
            assert (conn.peer_certificate, conn.tls_version, conn.cipher, conn.alpn) == (None,) * 4

    run(main())


def test_tls_true_verifies_and_says_how_to_trust_an_unknown_issuer(run, certs: Certs) -> None:
    pin = tls.fingerprint(certs.server_der)

    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", tls=certs.server_tls()) as server:
            with pytest.raises(CertificateError) as caught:
                await echo_once(server.address, tls=True)
            # The leaf was fetched by a second, unverified handshake to say what it is.
            assert "unknown issuer" in str(caught.value)
            assert pin in str(caught.value)
            assert caught.value.exit_code == 13
            # The server goes on serving.
            await echo_once(server.address, tls=certs.client_tls())

    run(main())


def test_a_name_the_certificate_does_not_hold_is_refused(run, certs: Certs) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", tls=certs.server_tls()) as server:
            with pytest.raises(CertificateError, match=r"not hold the name 'example\.com'.*127\.0\.0\.1"):
                await echo_once(server.address, tls=certs.client_tls(), server_hostname="example.com")
            # localhost is one it holds (SNI and the check use it, the socket goes to 127.0.0.1).
            await echo_once(server.address, tls=certs.client_tls(), server_hostname="localhost")

    run(main())


def test_pin_match_and_mismatch(run, certs: Certs) -> None:
    pin = tls.fingerprint(certs.server_der)
    wrong = "sha256:" + "ab" * 32

    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", tls=certs.server_tls()) as server:
            # A pin trusts exactly this certificate: no CA needed (tls=True does not verify then).
            conn = await echo_once(server.address, tls=True, pin=pin)
            assert conn.peer_certificate == certs.server_der
            # Written as openssl prints it: colons, upper case.
            openssl_form = "sha256:" + ":".join(pin[7:][i : i + 2].upper() for i in range(0, 64, 2))
            await echo_once(server.address, tls=True, pin=openssl_form)
            with pytest.raises(CertificateError, match=f"not the pinned one: it is {pin}"):
                await echo_once(server.address, tls=True, pin=wrong)
            # A ClientTLS carries its pin.
            client = tls.ClientTLS(tls.client_context(pin=pin), pin=pin)
            await echo_once(server.address, tls=client)

    run(main())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pin": "sha256:" + "00" * 32}, "pin is for TLS"),
        ({"server_hostname": "example.com"}, "server_hostname is for TLS"),
        ({"tls": True, "pin": "md5:00"}, "bad pin"),
        ({"tls": "yes"}, "bad tls"),
        ({"tls": True, "handshake_timeout": 0}, "handshake_timeout"),
    ],
)
def test_bad_tls_arguments_of_connect_are_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        wirecat.connect("127.0.0.1:9", **kwargs)


def test_bad_tls_arguments_of_serve_are_usage_errors(run, certs: Certs) -> None:
    async def main() -> None:
        with pytest.raises(UsageError, match="client's TLS settings"):
            await wirecat.serve(echo, "127.0.0.1:0", tls=certs.client_tls())
        with pytest.raises(UsageError, match="client's TLS settings"):
            await wirecat.serve(echo, "127.0.0.1:0", tls=ssl.create_default_context())
        with pytest.raises(UsageError, match="bad tls"):
            await wirecat.serve(echo, "127.0.0.1:0", tls="cert.pem")  # type: ignore[arg-type]
        for bad in (0, -1, None, float("nan")):
            with pytest.raises(UsageError, match="handshake_timeout"):
                await wirecat.serve(echo, "127.0.0.1:0", tls=certs.server_tls(), handshake_timeout=bad)  # type: ignore[arg-type]

    run(main())


def test_tls_client_at_a_plain_server_is_one_tls_error(run) -> None:
    """A plain server that speaks first (an SMTP-like banner)."""

    async def banner(conn: Connection) -> None:
        await conn.send(b"220 plain.example ESMTP ready\r\n")
        await conn.recv()

    async def main() -> None:
        async with await wirecat.serve(banner, "127.0.0.1:0") as server:
            with pytest.raises(TLSError, match="did not answer TLS: is it plain TCP") as caught:
                await echo_once(server.address, tls=True, pin="sha256:" + "00" * 32)
            assert not isinstance(caught.value, CertificateError)
            assert caught.value.exit_code == 12

    run(main())


# -- mutual TLS -----------------------------------------------------------------------------------


def test_mutual_tls_client_certificates(run, certs: Certs, notes: Watched[Note]) -> None:
    subjects: Watched[bytes | None] = Watched()

    async def handler(conn: Connection) -> None:
        subjects.append(conn.peer_certificate)
        await echo(conn)

    async def main() -> None:
        async with await wirecat.serve(handler, "127.0.0.1:0", tls=certs.server_tls(mutual=True)) as server:
            # No certificate: refused. (TLS 1.3 refuses after the client's side of the
            # handshake is done, so the client learns it at its first read. The loops'
            # TLS does not send the alert that says why: the client sees the end.)
            with pytest.raises((TLSError, TLSTruncated)):
                await echo_once(server.address, tls=certs.client_tls())
            await notes.until(lambda n: len(warnings_in(n)) == 1, "the refusal is logged")
            assert "presented no client certificate" in warnings_in(notes)[0]
            # A certificate from a CA the server does not trust: refused.
            with pytest.raises((TLSError, TLSTruncated)):
                await echo_once(server.address, tls=certs.client_tls(cert=certs.stranger_cert))
            await notes.until(lambda n: len(warnings_in(n)) == 2, "the refusal is logged")
            assert "client certificate" in warnings_in(notes)[1]
            assert "not trusted" in warnings_in(notes)[1] or "unknown issuer" in warnings_in(notes)[1]
            # The right one: the handler sees it, and -v says who it is.
            await echo_once(server.address, tls=certs.client_tls(cert=certs.client_cert))
            await subjects.until(lambda s: len(s) == 1, "the handler ran")

    run(main())
    assert subjects[0] is not None
    assert tls.describe_certificate(subjects[0]).subject.startswith("CN=test client")
    said = [note.text for note in notes if note.level == "info" and "client certificate CN=" in note.text]
    assert len(said) == 1
    assert "CN=test client" in said[0]
    assert "issued by" in said[0]
    assert len(warnings_in(notes)) == 2  # one line per refusal, nothing else


# -- bad clients ----------------------------------------------------------------------------------


def raw_connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.mark.parametrize(
    ("request_bytes", "said"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "plain HTTP request on a TLS port from 127.0.0.1:"),
        (b"hello, are you there?\n" * 4, "did not speak TLS: is it a plain TCP client?"),
    ],
)
def test_a_plain_client_at_a_tls_port_is_one_line(run, certs: Certs, notes, request_bytes, said) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", tls=certs.server_tls()) as server:

            def plain_client() -> bytes:
                with raw_connect(server.port) as sock:
                    sock.sendall(request_bytes)
                    return read_until_closed(sock)

            assert b"ping" not in await asyncio.to_thread(plain_client)
            await notes.until(lambda n: bool(warnings_in(n)), "the plain client is logged")
            # The server goes on serving TLS clients.
            await echo_once(server.address, tls=certs.client_tls())

    run(main())
    assert len(warnings_in(notes)) == 1
    assert said in warnings_in(notes)[0]


def test_a_client_that_closes_before_the_handshake_is_not_a_warning(run, certs: Certs, notes) -> None:
    """A port probe or health check: said under -v (info), never a warning."""

    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", tls=certs.server_tls()) as server:
            await asyncio.to_thread(lambda: raw_connect(server.port).close())
            await notes.until(lambda n: any("before the TLS handshake" in x.text for x in n), "the note")
            await echo_once(server.address, tls=certs.client_tls())

    run(main())
    assert warnings_in(notes) == []


def test_stalled_handshakes_are_cut_and_free_their_slots(run, certs: Certs, notes) -> None:
    """With room for two, two silent clients and one that drips its ClientHello a byte at a
    time do not lock out a good one: each is cut at handshake_timeout."""
    hello = bytearray()

    def client_hello() -> bytes:
        # A real ClientHello, taken from an SSLObject that never gets an answer.
        context = tls.client_context(pin="sha256:" + "00" * 32)
        obj = context.wrap_bio(ssl.MemoryBIO(), (out := ssl.MemoryBIO()), server_hostname="localhost")
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        return out.read()

    hello += client_hello()

    async def main() -> None:
        server = await wirecat.serve(
            echo, "127.0.0.1:0", tls=certs.server_tls(), max_connections=2, handshake_timeout=0.5
        )
        async with server:
            loop = asyncio.get_running_loop()
            silent = [raw_connect(server.port) for _ in range(2)]
            dripper = raw_connect(server.port)
            stop = threading.Event()

            def drip() -> None:
                for byte in hello:
                    if stop.wait(0.05):
                        return
                    try:
                        dripper.send(bytes([byte]))
                    except OSError:
                        return  # cut off

            dripping = loop.run_in_executor(None, drip)
            try:
                started = loop.time()
                await echo_once(server.address, tls=certs.client_tls(), timeout=TIMEOUT)
                # Waited in the backlog for a slot: freed by the bound, not by the clients.
                assert loop.time() - started >= 0.4
            finally:
                stop.set()
                await dripping
                for sock in (*silent, dripper):
                    sock.close()
            await notes.until(lambda n: len(warnings_in(n)) >= 2, "the stalled clients are logged")

    run(main())
    cut = [text for text in warnings_in(notes) if "did not finish the TLS handshake within 0.5 s" in text]
    assert len(cut) >= 2


def test_a_tls_1_1_client_is_refused(run, certs: Certs, notes) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", tls=certs.server_tls()) as server:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(certs.ca_file)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # (so it is: that is the point)
                context.minimum_version = ssl.TLSVersion.TLSv1_1
                context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that OpenSSL offers 1.1 at all
            with pytest.raises(TLSError):
                await echo_once(server.address, tls=context)
            await notes.until(lambda n: bool(warnings_in(n)), "the refusal is logged")
            await echo_once(server.address, tls=certs.client_tls())

    run(main())
    assert len(warnings_in(notes)) == 1
    assert "no TLS version in common" in warnings_in(notes)[0]


# -- the end of a TLS stream ----------------------------------------------------------------------


def tls_client_socket(port: int, certs: Certs) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=certs.ca_file)
    return context.wrap_socket(raw_connect(port), server_hostname="127.0.0.1")


@pytest.mark.parametrize("ending", ["close_notify", "bare FIN"])
def test_a_tcp_end_without_close_notify_is_truncation(run, certs: Certs, ending: str) -> None:
    ends: Watched[object] = Watched()

    async def handler(conn: Connection) -> None:
        frames = []
        try:
            while (frame := await conn.recv()) is not None:
                frames.append(frame)
            ends.append(b"".join(frames))
        except WirecatError as exc:
            ends.append(exc)

    def client(port: int) -> None:
        sock = tls_client_socket(port, certs)
        sock.sendall(b"all of it")
        if ending == "close_notify":
            sock.unwrap().close()
        else:
            # A FIN on the TCP stream with no close_notify before it: through a
            # second descriptor, so that the SSL socket sends nothing of its own.
            raw = socket.socket(fileno=os.dup(sock.fileno()))
            raw.shutdown(socket.SHUT_WR)
            raw.close()
            read_until_closed(sock)
            sock.close()

    async def main() -> None:
        async with await wirecat.serve(handler, "127.0.0.1:0", tls=certs.server_tls()) as server:
            await asyncio.to_thread(client, server.port)
            await ends.until(bool, "the handler ended")

    run(main())
    if ending == "close_notify":
        assert ends == [b"all of it"]
    else:
        assert isinstance(ends[0], TLSTruncated), ends
        assert "without TLS close_notify" in str(ends[0])
        assert ends[0].exit_code == 8


@pytest.mark.parametrize("ending", ["close_notify", "bare FIN"])
def test_the_client_sees_a_server_end_without_close_notify_as_truncation(run, certs: Certs, ending) -> None:
    """A TLS server (Python's ssl, in a thread) that ends TCP without close_notify."""
    context = tls.server_context(cert=certs.server_cert, key=certs.server_key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_one() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as sock:
            sock.sendall(b"the reply")
            if ending == "close_notify":
                sock.unwrap().close()
            else:
                raw = socket.socket(fileno=os.dup(sock.fileno()))
                raw.shutdown(socket.SHUT_WR)
                raw.close()
                read_until_closed(sock)

    async def main() -> object:
        serving = asyncio.get_running_loop().run_in_executor(None, serve_one)
        try:
            address = f"127.0.0.1:{listener.getsockname()[1]}"
            async with wirecat.connect(address, tls=certs.client_tls()) as conn:
                got = b""
                try:
                    while (frame := await conn.recv()) is not None:
                        got += frame
                except TLSTruncated as exc:
                    return (got, exc)
                return (got, None)
        finally:
            await serving

    try:
        got, error = run(main())  # type: ignore[misc]
    finally:
        listener.close()
    assert got == b"the reply"
    if ending == "close_notify":
        assert error is None
    else:
        assert isinstance(error, TLSTruncated)


def test_handshake_timeout_on_the_client(run) -> None:
    """A server that accepts and never answers the ClientHello."""
    listener = socket.create_server(("127.0.0.1", 0))

    async def main() -> None:
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(HandshakeTimeout, match=r"did not finish within 0\.3 s"):
            await echo_once(address, tls=True, pin="sha256:" + "00" * 32, handshake_timeout=0.3)

    try:
        run(main())
    finally:
        listener.close()


def test_a_plain_server_and_client_do_not_load_wirecat_tls() -> None:
    """(asyncio itself imports ``ssl``; wirecat's TLS code and ``cryptography`` stay out.)"""
    import subprocess
    import sys

    code = (
        "import asyncio, sys, wirecat\n"
        "async def main():\n"
        "    async def h(conn): pass\n"
        "    server = await wirecat.serve(h, '127.0.0.1:0')\n"
        "    async with wirecat.connect(server.address): pass\n"
        "    await server.shutdown()\n"
        "asyncio.run(main())\n"
        "print('wirecat.tls' in sys.modules, 'cryptography' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.split() == ["False", "False"], out
