"""Narrate socket calls as they happen: ``--trace`` and ``wirecat.trace`` for learners.

A :class:`Tracer` prints one line per call, on stderr by default::

    [  0.000412] fd 3  socket(AF_INET, SOCK_STREAM) -> fd 3
    [  0.000533] fd 3  connect(127.0.0.1:9000) -> ok
    [  0.001021] fd 3  sendall(5 bytes)
    [  0.001410] fd 3  recv(65536) -> 5 bytes
    [  0.001502] fd 3  shutdown(SHUT_WR)
    [  0.001733] fd 3  close()

The time is seconds since tracing started; ``fd N`` is the socket's file
descriptor, as ``strace`` and ``/proc/PID/fd`` name it.

The lines come from the code path that made the call, with what it really
returned: a :class:`TracedSocket` is a real ``socket.socket`` whose methods
report themselves, and the byte pump reports each ``splice``/``sendfile``/
``read``/``write`` it makes. ``mode="explain"`` adds the cheat sheet's one
line to each call; ``mode="bytes"`` adds a hex dump of the data (like
``ncat -x``; the pump then copies through Python so that it sees the bytes).

Use it on your own sockets::

    import socket
    from wirecat import trace

    with trace.wrap(socket.socket()) as s:        # or trace.socket(...)
        s.connect(("127.0.0.1", 9000))            # printed as it happens

Tracing costs nothing when it is off: wirecat makes plain sockets unless
:func:`enable` was called, and the pump checks one attribute per chunk.
"""

from __future__ import annotations

import socket as _socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from wirecat.report import say

__all__ = [
    "MODES",
    "AddrInfo",
    "TracedSocket",
    "Tracer",
    "current",
    "disable",
    "enable",
    "format_address",
    "getaddrinfo",
    "hexdump",
    "new_socket",
    "socket",
    "wrap",
]

#: One answer of getaddrinfo(): (family, type, proto, canonname, sockaddr).
AddrInfo = tuple[
    _socket.AddressFamily,
    _socket.SocketKind,
    int,
    str,
    tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes],
]

#: What a trace shows: the calls; the calls and what each is for; the calls and their bytes.
MODES = ("calls", "explain", "bytes")

_FAMILIES: dict[int, str] = {
    _socket.AF_INET: "AF_INET",
    _socket.AF_INET6: "AF_INET6",
    getattr(_socket, "AF_UNIX", -1): "AF_UNIX",
}
_TYPES: dict[int, str] = {_socket.SOCK_STREAM: "SOCK_STREAM", _socket.SOCK_DGRAM: "SOCK_DGRAM"}
#: The real socket class, whose methods TracedSocket calls after (or before) reporting.
_base = _socket.socket
_HOWS = {_socket.SHUT_RD: "SHUT_RD", _socket.SHUT_WR: "SHUT_WR", _socket.SHUT_RDWR: "SHUT_RDWR"}
_LEVELS = {_socket.SOL_SOCKET: "SOL_SOCKET", _socket.IPPROTO_TCP: "IPPROTO_TCP"}
#: The options shown by name: every one wirecat sets or reads, and those a
#: learner's own code is likely to (a number would say nothing).
_OPTIONS: dict[tuple[int, int], str] = {
    (level, getattr(_socket, name)): name
    for level, names in (
        (
            _socket.SOL_SOCKET,
            "SO_REUSEADDR SO_REUSEPORT SO_KEEPALIVE SO_LINGER SO_ERROR SO_RCVBUF SO_SNDBUF"
            " SO_RCVTIMEO SO_SNDTIMEO SO_TYPE SO_BROADCAST",
        ),
        (_socket.IPPROTO_TCP, "TCP_NODELAY TCP_KEEPIDLE TCP_KEEPINTVL TCP_KEEPCNT"),
    )
    for name in names.split()
    if hasattr(_socket, name)
}
if hasattr(_socket, "IPV6_V6ONLY"):
    _LEVELS[_socket.IPPROTO_IPV6] = "IPPROTO_IPV6"
    _OPTIONS[(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY)] = "IPV6_V6ONLY"
#: getaddrinfo()'s errors (socket.gaierror) by number: they are not errno values.
_EAI_NAMES = {getattr(_socket, name): name for name in dir(_socket) if name.startswith("EAI_")}


def _option_value(name: str, value: object) -> str:
    """An option's value as a reader wants it: the C structs decoded (SO_LINGER, timeouts)."""
    if isinstance(value, (bytes, bytearray)):
        import struct

        try:
            if name == "SO_LINGER":
                on, seconds = struct.unpack("ii", value)
                return f"on, {seconds} s" if on else "off"
            if name in ("SO_RCVTIMEO", "SO_SNDTIMEO"):
                seconds, micro = struct.unpack("ll", value)
                return f"{seconds + micro / 1e6:g} s"
        except struct.error:
            pass
    return repr(value)


def format_address(address: object) -> str:
    """``('127.0.0.1', 80)`` → ``127.0.0.1:80``; ``('::1', 80, 0, 0)`` → ``[::1]:80``; paths as they are."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = str(address[0]), address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(address, bytes):
        address = address.decode(errors="replace")
    text = str(address)
    if text.startswith("\0"):
        return "@" + text[1:]
    return text or "(unnamed)"


def hexdump(data: bytes | bytearray | memoryview, indent: str = "    ") -> list[str]:
    """Lines of ``offset  hex bytes  |ascii|``, 16 bytes each, like ``ncat -x``."""
    lines = []
    view = bytes(data)
    for offset in range(0, len(view), 16):
        row = view[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{indent}{offset:08x}  {hexes:<47}  |{text}|")
    return lines


def _errno_name(exc: OSError) -> str:
    import errno

    if isinstance(exc, _socket.gaierror):
        return f"error {_EAI_NAMES.get(exc.errno, type(exc).__name__)}"
    name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return f"error {name}"


class Tracer:
    """Prints one line per socket call.

    Args:
        mode: ``"calls"``, ``"explain"`` (add what each call is for) or
            ``"bytes"`` (add a hex dump of data sent and received).
        write: where lines go; stderr by default. Called from any thread,
            one whole line at a time.
        label: put before every line (``"server"``, ``"client"``).
        timestamps: start each line with the seconds since the tracer was made.
    """

    def __init__(
        self,
        mode: str = "calls",
        write: Callable[[str], None] | None = None,
        *,
        label: str = "",
        timestamps: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"trace mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self.label = label
        self._write = write or _write_stderr
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._timestamps = timestamps

    @property
    def shows_bytes(self) -> bool:
        """True in ``bytes`` mode: data must pass through Python to be shown."""
        return self.mode == "bytes"

    def call(
        self,
        name: str,
        args: str = "",
        result: str | None = None,
        *,
        fd: int | None = None,
        data: bytes | bytearray | memoryview | None = None,
        explain: str | None = None,
    ) -> None:
        """Report that ``name(args)`` was called and returned ``result`` (None: nothing to say).

        Args:
            fd: the file descriptor the call was made on (for a call on two,
                the first argument of the system call, as strace shows it);
                None for a call on none (``getaddrinfo``).
            data: the bytes moved, dumped in ``bytes`` mode.
            explain: the cheat sheet entry to explain it with (``name`` by default).
        """
        stamp = f"[{time.monotonic() - self._started:10.6f}] " if self._timestamps else ""
        where = f"fd {fd}  " if fd is not None else ""
        said = f"{name}({args})" if result is None else f"{name}({args}) -> {result}"
        lines = [f"{stamp}{self.label + ' ' if self.label else ''}{where}{said}"]
        if self.mode == "explain":
            from wirecat.cheatsheet import explain_call

            # The note that fits this call's arguments and result:
            # setblocking(True) is not setblocking(False).
            note = explain_call(explain or name, said)
            if note:
                lines[0] += f"    # {note}"
        elif self.mode == "bytes" and data:
            lines += hexdump(data)
        with self._lock:
            for text in lines:
                self._write(text)

    def failed(
        self, name: str, args: str, exc: BaseException, *, fd: int | None = None, explain: str | None = None
    ) -> None:
        """Report a call that raised."""
        if isinstance(exc, OSError):
            reason = _errno_name(exc) if exc.errno else type(exc).__name__
        else:
            reason = type(exc).__name__
        self.call(name, args, reason, fd=fd, explain=explain)


def _write_stderr(line: str) -> None:
    try:
        say(f"trace {line}")
    except (OSError, ValueError):
        pass


_current: Tracer | None = None


def enable(tracer: Tracer | None = None) -> Tracer:
    """Trace every socket wirecat makes from now on (process-wide); return the tracer."""
    global _current
    _current = tracer or Tracer()
    return _current


def disable() -> None:
    """Stop tracing new sockets."""
    global _current
    _current = None


def current() -> Tracer | None:
    """The process-wide tracer, or None when tracing is off."""
    return _current


def _size(data: object) -> int:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return memoryview(data).nbytes  # type: ignore[arg-type]


class TracedSocket(_socket.socket):
    """A real ``socket.socket`` that reports each call to a :class:`Tracer`.

    Sockets it accepts are traced too. Make one with :func:`socket` or
    :func:`wrap`, or pass ``tracer=`` (the process-wide one by default).
    """

    __slots__ = ("_tracer",)

    def __init__(
        self,
        family: int = -1,
        type: int = -1,
        proto: int = -1,
        fileno: int | None = None,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        self._tracer = tracer or current() or Tracer()
        try:
            super().__init__(family, type, proto, fileno)
        except OSError as exc:
            if fileno is None:
                self._tracer.failed("socket", self._kind_text(family, type), exc)
            raise
        fd = self.fileno()
        if fileno is None:
            self._tracer.call("socket", self._kind_text(self.family, self.type), f"fd {fd}", fd=fd)
        else:
            # Wrapping a descriptor: CPython checks it is a socket with getsockname().
            self._tracer.call("socket", f"fileno={fd}", "ok (checked with getsockname())", fd=fd)

    @staticmethod
    def _kind_text(family: int, kind: int) -> str:
        return f"{_FAMILIES.get(family, str(family))}, {_TYPES.get(kind & 0xF, str(kind))}"

    def _run(
        self,
        name: str,
        args: str,
        call: Callable[[], Any],
        result: Callable[[Any], str | None],
        explain: str | None = None,
    ) -> Any:
        fd = self.fileno()
        try:
            value = call()
        except BlockingIOError:
            raise  # not a failure: "nothing now", the event loop asks again
        except OSError as exc:
            self._tracer.failed(name, args, exc, fd=fd, explain=explain)
            raise
        self._tracer.call(name, args, result(value), fd=fd, explain=explain)
        return value

    def _stream_or_datagram(self) -> str | None:
        """The entry that explains connect/send/recv on this socket: None (the call's
        own), or SOCK_DGRAM, whose notes say what they mean for datagrams (a UDP
        connect() sends nothing, send() is never partial, recv() takes one datagram)."""
        return "SOCK_DGRAM" if self.type & 0xF == _socket.SOCK_DGRAM else None

    def _got(self, count: int) -> str:
        if count:
            return f"{count} bytes"
        if self.type & 0xF == _socket.SOCK_DGRAM:
            return "0 bytes (an empty datagram)"  # datagrams have no end of stream
        return "0 bytes (end of stream)"

    # -- setting up --------------------------------------------------------------------------

    def bind(self, address: Any, /) -> None:
        """bind(), traced."""
        self._run("bind", format_address(address), lambda: _base.bind(self, address), _ok)

    def listen(self, backlog: int = 128, /) -> None:
        """listen(), traced."""
        self._run("listen", str(backlog), lambda: _base.listen(self, backlog), _ok)

    def accept(self) -> tuple[TracedSocket, Any]:
        """accept(), traced; the new socket is traced too."""
        try:
            fd, address = self._accept()  # type: ignore[attr-defined]
        except BlockingIOError:
            raise
        except OSError as exc:
            self._tracer.failed("accept", "", exc, fd=self.fileno())
            raise
        self._tracer.call("accept", "", f"fd {fd}, peer {format_address(address)}", fd=self.fileno())
        sock = TracedSocket(self.family, self.type, self.proto, fileno=fd, tracer=self._tracer)
        # As socket.accept(): a listener with a timeout hands out blocking sockets.
        if _socket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, address

    def connect(self, address: Any, /) -> None:
        """connect(), traced; on a non-blocking socket its EINPROGRESS too (an event loop's connect)."""
        text = format_address(address)
        explain = self._stream_or_datagram()
        try:
            self._run("connect", text, lambda: _base.connect(self, address), _ok, explain)
        except BlockingIOError as exc:
            # Not "nothing now", as for recv(): the handshake has started, and
            # a learner should see the connect() an event loop makes.
            import errno

            what = errno.errorcode.get(exc.errno or 0, "BlockingIOError")
            self._tracer.call("connect", text, what, fd=self.fileno(), explain=explain)
            raise

    def connect_ex(self, address: Any, /) -> int:
        """connect_ex(), traced (EINPROGRESS shown as such)."""
        import errno

        def result(code: int) -> str:
            return "0 (connected)" if code == 0 else errno.errorcode.get(code, str(code))

        return int(
            self._run("connect_ex", format_address(address), lambda: _base.connect_ex(self, address), result)
        )

    def setsockopt(self, level: int, option: int, value: Any, *args: Any) -> None:
        """setsockopt(), traced with the option's name."""
        name = _OPTIONS.get((level, option), str(option))
        text = f"{_LEVELS.get(level, str(level))}, {name}, {_option_value(name, value)}"
        self._run("setsockopt", text, lambda: _base.setsockopt(self, level, option, value, *args), _ok)

    def getsockopt(self, level: int, option: int, *args: Any) -> Any:
        """getsockopt(), traced."""
        name = _OPTIONS.get((level, option), str(option))
        text = f"{_LEVELS.get(level, str(level))}, {name}"

        def result(value: object) -> str:
            if name == "SO_ERROR" and isinstance(value, int) and value:
                import errno

                return f"{value} ({errno.errorcode.get(value, '?')})"
            return _option_value(name, value)

        return self._run("getsockopt", text, lambda: _base.getsockopt(self, level, option, *args), result)

    def getsockname(self) -> Any:
        """getsockname(), traced."""
        return self._run("getsockname", "", lambda: _base.getsockname(self), format_address)

    def getpeername(self) -> Any:
        """getpeername(), traced."""
        return self._run("getpeername", "", lambda: _base.getpeername(self), format_address)

    def settimeout(self, value: float | None, /) -> None:
        """settimeout(), traced (it is fcntl() underneath, not a network call)."""
        super().settimeout(value)
        self._tracer.call("settimeout", repr(value), fd=self.fileno())

    def setblocking(self, flag: bool, /) -> None:
        """setblocking(), traced."""
        super().setblocking(flag)
        self._tracer.call("setblocking", repr(flag), fd=self.fileno())

    # -- data ----------------------------------------------------------------------------------

    def send(self, data: Any, flags: int = 0, /) -> int:
        """send(), traced: shows how much of it was taken."""
        size = _size(data)
        count = int(
            self._run(
                "send",
                f"{size} bytes",
                lambda: _base.send(self, data, flags),
                _bytes,
                self._stream_or_datagram(),
            )
        )
        self._dump(memoryview(data)[:count])
        return count

    def sendall(self, data: Any, flags: int = 0, /) -> None:
        """sendall(), traced."""
        self._run("sendall", f"{_size(data)} bytes", lambda: _base.sendall(self, data, flags), _none)
        self._dump(data)

    def sendto(self, data: Any, *args: Any) -> int:
        """sendto(), traced."""
        address = args[-1]
        text = f"{_size(data)} bytes, {format_address(address)}"
        count = int(self._run("sendto", text, lambda: _base.sendto(self, data, *args), _bytes))
        self._dump(data)
        return count

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        """recv(), traced: shows how many bytes came (0: end of stream)."""
        data: bytes = self._run(
            "recv",
            str(bufsize),
            lambda: _base.recv(self, bufsize, flags),
            lambda got: self._got(len(got)),
            self._stream_or_datagram(),
        )
        self._dump(data)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0, /) -> int:
        """recv_into(), traced."""
        size = nbytes or _size(buffer)
        count = int(
            self._run(
                "recv_into",
                str(size),
                lambda: _base.recv_into(self, buffer, nbytes, flags),
                self._got,
                self._stream_or_datagram(),
            )
        )
        self._dump(memoryview(buffer)[:count])
        return count

    def recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
        """recvfrom(), traced with the sender's address."""

        def result(value: tuple[bytes, Any]) -> str:
            return f"{len(value[0])} bytes from {format_address(value[1])}"

        data, address = self._run(
            "recvfrom", str(bufsize), lambda: _base.recvfrom(self, bufsize, flags), result
        )
        self._dump(data)
        return data, address

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0, /) -> tuple[int, Any]:
        """recvfrom_into(), traced with the sender's address."""

        def result(value: tuple[int, Any]) -> str:
            return f"{value[0]} bytes from {format_address(value[1])}"

        size = nbytes or _size(buffer)
        count, address = self._run(
            "recvfrom_into", str(size), lambda: _base.recvfrom_into(self, buffer, nbytes, flags), result
        )
        self._dump(memoryview(buffer)[: min(count, size)])
        return count, address

    def shutdown(self, how: int, /) -> None:
        """shutdown(), traced."""
        self._run("shutdown", _HOWS.get(how, str(how)), lambda: _base.shutdown(self, how), _none)

    def close(self) -> None:
        """close(), traced once (later calls do nothing, as for any socket)."""
        fd = self.fileno()
        super().close()
        if fd != -1:
            self._tracer.call("close", fd=fd)

    def _dump(self, data: Any) -> None:
        if self._tracer.mode == "bytes" and data:
            lines = hexdump(memoryview(data).cast("B") if isinstance(data, memoryview) else data)
            with self._tracer._lock:
                for line in lines:
                    self._tracer._write(line)


def _ok(_: object) -> str:
    return "ok"


def _none(_: object) -> None:
    return None


def _bytes(count: int) -> str:
    return f"{count} bytes"


def socket(
    family: int = _socket.AF_INET,
    type: int = _socket.SOCK_STREAM,
    proto: int = 0,
    *,
    tracer: Tracer | None = None,
) -> TracedSocket:
    """A new traced socket: ``socket.socket(...)`` that narrates itself."""
    return TracedSocket(family, type, proto, tracer=tracer)


def wrap(sock: _socket.socket, tracer: Tracer | None = None) -> TracedSocket:
    """Trace an existing socket from now on; ``sock`` itself must not be used any more.

    The descriptor moves to the returned socket (``detach()``), with its timeout.
    """
    timeout = sock.gettimeout()
    traced = TracedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach(), tracer=tracer)
    _socket.socket.settimeout(traced, timeout)  # untraced: not a call the user made
    return traced


def new_socket(family: int, kind: int, proto: int = 0) -> _socket.socket:
    """A socket for wirecat's own use: traced when tracing is on, plain otherwise."""
    tracer = _current
    if tracer is None:
        return _socket.socket(family, kind, proto)
    return TracedSocket(family, kind, proto, tracer=tracer)


def getaddrinfo(
    host: str | bytes | None, port: int, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> Sequence[AddrInfo]:
    """``socket.getaddrinfo``, reported when tracing is on (a name lookup is a call a learner should see).

    The answer is shown as getaddrinfo gave it, in the system's order
    (``[::1]:80, 127.0.0.1:80``); an error by its ``EAI_`` name.
    """
    tracer = _current
    if tracer is None:
        return _socket.getaddrinfo(host, port, family, type, proto, flags)
    shown = host.decode() if isinstance(host, bytes) else host
    words = [repr(shown) if shown is not None else "None", str(port)]
    words.append(_FAMILIES.get(family, "AF_UNSPEC") if family else "AF_UNSPEC")
    if type:
        words.append(_TYPES.get(type, str(type)))
    words += [name for name in ("AI_PASSIVE", "AI_NUMERICHOST") if flags & getattr(_socket, name)]
    args = ", ".join(words)
    try:
        infos = _socket.getaddrinfo(host, port, family, type, proto, flags)
    except OSError as exc:
        tracer.failed("getaddrinfo", args, exc)
        raise
    tracer.call("getaddrinfo", args, ", ".join(format_address(info[4]) for info in infos) or "nothing")
    return infos
